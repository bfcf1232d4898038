"""EipPool (iaas.yusur.io/v1, cluster scoped): an external network, its EIPs and gateways."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ycloud_controller.api.common import (
    Invalid,
    IPAddress,
    IPNetwork,
    bool_field,
    int_field,
    name_of,
    parse_cidrs,
    parse_ip,
    parse_ranges,
    spec,
    str_list,
)


@dataclass(frozen=True)
class EipPoolView:
    name: str
    cidr: IPNetwork
    gateway: IPAddress
    uplink_ip: IPAddress | None
    excludes: tuple[tuple[IPAddress, IPAddress], ...]
    provider: str
    gateway_nodes: tuple[str, ...]
    vlan: int | None = None
    default: bool = False

    def contains(self, ip: IPAddress) -> bool:
        return ip.version == self.cidr.version and ip in self.cidr


def parse_eippool(obj: dict[str, Any]) -> EipPoolView:
    s = spec(obj)
    cidr = parse_cidrs(s.get("cidr"), "cidr")
    if len(cidr) != 1:
        raise Invalid("InvalidCIDR", "cidr must be a single CIDR")
    net = cidr[0]
    gateway = parse_ip(s.get("gateway"), "gateway")
    if gateway not in net:
        raise Invalid("GatewayOutsideCIDR", f"gateway {gateway} is outside {net}")
    uplink = s.get("uplinkIP")
    uplink_ip = parse_ip(uplink, "uplinkIP") if uplink else None
    if uplink_ip is not None and (uplink_ip not in net or uplink_ip == gateway):
        raise Invalid("InvalidUplink", f"uplinkIP {uplink_ip} must be a free address of {net}")
    provider = s.get("providerNetwork")
    if not provider or not isinstance(provider, str):
        raise Invalid("InvalidSpec", "providerNetwork is required")
    nodes = str_list(s.get("gatewayNodes"), "gatewayNodes")
    if not nodes:
        raise Invalid("InvalidSpec", "gatewayNodes needs at least one node")
    if len(set(nodes)) != len(nodes):
        raise Invalid("InvalidSpec", "gatewayNodes lists a node twice")
    return EipPoolView(
        name=name_of(obj), cidr=net, gateway=gateway, uplink_ip=uplink_ip,
        excludes=tuple(parse_ranges(str_list(s.get("excludeIps"), "excludeIps"), "excludeIps")),
        provider=provider, gateway_nodes=nodes, vlan=int_field(s.get("vlan"), "vlan", 0, 4094),
        default=bool(bool_field(s.get("default"), "default", False)))
