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
from ovsdbapp.backend.ovs_idl import connection, transaction
from ovsdbapp.schema.open_vswitch import impl_idl

from topology import naming

log = structlog.get_logger(__name__)


class OvsError(RuntimeError):
    """The local OVS refused or did not answer."""


class NoWaitTransaction(transaction.Transaction):
    """Committed to ovsdb-server without waiting for ovs-vswitchd to apply it (ovs-vsctl
    --no-wait). ovsdbapp's Open_vSwitch transactions wait for vswitchd's next_cfg, and with a
    batch of pods those waits add up one after the other (vswitchd reconfigures every port for
    each): an ADD waits for ovn-installed instead, which comes only once vswitchd has the port."""

    def pre_commit(self, txn: Any) -> None:
        txn.expected_ifaces = set()  # AddPortCommand records its Interface there


class _Idl(connection.OvsdbIdl):
    """The IDL, handing every Interface change to the agent as it arrives (in ovsdbapp's
    connection thread): the agent keeps its own index of Interfaces (name -> external_ids), so
    reads (which Interfaces are ours, which are ovn-installed) do not queue behind writes in
    that one thread, and ADDs wait for ovn-installed on a condition instead of polling."""

    on_interface: Any = None

    def notify(self, event: str, row: Any, updates: Any = None) -> None:
        if self.on_interface is not None and row._table.name == "Interface":
            ids = None if event == "delete" else dict(getattr(row, "external_ids", {}) or {})
            self.on_interface(getattr(row, "name", ""), ids)


class Ovs:
    def __init__(self, remote: str, timeout: float = 30.0):
        self.remote = remote
        self.timeout = timeout
        self._api: impl_idl.OvsdbIdl | None = None
        self._ifaces: dict[str, dict[str, str]] = {}  # every Interface: name -> external_ids
        self._changed = threading.Condition()

    def _on_interface(self, name: str, ids: dict[str, str] | None) -> None:
        with self._changed:
            if ids is None:
                self._ifaces.pop(name, None)
            else:
                self._ifaces[name] = ids
            self._changed.notify_all()

    def start(self) -> Ovs:
        try:
            idl = _Idl.from_server(self.remote, "Open_vSwitch")
            idl.on_interface = self._on_interface
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
        txn = NoWaitTransaction(self.api, self.api.ovsdb_connection, check_error=True)
        for cmd in commands:
            txn.add(cmd)
        try:
            txn.commit()
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
        # one transaction either way: a new port gets the columns from add_port; an existing
        # one (add_port changes nothing then) from db_set, which also finds a new Interface
        # (the IDL knows rows inserted earlier in the same transaction)
        self._execute(self.api.add_port(bridge, ifname, may_exist=True, **attrs),
                      self.api.db_set("Interface", ifname, *attrs.items()))

    def unplug(self, ifname: str) -> None:
        self._execute(self.api.del_port(ifname, if_exists=True))

    def ours(self) -> list[dict[str, Any]]:
        """Every Interface the node agent created (external_ids NODE_AGENT_OWNER)."""
        with self._changed:
            return [{"name": n, "external_ids": dict(ids)} for n, ids in self._ifaces.items()
                    if naming.NODE_AGENT_OWNER in ids]

    def has_interface(self, ifname: str) -> bool:
        with self._changed:
            return ifname in self._ifaces

    def _installed(self, ifname: str) -> bool:
        return self._ifaces.get(ifname, {}).get(naming.OVS_INSTALLED) == "true"

    def wait_installed(self, ifname: str, timeout: float) -> bool:
        """True once ovn-controller marked the Interface ovn-installed (bounded)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._installed(ifname):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True


def find_by(rows: list[dict[str, Any]], key: str, value: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["external_ids"].get(key) == value]



