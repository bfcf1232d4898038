"""What the controller reads from the SB: health-check results and active gateway chassis.

`SbMonitor` keeps an IDL on OVN_Southbound limited to Service_Monitor (OVN's own health
checks: ip, port, protocol, status), the chassisredirect Port_Bindings (where a distributed
gateway port is active) and Chassis names. Changes are reported through a callback with
(topic, key): ("monitor", "ip:port/proto") or ("gateway", "<lrp name>"), called from the
connection thread: keep it quick (enqueue work, nothing more).
"""

from __future__ import annotations

from collections.abc import Callable

import ovs.db.idl
import structlog
from ovsdbapp.backend.ovs_idl import connection as ovs_conn
from ovsdbapp.backend.ovs_idl import idlutils

from topology.naming import monitor_key
from topology.nbsync.client import SslConfig, configure_ssl

log = structlog.get_logger(__name__)

SCHEMA = "OVN_Southbound"
Callback = Callable[[str, str], None]


class _SbIdl(ovs_conn.OvsdbIdl):
    monitor: SbMonitor

    def notify(self, event: str, row: ovs.db.idl.Row, updates: ovs.db.idl.Row | None = None):
        callback = self.monitor.callback  # read each time: it may be set after start()
        if callback is None:
            return
        table = row._table.name  # noqa: SLF001
        if table == "Service_Monitor":
            proto = row.protocol[0] if row.protocol else "tcp"
            callback("monitor", monitor_key(row.ip, row.port, proto))
        elif table == "Port_Binding":
            callback("gateway", row.logical_port.removeprefix("cr-"))


class SbMonitor:
    def __init__(self, remote: str, callback: Callback | None = None, *,
                 ssl: SslConfig | None = None, timeout: float = 60.0):
        self.remote = remote
        self.callback = callback
        self.ssl = ssl
        self.timeout = timeout
        self._conn: ovs_conn.Connection | None = None

    def start(self) -> SbMonitor:
        configure_ssl(self.ssl)
        helper = idlutils.get_schema_helper(self.remote, SCHEMA)
        helper.register_columns("Service_Monitor", ["ip", "port", "protocol", "status",
                                                    "logical_port"])
        helper.register_columns("Port_Binding", ["logical_port", "type", "chassis"])
        helper.register_columns("Chassis", ["name"])
        idl = _SbIdl(self.remote, helper, leader_only=False)
        idl.monitor = self
        idl.cond_change("Port_Binding", [["type", "==", "chassisredirect"]])
        self._conn = ovs_conn.Connection(idl, timeout=self.timeout)
        self._conn.start()
        log.info("sb connected", remote=self.remote)
        return self

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.stop(timeout=5)
            self._conn = None

    def connected(self) -> bool:
        return self._conn is not None and self._conn.idl._session.is_connected()  # noqa: SLF001

    def _rows(self, table: str) -> list[ovs.db.idl.Row]:
        assert self._conn is not None
        with self._conn.lock:
            return list(self._conn.idl.tables[table].rows.values())

    def monitors(self) -> dict[str, str]:
        """'ip:port/proto' -> status ('online', 'offline', 'error', or '' before a result)."""
        out: dict[str, str] = {}
        for row in self._rows("Service_Monitor"):
            proto = row.protocol[0] if row.protocol else "tcp"
            key = monitor_key(row.ip, row.port, proto)
            status = row.status[0] if row.status else ""
            # several LBs can watch one backend: offline wins over online, online over none
            if _rank(status) > _rank(out.get(key, "")):
                out[key] = status
            else:
                out.setdefault(key, status)
        return out

    def active_chassis(self, lrp: str) -> str | None:
        """Chassis name where the distributed gateway port `lrp` is active, if any."""
        for row in self._rows("Port_Binding"):
            if row.logical_port == f"cr-{lrp}" and row.chassis:
                return row.chassis[0].name
        return None


def _rank(status: str) -> int:
    return {"": 0, "online": 1, "error": 2, "offline": 3}.get(status, 0)
