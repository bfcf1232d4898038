"""The controller's worker: what its one worker thread runs. A batch step (queued keys ->
`Batch` -> `Committer`), the leader's serve loop (a settle pass and a full sync on taking
the lead, batches, a periodic resync), `drain` (process until nothing is left) and `verify`
(nothing left to write), the last two used by `sync --once` and the tests. It keeps the
state that outlives one sync: whether NB was away at the last batch, whether this leader
has synced, and the report of the last full sync."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog

from topology.nbsync.client import NbClient
from ycloud_controller import metrics
from ycloud_controller.config import Config
from ycloud_controller.kube.workqueue import WorkQueue
from ycloud_controller.sync.batch import Batch
from ycloud_controller.sync.commit import Committer
from ycloud_controller.sync.full import FullSync
from ycloud_controller.sync.report import SyncReport
from ycloud_controller.sync.settle import Settled, SettlePass, early_rows
from ycloud_controller.triggers import Key
from ycloud_controller.writer import KubeWriter

log = structlog.get_logger(__name__)

NB_WAIT = 1.0  # seconds a worker waits for NB to return before trying its batch again


class Worker:
    """Runs on the controller's one worker thread (the serve loop, or the caller of
    `sync --once`'s steps); not thread-safe."""

    def __init__(self, cfg: Config, batch: Batch, committer: Committer, queue: WorkQueue,
                 writer: KubeWriter, informers: Mapping[str, Any], nb: NbClient | None,
                 stop_event: threading.Event, is_leader: Callable[[], bool]):
        self.cfg = cfg
        self.batch = batch
        self.committer = committer
        self.queue = queue
        self.writer = writer
        self.informers = informers
        self.nb = nb
        self.stop_event = stop_event
        self.is_leader = is_leader
        self.nb_down = False  # the last batch found NB unreachable
        self.synced_as_leader = False
        self.last_sync: SyncReport | None = None

    def informers_synced(self) -> bool:
        return all(inf.has_synced() for inf in self.informers.values())

    # -- syncs --------------------------------------------------------------------------------
    def run_batch(self, keys: Iterable[Key], settling: SettlePass | None = None) -> SyncReport:
        done = self.batch.run(self.batch.of_batch(keys))
        report = self.committer.commit(done.outcomes, full=False, settling=settling)
        self.batch.wake(done)
        return report

    def full_sync(self, settled: Settled | None = None,
                  settling: SettlePass | None = None) -> SyncReport:
        """Reconcile every object and make NB equal to the result (with GC): sync.full."""
        report = FullSync(self.batch, self.committer, self.queue, settled, settling).run()
        self.last_sync = report
        return report

    def settle(self, timeout: float = 120.0) -> Settled | None:
        """Manifests mode: let the controller's own Kubernetes-side work (IPAM annotations,
        derived ClusterIPs and EndpointSlices, YusurService objects) converge in memory before
        NB is written, so a restart computes the same state instead of a transient one, and
        objects made for others (a YusurService's Service) exist when the full sync gives
        contested addresses and EIPs to the older object. Needed on a cold start too.

        New rows of objects that contend for nothing are sent to NB as the pass goes, when
        NB is to be written after it (sync.early). Returns what it settled (None: it did not
        drain within `timeout`), for the full sync after it."""
        if not self.batch.ctx.emulate_cluster:
            return Settled()
        early = early_rows(self.committer, self.batch.ctx.stores)
        return SettlePass(early, self.full_sync, self.drain).run(timeout)

    def reload_nb(self) -> None:
        """Load our NB rows again from the server before a periodic full sync, so that it
        also repairs Load_Balancer rows with our tags that others inserted (the monitor does
        not report those inserts: topology.nbsync.client QUIET_INSERTS)."""
        applier = self.committer.applier
        if applier is None or not self.committer.writes_nb() or \
                (self.nb is not None and not self.nb.connected()):
            return
        start = time.monotonic()
        applier.resync()
        log.info("nb rows reloaded", duration=round(time.monotonic() - start, 3))

    # -- loops --------------------------------------------------------------------------------
    def step(self, timeout: float = 0.5, settling: SettlePass | None = None) -> int:
        """Process one batch of ready keys; returns how many keys were handled."""
        keys = self.queue.get_batch(self.cfg.batch_size, timeout)
        if not keys:
            return 0
        nb_down = False
        try:
            self.run_batch(keys, settling)
            if self.nb_down:
                self.nb_down = False
                log.info("nb reachable again, queue resumed", queued=len(self.queue))
        except (RuntimeError, OSError, TimeoutError) as exc:
            nb_down = self.nb is not None and not self.nb.connected()
            if nb_down:
                # NB is away, not these objects: keep every key queued as it is (no per-key
                # backoff grows, however long NB stays away) and wait for NB below
                if not self.nb_down:
                    log.warning("nb unreachable, keys kept until it returns", keys=len(keys),
                                error=str(exc))
                self.nb_down = True
                for key in keys:
                    self.queue.add(key)
            else:  # a transaction timed out or failed: every key is retried with backoff
                log.warning("batch not applied, keys kept for retry", keys=len(keys),
                            error=str(exc))
                for key in keys:
                    self.queue.retry(key, str(exc))
        finally:
            self.queue.done(*keys)
        if nb_down and self.nb is not None:
            self.nb.wait_synced(NB_WAIT)
        return len(keys)

    def serve(self) -> None:
        """Serve until stopped: full sync when leading, then batches; periodic resync."""
        last_resync = time.monotonic()
        while not self.stop_event.is_set():
            leader = self.is_leader()
            metrics.LEADER.set(1 if leader else 0)
            if not leader:
                self.synced_as_leader = False
                self.stop_event.wait(0.5)
                continue
            if not self.synced_as_leader and not self.informers_synced():
                # a full sync deletes what no object wants: never on a half-listed cache
                self.stop_event.wait(0.05)
                continue
            if not self.synced_as_leader or \
                    time.monotonic() - last_resync > self.cfg.resync_seconds:
                self._guarded_full_sync()
                last_resync = time.monotonic()
                continue
            self.step()

    def _guarded_full_sync(self) -> None:
        try:
            settled = None
            if not self.synced_as_leader:
                settled = self.settle()
            else:  # periodic: also find rows with our tags that NB does not report (reload)
                self.reload_nb()
            self.full_sync(settled)
            self.synced_as_leader = True
        except (RuntimeError, OSError, TimeoutError) as exc:
            log.warning("full sync failed, retrying", error=str(exc))
            self.stop_event.wait(2.0)

    def drain(self, idle: float = 0.3, timeout: float = 120.0,
              settling: SettlePass | None = None) -> bool:
        """Process batches until nothing is left to do: the writer idle, every informer
        caught up with the writes made so far (their handlers have queued what they cause)
        and the queue empty. Where an informer cannot tell (a real API server), quiet for
        `idle` seconds counts as done."""
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            handled = self.step(timeout=0.01, settling=settling)
            if handled or len(self.queue) or not self.writer.idle():
                quiet_since = None
                if not handled:
                    self.writer.flush(timeout=1.0)
                continue
            caught = [inf.caught_up() for inf in self.informers.values()]
            if False in caught:
                quiet_since = None
                time.sleep(0.002)
                continue
            if None not in caught and not len(self.queue):  # handlers may have queued meanwhile
                return True
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= idle:
                return True
        return False

    def verify(self) -> SyncReport:
        """What a full sync would find now, without reconciling every object again (the end
        of `sync --once`, after a full sync and a drain). Every object was reconciled by the
        last full sync or since (the drain reconciles what events queued): those that were
        not, and those whose last outcome was refused or retrying, are reconciled now; then
        NB is made equal to the desired rows, garbage collection included. Converged means
        this found nothing to write."""
        start = time.monotonic()
        verdicts = self.committer.verdicts
        keys = self.batch.every_key()  # run_batch orders the few it reconciles
        report = self.run_batch(verdicts.unsettled(keys))
        if self.committer.writes_nb():
            applier = self.committer.applier
            assert applier is not None
            rows, keep = self.committer.desired_rows()
            result = applier.apply(rows, gc=True, keep=keep)
            report.transactions += result.transactions
            report.changes += result.changes
            for owner, msg in result.errors.items():
                report.refused.setdefault((owner.kind, owner.name), msg)
        verdicts.fill(report, keys)
        report.objects = len(keys)
        report.seconds = time.monotonic() - start
        log.info("verified", objects=len(keys), reconciled=len(verdicts.last_checked),
                 changes=report.changes, invalid=len(report.invalid),
                 refused=len(report.refused), duration=round(report.seconds, 3))
        return report
