"""The node agent: informers of this node's pods, its Node object, EipPools and Vnics (the
Kubernetes API only, never NB), the chassis setup, the node port, host interfaces of Vnics,
garbage collection of interfaces whose pod is gone, and the CNI socket.

Garbage collection waits: an interface whose pod is gone (or was recreated) is removed at the
first pass at least `resync` seconds after the agent first saw it so. The runtime's DEL
normally removes it first; the wait is for a pod deleted without one (force-deleted, or
deleted while the node was down), whose address the controller takes out of the Services'
load balancers before it lets the pod's port go: unplugging at once would break the new
connections still hashed to it in between (issue 22's promise).

Informer handlers only mark what changed; one loop thread applies it (and everything again
every `resync` seconds), so OVS and netlink work never blocks an informer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import structlog

from topology import naming
from ycloud_controller.kube import resources as res
from ycloud_controller.kube.backend import Backend
from ycloud_controller.kube.informer import Informer
from ycloud_controller.node import metrics, netlink
from ycloud_controller.node.chassis import ChassisSettings, ChassisSetup
from ycloud_controller.node.cni import CniHandler, CniSettings
from ycloud_controller.node.hostifaces import HostInterfaces
from ycloud_controller.node.nodeport import NodePort
from ycloud_controller.node.ovs import Ovs, OvsError, find_by
from ycloud_controller.node.server import SocketServer
from ycloud_controller.node.vfpool import VfPair, VfPool

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class AgentConfig:
    chassis: ChassisSettings
    cni: CniSettings
    ovs_db: str
    socket: str = "/run/ycloud/cni.sock"
    node_interface: str = "ycloud0"  # "" disables the node port
    vf_pairs: tuple[VfPair, ...] = ()
    resync: float = 60.0
    sync_timeout: float = 120.0

    @property
    def node(self) -> str:
        return self.chassis.node


class NodeAgent:
    def __init__(self, cfg: AgentConfig, backend: Backend):
        self.cfg = cfg
        self.backend = backend
        self.stop_event = threading.Event()
        self._gone_since: dict[str, float] = {}  # interface -> when its pod was first gone
        self.ovs = Ovs(cfg.ovs_db)
        node = cfg.node
        self.pods = Informer(backend, res.PODS, field_selector=f"spec.nodeName={node}",
                             name="pods")
        self.nodes = Informer(backend, res.NODES, field_selector=f"metadata.name={node}",
                              name="nodes")
        self.pools = Informer(backend, res.EIPPOOLS, name="eippools")
        self.vnics = Informer(backend, res.VNICS, name="vnics")
        self.pool = VfPool(cfg.vf_pairs) if cfg.vf_pairs else None
        self.cni = CniHandler(cfg.cni, self.ovs, self.pods.store.get, self.pool)
        self.chassis = ChassisSetup(cfg.chassis, self.ovs)
        self.node_port = NodePort(node, self.ovs, cfg.cni.bridge, cfg.node_interface) \
            if cfg.node_interface else None
        self.host_ifaces = HostInterfaces(node, self.ovs, cfg.cni.bridge)
        self.server = SocketServer(cfg.socket, self.cni.handle)
        self._dirty: set[str] = set()
        self._wake = threading.Condition()
        self.ready = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> NodeAgent:
        self.ovs.start()
        for inf, what in ((self.pods, "pods"), (self.nodes, "node"), (self.pools, "chassis"),
                          (self.vnics, "vnics")):
            inf.add_handler(self._marker(what))
            inf.start(self.stop_event)
        for inf in (self.pods, self.nodes, self.pools, self.vnics):
            if not inf.wait_synced(self.cfg.sync_timeout):
                raise RuntimeError(f"the {inf.name} informer did not sync within "
                                   f"{self.cfg.sync_timeout:g}s (is the API server reachable, "
                                   "may the agent list it?)")
        if not self.cfg.chassis.encap_ip:
            encap_ip = internal_ip(self.nodes.store.get(self.cfg.node))
            if encap_ip is None:
                raise RuntimeError(f"no --encap-ip and Node {self.cfg.node} has no InternalIP")
            self.chassis.settings = replace(self.cfg.chassis, encap_ip=encap_ip)
        self.reconcile({"chassis", "node", "vnics", "pods"})
        self.server.start()
        threading.Thread(target=self._loop, name="node-agent", daemon=True).start()
        self.ready.set()
        log.info("node_agent_ready", node=self.cfg.node, socket=self.cfg.socket)
        return self

    def stop(self) -> None:
        self.stop_event.set()
        with self._wake:
            self._wake.notify_all()
        self.server.stop()
        self.ovs.stop()

    def healthy(self) -> bool:
        """Alive: starting (informers syncing), or serving with OVS connected."""
        if self.stop_event.is_set():
            return False
        return not self.ready.is_set() or (self.ovs.connected() and self.server.serving())

    # -- the loop ---------------------------------------------------------------------------
    def _marker(self, what: str):  # noqa: ANN202 - an informer Handler
        def mark(event: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
            if what == "pods" and event != "DELETED":
                return  # ADD waits on the cache itself; only deletions need the loop
            with self._wake:
                self._dirty.add(what)
                self._wake.notify_all()
        return mark

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            with self._wake:
                if not self._dirty:
                    self._wake.wait(self.cfg.resync)
                dirty = self._dirty or {"chassis", "node", "vnics", "pods"}
                self._dirty = set()
            if self.stop_event.is_set():
                break
            self.reconcile(dirty)

    def reconcile(self, what: set[str]) -> None:
        steps = (("chassis", lambda: self.chassis.apply(self.pools.store.list())),
                 ("node", lambda: self.node_port and self.node_port.apply(
                     self.nodes.store.get(self.cfg.node))),
                 ("vnics", lambda: self.host_ifaces.apply(self.vnics.store.list())),
                 ("pods", self.collect_garbage))
        for name, step in steps:
            if name not in what:
                continue
            try:
                step()
            except (OvsError, netlink.NetlinkError) as exc:
                log.error("node_agent_step_failed", step=name, error=str(exc))
                with self._wake:
                    self._dirty.add(name)  # again at the next resync

    def collect_garbage(self) -> list[str]:
        """Remove pod interfaces of ours whose pod is no longer on this node (or was
        recreated: another uid). Interfaces we did not make are never looked at."""
        removed = []
        now = time.monotonic()
        rows = find_by(self.ovs.ours(), naming.NODE_AGENT_OWNER, naming.ROLE_POD)
        present = {row["name"] for row in rows}
        self._gone_since = {k: v for k, v in self._gone_since.items() if k in present}
        for row in rows:
            ids = row["external_ids"]
            pod = self.pods.store.get(ids.get(naming.POD, ""))
            uid = ((pod or {}).get("metadata") or {}).get("uid", "")
            if pod is not None and not (ids.get(naming.POD_UID) and uid
                                        and uid != ids[naming.POD_UID]):
                self._gone_since.pop(row["name"], None)
                continue
            seen = self._gone_since.setdefault(row["name"], now)
            if now - seen < self.cfg.resync:
                continue  # again at a later pass (see the module docstring)
            cid = ids.get(naming.CONTAINER, "")
            with self.cni.lock(cid):
                self.cni.remove(row["name"], ids.get(naming.NETNS, ""),
                                 ids.get(naming.IFNAME, ""))
            metrics.GC_REMOVED.labels(role=naming.ROLE_POD).inc()
            log.info("pod_interface_collected", interface=row["name"],
                     pod=ids.get(naming.POD), container=cid)
            removed.append(row["name"])
        return removed


def internal_ip(node: dict[str, Any] | None) -> str | None:
    for addr in ((node or {}).get("status") or {}).get("addresses") or ():
        if addr.get("type") == "InternalIP" and addr.get("address"):
            return str(addr["address"])
    return None
