"""A Plan as one OVSDB `transact`: plain JSON-RPC operations, and what they change in the
monitored row store once committed (write-through, see topology.ovsdb.session).

Operations, in this order inside the one transaction:
- insert every new row with all its columns, its external_ids and the members it holds as
  parent when those are new too (no separate mutate for them);
- update changed rows (plain columns replaced, external_ids mutated so that keys an operator
  added to our row stay; references are never replaced);
- mutate reference columns of existing parents: one op per parent column with all members
  removed, then one with all members added (columns of at most one element: update);
- delete rows that go;
- with `bump_nb_cfg`, increment NB_Global.nb_cfg by one (`mutate nb_cfg += 1`, what
  `ovn-nbctl --wait=sb|hv` does): ovn-northd copies it to SB_Global.nb_cfg and
  NB_Global.sb_cfg once SB holds the transaction's changes, and every ovn-controller
  reports it in Chassis_Private.nb_cfg once its flows do (northd keeps their minimum in
  NB_Global.hv_cfg). A reader of NB sees the new nb_cfg in the very update that carries the
  transaction's rows, so "hv_cfg >= that nb_cfg" witnesses that every chassis applied them.

Row identity of inserts: when the server takes client-chosen UUIDs (OVS >= 3.1), each new row
gets a UUID derived from its (table, key) alone, the same in every process. So an insert that
lands twice is refused by the server ("duplicate uuid") instead of creating a second row,
whoever sends it: this process again after a lost reply or a RAFT leader change (the first
one may have committed, or may still commit: a new RAFT leader commits the entries of the
old term before it runs ours), a restarted controller while the killed one's transaction was
in flight, or a second replica. The server checks a client UUID per table, against the rows
present, also those deleted earlier (a key deleted and inserted again reuses its UUID).
After such a refusal the caller asks who holds the UUID (`holder`): our row with that key
(it landed: wait for the monitor, plan again) or a row that is not ours (that row gets a
random UUID from then on). Older servers get named-uuid inserts guarded by `wait`
operations ("no row of ours has this key yet"), which cost the server a scan of the table
per insert.

Values come from `Row.columns()` (python-ovs forms: atoms, lists, dicts); each table's
columns are encoded by a function chosen once from the server's schema.
"""

from __future__ import annotations

import hashlib
import uuid as uuidlib
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from topology import model, naming
from topology.model import Row, RowId
from topology.ovsdb.session import Session
from topology.ovsdb.values import ColumnType, Schema, uuid_of
from topology.plan import Plan

UUID = uuidlib.UUID
_NS = uuidlib.UUID("6d1f3f0e-6a59-4f5b-9b8e-0c7f2a9b5e11")
_NS_BYTES = _NS.bytes


class UuidSource:
    """UUIDs of new rows: derived from (table, key), the same in every process (see the
    module docstring), except for rows whose derived UUID is held by a row that is not ours
    (`replace`)."""

    def __init__(self) -> None:
        self._replaced: dict[RowId, str] = {}

    def replace(self, rid: RowId) -> None:
        self._replaced[rid] = str(uuidlib.uuid4())

    def __call__(self, rid: RowId) -> str:
        found = self._replaced.get(rid)
        if found is not None:
            return found
        return derived_uuid(rid)


def derived_uuid(rid: RowId) -> str:
    """str(uuid.uuid5(_NS, "table\\0key")), without building UUID objects (an insert each)."""
    digest = bytearray(hashlib.sha1(_NS_BYTES + f"{rid.table}\0{rid.key}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# -- encoding ---------------------------------------------------------------------------------
Encoder = Callable[[Any], Any]


def _enc_uuid(v: Any) -> Any:
    return ["uuid", str(v)]


def _encoder(ct: ColumnType) -> Encoder:
    """python-ovs form -> OVSDB JSON, for one column type (no sorting: OVSDB does not care;
    pairs may be tuples: the request is only ever JSON-encoded)."""
    if ct.is_map:
        if ct.key == "uuid" or ct.value == "uuid":
            ek = _enc_uuid if ct.key == "uuid" else (lambda x: x)
            ev = _enc_uuid if ct.value == "uuid" else (lambda x: x)
            return lambda v: ["map", [[ek(k), ev(x)] for k, x in (v or {}).items()]]
        return lambda v: ["map", list(v.items()) if v else []]
    if ct.is_scalar:
        return _enc_uuid if ct.key == "uuid" else (lambda v: v)
    if ct.key == "uuid":
        return lambda v: ["set", [_enc_uuid(x) for x in _as_list(v)]]
    return lambda v: ["set", _as_list(v)]


def _as_list(v: Any) -> list[Any]:
    if isinstance(v, list):
        return v
    if v is None:
        return []
    if isinstance(v, (tuple, set, frozenset)):
        return list(v)
    return [v]


def _storer(ct: ColumnType) -> Encoder:
    """python-ovs form -> the form the monitor store keeps (sets for sets, dicts for maps)."""
    if ct.is_map:
        return lambda v: dict(v or {})
    if ct.is_scalar:
        return lambda v: v
    return lambda v: set(_as_list(v))


_CONTAINERS = (list, tuple, dict)


class _TableCodec:
    def __init__(self, schema: Schema, session: Session, table: str):
        types = schema.tables[table]
        self.encoders: dict[str, Encoder] = {c: _encoder(t) for c, t in types.items()}
        mon = session.monitors.get(table)
        monitored = frozenset(mon.columns) & frozenset(types) if mon else frozenset()
        self.storers: dict[str, Encoder] = {c: _storer(types[c]) for c in monitored}

    def encode(self, values: dict[str, Any]) -> dict[str, Any]:
        enc = self.encoders
        return {c: enc[c](v) for c, v in values.items()}

    def for_insert(self, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the insert's row, what the store keeps of it), in one pass. Empty sets and maps
        (the default of such columns) are not sent: the server fills them in (less to
        encode, send and parse)."""
        enc, storers = self.encoders, self.storers
        encoded: dict[str, Any] = {}
        stored: dict[str, Any] = {}
        for c, v in values.items():
            store = storers.get(c)
            if store is not None:
                stored[c] = store(v)
            if v or not isinstance(v, _CONTAINERS):
                encoded[c] = enc[c](v)
        return encoded, stored

    def stored(self, values: dict[str, Any]) -> dict[str, Any]:
        storers = self.storers
        return {c: storers[c](v) for c, v in values.items() if c in storers}


class Codecs:
    """Per-table encoders for one schema (rebuilt when the session's schema changes)."""

    def __init__(self) -> None:
        self._schema: Schema | None = None
        self._tables: dict[str, _TableCodec] = {}

    def get(self, schema: Schema, session: Session, table: str) -> _TableCodec:
        if schema is not self._schema:
            self._schema, self._tables = schema, {}
        codec = self._tables.get(table)
        if codec is None:
            codec = self._tables[table] = _TableCodec(schema, session, table)
        return codec


def _row_values(row: Row) -> dict[str, Any]:
    values = row.columns()
    if row.TABLE not in model.OWNED_BY_NAME:
        values["external_ids"] = row.external_ids(values)
    return values


def _single(table: str, column: str) -> bool:
    return model.REF_COLUMNS[(table, column)][2] == 1


# -- the transaction ----------------------------------------------------------------------------
class Transaction:
    """The operations of one plan, and the write-through to apply once they committed."""

    def __init__(self, plan: Plan, schema: Schema, session: Session, uuids: UuidSource,
                 client_uuids: bool, codecs: Codecs | None = None, bump_nb_cfg: bool = False):
        self.plan = plan
        self.ops: list[dict[str, Any]] = []
        self._schema = schema
        self._session = session
        self._codecs = codecs or Codecs()
        self._client_uuids = client_uuids
        self._ident: dict[RowId, str] = {}  # new row -> its uuid (or uuid-name)
        self._insert_at: dict[RowId, int] = {}  # new row -> index of its insert op
        # write-through, applied in order once committed
        self._rows: list[tuple[str, RowId, dict[str, Any]]] = []  # inserted rows
        self._values: list[tuple[str, UUID, dict[str, Any]]] = []  # updated rows
        self._members: list[tuple[str, UUID, str, list[UUID], list[Any], bool]] = []
        self._gone: list[tuple[str, UUID]] = []
        self._build(uuids)
        if bump_nb_cfg:
            self.ops.append(NB_CFG_BUMP)

    def codec(self, table: str) -> _TableCodec:
        return self._codecs.get(self._schema, self._session, table)

    # -- building -------------------------------------------------------------------------
    def _ref(self, rid: RowId, existing: UUID | None) -> list[str]:
        if existing is not None:
            return ["uuid", str(existing)]
        return ["uuid" if self._client_uuids else "named-uuid", self._ident[rid]]

    def _build(self, uuids: UuidSource) -> None:
        plan = self.plan
        for i, row in enumerate(plan.inserts):
            self._ident[row.rid] = uuids(row.rid) if self._client_uuids else f"row{i}"
        born: dict[tuple[RowId, str], list[list[str]]] = defaultdict(list)
        adds: dict[tuple[UUID, str, str], list[list[str]]] = defaultdict(list)
        for op in plan.link_adds:
            ref = self._ref(op.child, op.child_uuid)
            if op.parent_uuid is None:
                born[(op.parent, op.column)].append(ref)
            else:
                adds[(op.parent_uuid, op.parent.table, op.column)].append(ref)
        removes: dict[tuple[UUID, str, str], list[UUID]] = defaultdict(list)
        for op in plan.link_removes:
            assert op.parent_uuid is not None and op.child_uuid is not None
            removes[(op.parent_uuid, op.parent.table, op.column)].append(op.child_uuid)
        self._inserts(born)
        self._updates()
        self._mutations(removes, adds)
        self._deletes()

    def _inserts(self, born: dict[tuple[RowId, str], list[list[str]]]) -> None:
        ops = self.ops
        client = self._client_uuids
        ident_of, insert_at, inserted = self._ident, self._insert_at, self._rows
        codecs: dict[str, tuple[_TableCodec, tuple[str, ...]]] = {}
        for row in self.plan.inserts:
            table = row.TABLE
            found = codecs.get(table)
            if found is None:
                found = codecs[table] = (self.codec(table), model.ref_columns(table))
            codec, ref_columns = found
            rid = row.rid
            encoded, stored = codec.for_insert(_row_values(row))
            if born:
                for column in ref_columns:
                    refs = born.get((rid, column))
                    if refs:
                        encoded[column] = ["set", refs]
                        stored[column] = refs  # resolved to UUIDs in reflect()
            ident = ident_of[rid]
            if client:
                op = {"op": "insert", "table": table, "uuid": ident, "row": encoded}
            else:
                ops.append(_guard(row))
                op = {"op": "insert", "table": table, "uuid-name": ident, "row": encoded}
            insert_at[rid] = len(ops)
            ops.append(op)
            inserted.append((table, rid, stored))

    def _updates(self) -> None:
        """Plain columns are replaced; external_ids is mutated: our keys (`naming.is_our_key`)
        are replaced, keys an operator added to our row stay."""
        for row, row_uuid in self.plan.updates:
            codec = self.codec(row.TABLE)
            values = _row_values(row)
            where = [["_uuid", "==", ["uuid", str(row_uuid)]]]
            ids = values.pop("external_ids", None)
            if values:
                self.ops.append({"op": "update", "table": row.TABLE, "where": where,
                                 "row": codec.encode(values)})
            stored = codec.stored(values)
            if ids is not None:
                current = (self._session.effective(row.TABLE, row_uuid) or {}).get(
                    "external_ids") or {}
                drop = sorted(set(ids) | {k for k in current if naming.is_our_key(k)})
                self.ops.append({"op": "mutate", "table": row.TABLE, "where": where,
                                 "mutations": [
                                     ["external_ids", "delete", ["set", drop]],
                                     ["external_ids", "insert", ["map", sorted(ids.items())]]]})
                kept = {k: v for k, v in current.items() if not naming.is_our_key(k)}
                stored.update(codec.stored({"external_ids": {**kept, **ids}}))
            self._values.append((row.TABLE, row_uuid, stored))

    def _mutations(self, removes: dict[tuple[UUID, str, str], list[UUID]],
                   adds: dict[tuple[UUID, str, str], list[list[str]]]) -> None:
        for (parent_uuid, table, column), children in removes.items():
            where = [["_uuid", "==", ["uuid", str(parent_uuid)]]]
            single = _single(table, column)
            if single:
                self.ops.append({"op": "update", "table": table, "where": where,
                                 "row": {column: ["set", []]}})
            else:
                self.ops.append({"op": "mutate", "table": table, "where": where,
                                 "mutations": [[column, "delete", ["set", [
                                     ["uuid", str(c)] for c in children]]]]})
            self._members.append((table, parent_uuid, column, children, [], single))
        for (parent_uuid, table, column), refs in adds.items():
            where = [["_uuid", "==", ["uuid", str(parent_uuid)]]]
            single = _single(table, column)
            if single:
                refs = refs[-1:]
                self.ops.append({"op": "update", "table": table, "where": where,
                                 "row": {column: ["set", refs]}})
            else:
                self.ops.append({"op": "mutate", "table": table, "where": where,
                                 "mutations": [[column, "insert", ["set", refs]]]})
            self._members.append((table, parent_uuid, column, [], refs, single))

    def _deletes(self) -> None:
        for rid, row_uuid, _owner in self.plan.deletes:
            self.ops.append({"op": "delete", "table": rid.table,
                             "where": [["_uuid", "==", ["uuid", str(row_uuid)]]]})
            self._gone.append((rid.table, row_uuid))

    # -- after the reply ----------------------------------------------------------------------
    def insert_of(self, op_index: int) -> tuple[RowId, str] | None:
        """The new row (and its UUID or uuid-name) inserted by operation `op_index`."""
        for rid, at in self._insert_at.items():
            if at == op_index:
                return rid, self._ident[rid]
        return None

    def real_uuid(self, rid: RowId, result: list[Any]) -> UUID:
        if self._client_uuids:
            return uuid_of(self._ident[rid])
        return uuid_of(result[self._insert_at[rid]]["uuid"][1])

    def reflect(self, result: list[Any]) -> None:
        """Apply the committed changes to the row store (session thread, lock held)."""
        session = self._session
        if self._client_uuids:
            def resolve(ref: list[str]) -> UUID:
                return uuid_of(ref[1])
        else:
            by_name = {ident: rid for rid, ident in self._ident.items()}

            def resolve(ref: list[str]) -> UUID:
                if ref[0] == "uuid":
                    return uuid_of(ref[1])
                return self.real_uuid(by_name[ref[1]], result)
        for table, rid, stored in self._rows:
            for column in model.ref_columns(table):
                refs = stored.get(column)
                if refs is not None:
                    stored[column] = {resolve(r) for r in refs}
            session.local_change(table, self.real_uuid(rid, result), stored, replace=True)
        for table, row_uuid, stored in self._values:
            session.local_change(table, row_uuid, stored)
        for table, parent_uuid, column, removed, added, single in self._members:
            current = session.effective(table, parent_uuid)
            if current is None:
                continue
            members = set() if single and added else set(current.get(column) or ())
            members.difference_update(removed)
            members.update(resolve(r) for r in added)
            session.local_change(table, parent_uuid, {column: members})
        for table, row_uuid in self._gone:
            session.local_change(table, row_uuid, None)


# the sequence number northd and every ovn-controller acknowledge (ovn-nb(5) NB_Global)
NB_CFG_BUMP: dict[str, Any] = {"op": "mutate", "table": "NB_Global", "where": [],
                               "mutations": [["nb_cfg", "+=", 1]]}


def _guard(row: Row) -> dict[str, Any]:
    """Without client UUIDs: fail the transaction if a row of ours with this key exists."""
    if row.TABLE in model.OWNED_BY_NAME:
        where = [["name", "==", row.key]]
    else:
        where = [["external_ids", "includes", ["map", [[naming.KEY, row.key],
                                                       [naming.MANAGED_BY,
                                                        naming.MANAGED_BY_VALUE]]]]]
    return {"op": "wait", "timeout": 0, "table": row.TABLE, "where": where,
            "columns": ["_uuid"], "until": "==", "rows": []}


def first_error(result: list[Any]) -> tuple[int, str] | None:
    """The index and text of the first error of a transact result (ops results, then the
    commit's), or None."""
    for i, r in enumerate(result):
        if isinstance(r, dict) and r.get("error"):
            details = r.get("details")
            return i, f"{r['error']}: {details}" if details else str(r["error"])
    return None


def errors_of(result: list[Any]) -> str | None:
    """The first error of a transact result, or None."""
    found = first_error(result)
    return None if found is None else found[1]


# -- a refused client UUID ------------------------------------------------------------------------
OURS, NOT_OURS, GONE = "ours", "not ours", "gone"


def holder(session: Session, rid: RowId, row_uuid: str, timeout: float = 10.0) -> str:
    """Who holds `row_uuid` in `rid.table`, asked of the server (our monitor shows only our
    rows, and may lag behind the refusal): OURS (a row of ours with this key: an earlier
    insert of it landed), NOT_OURS (any other row), or GONE (deleted meanwhile)."""
    ours_by_name = rid.table in model.OWNED_BY_NAME
    columns = ["name"] if ours_by_name else ["external_ids"]
    result = session.call("transact", [session.database, {
        "op": "select", "table": rid.table, "columns": columns,
        "where": [["_uuid", "==", ["uuid", row_uuid]]]}], timeout)
    rows = result[0].get("rows") if result and isinstance(result[0], dict) else None
    if not rows:
        return GONE
    return OURS if _is_ours(rid, rows[0], ours_by_name) else NOT_OURS


def _is_ours(rid: RowId, row: dict[str, Any], by_name: bool) -> bool:
    if by_name:
        return row.get("name") == rid.key
    ids = row.get("external_ids")
    pairs = dict(ids[1]) if isinstance(ids, list) and len(ids) == 2 else {}
    return (pairs.get(naming.MANAGED_BY) == naming.MANAGED_BY_VALUE
            and pairs.get(naming.KEY) == rid.key)
