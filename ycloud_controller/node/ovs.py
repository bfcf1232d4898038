"""The local Open vSwitch, through ovsdbapp (every command with check_error=True).

The node agent owns exactly the Interfaces it created: each carries external_ids
`naming.NODE_AGENT_OWNER` (the role it plugged: pod, vnic, node). Nothing else on br-int (or
any other bridge) is changed or removed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import structlog
from ovsdbapp.backend.ovs_idl import connection
from ovsdbapp.schema.open_vswitch import impl_idl

from topology import naming

log = structlog.get_logger(__name__)


class OvsError(RuntimeError):
    """The local OVS refused or did not answer."""


class Ovs:
    def __init__(self, remote: str, timeout: float = 30.0):
        self.remote = remote
        self.timeout = timeout
        self._api: impl_idl.OvsdbIdl | None = None
        self._lock = threading.Lock()

    def start(self) -> Ovs:
        try:
            idl = connection.OvsdbIdl.from_server(self.remote, "Open_vSwitch")
            conn = connection.Connection(idl=idl, timeout=self.timeout)
            self._api = impl_idl.OvsdbIdl(conn)
        except Exception as exc:  # noqa: BLE001 - python-ovs raises bare Exceptions here
            raise OvsError(f"cannot connect to the local OVS at {self.remote}: {exc}") from exc
        return self

    def stop(self) -> None:
        if self._api is not None:
            self._api.ovsdb_connection.stop()

    @property
    def api(self) -> impl_idl.OvsdbIdl:
        if self._api is None:
            raise OvsError("OVS not connected")
        return self._api

    def connected(self) -> bool:
        return self._api is not None and self._api.idl._session.is_connected()

    def _execute(self, *commands: Any) -> list[Any]:
        try:
            with self.api.transaction(check_error=True) as txn:
                for cmd in commands:
                    txn.add(cmd)
            return [c.result for c in commands]
        except Exception as exc:  # noqa: BLE001 - ovsdbapp re-raises what the command raised
            raise OvsError(f"OVS transaction failed: {exc}") from exc

    def _read(self, cmd: Any) -> Any:
        try:
            return cmd.execute(check_error=True)
        except Exception as exc:  # noqa: BLE001 - as above
            raise OvsError(f"OVS read failed: {exc}") from exc

    # -- the Open_vSwitch row ---------------------------------------------------------------
    def system_ids(self) -> dict[str, str]:
        return dict(self._read(self.api.db_get("Open_vSwitch", ".", "external_ids")))

    def other_config(self) -> dict[str, str]:
        return dict(self._read(self.api.db_get("Open_vSwitch", ".", "other_config")))

    def set_system(self, external_ids: Mapping[str, str], remove: tuple[str, ...] = (),
                   other_config: Mapping[str, str] | None = None) -> None:
        cmds: list[Any] = []
        if external_ids:
            cmds.append(self.api.db_set("Open_vSwitch", ".", ("external_ids",
                                                               dict(external_ids))))
        if remove:
            cmds.append(self.api.db_remove("Open_vSwitch", ".", "external_ids", *remove,
                                           if_exists=True))
        if other_config:
            cmds.append(self.api.db_set("Open_vSwitch", ".", ("other_config",
                                                               dict(other_config))))
        if cmds:
            self._execute(*cmds)

    def ensure_bridge(self, name: str, datapath_type: str | None = None) -> None:
        self._execute(self.api.add_br(name, may_exist=True, datapath_type=datapath_type))

    # -- interfaces ------------------------------------------------------------------------
    def interface(self, name: str) -> dict[str, Any] | None:
        rows = self._read(self.api.db_find_rows("Interface", ("name", "=", name)))
        if not rows:
            return None
        row = rows[0]
        return {"name": row.name, "external_ids": dict(row.external_ids), "type": row.type,
                "ofport": list(row.ofport), "mac": list(row.mac)}

    def bridge_of(self, ifname: str) -> str | None:
        try:
            return self._read(self.api.iface_to_br(ifname))
        except OvsError:
            return None

    def plug(self, bridge: str, ifname: str, external_ids: Mapping[str, str], *,
             iface_type: str = "", mac: str | None = None, mtu: int | None = None) -> None:
        """Add ifname to bridge (or update it there) with these external_ids (merged into
        what the Interface has, so ovn-controller's ovn-installed stays)."""
        attrs: dict[str, Any] = {"external_ids": dict(external_ids)}
        if iface_type:
            attrs["type"] = iface_type
        if mac:
            attrs["mac"] = mac
        if mtu:
            attrs["mtu_request"] = mtu
        with self._lock:
            if self.interface(ifname) is None:
                self._execute(self.api.add_port(bridge, ifname, may_exist=True, **attrs))
            else:
                self._execute(self.api.add_port(bridge, ifname, may_exist=True),
                              self.api.db_set("Interface", ifname, *attrs.items()))

    def unplug(self, ifname: str) -> None:
        with self._lock:
            self._execute(self.api.del_port(ifname, if_exists=True))

    def ours(self) -> list[dict[str, Any]]:
        """Every Interface the node agent created (external_ids NODE_AGENT_OWNER)."""
        rows = self._read(self.api.db_list_rows("Interface"))
        return [{"name": r.name, "external_ids": dict(r.external_ids)} for r in rows
                if naming.NODE_AGENT_OWNER in r.external_ids]

    def installed(self, ifname: str) -> bool:
        iface = self.interface(ifname)
        return bool(iface) and iface["external_ids"].get(naming.OVS_INSTALLED) == "true"

    def wait_installed(self, ifname: str, timeout: float) -> bool:
        """True once ovn-controller marked the Interface ovn-installed (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.installed(ifname):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def find_by(rows: list[dict[str, Any]], key: str, value: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["external_ids"].get(key) == value]



