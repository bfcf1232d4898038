"""Rows the settle pass of manifests mode sends to NB as it goes (sync.settle).

Manifests mode reconciles every object twice on a start: a plan-only settle pass lets the
controller's own Kubernetes-side writes (IPAM annotations, ClusterIPs, EndpointSlices,
YusurService objects) converge in memory, then the full sync writes NB. NB would sit idle
through the whole settle pass, and then have all the rows to commit at once. So the settle
pass streams the rows of objects whose outcome cannot change with what it settles, and the
server commits them while the pass goes on; the full sync then finds them in place and
plans nothing for them (topology.plan `_in_place`).

Only rows that are new are sent this way: every owner of the outcome has no row in NB yet,
so nothing NB already holds is ever changed before the settle pass is over (a restart, whose
owners are all in NB, sends nothing early: it still writes nothing at all). And only
outcomes that are clean (not invalid, not retrying), of objects that contend for nothing
the settle pass may still hand to another object:

- VPCs and subnets (routers, switches, their ports, load balancer groups);
- pods (their switch ports; a pod refused an address is invalid, so not sent);
- ClusterIP Services that no YusurService made: an EIP, and the backends a YusurService
  writes, are settled by the pass itself (a YusurService made during it may take an EIP
  from an older object), so LoadBalancer Services and a YusurService's Services wait for
  the full sync.

As a chunk commits, the Ready conditions of its objects are written (their rows are in NB),
so these writes overlap the server's work too; the full sync hands them again with the rest
of its writes (the writer finds nothing left to change: a condition another write of the
pass replaced while it waited is written then).

A row is sent only once every row it links to is in NB or sent before it: a VPC attached
to an EIP pool has a port on the pool's gateway, which the pass settles, so that VPC waits
for the full sync, and so does everything in it.

Should an object sent early come out different after the pass (an EndpointSlice the pass
derives for it, say), the full sync reconciles it again and updates its rows, as it would
any other change. Rows refused by NB here are left to the full sync, which reports them.
Early rows need client-chosen UUIDs (OVS >= 3.1): a chunk is planned on top of the chunks
still in flight (topology.nbsync.chunks.Stream).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from topology.model import Owner, RowId
from topology.nbsync.chunks import Stream
from ycloud_controller.keys import YSVC_LABEL
from ycloud_controller.reconcilers.base import Outcome
from ycloud_controller.sync.chunks import Chunks, is_condition
from ycloud_controller.triggers import Key

log = structlog.get_logger(__name__)

EARLY_KINDS = frozenset({"Vpc", "Subnet", "Pod", "Service"})


def settled_by_itself(kind: str, obj: dict[str, Any] | None) -> bool:
    """Whether an object of `kind` has an outcome the settle pass cannot change through
    another object (see the module docstring)."""
    if kind not in EARLY_KINDS:
        return False
    if kind != "Service":
        return True
    if obj is None:
        return False
    labels = (obj.get("metadata") or {}).get("labels") or {}
    stype = (obj.get("spec") or {}).get("type") or "ClusterIP"
    return stype == "ClusterIP" and YSVC_LABEL not in labels


class EarlyRows:
    """The settle pass's stream of new rows (see the module docstring). Not thread-safe:
    used by the controller's worker."""

    def __init__(self, stream_of: Callable[..., Stream], in_nb: Callable[[Owner], bool],
                 lookup: Callable[[Key], dict[str, Any] | None],
                 submit: Callable[[list], None], row_in_nb: Callable[[RowId], bool]):
        self.chunks = Chunks(stream_of, self._landed)
        self.in_nb = in_nb  # an owner with a row in NB
        self.row_in_nb = row_in_nb
        self.lookup = lookup  # an object by key, from the informer caches
        self.submit = submit  # to the Kubernetes writer
        self.owners = 0
        self._rows: set[RowId] = set()  # every row sent
        self._sent: dict[Key, object] = {}  # key -> the rows (outcome.rows) sent

    def add(self, key: Key, outcome: Outcome) -> None:
        """Send `outcome`'s rows if they may go now."""
        if outcome.invalid is not None or outcome.retry is not None or not outcome.rows:
            return
        for owner, rows in outcome.rows.items():
            if not rows or self.in_nb(owner):
                return
        if not settled_by_itself(key[0], self.lookup(key) if key[0] == "Service" else None):
            return
        own = {row.rid for rows in outcome.rows.values() for row in rows}
        if not self._linked(outcome, own):
            return
        self._rows |= own
        self.chunks.add(key, outcome)
        self._sent[key] = outcome.rows
        self.owners += len(outcome.rows)

    def _linked(self, outcome: Outcome, own: set[RowId]) -> bool:
        """Whether every row the outcome's rows link to is its own, sent before, or in NB: a
        row that references a row not sent (a VPC's port on an EIP pool's gateway, which the
        pass settles) would be refused, and so would everything that references it."""
        sent, in_nb = self._rows, self.row_in_nb
        for rows in outcome.rows.values():
            for row in rows:
                for link in row.links():
                    other = link.child if link.parent == row.rid else link.parent
                    if other not in own and other not in sent and not in_nb(other):
                        return False
        return True

    @property
    def handed(self) -> set[Key]:
        """Objects whose conditions went to `submit` (all their rows are in NB)."""
        return self.chunks.early

    def _landed(self, effects: list) -> None:
        """The writes of objects whose rows all committed: their conditions go to `submit`
        now (the rows are in NB: a Ready condition is true), while later chunks are still on
        their way. Their other writes are the settle pass's own (its commit hands them)."""
        self.submit([e for e in effects if is_condition(e)])

    def flush(self) -> None:
        self.chunks.flush()

    def abandon(self) -> None:
        """The settle pass failed: chunks may be in flight, and the index holds their rows
        before they committed. Load it again from the server (which answers in order, after
        them), so that nothing is taken for written that is not."""
        if not self.owners:
            return
        try:
            self.chunks.stream.applier.resync()
        except Exception as exc:  # noqa: BLE001 - a reconnection loads the index again too
            log.warning("could not reload NB rows after a failed settle pass", error=str(exc))

    def finish(self) -> dict[Key, object]:
        """Wait for the reply of every chunk sent (one that did not commit is committed again
        the careful way, topology.nbsync.chunks); returns, of each object all of whose rows are in
        NB now, the rows sent (its `outcome.rows`)."""
        # an owner refused here is left to the full sync, which plans and reports it
        result = self.chunks.finish(False, set(), last_go=False)
        landed = {key: rows for key, rows in self._sent.items() if key in self.chunks.early}
        log.info("settle pass rows sent early", owners=self.owners, objects=len(landed),
                 transactions=result.transactions, changes=result.changes,
                 refused=len(result.errors))
        return landed
