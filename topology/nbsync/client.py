"""The NB connection: one lean OVSDB session, monitoring only our rows.

`NbClient` opens one lean OVSDB session (topology.ovsdb.session.Session, its own, never a
class-level singleton) to any NB remote: `unix:`, `tcp:`, `ssl:` or a comma-separated list of RAFT
members (leader only: when the leader dies or steps down, the session finds the new one by
itself and resyncs; `session.synced_remote` is the member in use). It monitors only our
rows (external_ids:ycloud.io/managed-by; every Load_Balancer_Group) and only the columns
the controller reads: `name`, `external_ids`, the reference columns of `model.REF_COLUMNS`
(memberships) and `READ_COLUMNS` (what `restore` reads back). Column values the controller
writes are never read back: a content hash in external_ids says whether a row is as
desired. Writes are raw JSON-RPC transactions (topology.nbsync.applier, topology.nbsync.transact).

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

With `bump_nb_cfg`, every transaction the Applier commits on this client also increments
NB_Global.nb_cfg, as `ovn-nbctl --wait=hv` does (topology.nbsync.transact): northd and every
ovn-controller then acknowledge each commit (NB_Global.sb_cfg, Chassis_Private.nb_cfg,
NB_Global.hv_cfg). Off by default: it costs northd and the chassis that sequence work.

The session keeps `OwnedIndex` (topology.index) current from monitor updates and from the
write-through of committed transactions.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from topology import model, naming
from topology.index import OwnedIndex
from topology.ovsdb.session import Session, TableMonitor
from topology.ovsdb.tls import SslConfig, configure_ssl, ssl_failure

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
                 leader_only: bool = True, bump_nb_cfg: bool = False):
        self.remote = remote
        self.bump_nb_cfg = bump_nb_cfg
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
        self.index.bind(session)
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

    def locked(self) -> _Locked:
        """The session's lock and, once opened, the ovsdbapp connection's: the index and the
        IDL stay as they are while it is held (a plain context manager: `read` takes it once
        per object of a full sync's ranking)."""
        assert self.session is not None, "NbClient not started"
        return _Locked(self.session.lock,
                       self._api.ovsdb_connection.lock if self._api is not None else None)

    def read(self, fn, *args):  # noqa: ANN001, ANN201 - run fn with the index stable
        with self.locked():
            return fn(*args)


class _Locked:
    __slots__ = ("first", "second")

    def __init__(self, first: Any, second: Any) -> None:
        self.first, self.second = first, second

    def __enter__(self) -> None:
        self.first.acquire()
        if self.second is not None:
            try:
                self.second.acquire()
            except BaseException:
                self.first.release()
                raise

    def __exit__(self, *exc: object) -> None:
        if self.second is not None:
            self.second.release()
        self.first.release()


def _redact(remote: str) -> str:
    return remote  # remotes hold no secrets; kept as a hook so logs never grow key material
