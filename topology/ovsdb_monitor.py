"""The monitor half of the lean OVSDB session: handshake (schema, _Server leader check),
monitor_cond replies and update2 diffs into the row store, and the write-through overlay of
committed transactions. Mixed into topology.ovsdb.Session, which owns the connection."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

import structlog

from topology.ovsdb_types import (  # noqa: F401
    ColumnType,
    Disconnected,
    OvsdbError,
    Schema,
    _new_parser,
    apply_diff,
    decode,
    empty,
    encode,
    encode_atom,
    gc_paused,
)

log = structlog.get_logger(__name__)
UUID = uuidlib.UUID
_uuid = uuidlib.UUID


class MonitorMixin:
    """Methods of Session that keep its row store equal to the server's (see Session)."""

    def _handshake(self) -> None:
        if self.leader_only:
            self._request("get_schema", ["_Server"], self._got_server_schema)
        else:
            self._get_schema()

    def _got_server_schema(self, result: Any, error: Any) -> None:
        if error is not None:  # an old server without _Server: nothing to check
            self._get_schema()
            return
        self._request("monitor", ["_Server", self.SERVER_MONITOR_ID, {
            "Database": {"columns": ["name", "model", "connected", "leader", "schema"]}}],
            self._got_server_monitor)

    def _got_server_monitor(self, result: Any, error: Any) -> None:
        if error is not None:
            self._get_schema()
            return
        if self._server_ok(result):
            self._get_schema()

    def _server_update(self, updates: Any) -> None:
        self._server_ok(updates)

    def _server_ok(self, updates: Any) -> bool:
        for change in (updates or {}).get("Database", {}).values():
            row = change.get("new") or {}
            if row.get("name") != self.database or row.get("model") != "clustered":
                continue
            leader = row.get("leader", True)
            connected = row.get("connected", True)
            if not connected or (self.leader_only and not leader):
                log.info("nb member is not the connected leader; trying another",
                         remote=self._session.get_name())
                self._session.reset_backoff()
                self._session.force_reconnect()
                return False
        return True

    def _get_schema(self) -> None:
        self._request("get_schema", [self.database], self._got_schema)

    def _got_schema(self, result: Any, error: Any) -> None:
        if error is not None:
            log.warning("nb get_schema failed", error=str(error))
            self._session.force_reconnect()
            return
        self.schema = Schema.from_json(result)
        self._default_rows = {}
        probe = str(uuidlib.uuid4())
        self._request("transact", [self.database, {
            "op": "insert", "table": self.probe_table, "uuid": probe,
            "row": {"name": "ycloud-insert-uuid-probe"}}, {"op": "abort"}], self._got_probe)

    def _got_probe(self, result: Any, error: Any) -> None:
        # [insert result, "aborted"]: the server takes client-chosen row UUIDs (OVS >= 3.1).
        self.supports_insert_uuid = bool(
            error is None and isinstance(result, list) and result
            and isinstance(result[0], dict) and "uuid" in result[0])
        requests = {}
        assert self.schema is not None
        for table, mon in self.monitors.items():
            cols = self.schema.tables.get(table)
            if cols is None:
                continue
            req: dict[str, Any] = {"columns": [c for c in mon.columns if c in cols]}
            if mon.where is not None:
                req["where"] = mon.where
            requests[table] = [req]
        self._request("monitor_cond", [self.database, self.MONITOR_ID, requests],
                  self._got_monitor)

    def _got_monitor(self, result: Any, error: Any) -> None:
        if error is not None:
            log.warning("nb monitor_cond failed", error=str(error))
            self._session.force_reconnect()
            return
        for table in self.rows:
            self.rows[table] = {}
        self.overlay = {}
        if self.on_reset is not None:
            self.on_reset()
        self._update2(result, initial=True)
        self.epoch += 1
        self.synced.set()
        log.info("nb monitor synced", remote=self._session.get_name(),
                 rows=sum(len(r) for r in self.rows.values()),
                 insert_uuid=self.supports_insert_uuid)

    # -- row store ---------------------------------------------------------------------------------
    # `rows` holds what the server confirmed (monitor updates, diffs applied in order).
    # `overlay` holds committed writes whose monitor echo has not come yet (the server may send
    # a transaction's reply before or after its monitor update: both happen). The index and
    # readers see the effective row: overlay over confirmed. The first monitor update of a row
    # after its write drops the overlay: it carries (at least) that write.

    def effective(self, table: str, row_uuid: UUID) -> dict[str, Any] | None:
        ov = self.overlay.get(table, {}).get(row_uuid, _NONE)
        base = self.rows.get(table, {}).get(row_uuid)
        if ov is _NONE:
            return base
        if ov is None or base is None:
            return ov
        return {**base, **ov}

    def _defaults(self, table: str) -> dict[str, Any]:
        found = self._default_rows.get(table)
        if found is None:
            assert self.schema is not None
            types = self.schema.tables[table]
            mon = self.monitors.get(table)
            found = {c: empty(types[c]) for c in (mon.columns if mon else ()) if c in types}
            self._default_rows[table] = found
        return found

    def _update2(self, updates: dict[str, Any], initial: bool) -> None:
        assert self.schema is not None
        on_row = self.on_row
        for table, rows in updates.items():
            store = self.rows.setdefault(table, {})
            overlay = self.overlay.setdefault(table, {})
            types = self.schema.tables[table]
            defaults = self._defaults(table)
            for uuid_s, change in rows.items():
                row_uuid = _uuid(uuid_s)
                had_overlay = row_uuid in overlay
                old = self.effective(table, row_uuid) if had_overlay else store.get(row_uuid)
                changed: frozenset[str] | None = None
                if "delete" in change:
                    store.pop(row_uuid, None)
                    new = None
                else:
                    full = change.get("initial") or change.get("insert")
                    if full is not None:
                        new = dict(defaults)
                        for c, v in full.items():
                            new[c] = decode(types[c], v)
                    else:
                        diff = change.get("modify")
                        base = store.get(row_uuid)
                        if diff is None or base is None:
                            continue
                        new = dict(base)
                        for col, js in diff.items():
                            ct = types[col]
                            new[col] = apply_diff(ct, base.get(col, empty(ct)),
                                                  decode(ct, js))
                        changed = frozenset(diff)
                    store[row_uuid] = new
                if had_overlay:
                    del overlay[row_uuid]
                    if old == new:
                        continue  # the echo of our own write, already in the index
                    changed = None
                if on_row is not None and (old is not None or new is not None):
                    on_row(table, row_uuid, old, new, changed)

    def local_change(self, table: str, row_uuid: UUID, values: dict[str, Any] | None,
                     replace: bool = False) -> None:
        """Reflect a committed write (caller holds `lock`): `values` are the new values of
        (some) monitored columns, None deletes the row. Nothing is kept when the confirmed
        row already has them (its monitor update came first)."""
        store = self.rows.setdefault(table, {})
        overlay = self.overlay.setdefault(table, {})
        base = store.get(row_uuid)
        if values is None:
            if base is None and row_uuid not in overlay:
                return
            old = self.effective(table, row_uuid)
            overlay[row_uuid] = None
            if self.on_row is not None and old is not None:
                self.on_row(table, row_uuid, old, None, None)
            return
        mon = self.monitors.get(table)
        cols = mon.columns if mon else ()
        kept = {c: v for c, v in values.items() if c in cols}
        current = overlay.get(row_uuid, _NONE)
        if current is _NONE and base is not None and all(
                base.get(c) == v for c, v in kept.items()):
            return  # already confirmed by the server
        old = self.effective(table, row_uuid)
        if replace or (base is None and not current):
            ov = dict(self._defaults(table))
            ov.update(kept)
            changed = None
        else:
            ov = dict(current) if isinstance(current, dict) else {}
            ov.update(kept)
            changed = frozenset(kept)
        overlay[row_uuid] = ov
        new = self.effective(table, row_uuid)
        if self.on_row is not None and new != old:
            self.on_row(table, row_uuid, old, new, changed if old is not None else None)


_NONE = object()
