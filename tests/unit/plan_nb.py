"""What the tests of topology.plan.compute_plan share: FakeNb, an OwnedIndex fed rows as NB's
monitor feeds it (`OwnedIndex.on_row`), no NB; the owners and rows they plan.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from topology import model, naming
from topology.index import OwnedIndex
from topology.model import LogicalSwitch, LogicalSwitchPort, Owner, Row, RowId
from topology.plan import LinkOp, Plan, compute_plan


class FakeNb:
    """An OwnedIndex holding the rows we say NB has, each given to it as the session gives
    a monitored row: its name, its ownership external_ids and its reference columns."""

    def __init__(self) -> None:
        self.index = OwnedIndex()
        self.uuids: dict[RowId, uuid.UUID] = {}
        self.rows: dict[uuid.UUID, tuple[str, dict[str, Any]]] = {}

    def record(self, table: str, key: str, *, owner: Owner | None, hash: str | None,
               row_uuid: uuid.UUID | None = None,
               members: dict[str, Iterable[uuid.UUID]] | None = None) -> uuid.UUID:
        u = row_uuid or uuid.uuid4()
        row: dict[str, Any] = {"name": key}
        if table not in model.OWNED_BY_NAME:
            assert owner is not None, "a row of ours names its owner"
            ids = {**naming.owner_ids(owner.kind, owner.name), naming.KEY: key}
            if hash is not None:
                ids[naming.HASH] = hash
            row["external_ids"] = ids
        row.update({column: set() for column in model.ref_columns(table)})
        self.rows[u] = (table, row)
        self.index.on_row(table, u, None, row, None)
        for column, children in (members or {}).items():
            self.member(u, column, *children)
        self.uuids.setdefault(RowId(table, key), u)
        return u

    def member(self, parent: uuid.UUID, column: str, *children: uuid.UUID) -> None:
        """Add `children` to the parent's `column`, as a monitor update of that column."""
        table, old = self.rows[parent]
        new = dict(old, **{column: old.get(column, set()) | set(children)})
        self.rows[parent] = (table, new)
        self.index.on_row(table, parent, old, new, frozenset({column}))

    def has(self, row: Row, *, hash: str | None = None, owner: Owner | None = None) -> uuid.UUID:
        """Record `row` as NB holds it, linked into every recorded row it declares a link with."""
        by_name = row.TABLE in model.OWNED_BY_NAME
        u = self.record(row.TABLE, row.key,
                        owner=None if by_name else (owner or row.owner),
                        hash=None if by_name else (hash or row.content_hash))
        for link in row.links():
            parent, child = self.uuids.get(link.parent), self.uuids.get(link.child)
            if parent is not None and child is not None:
                self.member(parent, link.column, child)
        return u

    def foreign(self, table: str = "Logical_Switch") -> uuid.UUID:
        """A row that is not ours (no managed-by external_id): the index ignores it."""
        u = uuid.uuid4()
        row = {"name": f"foreign-{u}", "external_ids": {},
               **{column: set() for column in model.ref_columns(table)}}
        self.rows[u] = (table, row)
        self.index.on_row(table, u, None, row, None)
        return u

    def plan(self, desired: dict[Owner, list[Row]], **kw) -> Plan:
        return compute_plan(self.index, desired, **kw)


VPC = Owner("Vpc", "v1")
SUB1, SUB2 = Owner("Subnet", "s1"), Owner("Subnet", "s2")
POD = Owner("Pod", "ns/p")


def switch(name: str, owner: Owner | None = None, **kw) -> LogicalSwitch:
    return LogicalSwitch(name=name, owner=owner or Owner("Subnet", name), **kw)


def port(name: str = "p.ns", sw: str = "s1", owner: Owner = POD, **kw) -> LogicalSwitchPort:
    return LogicalSwitchPort(name=name, switch=sw, owner=owner, **kw)


def keys(rows: Iterable) -> set[str]:
    return {r.key for r in rows}


def link_set(ops: list[LinkOp]) -> set[tuple[str, str, str]]:
    return {(str(op.parent), op.column, str(op.child)) for op in ops}
