"""Committing outcomes: `Committer` applies a batch's rows to NB (one transaction, or the
chunks a full sync streamed), turns each outcome and NB's answer into a verdict (`verdict`,
pure), queues retries, counts results, and hands the Kubernetes writes to the writer. It
owns what the controller wants of NB (`desired`, for `verify` and `render`) and what NB
holds by its last apply (`applied`, so a batch sends only owners whose rows changed)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from topology.model import Owner, Row
from topology.nbsync import metrics as nb_metrics
from topology.nbsync.applier import Applier, ApplyResult
from topology.nbsync.client import NbClient
from topology.plan import Plan
from ycloud_controller import metrics
from ycloud_controller.kube.workqueue import WorkQueue
from ycloud_controller.reconcilers.base import Effect, Outcome, StatusEffect
from ycloud_controller.sync.chunks import Chunks, without_conditions
from ycloud_controller.sync.heap import freeze_heap
from ycloud_controller.sync.report import (
    DONE,
    INVALID,
    OK,
    REFUSED,
    RESULTS,
    RETRYING,
    SyncReport,
    Verdict,
    Verdicts,
)
from ycloud_controller.triggers import Key
from ycloud_controller.writer import KubeWriter

if TYPE_CHECKING:
    from ycloud_controller.sync.settle import SettlePass

_OK = Verdict(OK)


class NbUnavailable(RuntimeError):
    """NB cannot be reached: the batch is kept for later."""


def verdict(outcome: Outcome, refused: Mapping[Owner, str]) -> Verdict:
    """What an outcome came to, given NB's answer (`refused`: the owners NB refused, and
    why): refused if NB refused one of its owners (the first one says why), else retrying if
    the outcome asks for a retry, else invalid if the input is bad, else ok."""
    for owner in outcome.rows:
        if owner in refused:
            return Verdict(REFUSED, refused[owner])
    if outcome.retry:
        return Verdict(RETRYING, outcome.retry)
    if outcome.invalid is not None:
        return Verdict(INVALID, outcome.invalid.message)
    return _OK


def same_rows(a: Sequence[Row] | None, b: Sequence[Row]) -> bool:
    """Whether two owners' rows are equal. Rows are frozen dataclasses: equality covers every
    field (columns, references, ownership) without computing the content hash (a JSON dump)
    of rows that did not change. The applied rows are kept as they are (not hashed): a full
    sync records 11k owners, and only the owners of later batches are ever compared."""
    return a is b or (a is not None and len(a) == len(b) and tuple(a) == tuple(b))


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


class Committer:
    """Commits outcomes (see the module docstring). Used by the controller's worker."""

    def __init__(self, nb: NbClient | None, queue: WorkQueue, writer: KubeWriter, *,
                 plan_only: bool = False, is_leader: Callable[[], bool] = lambda: True):
        self.nb = nb
        self.applier = Applier(nb) if nb is not None else None
        self.queue = queue
        self.writer = writer
        self.plan_only = plan_only  # `render`: NB is never written
        self.is_leader = is_leader
        self.verdicts = Verdicts()
        self.desired: dict[Owner, Sequence[Row] | None] = {}
        self.applied: dict[Owner, Sequence[Row]] = {}  # what NB holds, by our last apply
        self._counters: dict[tuple[str, str], Callable[[float], None]] = {}

    def writes_nb(self) -> bool:
        return not self.plan_only and self.applier is not None and self.is_leader()

    def nb_reachable(self) -> bool:
        return self.nb is None or self.nb.connected()

    def commit(self, outcomes: dict[Key, Outcome], full: bool, chunks: Chunks | None = None,
               settling: SettlePass | None = None) -> SyncReport:
        """Apply the outcomes' rows (`full`: all that is wanted, garbage collection
        included; `chunks`: streamed already, finished here) and hand on their writes.
        While a settle pass runs (`settling`), nothing is applied and no condition says
        ready; it hears every verdict."""
        report = SyncReport()
        rows: dict[Owner, Sequence[Row]] = {}
        keep: set[Owner] = set()
        if full:  # what a full sync wants is all that is wanted: see Worker.verify
            self.desired = {}
        for outcome in outcomes.values():
            for owner, owner_rows in outcome.rows.items():
                self.desired[owner] = owner_rows
                if owner_rows is None:
                    keep.add(owner)
                elif full or not same_rows(self.applied.get(owner), owner_rows):
                    rows[owner] = owner_rows
        result = ApplyResult()
        if chunks is not None or (settling is None and self.writes_nb()):
            result = self._apply(rows, keep, full, chunks)
        report.transactions, report.changes = result.transactions, result.changes
        self._hand_on(outcomes, result, report, chunks, settling)
        freeze_heap(full)
        return report

    def _apply(self, rows: dict[Owner, Sequence[Row]], keep: set[Owner], full: bool,
               chunks: Chunks | None) -> ApplyResult:
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
                self.applied.pop(owner, None)
            else:
                self.applied[owner] = owner_rows
        assert self.nb is not None
        nb_metrics.set_owned_rows(self.nb.read(self.nb.index.count_by_table))
        return result

    def _hand_on(self, outcomes: dict[Key, Outcome], result: ApplyResult, report: SyncReport,
                 chunks: Chunks | None, settling: SettlePass | None) -> None:
        """Verdicts, retries, counts, and the Kubernetes writes of `outcomes`."""
        submitted: list = []  # handed to the writer at once: one wake-up, not one per key
        early = chunks.early if chunks is not None else frozenset()  # handed already
        # conditions the settle pass handed as its early rows landed (sync.early)
        conditions_handed = settling.handed if settling is not None else frozenset()
        counts: Counter[tuple[str, str]] = Counter()
        succeeded: list[Key] = []
        lists = {INVALID: report.invalid, REFUSED: report.refused, RETRYING: report.retrying}
        for key, outcome in outcomes.items():
            v = verdict(outcome, result.errors)
            if settling is not None:
                settling.record(key, outcome, v)
            self.verdicts.record(key, v)
            counts[(key[0], RESULTS[v.state])] += 1  # v.result, inline: once per object
            if v.state in lists:
                lists[v.state][key] = v.message
            if v.state == REFUSED:
                effects = outcome.on_refused(v.message) if outcome.on_refused else []
            elif v.state == RETRYING:
                effects = outcome.effects
            else:
                effects = outcome.effects if key not in early else []
                if key in conditions_handed:
                    effects = without_conditions(effects)
                succeeded.append(key)
            if v.state not in DONE:
                self.queue.retry(key, v.message)
            submitted.extend(effects)
        self.queue.forget(*succeeded)
        self._count(counts)
        if self.plan_only or settling is not None:  # nothing is in NB yet: none is ready
            submitted = not_ready(submitted)
        self.writer.submit(submitted)

    def _count(self, counts: Counter[tuple[str, str]]) -> None:
        for (kind, result), n in counts.items():
            counter = self._counters.get((kind, result))
            if counter is None:  # labels() costs as much as inc(): one child per pair, kept
                counter = self._counters[(kind, result)] = \
                    metrics.RECONCILES.labels(kind=kind, result=result).inc
            counter(n)

    def desired_rows(self) -> tuple[dict[Owner, Sequence[Row]], set[Owner]]:
        """The rows every owner wants, and the owners whose NB rows stay as they are."""
        rows = {o: r for o, r in self.desired.items() if r is not None}
        return rows, {o for o, r in self.desired.items() if r is None}

    def plan_all(self) -> Plan:
        """The NB changes the current desired state needs (for `render`)."""
        assert self.applier is not None
        rows, keep = self.desired_rows()
        return self.applier.plan(rows, gc=True, keep=keep)
