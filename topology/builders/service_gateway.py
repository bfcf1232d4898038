"""The service gateway of a pool (scenario 4): one EIP load-balanced to backends in several VPCs.

svcgw-<pool> is a gateway router (options:chassis, kept on the pool's active gateway chassis)
with options:lb_force_snat_ip=router_ip: after DNAT to a backend it SNATs to its own address on
the link toward that backend's VPC, so replies come back to it. It has a port on the pool's
transit switch (a default route via eipgw-<pool>: without it replies to clients are dropped)
and one link switch per linked VPC (the backend VPCs of its services and the pool's other
attached VPCs, whose pods reach the EIPs over it), with routes to that VPC's subnets via the
VPC router's link address. EIP load balancers of multi-VPC services sit on it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from topology import naming
from topology.builders.common import default_prefix, stable_mac, with_prefix
from topology.builders.eip_gateway import router_link, transit_gateway_ip
from topology.model import (
    LogicalRouter,
    LogicalRouterPort,
    LogicalSwitch,
    Owner,
    Row,
    StaticRoute,
    fmap,
)


def link_svcgw_ip(cidr: str) -> str:
    """svcgw's address on a link network (the VPC router has the next one)."""
    return str(ipaddress.ip_network(cidr).network_address + 1)


@dataclass(frozen=True)
class Link:
    vpc: str
    cidr: str  # a /30 (or larger) of the internal range
    subnets: tuple[str, ...]  # the VPC's subnet CIDRs svcgw routes through this link

    @property
    def svcgw_ip(self) -> str:
        return link_svcgw_ip(self.cidr)

    @property
    def vpc_ip(self) -> str:
        return str(ipaddress.ip_network(self.cidr).network_address + 2)


@dataclass(frozen=True)
class ServiceGatewaySpec:
    pool: str
    owner: Owner
    chassis: str
    transit_cidr: str
    transit_ip: str
    links: tuple[Link, ...] = ()


def svcgw_transit_ip(transit_cidr: str) -> str:
    return str(ipaddress.ip_network(transit_cidr).network_address + 2)


def build_service_gateway(spec: ServiceGatewaySpec) -> list[Row]:
    p = spec.pool
    router = naming.service_gateway(p)
    ts_port = naming.svcgw_transit_port(p)
    ids = fmap({naming.POOL: p, naming.ROLE: naming.ROLE_SVCGW_LINK})
    common = {"owner": spec.owner, "ids": ids}
    hop = transit_gateway_ip(spec.transit_cidr)
    rows: list[Row] = [
        LogicalRouter(name=router, options=fmap({"chassis": spec.chassis,
                                                 "lb_force_snat_ip": "router_ip"}), **common),
        LogicalRouterPort(name=ts_port, router=router, mac=stable_mac(ts_port),
                          networks=(with_prefix(spec.transit_ip, spec.transit_cidr),), **common),
        router_link(naming.eip_transit(p), ts_port, spec.owner, None, ids),
        StaticRoute(router=router, ip_prefix=default_prefix(hop), nexthop=hop, **common),
    ]
    for link in spec.links:
        switch = naming.svcgw_link_switch(p, link.vpc)
        gw_port = naming.svcgw_link_port(p, link.vpc)
        vpc_port = naming.vpc_svcgw_port(link.vpc, p)
        link_ids = fmap({naming.POOL: p, naming.ROLE: naming.ROLE_SVCGW_LINK,
                         naming.VPC: link.vpc})
        lcommon = {"owner": spec.owner, "ids": link_ids}
        rows += [
            LogicalSwitch(name=switch, **lcommon),
            LogicalRouterPort(name=gw_port, router=router, mac=stable_mac(gw_port),
                              networks=(with_prefix(link.svcgw_ip, link.cidr),), **lcommon),
            router_link(switch, gw_port, spec.owner, None, link_ids),
            LogicalRouterPort(name=vpc_port, router=naming.router(link.vpc),
                              mac=stable_mac(vpc_port),
                              networks=(with_prefix(link.vpc_ip, link.cidr),), **lcommon),
            router_link(switch, vpc_port, spec.owner, None, link_ids),
        ]
        rows += [StaticRoute(router=router, ip_prefix=cidr, nexthop=link.vpc_ip, **lcommon)
                 for cidr in link.subnets]
    return rows
