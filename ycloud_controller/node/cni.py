"""ADD, DEL and CHECK of the node agent (the plugin, `plugin.py`, only forwards them).

ADD: wait (bounded) until the pod is in the informer's cache with the controller's
annotations, make the interface (a veth, or in DPU mode a VF from the pool), put its pod end in
CNI_NETNS as CNI_IFNAME with the MAC, every IP, the MTU and a default route per family, plug
the host end (or the representor) into br-int with iface-id = the NB port, and answer once
ovn-controller has set ovn-installed (bounded). A failed ADD leaves nothing behind.
DEL: idempotent; fine when the netns, the pod or the interface are already gone.
CHECK: the interface is still what ADD made; code 3 when nothing was plugged for the container,
code 100 (ycloud-cni's own: the interface differs) with every difference in details.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from topology import naming
from ycloud_controller.node import addressing, netlink
from ycloud_controller.node.ovs import Ovs, OvsError, find_by
from ycloud_controller.node.plugin import (
    INVALID_CONFIG,
    IO_FAILURE,
    TRY_AGAIN_LATER,
    UNKNOWN_CONTAINER,
)
from ycloud_controller.node.vfpool import PoolExhausted, VfPool

log = structlog.get_logger(__name__)
INTERFACE_DIFFERS = 100  # codes from 100 on are the plugin's own (CNI spec)


class CniError(Exception):
    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


@dataclass(frozen=True)
class CniSettings:
    bridge: str = "br-int"
    annotation_timeout: float = 30.0
    ovn_installed_timeout: float = 60.0  # 0: answer without waiting (no ovn-controller)
    userspace_datapath: bool = False  # tx checksum offload off on both ends


@dataclass(frozen=True)
class Request:
    command: str
    container_id: str
    netns: str
    ifname: str
    pod_namespace: str
    pod_name: str
    pod_uid: str
    cni_version: str

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Request:
        try:
            return cls(str(raw["command"]), str(raw["containerID"]), str(raw.get("netns", "")),
                       str(raw["ifname"]), str(raw.get("podNamespace", "")),
                       str(raw.get("podName", "")), str(raw.get("podUID", "")),
                       str(raw.get("cniVersion", "1.0.0")))
        except KeyError as exc:
            raise CniError(INVALID_CONFIG, f"request without {exc}") from None

    @property
    def pod_key(self) -> str:
        return f"{self.pod_namespace}/{self.pod_name}"


PodLookup = Callable[[str], dict[str, Any] | None]


class CniHandler:
    def __init__(self, settings: CniSettings, ovs: Ovs, pod: PodLookup,
                 pool: VfPool | None = None):
        self.settings = settings
        self.ovs = ovs
        self.pod = pod
        self.pool = pool
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def lock(self, container_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(container_id, threading.Lock())

    def handle(self, req: Request) -> dict[str, Any] | None:
        with self.lock(req.container_id):
            try:
                if req.command == "ADD":
                    return self.add(req)
                if req.command == "DEL":
                    self.delete(req)
                    return None
                if req.command == "CHECK":
                    self.check(req)
                    return None
            except (netlink.NetlinkError, OvsError) as exc:
                raise CniError(IO_FAILURE, f"{req.command} of {req.pod_key} failed",
                               str(exc)) from exc
        raise CniError(INVALID_CONFIG, f"unknown command {req.command!r}")

    # -- ADD ------------------------------------------------------------------------------
    def wait_addressing(self, req: Request) -> addressing.Addressing:
        deadline = time.monotonic() + self.settings.annotation_timeout
        why = "not in the node agent's cache (not scheduled on this node?)"
        while True:
            pod = self.pod(req.pod_key)
            if pod is not None:
                uid = (pod.get("metadata") or {}).get("uid", "")
                ann = (pod.get("metadata") or {}).get("annotations") or {}
                if req.pod_uid and uid and uid != req.pod_uid:
                    why = f"has uid {uid}, not K8S_POD_UID {req.pod_uid}"
                elif addressing.missing(ann):
                    why = f"has no {', '.join(addressing.missing(ann))} annotation yet"
                else:
                    try:
                        return addressing.parse(ann)
                    except addressing.BadAnnotations as exc:
                        raise CniError(INVALID_CONFIG, f"pod {req.pod_key}: bad annotations",
                                       str(exc)) from None
            if time.monotonic() >= deadline:
                raise CniError(TRY_AGAIN_LATER,
                               f"pod {req.pod_key} {why} after "
                               f"{self.settings.annotation_timeout:g}s",
                               "ycloud-controller writes the addresses; is it running and is "
                               "the pod's subnet ready?")
            time.sleep(0.05)

    def add(self, req: Request) -> dict[str, Any]:
        started = time.monotonic()
        if not netlink.netns_exists(req.netns):
            raise CniError(IO_FAILURE, f"netns {req.netns!r} does not exist")
        addr = self.wait_addressing(req)
        port = naming.pod_port(req.pod_namespace, req.pod_name)
        self._remove_stale(port, req.container_id)
        made: list[str] = []  # host ends created by this ADD, removed again on failure
        try:
            if self.pool is not None:
                host, pod_side = self._add_vf(req, made)
            else:
                host, pod_side = self._add_veth(req, addr, made)
            self._configure_pod_end(req, addr, pod_side)
            if not made and not self.ovs.has_interface(host):
                made.append(host)
            self.ovs.plug(self.settings.bridge, host, {
                naming.OVS_IFACE_ID: port, naming.NODE_AGENT_OWNER: naming.ROLE_POD,
                naming.POD: req.pod_key, naming.POD_UID: req.pod_uid,
                naming.CONTAINER: req.container_id, naming.IFNAME: req.ifname,
                naming.NETNS: req.netns,
                **({naming.REPRESENTOR: self.pool.vf_of(host) or ""} if self.pool else {})})
            self._wait_installed(host, port)
        except (CniError, netlink.NetlinkError, OvsError):
            for half in made:
                try:
                    self.remove(half, req.netns, req.ifname)
                except (netlink.NetlinkError, OvsError) as exc:  # the first error is the answer
                    log.error("cni_add_cleanup_failed", interface=half, error=str(exc))
            raise
        log.info("cni_add", pod=req.pod_key, container=req.container_id, port=port,
                 interface=host, ips=addr.ips, seconds=round(time.monotonic() - started, 3))
        return self.result(req, host, addr)

    def _remove_stale(self, port: str, container_id: str) -> None:
        """An interface of an earlier sandbox of the pod (its DEL has not come yet): one
        port may be bound to one interface only, and the new sandbox is the pod now."""
        for row in find_by(self.ovs.ours(), naming.OVS_IFACE_ID, port):
            ids = row["external_ids"]
            if ids.get(naming.CONTAINER) != container_id:
                log.info("cni_add_replaces_stale_interface", port=port, interface=row["name"],
                         container=ids.get(naming.CONTAINER))
                self.remove(row["name"], ids.get(naming.NETNS, ""), ids.get(naming.IFNAME, ""))

    def _add_veth(self, req: Request, addr: addressing.Addressing, made: list[str]
                  ) -> tuple[str, str]:
        """(the host end, the name of the pod end in the pod's netns)."""
        host = netlink.host_ifname("yc", req.container_id, req.ifname)
        have_host = netlink.exists(host)
        if have_host and netlink.link(req.ifname, req.netns) is not None:
            return host, req.ifname  # ADD again: the same interface, configured again
        peer = netlink.host_ifname("yt", req.container_id, req.ifname)
        mtu = addr.mtu or 1500
        lines = [f"link del dev {name}" for name, there in ((host, have_host),
                                                             (peer, netlink.exists(peer)))
                 if there]
        made.append(host)
        netlink.batch([*lines,
                       f"link add name {host} mtu {mtu} type veth peer name {peer} mtu {mtu}",
                       f"link set dev {peer} netns {req.netns}",
                       f"link set dev {host} up"])
        if self.settings.userspace_datapath:
            netlink.tx_checksum_off(host)
        return host, peer

    def _add_vf(self, req: Request, made: list[str]) -> tuple[str, str]:
        """(the representor, the name of the VF in the pod's netns)."""
        assert self.pool is not None
        with self.pool.lock:
            mine = [r for r in find_by(self.ovs.ours(), naming.CONTAINER, req.container_id)
                    if r["external_ids"].get(naming.IFNAME) == req.ifname]
            if mine and netlink.link(req.ifname, req.netns) is not None:
                return mine[0]["name"], req.ifname
            try:
                pair = self.pool.free(self.ovs.ours())
            except PoolExhausted as exc:
                raise CniError(TRY_AGAIN_LATER, "no free VF on this node", str(exc)) from None
            if not netlink.exists(pair.vf):
                raise CniError(IO_FAILURE, f"VF {pair.vf} of the pool is not in the node's "
                                           "netns")
            # claimed in OVS at once, so a concurrent ADD takes another pair
            self.ovs.plug(self.settings.bridge, pair.representor, {
                naming.NODE_AGENT_OWNER: naming.ROLE_POD, naming.CONTAINER: req.container_id,
                naming.IFNAME: req.ifname, naming.NETNS: req.netns,
                naming.REPRESENTOR: pair.vf})
            made.append(pair.representor)
        netlink.batch([f"link set dev {pair.vf} down", f"link set dev {pair.vf} netns {req.netns}",
                       f"link set dev {pair.representor} up"])
        if self.settings.userspace_datapath:
            netlink.tx_checksum_off(pair.representor)
        return pair.representor, pair.vf

    def _configure_pod_end(self, req: Request, addr: addressing.Addressing,
                           current: str) -> None:
        """Name, MAC, MTU, every address and a default route per family, in one batch."""
        name = req.ifname
        lines = [f"link set dev {current} name {name}"] if current != name else []
        lines.append(f"link set dev {name} address {addr.mac}"
                     + (f" mtu {addr.mtu}" if addr.mtu else ""))
        lines.append(f"link set dev {name} up")
        lines += [f"addr replace {ip} dev {name}" + (" nodad" if ":" in ip else "")
                  for ip in addr.ips]
        lines += [f"route replace {netlink.default_route(g)} via {g} dev {name}"
                  for g in addr.gateways]
        netlink.batch(lines, req.netns)
        if self.settings.userspace_datapath:
            netlink.tx_checksum_off(name, req.netns)

    def _wait_installed(self, host: str, port: str) -> None:
        timeout = self.settings.ovn_installed_timeout
        if timeout > 0 and not self.ovs.wait_installed(host, timeout):
            raise CniError(TRY_AGAIN_LATER,
                           f"port {port} not ovn-installed after {timeout:g}s",
                           f"ovn-controller on this node has not bound interface {host}: is it "
                           "running and connected to SB, and is the port in NB?")

    def result(self, req: Request, host: str, addr: addressing.Addressing) -> dict[str, Any]:
        ips = []
        for ip in addr.ips:
            entry: dict[str, Any] = {"address": ip, "interface": 1}
            gateway = addr.gateway_for(ip)
            if gateway:
                entry["gateway"] = gateway
            if req.cni_version.startswith("0."):
                entry["version"] = "6" if ":" in ip else "4"
            ips.append(entry)
        return {
            "cniVersion": req.cni_version,
            "interfaces": [{"name": host, "mac": netlink.mac_of(host)},
                           {"name": req.ifname, "mac": addr.mac, "sandbox": req.netns}],
            "ips": ips,
            "routes": [{"dst": netlink.default_route(g), "gw": g} for g in addr.gateways],
            "dns": {},
        }

    # -- DEL ------------------------------------------------------------------------------
    def plugged(self, container_id: str, ifname: str) -> list[dict[str, Any]]:
        return [r for r in find_by(self.ovs.ours(), naming.CONTAINER, container_id)
                if r["external_ids"].get(naming.IFNAME) == ifname]

    def delete(self, req: Request) -> None:
        rows = self.plugged(req.container_id, req.ifname)
        for row in rows:
            self.remove(row["name"], row["external_ids"].get(naming.NETNS) or req.netns,
                         req.ifname)
        veth = netlink.host_ifname("yc", req.container_id, req.ifname)
        if not rows and netlink.delete_link(veth):
            log.info("cni_del_removed_unplugged_veth", interface=veth)
        log.info("cni_del", pod=req.pod_key, container=req.container_id,
                 interfaces=[r["name"] for r in rows])

    def remove(self, host: str, netns: str, ifname: str) -> None:
        """Unplug host from OVS; delete the veth, or give the VF back to the node."""
        vf = self.pool.vf_of(host) if self.pool is not None else None
        self.ovs.unplug(host)
        if vf is None:
            netlink.delete_link(host)
            return
        if netlink.link(ifname, netns) is not None:
            netlink.batch([f"link set dev {ifname} down", f"addr flush dev {ifname}",
                           f"link set dev {ifname} name {vf}",
                           f"link set dev {vf} netns /proc/{os.getpid()}/ns/net"], netns)

    # -- CHECK ----------------------------------------------------------------------------
    def check(self, req: Request) -> None:
        rows = self.plugged(req.container_id, req.ifname)
        if not rows:
            raise CniError(UNKNOWN_CONTAINER, f"no interface {req.ifname} plugged for container "
                                              f"{req.container_id}")
        host, ids = rows[0]["name"], rows[0]["external_ids"]
        pod = self.pod(req.pod_key)
        ann = ((pod or {}).get("metadata") or {}).get("annotations") or {}
        try:
            addr = addressing.parse(ann)
        except addressing.BadAnnotations as exc:
            raise CniError(INTERFACE_DIFFERS, f"pod {req.pod_key}: no usable annotations",
                           str(exc)) from None
        problems = []
        port = naming.pod_port(req.pod_namespace, req.pod_name)
        if ids.get(naming.OVS_IFACE_ID) != port:
            problems.append(f"{host} iface-id {ids.get(naming.OVS_IFACE_ID)!r}, not {port}")
        if self.ovs.bridge_of(host) != self.settings.bridge:
            problems.append(f"{host} is not on {self.settings.bridge}")
        host_link = netlink.link(host)
        if host_link is None or not host_link.up:
            problems.append(f"host end {host} is missing or down")
        pod_link = netlink.link(req.ifname, req.netns)
        if pod_link is None:
            problems.append(f"{req.ifname} is missing in {req.netns}")
        else:
            if pod_link.mac != addr.mac:
                problems.append(f"{req.ifname} has MAC {pod_link.mac}, not {addr.mac}")
            if not pod_link.up:
                problems.append(f"{req.ifname} is down")
            if addr.mtu and pod_link.mtu != addr.mtu:
                problems.append(f"{req.ifname} has MTU {pod_link.mtu}, not {addr.mtu}")
            for ip in set(addr.ips) - set(pod_link.addresses):
                problems.append(f"{req.ifname} lacks address {ip}")
            have = netlink.routes(req.ifname, req.netns)
            for gateway in addr.gateways:
                if (netlink.default_route(gateway), gateway) not in have:
                    problems.append(f"{req.ifname} lacks the default route via {gateway}")
        if problems:
            raise CniError(INTERFACE_DIFFERS, f"interface {req.ifname} of {req.pod_key} is not "
                                              "as ADD made it", "; ".join(problems))

