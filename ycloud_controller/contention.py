"""Objects refused because another object holds what they ask for.

A Pod asking for an address a Vnic holds, a Vnic asking for a MAC in use, a Service asking
for an EIP another Service has, an object left without an address in a full subnet: each is
refused with a status condition and an Event, and nothing about it changes when the holder
goes away. `Waiters` remembers these keys and hands them back to the queue as soon as a
reconcile of some other object gives addresses back to an allocator, so the refused object
gets what it asked for without waiting for the periodic resync.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from ycloud_controller.cluster_ips import ClusterIps
from ycloud_controller.ipam import Ipam
from ycloud_controller.reconcilers.base import Outcome

K = TypeVar("K")

# reasons (ycloud_controller.ipam, reconcilers) that mean "held by another object"
CONTENDED = frozenset({"AddressInUse", "MacInUse", "SubnetFull", "EIPUnavailable"})


class Waiters:
    """Not thread-safe: used by the controller's single worker."""

    def __init__(self, allocators: Iterable[Ipam | ClusterIps]):
        self.allocators = tuple(allocators)
        self.keys: set = set()

    def _released(self) -> int:
        return sum(a.releases for a in self.allocators)

    def reconcile(self, key: K, run: Callable[[K], Outcome]) -> tuple[Outcome, bool]:
        """Run one reconcile; returns its outcome and whether it freed addresses that a
        waiting object may now get (a waiting object's own reconcile never counts, so two
        waiters cannot wake each other forever)."""
        before = self._released()
        outcome = run(key)
        waiting = outcome.invalid is not None and outcome.invalid.reason in CONTENDED
        if waiting:
            self.keys.add(key)
        else:
            self.keys.discard(key)
        return outcome, not waiting and self._released() != before
