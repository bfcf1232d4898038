"""A full sync committed to NB in chunks: `Stream` (see its docstring)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from topology.model import Owner, Row
from topology.nbsync import metrics
from topology.nbsync.applier import Applier, ApplyResult, Reply
from topology.plan import Plan

log = structlog.get_logger("topology.nbsync.applier")


class Stream:
    """Commit a large set of owners in chunks, each sent as soon as it is ready, so that the
    server commits one chunk while the caller computes the next (a full sync reconciles
    objects in dependency order and hands over a chunk every few thousand rows).

    Where the server takes client-chosen UUIDs, up to `IN_FLIGHT` chunks are in flight: each
    is planned against the index with the earlier chunks already in it (`Applier.send` with
    `ahead`), so later chunks reference their rows by UUID without waiting for their replies,
    and the server works on one chunk while the next is computed and sent. Elsewhere one
    chunk is in flight, and the next is planned once its reply's write-through is in.

    A chunk whose transaction did not commit (session lost, refused, no reply in time) is
    committed again the careful way (`Applier._apply`: plan again, split to find a bad
    owner), after the index is loaded again from the server (it held the chunk's rows, and
    those of every chunk sent after it, before they had committed); the chunks sent after it
    are planned again the same way, so whatever they assumed of it is redone. An owner left
    out of its chunk's plan (it referenced a row of a later chunk, or was refused) gets one
    more go in the last transaction, together with the garbage collection of `finish`.

    Chunking trades the atomicity of one big transaction for overlap and bounded memory:
    a reader of NB may see earlier chunks before later ones, each owner's rows complete.
    `on_landed` hears, as each chunk commits, which of its owners are in NB now, so that
    the caller can report them before the last chunk is in.
    """

    IN_FLIGHT = 3

    def __init__(self, applier: Applier,
                 on_landed: Callable[[list[Owner]], None] | None = None):
        self.applier = applier
        self.on_landed = on_landed
        self.result = ApplyResult()
        self.owners: set[Owner] = set()
        self._retry: dict[Owner, Sequence[Row]] = {}
        self._ahead = applier.can_run_ahead()
        self._pending: deque[_Sent] = deque()

    def send(self, desired: Mapping[Owner, Sequence[Row]]) -> None:
        """Commit these owners' rows (in this order); returns once they are sent."""
        chunk = dict(desired)
        if not chunk:
            return
        self._settle(self.IN_FLIGHT - 1 if self._ahead else 0)
        self.owners.update(chunk)
        start = time.monotonic()
        sent = self.applier.send(chunk, frozenset(), start + self.applier.nb.timeout,
                                 ahead=self._ahead)
        if sent is None:  # the session dropped while planning
            self._settle(0)
            self._merge(chunk, self.applier._apply(chunk))
        elif sent[1] is None:  # nothing to change
            self._merge(chunk, self.applier.landed(sent[0], len(chunk), 0.0))
        else:
            self._pending.append(_Sent(chunk, sent[0], sent[1], start))
            log.debug("nb chunk sent", owners=len(chunk), txn_size=len(sent[0]),
                      in_flight=len(self._pending),
                      duration=round(time.monotonic() - start, 4))

    def finish(self, gc: bool = False, keep: Iterable[Owner] = (),
               last_go: bool = True) -> ApplyResult:
        """Wait for the last chunk, give refused owners their last go and, with gc=True,
        delete the rows of every other owner found in NB (none of the sent ones, not `keep`).
        Returns what all chunks did. Without `last_go`, refused owners are left as they are
        and in the result's errors (for a caller that plans them again later)."""
        self._settle(0)
        if self._ahead and self.result.transactions:
            self.applier.catch_up()
        if not last_go:
            self.result.errors.update({o: "not committed in its chunk" for o in self._retry})
            return self.result
        last = dict(self._retry)
        if gc:
            last.update(self.applier.orphans(self.owners, keep))
        self.result.merge(self.applier._apply(last))
        return self.result

    def _settle(self, keep: int) -> None:
        """Take the replies of the oldest chunks until at most `keep` are in flight (and
        every reply already in)."""
        pending = self._pending
        while pending and (len(pending) > keep or pending[0].reply.ready()):
            sent = pending.popleft()
            outcome = self._wait(sent)
            if outcome is None:
                self._landed(sent)
                continue
            log.info("nb chunk not committed; committing it again", owners=len(sent.chunk),
                     after=len(pending), error=str(outcome))
            metrics.observe_transaction(0, 0.0, "retry")
            later = list(pending)
            pending.clear()
            for other in later:  # what came back, committed or not, before the index goes
                if self._wait(other) is None:
                    self._landed(other)
            if self._ahead:
                self.applier.resync()
            for redo in (sent, *later):
                self._merge(redo.chunk, self.applier._apply(redo.chunk))

    def _landed(self, sent: _Sent) -> None:
        self._merge(sent.chunk, self.applier.landed(sent.plan, len(sent.chunk),
                                                    time.monotonic() - sent.start))

    def _wait(self, sent: _Sent) -> Exception | None:
        waited = time.monotonic()
        outcome = sent.reply.wait(max(1.0, sent.start + self.applier.nb.timeout
                                      - time.monotonic()))
        log.debug("nb chunk reply", owners=len(sent.chunk),
                  waited=round(time.monotonic() - waited, 4))
        return outcome

    def _merge(self, chunk: dict[Owner, Sequence[Row]], result: ApplyResult) -> None:
        for owner in result.errors:
            self._retry[owner] = chunk[owner]
        if self.on_landed is not None:
            self.on_landed([o for o in chunk if o not in result.errors])
        result.errors = {}  # decided by the last go
        self.result.merge(result)


@dataclass(frozen=True)
class _Sent:
    """A chunk in flight: its owners, plan, reply and when it was planned."""

    chunk: dict[Owner, Sequence[Row]]
    plan: Plan
    reply: Reply
    start: float
