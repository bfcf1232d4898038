"""Helpers of the controller's sync loop: heap freezing, row comparison, progress logs,
chunks of a streamed full sync."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import structlog

from topology.model import Owner, Row
from topology.nbsync.applier import ApplyResult
from topology.nbsync.chunks import Stream
from topology.plan import Plan
from ycloud_controller.reconcilers.base import (
    DeleteEffect,
    Effect,
    Outcome,
    PatchEffect,
    StatusEffect,
    UpsertEffect,
)
from ycloud_controller.triggers import Key

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


def same_rows(a: Sequence[Row] | None, b: Sequence[Row]) -> bool:
    """Whether two owners' rows are equal. Rows are frozen dataclasses: equality covers every
    field (columns, references, ownership) without computing the content hash (a JSON dump)
    of rows that did not change. The applied rows are kept as they are (not hashed): a full
    sync records 11k owners, and only the owners of later batches are ever compared."""
    return a is b or (a is not None and len(a) == len(b) and tuple(a) == tuple(b))


_KUBE_WRITES = (PatchEffect, UpsertEffect, DeleteEffect)


def not_ready(effects: list[Effect]) -> list[Effect]:
    """A plan-only pass's effects: status writes keep their fields but leave the condition
    alone; one left with nothing to write (most: a ClusterIP Service's status has no fields)
    is dropped instead of handed to the writer, which would find nothing to change."""
    out = []
    for e in effects:
        if isinstance(e, StatusEffect) and e.ready:
            if not e.fields:
                continue
            e = replace(e, ready=None)
        out.append(e)
    return out


def for_reuse(outcome: Outcome) -> Outcome:
    """A clean outcome of the settle pass as the full sync after it takes it (Controller.settle):
    without the Kubernetes writes (annotations, derived objects) the settle pass handed to the
    writer already, which would only be written again to no effect."""
    if not any(isinstance(e, _KUBE_WRITES) for e in outcome.effects):
        return outcome
    return replace(outcome, effects=[e for e in outcome.effects
                                     if not isinstance(e, _KUBE_WRITES)])


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


CHUNK_ROWS = 2000  # rows per transaction of a streamed full sync (topology.nbsync.chunks)
READY_BATCH = 500  # writes of objects already in NB handed to the writer together


class Chunks:
    """A full sync's rows handed to an NB stream as reconciles produce them: every
    `limit` rows the owners gathered so far are sent, in reconcile (dependency) order, and
    the server commits them while the next objects are reconciled. As a chunk commits, the
    Kubernetes writes of its objects (a Ready condition says the rows are in NB) go to
    `submit` at once, so they are written while later chunks are still being committed;
    `early` says which objects' writes went that way."""

    def __init__(self, stream_of: Callable[..., Stream], submit: Callable[[list], None],
                 limit: int | None = None):
        self.stream = stream_of(on_landed=self._landed)
        self.submit = submit
        self.limit = limit or CHUNK_ROWS
        self.early: set[Key] = set()
        self._owners: dict[Owner, Sequence[Row]] = {}
        self._rows = 0
        self._sent: dict[Owner, tuple[Key, Outcome]] = {}  # of an object without a retry
        self._ready: list = []  # writes of objects landed before (landed_before), not handed

    def add(self, key: Key, outcome: Outcome) -> None:
        for owner, rows in outcome.rows.items():
            if rows is not None:  # None: keep what NB has (decided at the end)
                self._owners[owner] = rows
                self._rows += len(rows)
                if outcome.retry is None:
                    self._sent[owner] = (key, outcome)
        if self._rows >= self.limit:
            self.flush()

    def landed_before(self, key: Key, effects: list[Effect], owners: Iterable[Owner]) -> None:
        """An object whose rows NB holds already, as they are (sent early by the settle
        pass, ycloud_controller.early_rows): nothing to send; they count as the stream's
        (its garbage collection keeps them) and its Kubernetes writes `effects` go out at
        once."""
        self.stream.owners.update(owners)
        self.early.add(key)
        self._ready.extend(effects)
        if len(self._ready) >= READY_BATCH:
            self._hand_ready()

    def _hand_ready(self) -> None:
        if self._ready:
            self.submit(self._ready)
            self._ready = []

    def flush(self) -> None:
        self._hand_ready()
        if self._owners:
            self.stream.send(self._owners)
            self._owners, self._rows = {}, 0

    def _landed(self, owners: list[Owner]) -> None:
        effects: list = []
        for owner in owners:
            sent = self._sent.pop(owner, None)
            if sent is None or sent[0] in self.early:
                continue
            key, outcome = sent
            if all(o not in self._sent for o in outcome.rows):  # every owner of it is in
                self.early.add(key)
                effects.extend(outcome.effects)
        self.submit(effects)

    def finish(self, gc: bool, keep: set[Owner], last_go: bool = True) -> ApplyResult:
        self.flush()
        return self.stream.finish(gc=gc, keep=keep, last_go=last_go)


@dataclass
class SyncReport:
    objects: int = 0
    transactions: int = 0
    changes: int = 0
    invalid: dict[Key, str] = field(default_factory=dict)
    refused: dict[Key, str] = field(default_factory=dict)
    retrying: dict[Key, str] = field(default_factory=dict)
    plan: Plan | None = None
    seconds: float = 0.0
    reused: int = 0  # outcomes of the settle pass taken as they were (Controller.settle)

    @property
    def converged(self) -> bool:
        return not self.refused and not self.retrying


class Verdicts:
    """What each object's latest reconcile came to since the last full sync, so that `sync
    --once` can end without reconciling every object a second time (Controller.verify)."""

    def __init__(self) -> None:
        self.seen: set[Key] = set()
        self.open: dict[Key, tuple[str, str]] = {}  # key -> (invalid|refused|retrying, why)
        self.last_checked: list[Key] = []

    def restart(self) -> None:
        """A full sync reconciles everything again."""
        self.seen, self.open = set(), {}

    def record(self, key: Key, state: str | None, message: str = "") -> None:
        self.seen.add(key)
        if state is None:
            self.open.pop(key, None)
        else:
            self.open[key] = (state, message)

    def unsettled(self, keys: list[Key]) -> list[Key]:
        """Keys to reconcile again: not reconciled since the full sync, or last refused by
        NB or retrying."""
        seen, open_ = self.seen, self.open
        self.last_checked = [k for k in keys if k not in seen or
                             open_.get(k, ("",))[0] in ("refused", "retrying")]
        return self.last_checked

    def fill(self, report: SyncReport, keys: list[Key]) -> None:
        """The invalid, refused and retrying objects among `keys`, into a SyncReport."""
        lists = {"invalid": report.invalid, "refused": report.refused,
                 "retrying": report.retrying}
        for key in keys:
            state = self.open.get(key)
            if state is not None:
                lists[state[0]].setdefault(key, state[1])
