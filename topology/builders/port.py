"""A workload port (pod, VM/bare-metal NIC, node interface) on a subnet switch."""

from __future__ import annotations

from dataclasses import dataclass

from topology import naming
from topology.builders.common import join
from topology.model import LogicalSwitchPort, Owner, Row, fmap


@dataclass(frozen=True)
class PortSpec:
    name: str
    switch: str
    owner: Owner
    vpc: str
    mac: str
    ips: tuple[str, ...]  # the first is primary; extra IPs ride on the same port
    role: str  # naming.ROLE_POD | ROLE_VNIC | ROLE_NODE
    node: str | None = None
    gateways: tuple[str, ...] = ()
    cidrs: tuple[str, ...] = ()
    mtu: int | None = None
    routes: tuple[str, ...] = ()  # extra CIDRs the interface routes via the gateway


def build_port(spec: PortSpec) -> list[Row]:
    address = " ".join((spec.mac, *spec.ips))
    ids = fmap({
        naming.ROLE: spec.role, naming.NODE: spec.node, naming.SUBNET: spec.switch,
        naming.GATEWAY: join(spec.gateways) or None, naming.CIDR: join(spec.cidrs) or None,
        naming.MTU: spec.mtu, naming.ROUTES: join(spec.routes) or None,
    })
    return [LogicalSwitchPort(name=spec.name, switch=spec.switch, addresses=(address,),
                              port_security=(address,), owner=spec.owner, vpc=spec.vpc,
                              ids=ids)]
