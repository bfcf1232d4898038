"""Commit desired rows to NB: one custom ovsdbapp Command computes the plan and writes it.

`ApplyCommand.run_idl` runs in the ovsdbapp connection thread: it computes the Plan against
the current IDL and writes every change into the one IDL transaction. When ovsdbapp retries
a transaction (TRY_AGAIN after a reconnect or a RAFT leader change), run_idl is called again
on the refreshed IDL and recomputes the plan, so a retried insert that had in fact landed is
seen and not repeated; duplicates that slip through anyway are removed by the next diff.

`Applier.apply` commits a batch of owners in one transaction. When the server refuses it
(a constraint violation, a name taken by a row that is not ours), the batch is split in
halves until every good owner has landed and each bad owner is reported on its own. A plan
with nothing to change sends nothing: no transaction is committed at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ovs.db.data
import ovs.db.error
import ovs.db.idl
import structlog
from ovsdbapp.backend.ovs_idl.command import BaseCommand

from topology import metrics, model
from topology.model import Owner, Row, RowId
from topology.nb import NbClient
from topology.plan import LinkOp, Plan, compute_plan

log = structlog.get_logger(__name__)


class RowValueError(ValueError):
    """A desired value the NB schema refuses (checked before anything is sent)."""


def _check(row: ovs.db.idl.Row, column: str, value: Any) -> None:
    col = row._table.columns[column]  # noqa: SLF001
    try:
        ovs.db.data.Datum.from_python(col.type, value, ovs.db.idl._row_to_uuid)  # noqa: SLF001
    except ovs.db.error.Error as exc:
        raise RowValueError(f"{row._table.name}.{column}={value!r}: {exc}") from exc  # noqa: SLF001


def _write_columns(row: ovs.db.idl.Row, desired: Row) -> None:
    values = desired.columns()
    if desired.TABLE not in model.OWNED_BY_NAME:
        values["external_ids"] = desired.external_ids()
    for column, value in values.items():
        _check(row, column, value)
        setattr(row, column, value)


class ApplyCommand(BaseCommand):
    """Compute the plan for `desired` and write it into the transaction (or only compute it)."""

    def __init__(self, api: Any, desired: Mapping[Owner, Sequence[Row]], gc: bool = False,
                 dry_run: bool = False, keep: Iterable[Owner] = ()):
        super().__init__(api)
        self.desired = desired
        self.gc = gc
        self.keep = frozenset(keep)
        self.dry_run = dry_run
        self.READ_ONLY = dry_run  # ovsdbapp runs read-only commands without a transaction

    def run_idl(self, txn: ovs.db.idl.Transaction | None) -> None:
        index = self.api.idl.index
        plan = compute_plan(index, self.desired, gc=self.gc, keep=self.keep)
        self.result = plan
        if self.dry_run or plan.empty():
            return
        assert txn is not None
        tables = self.api.idl.tables
        made: dict[RowId, ovs.db.idl.Row] = {}
        for row in plan.inserts:
            new = txn.insert(tables[row.TABLE])
            _write_columns(new, row)
            made[row.rid] = new
        for row, row_uuid in plan.updates:
            _write_columns(tables[row.TABLE].rows[row_uuid], row)

        def resolve(rid: RowId, row_uuid: Any) -> ovs.db.idl.Row:
            return made[rid] if row_uuid is None else tables[rid.table].rows[row_uuid]

        for op in plan.link_removes:
            _unlink(resolve(op.parent, op.parent_uuid), op, resolve(op.child, op.child_uuid))
        for op in plan.link_adds:
            _link(resolve(op.parent, op.parent_uuid), op, resolve(op.child, op.child_uuid))
        for rid, row_uuid, _ in plan.deletes:
            row = tables[rid.table].rows.get(row_uuid)
            if row is not None:
                row.delete()

    def __str__(self) -> str:
        return f"ApplyCommand(owners={len(self.desired)}, gc={self.gc}, dry_run={self.dry_run})"


def _single(op: LinkOp) -> bool:
    return model.REF_COLUMNS[(op.parent.table, op.column)][2] == 1


def _link(parent: ovs.db.idl.Row, op: LinkOp, child: ovs.db.idl.Row) -> None:
    if _single(op):
        setattr(parent, op.column, [child])
    else:
        parent.addvalue(op.column, child)


def _unlink(parent: ovs.db.idl.Row, op: LinkOp, child: ovs.db.idl.Row) -> None:
    if _single(op):
        setattr(parent, op.column, [])
    else:
        parent.delvalue(op.column, child)


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

    def __init__(self, nb: NbClient):
        self.nb = nb

    def plan(self, desired: Mapping[Owner, Sequence[Row]], gc: bool = False,
             keep: Iterable[Owner] = ()) -> Plan:
        """The changes an apply would make, computed against NB; writes nothing."""
        assert self.nb.api is not None
        cmd = ApplyCommand(self.nb.api, desired, gc=gc, dry_run=True, keep=keep)
        return cmd.execute(check_error=True, log_errors=False)

    def apply(self, desired: Mapping[Owner, Sequence[Row]], gc: bool = False,
              keep: Iterable[Owner] = ()) -> ApplyResult:
        """Make NB equal to `desired` for these owners. With gc=True, also delete the rows of
        every owner found in NB that is neither in `desired` nor in `keep`."""
        if gc:
            extra = self.nb.read(self.nb.index.owners) - set(desired) - set(keep)
            desired = {**desired, **{o: () for o in extra}}
        return self._apply(dict(sorted(desired.items())))

    def _apply(self, desired: dict[Owner, Sequence[Row]]) -> ApplyResult:
        result = ApplyResult()
        if not desired:
            return result
        assert self.nb.api is not None
        cmd = ApplyCommand(self.nb.api, desired)
        start = time.monotonic()
        try:
            cmd.execute(check_error=True, log_errors=False)
        except (RuntimeError, RowValueError, ovs.db.error.Error) as exc:
            return self._split(desired, exc)
        plan: Plan = cmd.result
        elapsed = time.monotonic() - start
        result.errors.update(plan.errors)
        result.plans.append(plan)
        if not plan.empty():
            result.transactions = 1
            result.changes = len(plan)
            metrics.observe_transaction(len(plan), elapsed, "ok")
            log.info("nb transaction", owners=len(desired), txn_size=len(plan),
                     duration=round(elapsed, 4), **plan.summary())
        for owner, err in plan.errors.items():
            log.warning("owner not applied", owner=str(owner), error=err)
        return result

    def _split(self, desired: dict[Owner, Sequence[Row]], exc: Exception) -> ApplyResult:
        metrics.observe_transaction(0, 0.0, "error")
        owners = list(desired)
        if len(owners) == 1:
            log.warning("owner refused by nb", owner=str(owners[0]), error=str(exc))
            return ApplyResult(errors={owners[0]: _reason(exc)})
        log.info("nb transaction failed, splitting batch", owners=len(owners), error=str(exc))
        mid = len(owners) // 2
        result = ApplyResult()
        for part in (owners[:mid], owners[mid:]):
            result.merge(self._apply({o: desired[o] for o in part}))
        return result


def _reason(exc: Exception) -> str:
    text = str(exc)
    return text.removeprefix("OVSDB Error: ")
