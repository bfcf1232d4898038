"""The watch loop: informers -> work queue -> reconcilers -> one NB apply per batch -> writes.

Threads: one informer per watched kind (handlers only enqueue keys), one worker (reconciles
a batch of keys, applies the batch's rows to NB in one transaction, hands Kubernetes writes to
the KubeWriter), the KubeWriter, and optionally the leader elector. Only the leader applies to
NB and writes Kubernetes; a replica that becomes leader first runs a full sync (every object,
garbage collection of rows whose owner is gone), then drains the queue. The loops (batch
step, serve, drain) are in ycloud_controller.loops.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import partial

import structlog

from topology import metrics as nb_metrics
from topology import naming
from topology.apply import Applier, ApplyResult
from topology.model import Owner, Row
from topology.nb import NbClient
from topology.ovsdb_types import gc_paused
from topology.plan import Plan
from topology.sb import SbMonitor
from topology.stream import Stream
from ycloud_controller import cluster_ips, metrics
from ycloud_controller.api.common import meta
from ycloud_controller.cluster_ips import ClusterIps
from ycloud_controller.config import Config
from ycloud_controller.contention import Waiters
from ycloud_controller.early_rows import EarlyRows, without_conditions
from ycloud_controller.internal_ipam import InternalIpam
from ycloud_controller.ipam import Ipam
from ycloud_controller.kube import resources as res
from ycloud_controller.kube.backend import Backend
from ycloud_controller.kube.events import EventRecorder
from ycloud_controller.kube.informer import Informer
from ycloud_controller.kube.queue import WorkQueue
from ycloud_controller.kube.status import StatusWriter
from ycloud_controller.loops import Loops
from ycloud_controller.precedence import NbHoldings, NoHoldings, Precedence
from ycloud_controller.reconcilers import registry
from ycloud_controller.reconcilers.base import Context, Outcome
from ycloud_controller.restore import restore_ipam
from ycloud_controller.sync_support import (
    Chunks,
    Progress,
    SyncReport,
    Verdicts,
    for_reuse,
    freeze_heap,
    not_ready,
    same_rows,
)
from ycloud_controller.triggers import NETWORK_KEY, Key, Triggers
from ycloud_controller.writer import KubeWriter

log = structlog.get_logger(__name__)

WATCHED: dict[str, res.Resource] = {
    "Namespace": res.NAMESPACES, "Node": res.NODES, "Pod": res.PODS, "Service": res.SERVICES,
    "EndpointSlice": res.ENDPOINTSLICES, "Vpc": res.VPCS, "Subnet": res.SUBNETS,
    "EipPool": res.EIPPOOLS, "Vnic": res.VNICS, "YusurService": res.YUSURSERVICES,
    "NetworkProbe": res.NETWORKPROBES,
}


class NbUnavailable(RuntimeError):
    """NB cannot be reached: the batch is kept for later."""


def _no_chassis(lrp: str) -> str | None:
    return None


def _ns_index(obj: dict) -> list[str]:
    return [meta(obj).get("namespace") or ""]


class Controller(Loops):
    def __init__(self, cfg: Config, backend: Backend, nb: NbClient | None, *,
                 emulate: bool = False, write_kube: bool = True, plan_only: bool = False,
                 is_leader: Callable[[], bool] | None = None, sb: SbMonitor | None = None,
                 object_ages: bool = True):
        self.cfg = cfg
        self.backend = backend
        self.nb = nb
        self.plan_only = plan_only
        self.is_leader = is_leader or (lambda: True)
        self.stop_event = threading.Event()
        self.queue = WorkQueue()
        # a full sync comes first (sync --once, and run before its first batch), and it
        # reconciles every listed object: the first list's events would only queue them twice
        self.informers = {kind: Informer(backend, r, on_restart=metrics.watch_restart_hook(kind),
                                         quiet_first_list=True)
                          for kind, r in WATCHED.items()}
        stores = {kind: inf.store for kind, inf in self.informers.items()}
        for kind in ("Pod", "Service", "Vnic", "EndpointSlice", "NetworkProbe"):
            stores[kind].add_index("namespace", _ns_index)
        stores["EndpointSlice"].add_index("service", registry.slice_service_key)
        stores["Service"].add_index(cluster_ips.INDEX, cluster_ips.index)
        stores["NetworkProbe"].add_index(registry.PROBE_INDEX, registry.probe_index)
        # object_ages=False (a manifests directory): creationTimestamps are this process's
        # own, not the objects', and decide no conflict
        self.precedence = Precedence(NbHoldings(nb) if nb is not None else NoHoldings(),
                                     ages=object_ages)
        self.triggers = Triggers(cfg, stores, self.queue.add, emulate,
                                 pool_in_use=self._pool_in_use, precedence=self.precedence)
        for kind, inf in self.informers.items():
            inf.add_handler(self.triggers.handler(kind))
        self.ipam = Ipam()
        self.ctx = Context(cfg, stores, self.triggers.network, self.ipam, emulate,
                           internal=InternalIpam(cfg.internal_cidr),
                           active_chassis=sb.active_chassis if sb is not None else _no_chassis,
                           precedence=self.precedence)
        if emulate:
            self.ctx.cluster_ips = ClusterIps(cfg.service_cidr)
        self.waiters = Waiters((self.ipam, self.ctx.eips,
                                *([self.ctx.cluster_ips] if self.ctx.cluster_ips else [])))
        self.sb = sb
        if sb is not None:
            sb.callback = self._on_sb
        self.reconcilers = registry.build(self.ctx, emulate,
                                          sb.monitors if sb is not None else registry.no_monitors)
        self._observe = {kind: metrics.RECONCILE_SECONDS.labels(kind=kind).observe
                         for kind in self.reconcilers}  # labels() costs as much as observe()
        self._counters: dict[tuple[str, str], Callable[[float], None]] = {}
        self.applier = Applier(nb) if nb is not None else None
        self.writer = KubeWriter(backend, EventRecorder(backend if write_kube else None),
                                 StatusWriter(backend), enabled=write_kube)
        self.writer.before_patch = self.triggers.expect_patch
        self.desired: dict[Owner, Sequence[Row] | None] = {}
        self.verdicts = Verdicts()
        # clean outcomes of the settle pass (recorded while it runs), for the full sync
        # right after it (see settle)
        self._settling: dict[Key, Outcome] | None = None
        self._settled: dict[Key, Outcome] = {}
        self._early: EarlyRows | None = None  # the settle pass's rows sent as it goes
        self._early_landed: dict[Key, object] = {}  # and what of them NB holds (see settle)
        self._applied: dict[Owner, Sequence[Row]] = {}  # what NB holds, by our last apply
        self._synced_as_leader = False
        self._nb_down = False  # the last batch found NB unreachable
        self._threads: list[threading.Thread] = []
        self.last_sync: SyncReport | None = None
        metrics.track_queue(lambda: len(self.queue), self.queue.oldest_age,
                            self.unfinished_keys, self.pending_work)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        for inf in self.informers.values():
            self._threads.append(inf.start(self.stop_event))
        writer = threading.Thread(target=self.writer.run, args=(self.stop_event,),
                                  name="kube-writer", daemon=True)
        writer.start()
        self._threads.append(writer)

    def wait_synced(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        return all(inf.wait_synced(max(0.0, deadline - time.monotonic()))
                   for inf in self.informers.values())

    def shutdown(self) -> None:
        self.stop_event.set()
        self.queue.shutdown()
        self.writer.wake()  # it would notice the stop only at its next poll
        for thread in self._threads:
            thread.join(timeout=5)

    def informers_synced(self) -> bool:
        return all(inf.has_synced() for inf in self.informers.values())

    def ready(self) -> bool:
        synced = self.informers_synced()
        nb_ok = self.nb is None or self.nb.connected()
        return synced and nb_ok and (self._synced_as_leader or not self.is_leader())

    def _pool_in_use(self, pool: str) -> bool:
        return any(a.subnet == pool and owner.startswith("Service/")
                   for owner, a in self.ctx.eips.owners().items())

    def _on_sb(self, topic: str, key: str) -> None:
        """SB changes (connection thread): health-check results, active gateway chassis."""
        if topic == "monitor":
            for probe in self.informers["NetworkProbe"].store.index_keys(registry.PROBE_INDEX,
                                                                         key):
                self.queue.add(("NetworkProbe", probe))
        elif topic == "gateway":
            for pool in self.triggers.network().pools:
                if naming.eip_gateway_uplink(pool) == key:
                    self.queue.add(("EipPool", pool))

    # -- reconcile ----------------------------------------------------------------------------
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

    def _all_keys(self) -> list[Key]:
        return registry.order_keys([(kind, k) for kind in registry.ORDER
                                    if kind in self.reconcilers
                                    for k in self._keys_of(kind)], self.ctx.stores,
                                   self.precedence)

    # -- full sync ----------------------------------------------------------------------------
    def full_sync(self) -> SyncReport:
        """Reconcile every object and make NB equal to the result (with GC)."""
        start = time.monotonic()
        self.triggers.rebuild_network()  # queues what a changed network affects: see below
        # what is queued now, this sync covers: taken out (as processing) so that the drain
        # after it does not reconcile every listed object a second time; keys added
        # meanwhile, and keys it does not reconcile (deleted objects, the network key), are
        # queued again
        queued = self.queue.get_batch(sys.maxsize, 0)
        covered: set[Key] = set()
        reuse, self._settled = self._settled, {}
        landed, self._early_landed = self._early_landed, {}
        for key in queued:  # what settled and nothing queued since
            reuse.pop(key, None)
        try:
            # many new containers, no cycles: no collection scans the heap (a collection of
            # the listed objects alone took 60 ms at 10k services); the commit freezes it
            with gc_paused():
                net = self.triggers.network()
                for sub in net.subnets.values():
                    self.ipam.set_subnet(sub)
                restore_ipam(self.ctx, self.informers, self.nb, net)
                keys = self._all_keys()
                self.verdicts.restart()
                progress = Progress(len(keys))
                report = self._reconcile_and_commit(keys, full=True, tick=progress.tick,
                                                    reuse=reuse, landed=landed)
            covered = set(keys)
        finally:
            for key in queued:
                if key not in covered:
                    self.queue.add(key)
            self.queue.done(*queued)
        report.objects = len(keys)
        report.seconds = time.monotonic() - start
        self.last_sync = report
        metrics.SYNCS.labels(result="ok" if report.converged else "partial").inc()
        log.info("full sync done", objects=len(keys), reused=report.reused,
                 transactions=report.transactions,
                 changes=report.changes, invalid=len(report.invalid),
                 refused=len(report.refused), duration=round(report.seconds, 3))
        return report

    def reload_nb(self) -> None:
        """Load our NB rows again from the server before a periodic full sync, so that it
        also repairs Load_Balancer rows with our tags that others inserted (the monitor does
        not report those inserts: topology.nb QUIET_INSERTS)."""
        if self.applier is None or not self._writes_nb() or \
                (self.nb is not None and not self.nb.connected()):
            return
        start = time.monotonic()
        self.applier.resync()
        log.info("nb rows reloaded", duration=round(time.monotonic() - start, 3))

    def run_batch(self, keys: Iterable[Key]) -> SyncReport:
        keys = list(keys)
        if NETWORK_KEY in keys:
            self.triggers.rebuild_network()
            keys = [k for k in keys if k != NETWORK_KEY]
        return self._reconcile_and_commit(
            registry.order_keys([k for k in keys if k[0] in self.reconcilers], self.ctx.stores,
                                self.precedence),
            full=False)

    def _reconcile_and_commit(self, keys: list[Key], full: bool,
                              tick: Callable[[], None] = lambda: None,
                              reuse: dict[Key, Outcome] | None = None,
                              landed: dict[Key, object] | None = None) -> SyncReport:
        """Reconcile `keys` (or take the outcome `reuse` has for a key: an object whose
        reconcile would give the same again) and commit the outcomes. `landed`: the rows the
        settle pass sent early per object, in NB now (an object taken from `reuse` with those
        very rows is not planned again)."""
        outcomes: dict[Key, Outcome] = {}
        freed = False
        reused = 0
        chunks = self._chunks() if full else None
        early = self._early if full else None  # the settle pass (chunks is None then)
        for key in keys:
            outcome = reuse.get(key) if reuse else None
            if outcome is not None:
                outcomes[key] = outcome
                reused += 1
            else:
                outcomes[key], released = self.waiters.reconcile(key, self.reconcile)
                freed |= released
            if chunks is not None:
                if landed and outcome is not None and landed.get(key) is outcome.rows:
                    # its conditions were handed as its rows landed
                    chunks.landed_before(key, without_conditions(outcome.effects),
                                         outcome.rows)
                else:
                    chunks.add(key, outcomes[key])
            elif early is not None:
                early.add(key, outcomes[key])
            tick()
        if early is not None:
            early.flush()
        report = self._commit(outcomes, full=full, chunks=chunks)
        report.reused = reused
        self.triggers.allocations_changed(self.ipam, self.ctx.eips)
        if freed:  # addresses came back: objects refused them get another go
            for key in self.waiters.keys:
                self.queue.add(key)
        return report

    def _count(self, counts: Counter[tuple[str, str]]) -> None:
        for (kind, result), n in counts.items():
            counter = self._counters.get((kind, result))
            if counter is None:  # labels() costs as much as inc(): one child per pair, kept
                counter = self._counters[(kind, result)] = \
                    metrics.RECONCILES.labels(kind=kind, result=result).inc
            counter(n)

    def _writes_nb(self) -> bool:
        return not self.plan_only and self.applier is not None and self.is_leader()

    def _chunks(self) -> Chunks | None:
        """A full sync streams its rows to NB while it reconciles, when it will apply."""
        if not self._writes_nb() or (self.nb is not None and not self.nb.connected()):
            return None  # NB unreachable: _commit says so
        assert self.applier is not None
        return Chunks(partial(Stream, self.applier), self.writer.submit)

    def _commit(self, outcomes: dict[Key, Outcome], full: bool,
                chunks: Chunks | None = None) -> SyncReport:
        report = SyncReport()
        rows: dict[Owner, Sequence[Row]] = {}
        keep: set[Owner] = set()
        if full:  # what a full sync wants is all that is wanted: see verify()
            self.desired = {}
        for outcome in outcomes.values():
            for owner, owner_rows in outcome.rows.items():
                self.desired[owner] = owner_rows
                if owner_rows is None:
                    keep.add(owner)
                elif full or not same_rows(self._applied.get(owner), owner_rows):
                    rows[owner] = owner_rows
        result = ApplyResult()
        if chunks is not None or self._writes_nb():
            started = time.monotonic()
            if chunks is not None:
                result = chunks.finish(full, keep)
            else:
                assert self.applier is not None
                if self.nb is not None and not self.nb.connected():
                    raise NbUnavailable(f"NB {self.nb.remote} is unreachable")
                result = self.applier.apply(rows, gc=full, keep=keep)
            metrics.BATCH_SECONDS.observe(time.monotonic() - started)
            for owner, owner_rows in rows.items():
                if owner in result.errors:
                    self._applied.pop(owner, None)
                else:
                    self._applied[owner] = owner_rows
            nb_metrics.set_owned_rows(self.nb.read(self.nb.index.count_by_table))
        report.transactions, report.changes = result.transactions, result.changes
        submitted: list = []  # handed to the writer at once: one wake-up, not one per key
        early = chunks.early if chunks is not None else frozenset()  # handed already
        # conditions the settle pass handed as its early rows landed (early_rows)
        conditions_handed = self._early.handed if self._early is not None else frozenset()
        counts: Counter[tuple[str, str]] = Counter()
        succeeded: list[Key] = []
        for key, outcome in outcomes.items():
            refused = [result.errors[o] for o in outcome.rows if o in result.errors]
            kind = key[0]
            if self._settling is not None:  # only a clean outcome is kept, and the newest
                self._settling.pop(key, None)
            if refused:
                report.refused[key] = refused[0]
                effects = outcome.on_refused(refused[0]) if outcome.on_refused else []
                self.queue.retry(key, refused[0])
                counts[(kind, "refused")] += 1
                self.verdicts.record(key, "refused", refused[0])
            elif outcome.retry:
                report.retrying[key] = outcome.retry
                effects = outcome.effects
                self.queue.retry(key, outcome.retry)
                counts[(kind, "retry")] += 1
                self.verdicts.record(key, "retrying", outcome.retry)
            else:
                if outcome.invalid is not None:
                    report.invalid[key] = outcome.invalid.message
                    self.verdicts.record(key, "invalid", outcome.invalid.message)
                else:
                    self.verdicts.record(key, None)
                    if self._settling is not None:
                        self._settling[key] = for_reuse(outcome)
                effects = outcome.effects if key not in early else []
                if key in conditions_handed:
                    effects = without_conditions(effects)
                succeeded.append(key)
                counts[(kind, "invalid" if outcome.invalid else "ok")] += 1
            submitted.extend(effects)
        self.queue.forget(*succeeded)
        self._count(counts)
        if self.plan_only:  # nothing is in NB yet: no condition may say it is ready
            submitted = not_ready(submitted)
        self.writer.submit(submitted)
        freeze_heap(full)
        return report

    def desired_rows(self) -> tuple[dict[Owner, Sequence[Row]], set[Owner]]:
        """The rows every owner wants, and the owners whose NB rows stay as they are."""
        rows = {o: r for o, r in self.desired.items() if r is not None}
        return rows, {o for o, r in self.desired.items() if r is None}

    def plan_all(self) -> Plan:
        """The NB changes the current desired state needs (for `render`)."""
        assert self.applier is not None
        rows, keep = self.desired_rows()
        return self.applier.plan(rows, gc=True, keep=keep)
