"""Who keeps a contested resource: one rule for every conflict the controller refuses.

When two objects ask for one thing (overlapping Subnet or EipPool CIDRs, a namespace bound
twice, a second default subnet or pool, one static IP, MAC, EIP or ClusterIP, a service
gateway link), the one that ranks first keeps it and the other is refused with a condition
and an Event. The rank is decided by state that lasts, never by what one process happened
to see first, so a restart, a resync, a relist or a new leader decides the same:

1. the holder first: an object whose rows NB records as owned (external_ids
   `ycloud.io/kind` + `ycloud.io/owner`); where NB records the contested CIDR itself
   (a subnet's or a pool's router port networks), only if what it records overlaps what the
   object asks for now, so an edit that moves onto another object's range does not make
   the editor the holder;
2. then the older object, by creationTimestamp, in cluster mode only: in manifests mode
   the timestamps are the loading process's own and say nothing that lasts;
3. then the name (then the kind).

Addresses (static IPs, MACs, EIPs) follow the same rule through IPAM: what a restart
restores from NB and from the pod annotations is given back to its holder before anything
is allocated (ycloud_controller.restore), and keys are reconciled in `rank` order.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from topology.model import Owner
from ycloud_controller.api.common import IPNetwork, key_of, meta, overlaps

ROUTER_PORTS = "Logical_Router_Port"


class Holdings(Protocol):
    def holds_owner(self, owner: Owner) -> bool:
        """Whether NB records rows of `owner`."""

    def held(self, owners: Iterable[Owner]) -> set[Owner]:
        """Those of `owners` NB records rows of."""

    def records(self, owner: Owner, cidrs: Sequence[IPNetwork]) -> bool:
        """Whether what NB records for `owner` overlaps `cidrs` (True where it records
        no range for it)."""

    def holds(self, owner: Owner, table: str) -> bool:
        """Whether NB records a row of `table` owned by `owner`."""


class NoHoldings:
    """Nothing is held (unit tests, and a controller without NB)."""

    def holds_owner(self, owner: Owner) -> bool:
        return False

    def held(self, owners: Iterable[Owner]) -> set[Owner]:
        return set()

    def records(self, owner: Owner, cidrs: Sequence[IPNetwork]) -> bool:
        return False

    def holds(self, owner: Owner, table: str) -> bool:
        return False


class NbHoldings:
    """What NB records as owned, read from the NB client's index of our rows, one owner at
    a time (a batch of one key asks for one owner, not for all of them). While the session
    is down or reloading, the index keeps the last synced contents: it is replaced only when
    a new monitor reply is in, at once under the session lock (topology.ovsdb.monitor), so a
    reconnection never hands anything to a newcomer."""

    def __init__(self, nb: Any):  # an NbClient (duck-typed: index, read, connected)
        self.nb = nb

    def holds_owner(self, owner: Owner) -> bool:
        return self.nb.session is not None and self.nb.read(self._holds_owner, owner)

    def _holds_owner(self, owner: Owner) -> bool:
        return owner in self.nb.index.by_owner

    def held(self, owners: Iterable[Owner]) -> set[Owner]:
        """Which of `owners` NB records rows of, in one read."""
        if self.nb.session is None:
            return set()
        return self.nb.read(self._held, owners)

    def _held(self, owners: Iterable[Owner]) -> set[Owner]:
        by_owner = self.nb.index.by_owner
        return {o for o in owners if o in by_owner}

    def records(self, owner: Owner, cidrs: Sequence[IPNetwork]) -> bool:
        return bool(self.nb.read(self._records, owner, tuple(cidrs)))

    def holds(self, owner: Owner, table: str) -> bool:
        return bool(self.nb.read(self._holds, owner, table))

    def _holds(self, owner: Owner, table: str) -> bool:
        if not self.nb.connected():
            return True  # as held as the last holdings say: keep what may be there
        return any(rid.table == table for rid in self.nb.index.by_owner.get(owner, ()))

    def _records(self, owner: Owner, cidrs: tuple[IPNetwork, ...]) -> bool:
        if not self.nb.connected():
            return True  # as held as the last holdings say
        index = self.nb.index
        recorded = []
        for rid in index.by_owner.get(owner, ()):
            if rid.table != ROUTER_PORTS:
                continue
            for row_uuid in index.lookup(rid):
                try:
                    networks = index.row(ROUTER_PORTS, row_uuid).networks
                except KeyError:
                    continue
                recorded += [ipaddress.ip_interface(net).network for net in networks]
        return not recorded or overlaps(recorded, cidrs)


@dataclass(frozen=True)
class Precedence:
    holdings: Holdings = NoHoldings()
    ages: bool = True  # creationTimestamp counts (cluster mode)

    def age(self, obj: dict[str, Any] | None) -> str:
        if not self.ages or obj is None:
            return ""
        return str(meta(obj).get("creationTimestamp") or "")

    def ranking(self, owners: Iterable[Owner] | None = None) -> Ranking:
        """A ranking of objects against what NB holds. `owners`: those about to be ranked,
        whose holdings are then read from NB at once, not one read per object."""
        if owners is None:
            return Ranking(self)
        asked = frozenset(owners)
        return Ranking(self, asked, frozenset(self.holdings.held(asked)))


@dataclass(frozen=True)
class Ranking:
    precedence: Precedence
    asked: frozenset[Owner] = frozenset()  # owners whose holdings were read at once
    held: frozenset[Owner] = frozenset()  # those of them NB records rows of

    def rank(self, kind: str, obj: dict[str, Any], cidrs: Sequence[IPNetwork] = (),
             age_of: dict[str, Any] | None = None, key: str | None = None,
             ) -> tuple[int, str, str]:
        """Sort key: lower ranks first. `cidrs`: the ranges the object asks for now;
        `age_of`: the object whose age counts (a YusurService's Service has the age of its
        YusurService); `key`: the object's key when the caller has it already."""
        if key is None:
            key = key_of(obj)
        precedence = self.precedence
        pair = (kind, key)  # equal to Owner(kind, key), without building one per object
        if pair in self.asked:
            held = pair in self.held
        else:
            held = precedence.holdings.holds_owner(Owner(kind, key))
        if held and cidrs:
            held = precedence.holdings.records(Owner(kind, key), cidrs)
        return (0 if held else 1, precedence.age(age_of if age_of is not None else obj), key)
