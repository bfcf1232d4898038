"""The controller's loops: a batch step, the leader's serve loop with its full syncs, the
settle pass of manifests mode, and `drain` (process until nothing is left) and `verify`
(nothing left to write), used by `sync --once` and the tests.

A mixin of `Controller` (ycloud_controller.controller), which provides the queue, the
writer, the informers, `run_batch` and `full_sync`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import structlog

from topology.stream import Stream
from ycloud_controller import metrics
from ycloud_controller.early_rows import EarlyRows

if TYPE_CHECKING:
    from topology.apply import Applier
    from topology.nb import NbClient
    from ycloud_controller.config import Config
    from ycloud_controller.kube.informer import Informer
    from ycloud_controller.kube.queue import WorkQueue
    from ycloud_controller.reconcilers.base import Context, Outcome
    from ycloud_controller.sync_support import SyncReport, Verdicts
    from ycloud_controller.triggers import Key
    from ycloud_controller.writer import KubeWriter

log = structlog.get_logger("ycloud_controller.controller")

NB_WAIT = 1.0  # seconds a worker waits for NB to return before trying its batch again


class Loops:
    cfg: Config
    nb: NbClient | None
    queue: WorkQueue
    writer: KubeWriter
    informers: dict[str, Informer]
    stop_event: threading.Event
    _nb_down: bool
    _synced_as_leader: bool
    is_leader: Callable[[], bool]
    verdicts: Verdicts
    applier: Applier | None
    ctx: Context
    plan_only: bool
    _settling: dict[Key, Outcome] | None
    _settled: dict[Key, Outcome]
    _early: EarlyRows | None
    _early_landed: dict[Key, object]
    # and the methods informers_synced, reload_nb, full_sync, run_batch, _all_keys,
    # _writes_nb, desired_rows

    def step(self, timeout: float = 0.5) -> int:
        """Process one batch of ready keys; returns how many keys were handled."""
        keys = self.queue.get_batch(self.cfg.batch_size, timeout)
        if not keys:
            return 0
        nb_down = False
        try:
            self.run_batch(keys)
            if self._nb_down:
                self._nb_down = False
                log.info("nb reachable again, queue resumed", queued=len(self.queue))
        except (RuntimeError, OSError, TimeoutError) as exc:
            nb_down = self.nb is not None and not self.nb.connected()
            if nb_down:
                # NB is away, not these objects: keep every key queued as it is (no per-key
                # backoff grows, however long NB stays away) and wait for NB below
                if not self._nb_down:
                    log.warning("nb unreachable, keys kept until it returns", keys=len(keys),
                                error=str(exc))
                self._nb_down = True
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

    def run(self) -> None:
        """Serve until stopped: full sync when leading, then batches; periodic resync."""
        last_resync = time.monotonic()
        while not self.stop_event.is_set():
            leader = self.is_leader()
            metrics.LEADER.set(1 if leader else 0)
            if not leader:
                self._synced_as_leader = False
                self.stop_event.wait(0.5)
                continue
            if not self._synced_as_leader and not self.informers_synced():
                # a full sync deletes what no object wants: never on a half-listed cache
                self.stop_event.wait(0.05)
                continue
            if not self._synced_as_leader or \
                    time.monotonic() - last_resync > self.cfg.resync_seconds:
                self._guarded_full_sync()
                last_resync = time.monotonic()
                continue
            self.step()

    def _guarded_full_sync(self) -> None:
        try:
            if not self._synced_as_leader:
                self.settle()
            else:  # periodic: also find rows with our tags that NB does not report (reload)
                self.reload_nb()
            self.full_sync()
            self._synced_as_leader = True
        except (RuntimeError, OSError, TimeoutError) as exc:
            log.warning("full sync failed, retrying", error=str(exc))
            self.stop_event.wait(2.0)

    def settle(self, timeout: float = 120.0) -> bool:
        """Manifests mode: let the controller's own Kubernetes-side work (IPAM annotations,
        derived ClusterIPs and EndpointSlices, YusurService objects) converge in memory before
        NB is written, so a restart computes the same state instead of a transient one, and
        objects made for others (a YusurService's Service) exist when the full sync gives
        contested addresses and EIPs to the older object. Needed on a cold start too.

        New rows of objects that contend for nothing are sent to NB as the pass goes, when
        NB is to be written after it (ycloud_controller.early_rows)."""
        if not self.ctx.emulate_cluster:
            return True
        early = self._early_rows()
        plan_only, self.plan_only = self.plan_only, True
        self._settling = {}
        self._early = early
        try:
            self.full_sync()
            drained = self.drain(timeout=timeout)
            landed = early.finish() if early is not None else {}
            if drained:
                self._settled = self._settling
                self._early_landed = landed
            return drained
        except BaseException:
            if early is not None:
                early.abandon()
            raise
        finally:
            self._early = None
            self.plan_only = plan_only
            self._settling = None

    def _early_rows(self) -> EarlyRows | None:
        if not self._writes_nb() or self.nb is None or not self.nb.connected():
            return None
        assert self.applier is not None
        if not self.applier.can_run_ahead():
            return None
        index = self.nb.index
        stores = self.ctx.stores
        return EarlyRows(partial(Stream, self.applier),
                         in_nb=lambda owner: owner in index.by_owner,
                         lookup=lambda key: stores[key[0]].get(key[1]),
                         submit=self.writer.submit,
                         row_in_nb=lambda rid: bool(index.lookup(rid)))

    def unfinished_keys(self) -> int:
        """Keys waiting, waiting for a retry, or being reconciled."""
        return len(self.queue) + self.queue.delayed() + self.queue.processing()

    def pending_work(self) -> int:
        """Unfinished keys, Kubernetes writes not made yet, and informers behind the writes
        made so far (where the backend can tell): 0 when what was written has been handled
        (the metric ycloud_work_pending)."""
        return self.unfinished_keys() + self.writer.backlog() + sum(
            inf.caught_up() is False for inf in self.informers.values())

    def drain(self, idle: float = 0.3, timeout: float = 120.0) -> bool:
        """Process batches until nothing is left to do: the writer idle, every informer
        caught up with the writes made so far (their handlers have queued what they cause)
        and the queue empty. Where an informer cannot tell (a real API server), quiet for
        `idle` seconds counts as done."""
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            handled = self.step(timeout=0.01)
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
        keys = self._all_keys()
        report = self.run_batch(self.verdicts.unsettled(keys))
        if self._writes_nb():
            assert self.applier is not None
            rows, keep = self.desired_rows()
            result = self.applier.apply(rows, gc=True, keep=keep)
            report.transactions += result.transactions
            report.changes += result.changes
            for owner, msg in result.errors.items():
                report.refused.setdefault((owner.kind, owner.name), msg)
        self.verdicts.fill(report, keys)
        report.objects = len(keys)
        report.seconds = time.monotonic() - start
        log.info("verified", objects=len(keys), reconciled=len(self.verdicts.last_checked),
                 changes=report.changes, invalid=len(report.invalid),
                 refused=len(report.refused), duration=round(report.seconds, 3))
        return report
