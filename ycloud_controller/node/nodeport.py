"""The node interface of scenario 2: an OVS internal port on br-int bound to the node's
join-subnet port `node-<node>`, with the address and MAC the controller wrote on the Node
(annotations `keys.ANN_*`), and routes to the service CIDR and the other CIDRs the
controller names (`keys.ANN_ROUTES`) through the join subnet's gateway: the node reaches
ClusterIPs and pods of the default VPC through OVN."""

from __future__ import annotations

import time
from typing import Any

import structlog

from topology import naming
from ycloud_controller.node import addressing, netlink
from ycloud_controller.node.ovs import Ovs

log = structlog.get_logger(__name__)


class NodePort:
    def __init__(self, node: str, ovs: Ovs, bridge: str = "br-int", ifname: str = "ycloud0"):
        self.node = node
        self.ovs = ovs
        self.bridge = bridge
        self.ifname = ifname
        self.applied: addressing.Addressing | None = None

    def apply(self, node_obj: dict[str, Any] | None) -> addressing.Addressing | None:
        ann = ((node_obj or {}).get("metadata") or {}).get("annotations") or {}
        if addressing.missing(ann):
            log.info("node_port_waiting", node=self.node, missing=addressing.missing(ann))
            return None
        try:
            addr = addressing.parse(ann)
        except addressing.BadAnnotations as exc:
            log.error("node_port_bad_annotations", node=self.node, error=str(exc))
            return None
        self.ovs.plug(self.bridge, self.ifname, {
            naming.OVS_IFACE_ID: naming.node_port(self.node),
            naming.NODE_AGENT_OWNER: naming.ROLE_NODE}, iface_type="internal", mac=addr.mac,
            mtu=addr.mtu)
        self._wait_link()
        netlink.link_up(self.ifname)
        stale = set((netlink.link(self.ifname) or netlink.Link("", "", 0, False, ())).addresses)
        for ip in addr.ips:
            netlink.add_address(self.ifname, ip)
        for ip in stale - set(addr.ips):
            netlink.run(["ip", "addr", "del", ip, "dev", self.ifname], check=False)
        for cidr in addr.routes:
            gateway = addr.gateway_for(cidr)
            if gateway is None:
                log.warning("node_port_route_skipped", cidr=cidr,
                            reason="no gateway of its family")
                continue
            netlink.replace_route(cidr, gateway, self.ifname, mtu=addr.mtu)
        if addr != self.applied:
            log.info("node_port_configured", interface=self.ifname, ips=addr.ips,
                     routes=addr.routes)
        self.applied = addr
        return addr

    def _wait_link(self, timeout: float = 10.0) -> None:
        """ovs-vswitchd creates the internal port's netdev."""
        deadline = time.monotonic() + timeout
        while netlink.link(self.ifname) is None:
            if time.monotonic() >= deadline:
                raise netlink.NetlinkError(f"OVS did not create internal port {self.ifname} "
                                           f"within {timeout:g}s (is ovs-vswitchd running?)")
            time.sleep(0.05)
