"""The index of the rows the controller owns in NB: by (table, key), by owner, and the
memberships of our rows in our rows' reference columns.

`OwnedIndex` is kept up to date by the NB session thread (topology.nbsync.client) from monitor
updates and from the write-through of committed transactions; after a reconnection the
monitor's initial contents replace it entirely. Rows are known by external_ids (never by
name, except Load_Balancer_Group, which has no external_ids). It is a plain data structure:
the plan (topology.plan) diffs desired rows against it, and it holds no socket or thread.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from topology import model, naming
from topology.model import Owner, RowId

UUID = uuid.UUID


class RowMeta(NamedTuple):
    """What the index knows of a row of ours (a named tuple: made and compared per row)."""

    table: str
    key: str
    owner: Owner | None
    hash: str | None


class RowView:
    """Read-only view of a monitored row: monitored columns as python-ovs would give them
    (maps as dict, sets as sorted lists, optional scalars as 0/1-element lists)."""

    __slots__ = ("_table", "_data", "_types", "uuid")

    def __init__(self, table: str, row_uuid: UUID, data: dict[str, Any], types: dict[str, Any]):
        self._table = table
        self._data = data
        self._types = types
        self.uuid = row_uuid

    def __getattr__(self, column: str) -> Any:
        try:
            value = self._data[column]
        except KeyError:
            raise AttributeError(f"{self._table}.{column} is not monitored by NbClient "
                                 "(see topology.nbsync.client.READ_COLUMNS)") from None
        ct = self._types.get(column)
        if isinstance(value, dict):
            return dict(value)
        if isinstance(value, (set, frozenset)):
            return sorted(value, key=str) if ct is None or ct.is_ref else sorted(value)
        return value


class OwnedIndex:
    """Our rows by (table, key), by owner, and our memberships.

    Changed only by the session thread (or a writer holding the session lock); read under
    that lock (`NbClient.read`, or inside the Applier)."""

    def __init__(self, source: Any = None):
        self._source = source  # a Session (row views) or a stand-in without rows (tests)
        self.rows: dict[str, dict[str, list[UUID]]] = defaultdict(dict)
        self.meta: dict[UUID, RowMeta] = {}
        self.by_owner: dict[Owner, set[RowId]] = defaultdict(set)
        self.members: dict[tuple[UUID, str], set[UUID]] = {}
        self.parents_of: dict[UUID, set[tuple[UUID, str]]] = defaultdict(set)
        self._refs = {t: model.ref_columns(t) for t in model.TABLES}
        self._counts: dict[str, int] = defaultdict(int)  # rows per table, kept as they change

    # -- maintenance (session thread) ------------------------------------------------------------
    def bind(self, source: Any) -> None:
        """Read row views from `source` (the session whose monitor fills this index)."""
        self._source = source

    def clear(self) -> None:
        self.rows.clear()
        self.meta.clear()
        self.by_owner.clear()
        self.members.clear()
        self.parents_of.clear()
        self._counts.clear()

    def on_row(self, table: str, row_uuid: UUID, old: dict[str, Any] | None,
               new: dict[str, Any] | None, changed: frozenset[str] | None) -> None:
        if new is None:
            self._remove(row_uuid)
            return
        refs = self._refs.get(table)
        if refs is None:
            return
        meta = _owned_meta(table, row_uuid, new)
        prev = self.meta.get(row_uuid)
        if meta is None:
            if prev is not None:
                self._remove(row_uuid)
            return
        if prev != meta:
            if prev is not None:
                self._unindex(row_uuid, prev)
            self.meta[row_uuid] = meta
            self.rows[table].setdefault(meta.key, []).append(row_uuid)
            self._counts[table] += 1
            if meta.owner is not None:
                self.by_owner[meta.owner].add(RowId(table, meta.key))
        for column in refs:
            if changed is not None and prev is not None and column not in changed:
                continue
            self._set_members(row_uuid, column, new.get(column) or set())

    def _set_members(self, parent: UUID, column: str, children: set[UUID]) -> None:
        key = (parent, column)
        before = self.members.get(key, set())
        if before == children:
            return
        for child in before - children:
            self.parents_of[child].discard(key)
        for child in children - before:
            self.parents_of[child].add(key)
        self.members[key] = set(children)

    def _unindex(self, row_uuid: UUID, meta: RowMeta) -> None:
        keyed = self.rows[meta.table].get(meta.key)
        if keyed is not None:
            if row_uuid in keyed:
                keyed.remove(row_uuid)
                self._counts[meta.table] -= 1
            if not keyed:
                del self.rows[meta.table][meta.key]
        if meta.owner is not None and not self.rows[meta.table].get(meta.key):
            owned = self.by_owner.get(meta.owner)
            if owned is not None:
                owned.discard(RowId(meta.table, meta.key))
                if not owned:
                    del self.by_owner[meta.owner]

    def _remove(self, row_uuid: UUID) -> None:
        meta = self.meta.pop(row_uuid, None)
        if meta is not None:
            self._unindex(row_uuid, meta)
            for column in model.ref_columns(meta.table):
                self._set_members(row_uuid, column, set())
                self.members.pop((row_uuid, column), None)

    # -- queries (hold the session lock) -----------------------------------------------------------
    def refresh(self) -> None:
        """Kept for callers of the IDL era: the session keeps the index current."""

    def lookup(self, rid: RowId) -> list[UUID]:
        return self.rows.get(rid.table, {}).get(rid.key, [])

    def owners(self) -> set[Owner]:
        return set(self.by_owner)

    def owned_by(self, owner: Owner) -> set[RowId]:
        return set(self.by_owner.get(owner, ()))

    def row(self, table: str, row_uuid: UUID) -> RowView:
        source = self._source
        data = source.effective(table, row_uuid)
        if data is None:
            raise KeyError(row_uuid)
        types = source.schema.tables[table] if source.schema is not None else {}
        return RowView(table, row_uuid, data, types)

    def value(self, table: str, row_uuid: UUID, column: str) -> Any:
        """One monitored column of a row as the session holds it, not copied (read-only):
        for reads of one column of many rows, where a RowView per row would copy it."""
        data = self._source.effective(table, row_uuid)
        if data is None:
            raise KeyError(row_uuid)
        return data[column]

    def count_by_table(self) -> dict[str, int]:
        """Rows we own per table (kept as rows change: O(tables), asked after every batch)."""
        return {t: n for t, n in self._counts.items() if n or t in self.rows}


def _owned_meta(table: str, row_uuid: UUID, row: dict[str, Any]) -> RowMeta | None:
    if table in model.OWNED_BY_NAME:
        name = row.get("name", "")
        if not naming.is_our_lb_group(name):
            return None
        return RowMeta(table, name, Owner(*naming.lb_group_owner(name)), None)
    ids = row.get("external_ids") or {}
    if ids.get(naming.MANAGED_BY) != naming.MANAGED_BY_VALUE:
        return None
    owner = Owner(ids.get(naming.KIND, ""), ids.get(naming.OWNER, ""))
    key = ids.get(naming.KEY) or row.get("name") or str(row_uuid)
    return RowMeta(table, key, owner, ids.get(naming.HASH))


# -- the full IDL for tools (lazy) -----------------------------------------------------------------
def iter_owned(index: OwnedIndex, tables: Iterable[str]) -> Iterator[tuple[RowId, UUID]]:
    for table in tables:
        for key, uuids in index.rows.get(table, {}).items():
            for row_uuid in uuids:
                yield RowId(table, key), row_uuid
