"""NB connection through ovsdbapp, and the index of the rows the controller owns.

`NbClient` opens one ovsdbapp Connection (its own, never a class-level singleton) to any NB
remote: `unix:`, `tcp:`, `ssl:` or a comma-separated list of RAFT members (leader only). It
registers only the tables in `topology.model.TABLES`, and only the columns the controller
reads or writes.

`OwnedIndex` is kept up to date by the IDL's notify() in the connection thread, the same
thread in which ovsdbapp runs our Commands, so a Command always sees an index consistent with
the IDL. It indexes our rows by table and key (external_ids, never names, except for
Load_Balancer_Group which has no external_ids), by owner, and the memberships of our rows in
our rows' reference columns. When python-ovs clears its tables (a reconnect that cannot
resume), the table's `rows` object is replaced; the index notices and rebuilds that table.
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import ovs.db.idl
import ovs.stream
import structlog
from ovsdbapp.backend.ovs_idl import connection as ovs_conn
from ovsdbapp.backend.ovs_idl import idlutils
from ovsdbapp.backend.ovs_idl import transaction as ovs_txn

from topology import model, naming
from topology.model import Owner, RowId

log = structlog.get_logger(__name__)

SCHEMA = "OVN_Northbound"
UUID = uuid.UUID


@dataclass(frozen=True)
class SslConfig:
    private_key: str
    certificate: str
    ca_cert: str

    def __repr__(self) -> str:  # never print key material paths' contents, only the paths
        return f"SslConfig(key={self.private_key}, cert={self.certificate}, ca={self.ca_cert})"


@dataclass(frozen=True)
class RowMeta:
    table: str
    key: str
    owner: Owner | None
    hash: str | None


def _ref_uuids(row: ovs.db.idl.Row, column: str) -> set[UUID]:
    """UUIDs in a reference column, read from the datum (no Row objects built)."""
    datum = row._data.get(column)  # noqa: SLF001 - python-ovs keeps column data here
    if datum is None:
        return set()
    return {atom.value for atom in datum.values}


class OwnedIndex:
    """Our rows by (table, key), by owner, and our memberships. Connection-thread only."""

    def __init__(self, idl: ovs.db.idl.Idl):
        self._idl = idl
        self.rows: dict[str, dict[str, list[UUID]]] = defaultdict(dict)
        self.meta: dict[UUID, RowMeta] = {}
        self.by_owner: dict[Owner, set[RowId]] = defaultdict(set)
        self.members: dict[tuple[UUID, str], set[UUID]] = {}
        self.parents_of: dict[UUID, set[tuple[UUID, str]]] = defaultdict(set)
        self._seen: dict[str, object] = {}

    # -- maintenance ------------------------------------------------------------------------
    def on_change(self, event: str, row: ovs.db.idl.Row, old: ovs.db.idl.Row | None) -> None:
        table = row._table.name  # noqa: SLF001
        if table not in model.TABLES:
            return
        if event == ovs.db.idl.ROW_DELETE:
            self._remove(row.uuid)
            return
        changed = set(old._data) if (old is not None and event == ovs.db.idl.ROW_UPDATE) else None
        self._add(table, row, changed)

    def _ensure_fresh(self) -> None:
        for name, table in self._idl.tables.items():
            if self._seen.get(name) is not table.rows:
                self._rebuild(name)

    def _rebuild(self, table: str) -> None:
        for row_uuid in [u for u, m in self.meta.items() if m.table == table]:
            self._remove(row_uuid)
        rows = self._idl.tables[table].rows
        for row in list(rows.values()):
            self._add(table, row, None)
        self._seen[table] = rows

    def _owned_meta(self, table: str, row: ovs.db.idl.Row) -> RowMeta | None:
        if table in model.OWNED_BY_NAME:
            name = row.name
            if not naming.is_our_lb_group(name):
                return None
            return RowMeta(table, name, None, None)
        ids = row.external_ids
        if ids.get(naming.MANAGED_BY) != naming.MANAGED_BY_VALUE:
            return None
        owner = Owner(ids.get(naming.KIND, ""), ids.get(naming.OWNER, ""))
        key = ids.get(naming.KEY) or getattr(row, "name", None) or str(row.uuid)
        return RowMeta(table, key, owner, ids.get(naming.HASH))

    def _add(self, table: str, row: ovs.db.idl.Row, changed: set[str] | None) -> None:
        meta = self._owned_meta(table, row)
        old = self.meta.get(row.uuid)
        if old != meta:
            if old is not None:
                self._unindex(row.uuid, old)
            if meta is not None:
                self.meta[row.uuid] = meta
                self.rows[table].setdefault(meta.key, []).append(row.uuid)
                if meta.owner is not None:
                    self.by_owner[meta.owner].add(RowId(table, meta.key))
        if meta is None:
            return
        for column in model.ref_columns(table):
            if changed is not None and column not in changed and old is not None:
                continue
            self._set_members(row.uuid, column, _ref_uuids(row, column))

    def _set_members(self, parent: UUID, column: str, children: set[UUID]) -> None:
        key = (parent, column)
        before = self.members.get(key, set())
        for child in before - children:
            self.parents_of[child].discard(key)
        for child in children - before:
            self.parents_of[child].add(key)
        self.members[key] = children

    def _unindex(self, row_uuid: UUID, meta: RowMeta) -> None:
        keyed = self.rows[meta.table].get(meta.key)
        if keyed is not None:
            if row_uuid in keyed:
                keyed.remove(row_uuid)
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

    # -- queries (call from the connection thread, e.g. inside a Command) --------------------
    def refresh(self) -> None:
        self._ensure_fresh()

    def lookup(self, rid: RowId) -> list[UUID]:
        return self.rows.get(rid.table, {}).get(rid.key, [])

    def owners(self) -> set[Owner]:
        return set(self.by_owner)

    def owned_by(self, owner: Owner) -> set[RowId]:
        return set(self.by_owner.get(owner, ()))

    def row(self, table: str, row_uuid: UUID) -> ovs.db.idl.Row:
        return self._idl.tables[table].rows[row_uuid]

    def count_by_table(self) -> dict[str, int]:
        return {t: sum(len(v) for v in keyed.values()) for t, keyed in self.rows.items()}


class _IndexedIdl(ovs_conn.OvsdbIdl):
    """An IDL that keeps an OwnedIndex current on every change notification."""

    index: OwnedIndex

    def notify(self, event: str, row: ovs.db.idl.Row, updates: ovs.db.idl.Row | None = None):
        self.index.on_change(event, row, updates)


def _schema_helper(remote: str) -> ovs.db.idl.SchemaHelper:
    helper = idlutils.get_schema_helper(remote, SCHEMA)
    for table in model.TABLES:
        columns = set(model.written_columns(table)) | set(model.ref_columns(table))
        if table in model.OWNED_BY_NAME:
            columns.add("name")
        helper.register_columns(table, sorted(columns))
    return helper


class NbApi:
    """The minimal ovsdbapp API surface our Commands need, bound to one connection."""

    def __init__(self, connection: ovs_conn.Connection):
        self.ovsdb_connection = connection

    @property
    def idl(self) -> _IndexedIdl:
        return self.ovsdb_connection.idl

    @property
    def tables(self):  # noqa: ANN201 - python-ovs table map
        return self.idl.tables

    def create_transaction(self, check_error: bool = True, log_errors: bool = True,
                           **kwargs) -> ovs_txn.Transaction:
        return ovs_txn.Transaction(self, self.ovsdb_connection, check_error=check_error,
                                   log_errors=log_errors, **kwargs)

    @contextmanager
    def transaction(self, check_error: bool = True, log_errors: bool = True,
                    **kwargs) -> Iterator[ovs_txn.Transaction]:
        txn = self.create_transaction(check_error=check_error, log_errors=log_errors, **kwargs)
        yield txn
        txn.commit()


_ssl_lock = threading.Lock()


def configure_ssl(ssl: SslConfig | None) -> None:
    """python-ovs keeps SSL files process-wide; set them before connecting to ssl: remotes."""
    if ssl is None:
        return
    with _ssl_lock:
        ovs.stream.Stream.ssl_set_private_key_file(ssl.private_key)
        ovs.stream.Stream.ssl_set_certificate_file(ssl.certificate)
        ovs.stream.Stream.ssl_set_ca_cert_file(ssl.ca_cert)


class NbClient:
    """One NB connection: IDL limited to our tables/columns, owned index, ovsdbapp API."""

    def __init__(self, remote: str, *, timeout: float = 180.0, ssl: SslConfig | None = None,
                 leader_only: bool = True):
        self.remote = remote
        self.timeout = timeout
        self.ssl = ssl
        self.leader_only = leader_only
        self.api: NbApi | None = None

    def start(self) -> NbClient:
        configure_ssl(self.ssl)
        helper = _schema_helper(self.remote)
        idl = _IndexedIdl(self.remote, helper, leader_only=self.leader_only)
        idl.index = OwnedIndex(idl)
        conn = ovs_conn.Connection(idl, timeout=self.timeout)
        conn.start()
        self.api = NbApi(conn)
        log.info("nb connected", remote=_redact(self.remote), tables=len(model.TABLES))
        return self

    def stop(self) -> None:
        if self.api is not None:
            self.api.ovsdb_connection.stop(timeout=5)
            self.api = None

    def __enter__(self) -> NbClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def idl(self) -> _IndexedIdl:
        assert self.api is not None, "NbClient not started"
        return self.api.idl

    @property
    def index(self) -> OwnedIndex:
        return self.idl.index

    def connected(self) -> bool:
        return self.api is not None and self.idl.is_connected()

    def read(self, fn, *args):  # noqa: ANN001, ANN201 - run fn under the connection lock
        assert self.api is not None
        with self.api.ovsdb_connection.lock:
            self.index.refresh()
            return fn(*args)


def _redact(remote: str) -> str:
    return remote  # remotes hold no secrets; kept as a hook so logs never grow key material


def iter_owned(index: OwnedIndex, tables: Iterable[str]) -> Iterator[tuple[RowId, UUID]]:
    for table in tables:
        for key, uuids in index.rows.get(table, {}).items():
            for row_uuid in uuids:
                yield RowId(table, key), row_uuid
