"""Commit desired rows to NB: compute the plan against the owned index and write it as one
raw JSON-RPC transaction.

`Applier.apply` holds the session lock while it computes the Plan (topology.plan, the single
source of truth for what changes; `render` uses the same plan) and builds its operations
(topology.nbsync.transact); the request is serialised outside the lock and queued to the session,
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

With `NbClient(bump_nb_cfg=True)` every transaction also increments NB_Global.nb_cfg (see
topology.nbsync.transact), so that northd and the chassis acknowledge each commit.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import structlog

from topology.model import Owner, Row, RowId
from topology.nbsync import metrics
from topology.nbsync.client import NbClient
from topology.nbsync.transact import (
    NOT_OURS,
    OURS,
    Codecs,
    Transaction,
    UuidSource,
    first_error,
    holder,
)
from topology.ovsdb.values import Disconnected, OvsdbError, gc_paused
from topology.plan import Plan, compute_plan

log = structlog.get_logger(__name__)
# an "nb transaction" line at info: transactions of at least this many row changes, or this slow
LOUD_TXN_SIZE = 100
LOUD_TXN_SECONDS = 0.1


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
            # one line per transaction at churn rates (hundreds a second) costs the loop
            # its latency: at info only the large or slow ones, every one at debug (the
            # metrics count them all)
            loud = len(plan) >= LOUD_TXN_SIZE or elapsed >= LOUD_TXN_SECONDS
            (log.info if loud else log.debug)(
                "nb transaction", owners=owners, txn_size=len(plan),
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
                                  session.supports_insert_uuid, self.codecs,
                                  bump_nb_cfg=nb.bump_nb_cfg)
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
