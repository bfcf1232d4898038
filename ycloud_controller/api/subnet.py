"""Subnet (iaas.yusur.io/v1, cluster scoped): a CIDR per family in one VPC, with its IPAM."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from topology import naming
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
class SubnetView:
    name: str
    vpc: str
    cidrs: tuple[IPNetwork, ...]
    gateways: tuple[IPAddress, ...]
    excludes: tuple[tuple[IPAddress, IPAddress], ...] = ()
    namespaces: tuple[str, ...] = ()
    nat_outgoing: bool | None = None
    default: bool = False
    mtu: int | None = None
    reserve_probe: bool = True  # False for address pools that are not subnets (EIP pools)

    @property
    def cidr_strs(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.cidrs)

    @property
    def gateway_strs(self) -> tuple[str, ...]:
        return tuple(str(g) for g in self.gateways)

    def probe_sources(self) -> tuple[IPAddress, ...]:
        """Health-check source address per family: the highest usable address that is not
        the gateway nor excluded. IPAM never hands it out; OVN answers ARP for it."""
        if not self.reserve_probe:
            return ()
        out = []
        for net, gw in zip(self.cidrs, self.gateways, strict=True):
            last = net.broadcast_address - 1 if net.version == 4 else net.broadcast_address
            candidate = last
            while candidate == gw or any(a <= candidate <= b for a, b in self.excludes):
                candidate -= 1
            out.append(candidate)
        return tuple(out)


def parse_subnet(obj: dict[str, Any], default_vpc: str) -> SubnetView:
    s = spec(obj)
    name = name_of(obj)
    if name.startswith(("ext-", "eipts-", "svcgw-")):
        raise Invalid("ReservedName", f"subnet name {name!r} uses a reserved prefix")
    cidrs = parse_cidrs(s.get("cidrBlock"), "cidrBlock")
    gw_raw = str_list(s.get("gateway"), "gateway")
    gateways: list[IPAddress] = []
    for net in cidrs:
        mine = [parse_ip(g, "gateway") for g in gw_raw]
        mine = [g for g in mine if g.version == net.version]
        if mine:
            gw = mine[0]
            if gw not in net or gw in (net.network_address, net.broadcast_address) \
                    and net.version == 4:
                raise Invalid("GatewayOutsideCIDR",
                              f"gateway {gw} is not a usable address of {net}")
        else:
            gw = net.network_address + 1
        gateways.append(gw)
    unused = [g for g in gw_raw if not any(parse_ip(g, "gateway").version == n.version
                                           for n in cidrs)]
    if unused:
        raise Invalid("GatewayOutsideCIDR", f"gateway {unused[0]} matches no CIDR of the subnet")
    excludes = parse_ranges(str_list(s.get("excludeIps"), "excludeIps"), "excludeIps")
    vpc = str(s.get("vpc") or default_vpc)
    return SubnetView(
        name=name, vpc=vpc, cidrs=cidrs, gateways=tuple(gateways), excludes=tuple(excludes),
        namespaces=str_list(s.get("namespaces"), "namespaces"),
        nat_outgoing=bool_field(s.get("natOutgoing"), "natOutgoing"),
        default=bool(bool_field(s.get("default"), "default", False)),
        mtu=int_field(s.get("mtu"), "mtu", 576, 9000),
    )


def config_subnet(name: str, cidr: str, vpc: str) -> SubnetView:
    """A subnet defined by the controller's configuration (join and default subnets)."""
    nets = tuple(ipaddress.ip_network(c.strip()) for c in cidr.split(","))
    return SubnetView(name=name, vpc=vpc, cidrs=nets,
                      gateways=tuple(n.network_address + 1 for n in nets),
                      default=name != naming.JOIN_SUBNET)
