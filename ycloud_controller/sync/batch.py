"""Reconciling a batch of keys into outcomes: `Batch` runs one reconcile per key (timed,
a crash caught as a retry), lists every object of a full sync in dependency order, and
wakes objects refused for something another object held (`Waiters`) once an address comes
back. It writes nothing: the outcomes go to `sync.commit`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, TypeVar

import structlog

from topology.nbsync.client import NbClient
from ycloud_controller import metrics
from ycloud_controller.cluster_ips import ClusterIps
from ycloud_controller.ipam import Ipam
from ycloud_controller.kube.workqueue import WorkQueue
from ycloud_controller.reconcilers import registry
from ycloud_controller.reconcilers.base import Context, Outcome
from ycloud_controller.restore import restore_ipam
from ycloud_controller.triggers import NETWORK_KEY, Key, Triggers

log = structlog.get_logger(__name__)

K = TypeVar("K")
_RELEASES = attrgetter("releases")

# reasons (ycloud_controller.ipam, reconcilers) that mean "held by another object"
CONTENDED = frozenset({"AddressInUse", "MacInUse", "SubnetFull", "EIPUnavailable"})


class Waiters:
    """Objects refused because another object holds what they ask for.

    A Pod asking for an address a Vnic holds, a Vnic asking for a MAC in use, a Service asking
    for an EIP another Service has, an object left without an address in a full subnet: each
    is refused with a status condition and an Event, and nothing about it changes when the
    holder goes away. `Waiters` remembers these keys and hands them back to the queue as soon
    as a reconcile of some other object gives addresses back to an allocator, so the refused
    object gets what it asked for without waiting for the periodic resync. Not thread-safe:
    used by the controller's single worker."""

    def __init__(self, allocators: Iterable[Ipam | ClusterIps]):
        self.allocators = tuple(allocators)
        self.keys: set = set()

    def _released(self) -> int:
        return sum(map(_RELEASES, self.allocators))  # twice per reconcile: no generator

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


@dataclass
class Reconciled:
    """A batch's outcomes, in reconcile order."""

    outcomes: dict[Key, Outcome] = field(default_factory=dict)
    reused: int = 0  # outcomes taken as they were (a settle pass's), not reconciled
    freed: bool = False  # a reconcile gave addresses back: waiters get another go


class Batch:
    """Reconciles keys into outcomes with the reconcilers of `registry.build`."""

    def __init__(self, ctx: Context, triggers: Triggers, informers: Mapping[str, Any],
                 reconcilers: Mapping[str, Callable[[str], Outcome]], queue: WorkQueue,
                 nb: NbClient | None = None):
        self.ctx = ctx
        self.triggers = triggers
        self.informers = informers
        self.reconcilers = reconcilers
        self.queue = queue
        self.nb = nb  # where IPAM is restored from before a full sync
        self.waiters = Waiters((ctx.ipam, ctx.eips,
                                *([ctx.cluster_ips] if ctx.cluster_ips else [])))
        self._observe = {kind: metrics.RECONCILE_SECONDS.labels(kind=kind).observe
                         for kind in reconcilers}  # labels() costs as much as observe()

    def reconcile(self, key: Key) -> Outcome:
        kind, name = key
        start = time.perf_counter()
        try:
            outcome = self.reconcilers[kind](name)
        except Exception as exc:  # noqa: BLE001 - one broken object must not stop the loop
            log.exception("reconcile crashed", kind=kind, object=name)
            metrics.RECONCILES.labels(kind=kind, result="crash").inc()
            return Outcome(retry=f"internal error: {exc}")
        self._observe[kind](time.perf_counter() - start)
        return outcome

    def run(self, keys: Iterable[Key], reuse: Mapping[Key, Outcome] | None = None,
            each: Callable[[Key, Outcome, bool], None] | None = None) -> Reconciled:
        """Reconcile `keys` in order, or take the outcome `reuse` has for a key (an object
        whose reconcile would give the same again). `each(key, outcome, reused)` hears every
        outcome as it comes (a full sync streams the rows meanwhile)."""
        done = Reconciled()
        outcomes = done.outcomes
        for key in keys:
            outcome = reuse.get(key) if reuse else None
            reused = outcome is not None
            if outcome is not None:
                done.reused += 1
            else:
                outcome, released = self.waiters.reconcile(key, self.reconcile)
                done.freed |= released
            outcomes[key] = outcome
            if each is not None:
                each(key, outcome, reused)
        return done

    def wake(self, done: Reconciled) -> None:
        """After the batch is committed: subnets and EIP pools whose addresses changed are
        queued to count them again (Triggers.allocations_changed), and when addresses came
        back, the objects refused them are queued again."""
        self.triggers.allocations_changed(self.ctx.ipam, self.ctx.eips)
        if done.freed:
            for key in self.waiters.keys:
                self.queue.add(key)

    # -- which keys -------------------------------------------------------------------------
    def of_batch(self, keys: Iterable[Key]) -> list[Key]:
        """Queued `keys` in reconcile order, without the network key (its change is applied
        now: the network model is rebuilt) and without kinds nothing reconciles."""
        keys = list(keys)
        if NETWORK_KEY in keys:
            self.triggers.rebuild_network()
            keys = [k for k in keys if k != NETWORK_KEY]
        return self.order([k for k in keys if k[0] in self.reconcilers])

    def order(self, keys: list[Key]) -> list[Key]:
        return registry.order_keys(keys, self.ctx.stores, self.ctx.precedence)

    def _keys_of(self, kind: str) -> list[str]:
        if kind == "Endpoints":
            return self.informers["Service"].store.keys() if self.ctx.emulate_cluster else []
        keys = set(self.informers[kind].store.keys())
        net = self.triggers.network()
        if kind == "Vpc":
            keys |= set(net.vpcs)
        elif kind == "Subnet":
            keys |= set(net.config_subnets)
        return sorted(keys)

    def every_key(self) -> list[Key]:
        """Every object, by kind (unordered within a kind)."""
        return [(kind, k) for kind in registry.ORDER if kind in self.reconcilers
                for k in self._keys_of(kind)]

    def all_keys(self) -> list[Key]:
        """Every object, in reconcile (dependency) order."""
        return self.order(self.every_key())

    def restore(self) -> None:
        """Before every object is reconciled: the subnets' address ranges, and the addresses
        NB and the pods' annotations record (ycloud_controller.restore)."""
        net = self.triggers.network()
        for sub in net.subnets.values():
            self.ctx.ipam.set_subnet(sub)
        restore_ipam(self.ctx, self.informers, self.nb, net)
