"""NB connection, and the index of the rows the controller owns.

`NbClient` opens one lean OVSDB session (topology.ovsdb.Session, its own, never a class-level
singleton) to any NB remote: `unix:`, `tcp:`, `ssl:` or a comma-separated list of RAFT
members (leader only: when the leader dies or steps down, the session finds the new one by
itself and resyncs; `session.synced_remote` is the member in use). It monitors only our
rows (external_ids:ycloud.io/managed-by; every Load_Balancer_Group) and only the columns
the controller reads: `name`, `external_ids`, the reference columns of `model.REF_COLUMNS`
(memberships) and `READ_COLUMNS` (what `restore` reads back). Column values the controller
writes are never read back: a content hash in external_ids says whether a row is as
desired. Writes are raw JSON-RPC transactions (topology.apply, topology.rpcwrite).

Load_Balancer rows are the bulk of what the controller writes (one or more per Service), so
the server does not echo their inserts (`QUIET_INSERTS`): composing and sending that echo
cost the server about as much as the inserts themselves, and the client as much again to
read it. Our own inserts go into the index when written; updates and deletes of our rows,
by anyone, are still reported. A Load_Balancer row carrying our tags that someone else
inserts (a second controller that is not supposed to run, a hand-made copy) is seen when
the monitor is loaded again: at every (re)connection, when an insert of ours is refused
because such a row holds its key, and at every periodic full sync of `run` (`--resync`).

A full python-ovs IDL through ovsdbapp (`NbClient.api` / `NbClient.idl`: every written
column of every table) is still available for tools that read arbitrary columns (`inspect`);
it is opened lazily on first use, so the controller's hot path never pays for it.

`OwnedIndex` is kept up to date by the session thread from monitor updates and from the
write-through of committed transactions. It indexes our rows by table and key (external_ids,
never names, except for Load_Balancer_Group which has no external_ids), by owner, and the
memberships of our rows in our rows' reference columns. After a reconnection the monitor's
initial contents replace it entirely.
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, NamedTuple

import structlog

from topology import model, naming
from topology.model import Owner, RowId
from topology.ovsdb import Session, TableMonitor
from topology.ovsdb_ssl import SslConfig, configure_ssl, ssl_failure

log = structlog.get_logger(__name__)

SCHEMA = "OVN_Northbound"
UUID = uuid.UUID

# Columns read back besides name, external_ids and reference columns (ycloud_controller.restore)
QUIET_INSERTS = frozenset({model.LoadBalancer.TABLE})  # see the module docstring

READ_COLUMNS: dict[str, tuple[str, ...]] = {
    "Logical_Switch_Port": ("addresses",),
    "Logical_Router_Port": ("networks",),
    "Load_Balancer": ("vips",),  # the VIPs a Service holds (manifests mode's ClusterIPs)
}


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
                                 "(see topology.nb.READ_COLUMNS)") from None
        ct = self._types.get(column)
        if isinstance(value, dict):
            return dict(value)
        if isinstance(value, (set, frozenset)):
            return sorted(value, key=str) if ct is None or ct.is_ref else sorted(value)
        return value


def _monitors() -> dict[str, TableMonitor]:
    out = {}
    where = [["external_ids", "includes",
              ["map", [[naming.MANAGED_BY, naming.MANAGED_BY_VALUE]]]]]
    for table in model.TABLES:
        cols = ["name", *model.ref_columns(table), *READ_COLUMNS.get(table, ())]
        if table in model.OWNED_BY_NAME:
            out[table] = TableMonitor(tuple(cols))
        else:
            out[table] = TableMonitor(tuple(["external_ids", *cols]), where,
                                      echo_inserts=table not in QUIET_INSERTS)
    return out


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

    def count_by_table(self) -> dict[str, int]:
        """Rows we own per table (kept as rows change: O(tables), asked after every batch)."""
        if not self._counts and self.meta:  # an index filled by hand (tests)
            return {t: sum(len(v) for v in keyed.values()) for t, keyed in self.rows.items()}
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
def _schema_helper(remote: str):  # noqa: ANN202 - ovs.db.idl.SchemaHelper
    from ovsdbapp.backend.ovs_idl import idlutils
    helper = idlutils.get_schema_helper(remote, SCHEMA)
    for table in model.TABLES:
        columns = set(model.written_columns(table)) | set(model.ref_columns(table))
        if table in model.OWNED_BY_NAME:
            columns.add("name")
        helper.register_columns(table, sorted(columns))
    return helper


class NbApi:
    """The minimal ovsdbapp API surface over a full IDL (tools only; see the module doc)."""

    def __init__(self, connection: Any):
        self.ovsdb_connection = connection

    @property
    def idl(self):  # noqa: ANN201 - ovs.db.idl.Idl
        return self.ovsdb_connection.idl

    @property
    def tables(self):  # noqa: ANN201 - python-ovs table map
        return self.idl.tables

    def create_transaction(self, check_error: bool = True, log_errors: bool = True,
                           **kwargs: Any):  # noqa: ANN201
        from ovsdbapp.backend.ovs_idl import transaction as ovs_txn
        return ovs_txn.Transaction(self, self.ovsdb_connection, check_error=check_error,
                                   log_errors=log_errors, **kwargs)

    @contextmanager
    def transaction(self, check_error: bool = True, log_errors: bool = True,
                    **kwargs: Any) -> Iterator[Any]:
        txn = self.create_transaction(check_error=check_error, log_errors=log_errors, **kwargs)
        yield txn
        txn.commit()


class NbClient:
    """One NB connection: lean monitored session, owned index, raw transactions."""

    def __init__(self, remote: str, *, timeout: float = 180.0, ssl: SslConfig | None = None,
                 leader_only: bool = True):
        self.remote = remote
        self.timeout = timeout
        self.ssl = ssl
        self.leader_only = leader_only
        self.session: Session | None = None
        self.index = OwnedIndex()
        self._api: NbApi | None = None
        self._api_lock = threading.Lock()

    def start(self) -> NbClient:
        configure_ssl(self.ssl)
        session = Session(self.remote, SCHEMA, _monitors(), leader_only=self.leader_only,
                          on_row=self.index.on_row, on_reset=self.index.clear)
        self.index._source = session  # noqa: SLF001
        try:
            self.session = session.start(self.timeout)
        except TimeoutError as exc:
            session.stop()
            why = [f"{r}: {ssl_failure(r)}" for r in session.remotes if ssl_failure(r)]
            raise TimeoutError("; ".join([str(exc), *why])) from None
        log.info("nb connected", remote=_redact(self.remote), tables=len(model.TABLES))
        return self

    def stop(self) -> None:
        if self._api is not None:
            self._api.ovsdb_connection.stop(timeout=5)
            self._api = None
        if self.session is not None:
            self.session.stop()
            self.session = None

    def __enter__(self) -> NbClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the full IDL, for tools ------------------------------------------------------------------
    @property
    def api(self) -> NbApi:
        """ovsdbapp API over a full IDL, opened on first use (tools such as `inspect`)."""
        with self._api_lock:
            if self._api is None:
                from ovsdbapp.backend.ovs_idl import connection as ovs_conn
                configure_ssl(self.ssl)
                from ovs.db import idl as ovs_idl
                idl = ovs_idl.Idl(self.remote, _schema_helper(self.remote),
                                  leader_only=self.leader_only)
                conn = ovs_conn.Connection(idl, timeout=self.timeout)
                conn.start()
                self._api = NbApi(conn)
            return self._api

    @property
    def idl(self):  # noqa: ANN201 - ovs.db.idl.Idl (full columns)
        return self.api.idl

    # -- state -------------------------------------------------------------------------------------
    def connected(self) -> bool:
        return self.session is not None and self.session.is_connected()

    def wait_synced(self, timeout: float | None = None) -> bool:
        assert self.session is not None, "NbClient not started"
        return self.session.wait_synced(self.timeout if timeout is None else timeout)

    @contextmanager
    def locked(self) -> Iterator[None]:
        assert self.session is not None, "NbClient not started"
        with ExitStack() as stack:
            stack.enter_context(self.session.lock)
            if self._api is not None:
                stack.enter_context(self._api.ovsdb_connection.lock)
            yield

    def read(self, fn, *args):  # noqa: ANN001, ANN201 - run fn with the index stable
        with self.locked():
            return fn(*args)


def _redact(remote: str) -> str:
    return remote  # remotes hold no secrets; kept as a hook so logs never grow key material


def iter_owned(index: OwnedIndex, tables: Iterable[str]) -> Iterator[tuple[RowId, UUID]]:
    for table in tables:
        for key, uuids in index.rows.get(table, {}).items():
            for row_uuid in uuids:
                yield RowId(table, key), row_uuid

