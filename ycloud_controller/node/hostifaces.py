"""Vnics of type vm/baremetal bound to this node that name a host interface
(spec.hostInterface: a VM's tap, a bare-metal NIC, a VF representor): the interface is plugged
into br-int with iface-id = the Vnic's NB port. The interface itself belongs to whoever made it
(the hypervisor, the NIC): unplugging removes the OVS port, never the netdev."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog

from topology import naming
from ycloud_controller.api.common import Invalid
from ycloud_controller.api.vnic import parse_vnic
from ycloud_controller.node import metrics, netlink
from ycloud_controller.node.ovs import Ovs, find_by

log = structlog.get_logger(__name__)


class HostInterfaces:
    def __init__(self, node: str, ovs: Ovs, bridge: str = "br-int"):
        self.node = node
        self.ovs = ovs
        self.bridge = bridge

    def desired(self, vnics: Iterable[dict[str, Any]]) -> dict[str, tuple[str, str]]:
        """{host interface: (NB port, namespace/name)} of this node's Vnics."""
        out: dict[str, tuple[str, str]] = {}
        for obj in vnics:
            try:
                v = parse_vnic(obj)
            except Invalid:
                continue
            if v.node == self.node and v.host_interface:
                out[v.host_interface] = (naming.vnic_port(v.namespace, v.name),
                                         f"{v.namespace}/{v.name}")
        return out

    def apply(self, vnics: Iterable[dict[str, Any]]) -> set[str]:
        """Plug what is desired and present; unplug our vnic ports no Vnic wants."""
        want = self.desired(vnics)
        plugged = set()
        for ifname, (port, key) in sorted(want.items()):
            if netlink.link(ifname) is None:
                log.warning("vnic_host_interface_missing", vnic=key, interface=ifname)
                continue
            self.ovs.plug(self.bridge, ifname, {
                naming.OVS_IFACE_ID: port, naming.NODE_AGENT_OWNER: naming.ROLE_VNIC,
                naming.POD: key})
            netlink.link_up(ifname)
            plugged.add(ifname)
        for row in find_by(self.ovs.ours(), naming.NODE_AGENT_OWNER, naming.ROLE_VNIC):
            if row["name"] not in want:
                self.ovs.unplug(row["name"])
                metrics.GC_REMOVED.labels(role=naming.ROLE_VNIC).inc()
                log.info("vnic_unplugged", interface=row["name"],
                         vnic=row["external_ids"].get(naming.POD))
        return plugged
