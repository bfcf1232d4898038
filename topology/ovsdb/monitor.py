"""The monitor half of the lean OVSDB session: handshake (schema, _Server leader check),
monitor_cond replies and update2 diffs into the row store, and the write-through overlay of
committed transactions. Mixed into topology.ovsdb.session.Session, which owns the connection."""

from __future__ import annotations

import time
import uuid as uuidlib
from typing import Any

import structlog

from topology.ovsdb.values import Schema, apply_diff, decode, empty, uuid_of

log = structlog.get_logger(__name__)
UUID = uuidlib.UUID

# _Server.Database columns read for the leader check (none of them changes per commit)
SERVER_COLUMNS = ("name", "model", "connected", "leader", "schema")
HUNT_SECONDS = 10.0  # after losing a leader (or at start): look for the next one quickly
HUNT_RETRY = 0.25  # while hunting: how long to stay on a member that is not usable yet


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
        known = ((result or {}).get("tables", {}).get("Database", {}).get("columns", {}))
        columns = [c for c in SERVER_COLUMNS if c in known or c == "name"]
        self._request("monitor", ["_Server", self.SERVER_MONITOR_ID, {
            "Database": {"columns": columns}}], self._got_server_monitor)

    def _got_server_monitor(self, result: Any, error: Any) -> None:
        if error is not None:
            self._get_schema()
            return
        if self._server_check(result) is not False:
            self._get_schema()

    def _server_update(self, updates: Any) -> None:
        waiting = self._leave_at is not None
        if self._server_check(updates) and waiting:
            # the member we were about to leave is usable now (it won the election)
            self._leave_at = None
            self._leaving = False
            log.info("nb server usable now", remote=self._session.get_name())
            self._get_schema()

    def _server_check(self, updates: Any) -> bool | None:
        """Whether this server may serve us (python-ovs IDL's checks, for `leader_only`): a
        clustered database must have joined its cluster, be connected to it and be its
        leader; a relay never is. None when `updates` say nothing about our database.
        Also runs on every _Server update while monitoring: a leader that loses leadership
        (or its cluster) is left at once, and nothing more is sent to it. (The RAFT log
        `index` is not monitored: it changes with every commit, one notification per
        transaction; a leader has every committed entry.)

        While hunting for a leader (the first seconds after losing one, see Session), a
        member found not usable before our handshake is kept for HUNT_RETRY seconds (it
        may win the election meanwhile: its _Server update then starts the handshake) and
        then left for the next member without backoff; after that, python-ovs' backoff
        applies. A member that stops being usable once the handshake began is left at
        once, and every member is tried again without backoff."""
        state = None
        for change in (updates or {}).get("Database", {}).values():
            row = change.get("new") or {}
            if row.get("name") != self.database:
                continue
            why = self._unusable(row)
            if why is None:
                state = True
                continue
            was_synced = self.synced.is_set()
            self.synced.clear()  # nothing more is sent on this connection
            if not self._leaving:
                log.info("nb server not usable; trying another",
                         remote=self._session.get_name(), reason=why, was_synced=was_synced)
            self._leaving = True  # a monitor reply still on its way is not installed
            now = time.monotonic()
            if not self._handshake_started and now < self._hunt_until:
                if self._leave_at is None:
                    self._leave_at = now + HUNT_RETRY
                return False
            self._leave_at = None
            if self._handshake_started:  # a lost leadership: find the next one at once
                self._hunt_until = now + HUNT_SECONDS
                self._session.reset_backoff()
            self._session.force_reconnect()
            return False
        return state

    def _unusable(self, row: dict[str, Any]) -> str | None:
        model = row.get("model")
        if model == "clustered":
            if row.get("schema") == ["set", []]:  # an empty optional column
                return "not yet joined its cluster"
            if row.get("connected") is False:
                return "disconnected from its cluster"
            if self.leader_only and row.get("leader") is False:
                return "not the cluster leader"
        elif model == "relay" and self.leader_only:
            return "a relay cannot be the leader"
        return None

    def _get_schema(self) -> None:
        self._handshake_started = True
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
        self._request("monitor_cond", self.monitor_params(), self._got_monitor)

    def monitor_params(self) -> list[Any]:
        """The params of our monitor_cond request (see TableMonitor)."""
        requests = {}
        assert self.schema is not None
        for table, mon in self.monitors.items():
            cols = self.schema.tables.get(table)
            if cols is None:
                continue
            req: dict[str, Any] = {"columns": [c for c in mon.columns if c in cols]}
            if mon.where is not None:
                req["where"] = mon.where
            if not mon.echo_inserts:
                req["select"] = {"initial": True, "insert": False, "delete": True,
                                 "modify": True}
            requests[table] = [req]
        return [self.database, self.MONITOR_ID, requests]

    def _got_monitor(self, result: Any, error: Any) -> None:
        if self._leaving:  # the server stopped being usable during the handshake
            return
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
        self.synced_remote = self._session.get_name()
        # a drop of this connection is then followed by one immediate try of every remote
        # (a RAFT leader's death: any member may be the next leader), then by backoff
        self._session.reset_backoff()
        log.info("nb monitor synced", remote=self.synced_remote, epoch=self.epoch,
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
                row_uuid = uuid_of(uuid_s)
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
        (some) monitored columns, None deletes the row; `replace` for a new row. Nothing is
        kept when the confirmed row already has them (its monitor update came first)."""
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
        if replace and mon is not None and not mon.echo_inserts:
            # an insert the server will not echo: a confirmed row at once, so that later
            # monitor updates of it (modify, delete) find their base
            old = self.effective(table, row_uuid)
            new = dict(self._defaults(table))
            new.update(kept)
            store[row_uuid] = new
            overlay.pop(row_uuid, None)
            if self.on_row is not None and new != old:
                self.on_row(table, row_uuid, old, new, None)
            return
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
