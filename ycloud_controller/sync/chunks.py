"""Rows streamed to NB while objects are still being reconciled: `Chunks` hands every
`CHUNK_ROWS` rows to a topology.nbsync.chunks.Stream and, as each chunk commits, the Kubernetes
writes of its objects to the writer (a Ready condition says the rows are in NB). Used by the
full sync and by the settle pass's early rows (sync.early)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from topology.model import Owner, Row
from topology.nbsync.applier import ApplyResult
from topology.nbsync.chunks import Stream
from ycloud_controller.reconcilers.base import Effect, Outcome, StatusEffect
from ycloud_controller.triggers import Key

CHUNK_ROWS = 2000  # rows per transaction of a streamed sync (topology.nbsync.chunks.Stream)
READY_BATCH = 500  # writes of objects already in NB handed to the writer together


def is_condition(effect: Effect) -> bool:
    """A status write that sets a condition (Ready: the object's rows are in NB)."""
    return isinstance(effect, StatusEffect) and effect.ready is not None


def without_conditions(effects: list[Effect]) -> list[Effect]:
    """`effects` but the status writes that set a condition (handed early already: the
    plan-only version of the settle pass, or the same again from the full sync, would only
    cost a write that changes nothing, or replace it while it waits)."""
    return [e for e in effects if not is_condition(e)]


class Chunks:
    """A sync's rows handed to an NB stream as reconciles produce them: every `limit` rows
    the owners gathered so far are sent, in reconcile (dependency) order, and the server
    commits them while the next objects are reconciled. As a chunk commits, the Kubernetes
    writes of its objects (a Ready condition says the rows are in NB) go to `submit` at
    once, so they are written while later chunks are still being committed; `early` says
    which objects' writes went that way."""

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
        pass, sync.early): nothing to send; they count as the stream's (its garbage
        collection keeps them) and its Kubernetes writes `effects` go out at once."""
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
            if self._sent.keys().isdisjoint(outcome.rows):  # every owner of it is in
                self.early.add(key)
                effects.extend(outcome.effects)
        self.submit(effects)

    def finish(self, gc: bool, keep: set[Owner], last_go: bool = True) -> ApplyResult:
        self.flush()
        return self.stream.finish(gc=gc, keep=keep, last_go=last_go)
