"""Commit desired rows to NB: compute the plan against the owned index and write it as one
raw JSON-RPC transaction.

`Applier.apply` holds the session lock while it computes the Plan (topology.plan, the single
source of truth for what changes; `render` uses the same plan) and builds its operations
(topology.rpcwrite); the request is serialised outside the lock and queued to the session,
which drops it if the monitor was re-synced meanwhile (a reconnect). When the server
commits, the reply's write-through puts the changes into the index before `apply` returns:
the next plan sees them.

When the session drops before the reply (reconnect, RAFT leader change), the outcome is
unknown: `apply` waits for the new monitor contents and plans again, so a transaction that
had in fact landed is seen and not repeated; inserts carry client-chosen UUIDs derived from
their keys (or `wait` guards on older servers), so one that lands late is refused instead of
duplicated. A refused UUID is looked up on the server: when it is our row with that key (the
earlier insert landed after all, e.g. committed by a new RAFT leader after our monitor's
resync), `apply` waits until the monitor shows it and plans again; when a row that is not
ours holds it, that new row gets another UUID. Nothing is given up on, and nothing is
inserted twice.

A batch of owners is committed in one transaction. When the server refuses it (a constraint
violation, a name taken by a row that is not ours), the batch is split in halves until every
good owner has landed and each bad owner is reported on its own. A row of ours that a row
which is not ours still references (an operator's switch carrying a deleted VPC's LB group)
is not deleted: the refused delete is left out and the rest commits; every GC tries again.
A plan with nothing to change sends nothing: no transaction is committed at all.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import structlog

from topology import metrics
from topology.model import Owner, Row, RowId
from topology.nb import NbClient
from topology.ovsdb_types import Disconnected, OvsdbError, gc_paused
from topology.plan import Plan, compute_plan
from topology.rpcwrite import (
    NOT_OURS,
    OURS,
    Codecs,
    Transaction,
    UuidSource,
    first_error,
    holder,
)

log = structlog.get_logger(__name__)


class RowValueError(ValueError):
    """A desired value the NB schema refuses (kept for callers; the server now reports it)."""


class Refused(RuntimeError):
    """The server refused the transaction: the batch is split to find the bad owner."""


@dataclass
class ApplyResult:
    """What one `apply` did: transactions committed, rows changed, owners refused."""

    transactions: int = 0
    changes: int = 0
    errors: dict[Owner, str] = field(default_factory=dict)
    plans: list[Plan] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def merge(self, other: ApplyResult) -> None:
        self.transactions += other.transactions
        self.changes += other.changes
        self.errors.update(other.errors)
        self.plans.extend(other.plans)


class Applier:
    """Applies desired rows per owner to NB through one NbClient."""

    RETRY_PAUSE = 0.2
    MAX_REFUSED = 8  # refused UUIDs / failed guards settled in one apply before giving up

    def __init__(self, nb: NbClient):
        self.nb = nb
        self.uuids = UuidSource()
        self.codecs = Codecs()

    def plan(self, desired: Mapping[Owner, Sequence[Row]], gc: bool = False,
             keep: Iterable[Owner] = ()) -> Plan:
        """The changes an apply would make, computed against NB; writes nothing."""
        self.nb.wait_synced()
        return self.nb.read(compute_plan, self.nb.index, desired, gc, keep)

    def apply(self, desired: Mapping[Owner, Sequence[Row]], gc: bool = False,
              keep: Iterable[Owner] = ()) -> ApplyResult:
        """Make NB equal to `desired` for these owners. With gc=True, also delete the rows of
        every owner found in NB that is neither in `desired` nor in `keep`."""
        if gc:
            desired = {**desired, **self.orphans(desired, keep)}
        return self._apply(dict(desired))  # in the caller's order: the first listed wins a row

    def orphans(self, owners: Iterable[Owner], keep: Iterable[Owner]) -> dict[Owner, tuple]:
        """Owners holding rows in NB that are neither in `owners` nor in `keep`, each wanting
        no rows (garbage collection)."""
        self.nb.wait_synced()
        extra = self.nb.read(self.nb.index.owners) - set(owners) - set(keep)
        return {o: () for o in extra}

    def stream(self) -> Stream:
        """A full sync committed in chunks while the caller computes the next (see Stream)."""
        return Stream(self)

    def _apply(self, desired: dict[Owner, Sequence[Row]],
               spare: frozenset[UUID] = frozenset()) -> ApplyResult:
        if not desired:
            return ApplyResult()
        start = time.monotonic()
        try:
            plan = self._commit(desired, spare)
        except Refused as exc:
            used = _still_referenced(str(exc))
            if used is not None and used[1] not in spare:
                # a row that is not ours holds a (strong) reference to a row of ours that
                # goes, e.g. an operator's switch carrying a deleted VPC's LB group: that row
                # stays while it is used, everything else goes; every GC tries again
                log.warning("nb row of ours is used by a row that is not ours; kept",
                            table=used[0], uuid=str(used[1]))
                return self._apply(desired, spare | {used[1]})
            return self._split(desired, exc, spare)
        result = self.landed(plan, len(desired), time.monotonic() - start)
        for owner, err in plan.errors.items():
            log.warning("owner not applied", owner=str(owner), error=err)
        return result

    @staticmethod
    def landed(plan: Plan, owners: int, elapsed: float) -> ApplyResult:
        """The result of a plan whose transaction committed (or had nothing to change)."""
        result = ApplyResult(errors=dict(plan.errors), plans=[plan])
        if not plan.empty():
            result.transactions = 1
            result.changes = len(plan)
            metrics.observe_transaction(len(plan), elapsed, "ok")
            log.info("nb transaction", owners=owners, txn_size=len(plan),
                     duration=round(elapsed, 4), **plan.summary())
        return result

    def _commit(self, desired: dict[Owner, Sequence[Row]],
                spare: frozenset[UUID] = frozenset()) -> Plan:
        """Plan and commit once; on a lost session, wait for it and plan again. Rows in
        `spare` are not deleted (see `_apply`)."""
        deadline = time.monotonic() + self.nb.timeout
        refused = 0
        while True:
            sent = self.send(desired, spare, deadline)
            if sent is None:
                continue
            plan, done = sent
            if done is None:
                return plan
            outcome = done.wait(max(1.0, deadline - time.monotonic()))
            if outcome is None:
                return plan
            if isinstance(outcome, Disconnected):
                log.info("nb session lost before the reply; planning again", error=str(outcome))
                metrics.observe_transaction(0, 0.0, "retry")
                continue
            if isinstance(outcome, _Transient) and refused < self.MAX_REFUSED:
                refused += 1
                if outcome.insert is not None:
                    self._settle_refused_uuid(*outcome.insert)
                else:
                    log.info("nb transaction raced a late insert; planning again",
                             error=str(outcome))
                    time.sleep(self.RETRY_PAUSE)
                continue
            raise Refused(str(outcome))

    def send(self, desired: Mapping[Owner, Sequence[Row]], spare: frozenset[UUID],
             deadline: float, ahead: bool = False) -> tuple[Plan, Reply | None] | None:
        """Plan `desired` against the index and send its transaction without waiting for the
        reply: (plan, reply), or (plan, None) when there is nothing to change, or None when
        the session dropped meanwhile (plan again once it is back).

        With `ahead` (only where the server takes client-chosen UUIDs, see `can_run_ahead`),
        the changes go into the index as the request is queued, before the server has
        committed them, so that the next plan can build on them at once; a caller that gets
        anything but a commit back must `resync` before it plans again."""
        nb = self.nb
        session = nb.session
        assert session is not None, "NbClient not started"
        if not session.wait_synced(max(0.0, deadline - time.monotonic())):
            raise TimeoutError(f"NB not connected within {nb.timeout}s")
        done = Reply()
        with gc_paused():
            with session.lock:
                if not session.synced.is_set():
                    return None
                epoch = session.epoch
                plan = compute_plan(nb.index, desired)
                if spare:
                    plan.deletes = [d for d in plan.deletes if d[1] not in spare]
                if plan.empty():
                    return plan, None
                assert session.schema is not None
                txn = Transaction(plan, session.schema, session, self.uuids,
                                  session.supports_insert_uuid, self.codecs)
                if ahead:
                    assert session.supports_insert_uuid
                    txn.reflect([])  # client UUIDs: the reply has nothing to resolve
            rid, data = session.encode_request("transact", [session.database, *txn.ops])
            txn.ops = []  # only the bytes are needed now (and the write-through)
        try:
            session.send_encoded(rid, data, done.callback(txn, reflected=ahead), epoch)
        except Disconnected:
            return None
        return plan, done

    def can_run_ahead(self) -> bool:
        """Whether `send(ahead=True)` is possible: new rows' UUIDs are known before the
        reply only when the server takes client-chosen UUIDs."""
        session = self.nb.session
        return session is not None and session.supports_insert_uuid

    def catch_up(self) -> None:
        """Wait until the monitor updates of every transaction answered so far are in the
        index (a round trip: the server sends a commit's updates before it answers a later
        request). While several transactions that change one row are in flight, the update
        of the first one shows that row without the changes of the later ones until their
        updates come; a plan that deletes rows must not see such a row."""
        session = self.nb.session
        assert session is not None
        try:
            session.call("echo", [], self.nb.timeout)
        except Disconnected:
            pass  # the monitor is loaded again: it has everything

    def resync(self) -> None:
        """Replace the index with what the server holds: drops what `send(ahead=True)` put
        there for transactions that did not commit, and finds rows of ours the monitor does
        not report (inserts made by others into a table without insert echo)."""
        session = self.nb.session
        assert session is not None
        session.reload(self.nb.timeout)

    def _settle_refused_uuid(self, rid: RowId, row_uuid: str, wait: float = 10.0) -> None:
        """An insert was refused for its UUID: find out who holds it (see the module doc)."""
        session = self.nb.session
        assert session is not None
        try:
            who = holder(session, rid, row_uuid)
        except (Disconnected, OvsdbError) as exc:
            log.info("nb uuid holder unknown; planning again", table=rid.table, key=rid.key,
                     error=str(exc))
            return
        if who == NOT_OURS:
            log.warning("nb row that is not ours holds a new row's uuid; using another",
                        table=rid.table, key=rid.key, uuid=row_uuid)
            self.uuids.replace(rid)
            return
        log.info("nb insert had landed already; planning again once it is seen",
                 table=rid.table, key=rid.key, uuid=row_uuid, holder=who)
        if who == OURS and not session.echoes_inserts(rid.table):
            self.resync()  # the monitor will not report it: load it
        elif who == OURS:
            target = UUID(row_uuid)
            deadline = time.monotonic() + wait
            while (target not in self.nb.read(self.nb.index.lookup, rid)
                   and time.monotonic() < deadline):
                time.sleep(0.01)

    def _split(self, desired: dict[Owner, Sequence[Row]], exc: Exception,
               spare: frozenset[UUID] = frozenset()) -> ApplyResult:
        metrics.observe_transaction(0, 0.0, "error")
        owners = list(desired)
        if len(owners) == 1:
            log.warning("owner refused by nb", owner=str(owners[0]), error=str(exc))
            return ApplyResult(errors={owners[0]: _reason(exc)})
        log.info("nb transaction failed, splitting batch", owners=len(owners), error=str(exc))
        mid = len(owners) // 2
        result = ApplyResult()
        for part in (owners[:mid], owners[mid:]):
            result.merge(self._apply({o: desired[o] for o in part}, spare))
        return result


class _Transient(OvsdbError):
    """A refusal that a fresh plan may not repeat (an insert that raced a late one).
    `insert`: the new row and UUID the server refused as a duplicate, when known."""

    def __init__(self, text: str, insert: tuple[RowId, str] | None = None):
        super().__init__(text)
        self.insert = insert


class Reply:
    """The outcome of one transact: None (committed), or the exception to handle."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.outcome: Exception | None = None

    def callback(self, txn: Transaction, reflected: bool = False):  # noqa: ANN201
        """The reply handler: `txn` is written through once committed, unless it already
        was (`reflected`, see `Applier.send`)."""
        def on_reply(result: Any, error: Any) -> None:
            if error is not None:
                self.outcome = error if isinstance(error, Exception) else OvsdbError(str(error))
            else:
                found = first_error(result)
                failure = None if found is None else found[1]
                if found is None:
                    if not reflected:
                        try:
                            txn.reflect(result)
                        except Exception as exc:  # noqa: BLE001 - the monitor will catch up
                            log.warning("write-through failed; waiting for the monitor",
                                        error=str(exc))
                elif "duplicate uuid" in failure:
                    self.outcome = _Transient(failure, txn.insert_of(found[0]))
                elif failure.startswith("timed out"):
                    self.outcome = _Transient(failure)
                elif "not leader" in failure or "not connected" in failure:
                    self.outcome = Disconnected(failure)
                else:
                    self.outcome = OvsdbError(failure)
            self._event.set()
        return on_reply

    def ready(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> Exception | None:
        if not self._event.wait(timeout):
            return Disconnected(f"no reply within {timeout:.0f}s")
        return self.outcome


_IN_USE = re.compile(r"cannot delete (\w+) row ([0-9a-f-]{36}) because of \d+ remaining "
                     r"reference")


def _still_referenced(text: str) -> tuple[str, UUID] | None:
    """(table, uuid) of the row whose delete the server refused for remaining references."""
    found = _IN_USE.search(text)
    return (found.group(1), UUID(found.group(2))) if found else None


def _reason(exc: Exception) -> str:
    text = str(exc)
    return text.removeprefix("OVSDB Error: ")


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
    """

    IN_FLIGHT = 3

    def __init__(self, applier: Applier):
        self.applier = applier
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

    def finish(self, gc: bool = False, keep: Iterable[Owner] = ()) -> ApplyResult:
        """Wait for the last chunk, give refused owners their last go and, with gc=True,
        delete the rows of every other owner found in NB (none of the sent ones, not `keep`).
        Returns what all chunks did."""
        self._settle(0)
        if self._ahead and self.result.transactions:
            self.applier.catch_up()
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
                self._merge(sent.chunk, self.applier.landed(sent.plan, len(sent.chunk),
                                                            time.monotonic() - sent.start))
                continue
            log.info("nb chunk not committed; committing it again", owners=len(sent.chunk),
                     after=len(pending), error=str(outcome))
            metrics.observe_transaction(0, 0.0, "retry")
            later = list(pending)
            pending.clear()
            for other in later:  # what came back, committed or not, before the index goes
                if self._wait(other) is None:
                    self._merge(other.chunk, self.applier.landed(
                        other.plan, len(other.chunk), time.monotonic() - other.start))
            if self._ahead:
                self.applier.resync()
            for redo in (sent, *later):
                self._merge(redo.chunk, self.applier._apply(redo.chunk))

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
        result.errors = {}  # decided by the last go
        self.result.merge(result)


@dataclass(frozen=True)
class _Sent:
    """A chunk in flight: its owners, plan, reply and when it was planned."""

    chunk: dict[Owner, Sequence[Row]]
    plan: Plan
    reply: Reply
    start: float
