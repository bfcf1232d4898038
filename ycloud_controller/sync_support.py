"""Helpers of the controller's sync loop: heap freezing, row signatures, progress logs,
chunks of a streamed full sync."""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence

import structlog

from topology.apply import ApplyResult
from topology.model import Owner, Row
from topology.stream import Stream
from ycloud_controller.reconcilers.base import Outcome

log = structlog.get_logger("ycloud_controller.controller")

_SWEEP_SECONDS = 600.0
_last_sweep = time.monotonic()


def freeze_heap(full: bool) -> None:
    """Keep the cyclic garbage collector off the controller's long-lived state.

    What survives a batch (informer caches, desired rows, the NB index) lives on, and the
    controller makes no garbage cycles in steady state (measured: the collector found nothing
    to free over 20k endpoint updates), yet each full collection scans the whole heap: about
    0.5 s at 10k services, a latency spike for every event in flight. So what survives each
    batch is frozen (gc.freeze, O(1)); reference counting still frees it. After a full sync,
    at most every ten minutes, a sweep (unfreeze, collect, freeze) frees any cycles frozen
    meanwhile."""
    global _last_sweep
    if full and time.monotonic() - _last_sweep >= _SWEEP_SECONDS:
        gc.unfreeze()
        gc.collect()
        _last_sweep = time.monotonic()
    gc.freeze()


def signature(rows: Sequence[Row]) -> int:
    # rows are frozen dataclasses: their hash covers every field (columns, references,
    # ownership) without computing the content hash (a JSON dump) of rows that did not change
    return hash(tuple(rows))


class Progress:
    """A progress line every few seconds while a large sync runs."""

    def __init__(self, total: int, every: float = 2.0):
        self.total = total
        self.done = 0
        self.every = every
        self.start = self.last = time.monotonic()

    def tick(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            rate = self.done / max(now - self.start, 1e-6)
            log.info("sync progress", done=self.done, total=self.total, rate=round(rate, 1))


CHUNK_ROWS = 2000  # rows per transaction of a streamed full sync (see topology.stream.Stream)


class Chunks:
    """A full sync's rows handed to an NB stream as reconciles produce them: every
    `limit` rows the owners gathered so far are sent, in reconcile (dependency) order, and
    the server commits them while the next objects are reconciled."""

    def __init__(self, stream: Stream, limit: int = CHUNK_ROWS):
        self.stream = stream
        self.limit = limit
        self._owners: dict[Owner, Sequence[Row]] = {}
        self._rows = 0

    def add(self, outcome: Outcome) -> None:
        for owner, rows in outcome.rows.items():
            if rows is not None:  # None: keep what NB has (decided at the end)
                self._owners[owner] = rows
                self._rows += len(rows)
        if self._rows >= self.limit:
            self.flush()

    def flush(self) -> None:
        if self._owners:
            self.stream.send(self._owners)
            self._owners, self._rows = {}, 0

    def finish(self, gc: bool, keep: set[Owner]) -> ApplyResult:
        self.flush()
        return self.stream.finish(gc=gc, keep=keep)
