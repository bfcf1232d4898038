"""A full sync: `FullSync` lives for one sync (startup, resync, a new leader, the settle
pass's plan-only one). It reconciles every object in dependency order, streams the rows to
NB in chunks as it goes (sync.chunks), takes the outcomes a settle pass handed it for
objects nothing queued since, and commits everything with garbage collection."""

from __future__ import annotations

import sys
import time
from functools import partial

import structlog

from topology.nbsync.chunks import Stream
from topology.ovsdb.values import gc_paused
from ycloud_controller import metrics
from ycloud_controller.kube.workqueue import WorkQueue
from ycloud_controller.reconcilers.base import Outcome
from ycloud_controller.sync.batch import Batch
from ycloud_controller.sync.chunks import Chunks, without_conditions
from ycloud_controller.sync.commit import Committer
from ycloud_controller.sync.report import SyncReport
from ycloud_controller.sync.settle import Settled, SettlePass
from ycloud_controller.triggers import Key

log = structlog.get_logger(__name__)


class Progress:
    """A progress line every few seconds while a large sync runs."""

    def __init__(self, total: int, every: float = 2.0):
        self.total = total
        self.done = 0
        self.every = every
        self.start = self.last = time.monotonic()

    def tick(self) -> None:
        self.done += 1
        if self.done % 256:
            return  # the clock is read every 256 objects, not for each
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            rate = self.done / max(now - self.start, 1e-6)
            log.info("sync progress", done=self.done, total=self.total, rate=round(rate, 1))


class FullSync:
    """One full sync: reconcile every object and make NB equal to the result (with GC).

    `settled`: what the settle pass just before it settled (its outcomes are reused for
    objects not queued since, and rows it sent early that NB holds are not sent again).
    `settling`: this is that settle pass's own plan-only full sync (its rows go to the
    pass's early stream, not to chunks)."""

    def __init__(self, batch: Batch, committer: Committer, queue: WorkQueue,
                 settled: Settled | None = None, settling: SettlePass | None = None):
        self.batch = batch
        self.committer = committer
        self.queue = queue
        self.reuse: dict[Key, Outcome] = dict(settled.outcomes) if settled else {}
        self.landed = settled.landed if settled else {}
        self.restore = not (settled is not None and settled.restored)
        self.settling = settling
        self.plan_only = settling is not None or committer.plan_only
        self.chunks: Chunks | None = None
        self.progress: Progress | None = None

    def _chunks(self) -> Chunks | None:
        """A full sync streams its rows to NB while it reconciles, when it will apply."""
        committer = self.committer
        if self.settling is not None or not committer.writes_nb() or \
                not committer.nb_reachable():
            return None  # NB unreachable: the commit says so
        assert committer.applier is not None
        return Chunks(partial(Stream, committer.applier), committer.writer.submit)

    def run(self) -> SyncReport:
        start = time.monotonic()
        self.batch.triggers.rebuild_network()  # queues what a changed network affects
        # what is queued now, this sync covers: taken out (as processing) so that the drain
        # after it does not reconcile every listed object a second time; keys added
        # meanwhile, and keys it does not reconcile (deleted objects, the network key), are
        # queued again
        queued = self.queue.get_batch(sys.maxsize, 0)
        covered: set[Key] = set()
        for key in queued:  # settled, and nothing queued since
            self.reuse.pop(key, None)
        try:
            # many new containers, no cycles: no collection scans the heap (a collection of
            # the listed objects alone took 60 ms at 10k services); the commit freezes it
            with gc_paused():
                if self.restore:
                    self.batch.restore()
                keys = self.batch.all_keys()
                self.committer.verdicts.restart()
                self.progress = Progress(len(keys))
                report = self._reconcile_and_commit(keys)
            covered = set(keys)
        finally:
            for key in queued:
                if key not in covered:
                    self.queue.add(key)
            self.queue.done(*queued)
        report.objects = len(keys)
        report.seconds = time.monotonic() - start
        metrics.SYNCS.labels(result="ok" if report.converged else "partial").inc()
        log.info("full sync done", objects=len(keys), reused=report.reused,
                 transactions=report.transactions,
                 changes=report.changes, invalid=len(report.invalid),
                 refused=len(report.refused), duration=round(report.seconds, 3))
        return report

    def _reconcile_and_commit(self, keys: list[Key]) -> SyncReport:
        self.chunks = chunks = self._chunks()
        early = self.settling.early if self.settling is not None else None
        landed = self.landed
        assert self.progress is not None
        tick = self.progress.tick

        def each(key: Key, outcome: Outcome, reused: bool) -> None:
            if chunks is not None:
                if reused and landed and landed.get(key) is outcome.rows:
                    # its conditions were handed as its rows landed
                    chunks.landed_before(key, without_conditions(outcome.effects),
                                         outcome.rows)
                else:
                    chunks.add(key, outcome)
            elif early is not None:
                early.add(key, outcome)
            tick()

        done = self.batch.run(keys, reuse=self.reuse, each=each)
        if early is not None:
            early.flush()
        report = self.committer.commit(done.outcomes, full=True, chunks=chunks,
                                       settling=self.settling)
        report.reused = done.reused
        self.batch.wake(done)
        return report
