"""The controller: informers -> work queue -> the sync engine (ycloud_controller.sync) -> NB
and the KubeWriter. `Controller` wires these parts together and starts and stops them.

Threads: one informer per watched kind (handlers only enqueue keys), one worker (the sync
engine's `Worker`: reconciles a batch of keys, applies the batch's rows to NB in one
transaction, hands Kubernetes writes to the KubeWriter), the KubeWriter, and optionally the
leader elector. Only the leader applies to NB and writes Kubernetes; a replica that becomes
leader first runs a full sync (every object, garbage collection of rows whose owner is
gone), then drains the queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import structlog

from topology import naming
from topology.model import Owner, Row
from topology.nbsync.applier import Applier
from topology.nbsync.client import NbClient
from topology.nbsync.sb_health import SbMonitor
from topology.plan import Plan
from ycloud_controller import metrics
from ycloud_controller.cluster_ips import ClusterIps
from ycloud_controller.config import Config
from ycloud_controller.internal_ipam import InternalIpam
from ycloud_controller.ipam import Ipam
from ycloud_controller.kube import resources as res
from ycloud_controller.kube.backend import Backend
from ycloud_controller.kube.events import EventRecorder
from ycloud_controller.kube.informer import Informer
from ycloud_controller.kube.status import StatusWriter
from ycloud_controller.kube.throttle import ThrottledBackend, TokenBucket
from ycloud_controller.kube.workqueue import WorkQueue
from ycloud_controller.precedence import NbHoldings, NoHoldings, Precedence
from ycloud_controller.reconcilers import registry
from ycloud_controller.reconcilers.base import Context
from ycloud_controller.reconcilers.eip_state import service_holders
from ycloud_controller.sync.batch import Batch
from ycloud_controller.sync.commit import Committer
from ycloud_controller.sync.report import SyncReport, Verdicts
from ycloud_controller.sync.settle import Settled
from ycloud_controller.sync.worker import Worker
from ycloud_controller.triggers import Key, Triggers
from ycloud_controller.writer import WORKERS, KubeWriter

log = structlog.get_logger(__name__)

WATCHED: dict[str, res.Resource] = {
    "Namespace": res.NAMESPACES, "Node": res.NODES, "Pod": res.PODS, "Service": res.SERVICES,
    "EndpointSlice": res.ENDPOINTSLICES, "Vpc": res.VPCS, "Subnet": res.SUBNETS,
    "EipPool": res.EIPPOOLS, "Vnic": res.VNICS, "YusurService": res.YUSURSERVICES,
    "NetworkProbe": res.NETWORKPROBES,
}


def _no_chassis(lrp: str) -> str | None:
    return None


class Controller:
    """The parts of one controller and their lifecycle (start, wait_synced, shutdown, ready);
    the sync itself is the `worker`'s (ycloud_controller.sync), and the sync methods here
    hand over to it. Build one with ycloud_controller.assemble."""

    def __init__(self, cfg: Config, backend: Backend, nb: NbClient | None, *,
                 emulate: bool = False, write_kube: bool = True, plan_only: bool = False,
                 is_leader: Callable[[], bool] | None = None, sb: SbMonitor | None = None,
                 object_ages: bool = True):
        self.cfg = cfg
        self.backend = backend
        self.nb = nb
        self.is_leader = is_leader or (lambda: True)
        self.stop_event = threading.Event()
        self.queue = WorkQueue()
        # a full sync comes first (sync --once, and run before its first batch), and it
        # reconciles every listed object: the first list's events would only queue them twice
        self.informers = {kind: Informer(backend, r, on_restart=metrics.watch_restart_hook(kind),
                                         quiet_first_list=True)
                          for kind, r in WATCHED.items()}
        stores = {kind: inf.store for kind, inf in self.informers.items()}
        registry.add_indexes(stores)
        # object_ages=False (a manifests directory): creationTimestamps are this process's
        # own, not the objects', and decide no conflict
        self.precedence = Precedence(NbHoldings(nb) if nb is not None else NoHoldings(),
                                     ages=object_ages)
        self.triggers = Triggers(cfg, stores, self.queue.add, emulate,
                                 pool_in_use=self._pool_in_use, precedence=self.precedence,
                                 enqueue_many=self.queue.add_many)
        for kind, inf in self.informers.items():
            inf.add_handler(self.triggers.handler(kind))
        self.ipam = Ipam()
        self.ctx = Context(cfg, stores, self.triggers.network, self.ipam, emulate,
                           internal=InternalIpam(cfg.internal_cidr),
                           active_chassis=sb.active_chassis if sb is not None else _no_chassis,
                           precedence=self.precedence)
        if emulate:
            self.ctx.cluster_ips = ClusterIps(cfg.service_cidr)
        self.sb = sb
        if sb is not None:
            sb.callback = self._on_sb
        self.reconcilers = registry.build(self.ctx, emulate,
                                          sb.monitors if sb is not None else registry.no_monitors)
        # a cluster's API server gets the controller's writes within the client-side limit,
        # several in flight (each waits on the network); manifests mode writes to its own
        # memory, where a write waits on nothing and more threads only contend for the GIL
        # (4 writers made a 10k-service restart's drain 2 s longer than 1)
        writes: Any = backend if emulate else ThrottledBackend(
            backend, TokenBucket(cfg.kube_api_qps, cfg.kube_api_burst))
        self.writer = KubeWriter(writes, EventRecorder(writes if write_kube else None),
                                 StatusWriter(writes), enabled=write_kube,
                                 workers=1 if emulate else WORKERS)
        self.writer.before_patch = self.triggers.expect_patch
        # a subnet's or pool's counts wait while keys that may change them are to be handled
        self.writer.defer = lambda: len(self.queue) + self.queue.processing() > 0
        self.batch = Batch(self.ctx, self.triggers, self.informers, self.reconcilers,
                           self.queue, nb)
        self.committer = Committer(nb, self.queue, self.writer, plan_only=plan_only,
                                   is_leader=self.is_leader)
        self.worker = Worker(cfg, self.batch, self.committer, self.queue, self.writer,
                             self.informers, nb, self.stop_event, self.is_leader)
        self._threads: list[threading.Thread] = []
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
        return self.worker.informers_synced()

    def ready(self) -> bool:
        synced = self.informers_synced()
        nb_ok = self.nb is None or self.nb.connected()
        return synced and nb_ok and (self.worker.synced_as_leader or not self.is_leader())

    def unfinished_keys(self) -> int:
        """Keys waiting, waiting for a retry, or being reconciled."""
        return len(self.queue) + self.queue.delayed() + self.queue.processing()

    def pending_work(self) -> int:
        """Unfinished keys, Kubernetes writes not made yet, and informers behind the writes
        made so far (where the backend can tell): 0 when what was written has been handled
        (the metric ycloud_work_pending)."""
        return self.unfinished_keys() + self.writer.backlog() + sum(
            inf.caught_up() is False for inf in self.informers.values())

    def _pool_in_use(self, pool: str) -> bool:
        return bool(service_holders(self.ctx, pool))

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

    # -- the sync (ycloud_controller.sync.worker) ---------------------------------------------
    @property
    def applier(self) -> Applier | None:
        return self.committer.applier

    @property
    def verdicts(self) -> Verdicts:
        return self.committer.verdicts

    @property
    def last_sync(self) -> SyncReport | None:
        """The report of the last full sync (the settle pass's plan-only one included)."""
        return self.worker.last_sync

    @last_sync.setter
    def last_sync(self, report: SyncReport | None) -> None:
        self.worker.last_sync = report

    def settle(self, timeout: float = 120.0) -> Settled | None:
        return self.worker.settle(timeout)

    def full_sync(self, settled: Settled | None = None) -> SyncReport:
        return self.worker.full_sync(settled)

    def run_batch(self, keys: Iterable[Key]) -> SyncReport:
        return self.worker.run_batch(keys)

    def step(self, timeout: float = 0.5) -> int:
        return self.worker.step(timeout)

    def run(self) -> None:
        """Serve until stopped (the worker's serve loop)."""
        self.worker.serve()

    def drain(self, idle: float = 0.3, timeout: float = 120.0) -> bool:
        return self.worker.drain(idle, timeout)

    def verify(self) -> SyncReport:
        return self.worker.verify()

    def reload_nb(self) -> None:
        self.worker.reload_nb()

    def desired_rows(self) -> tuple[dict[Owner, Sequence[Row]], set[Owner]]:
        return self.committer.desired_rows()

    def plan_all(self) -> Plan:
        return self.committer.plan_all()
