"""Subnet -> a logical switch joined to its VPC router, carrying the VPC's LB group."""

from __future__ import annotations

from dataclasses import dataclass

from topology import naming
from topology.builders.common import stable_mac, with_prefix
from topology.model import LogicalRouterPort, LogicalSwitch, LogicalSwitchPort, Owner, Row, fmap


@dataclass(frozen=True)
class SubnetSpec:
    name: str
    vpc: str
    owner: Owner
    cidrs: tuple[str, ...]  # one per IP family
    gateways: tuple[str, ...]  # same order as cidrs
    exclude_ips: tuple[str, ...] = ()
    mtu: int = 1400


def build_subnet(spec: SubnetSpec) -> list[Row]:
    router = naming.router(spec.vpc)
    lrp = naming.router_port(spec.vpc, spec.name)
    lsp = naming.switch_router_port(spec.name, spec.vpc)
    ids = fmap({naming.SUBNET: spec.name, naming.ROLE: naming.ROLE_ROUTER_LINK,
                naming.CIDR: ",".join(spec.cidrs), naming.MTU: spec.mtu})
    common = {"owner": spec.owner, "vpc": spec.vpc, "ids": ids}
    return [
        LogicalSwitch(name=naming.switch(spec.name),
                      lb_groups=(naming.lb_group(spec.vpc),), **common),
        LogicalRouterPort(name=lrp, router=router, mac=stable_mac(lrp),
                          networks=tuple(with_prefix(g, c)
                                         for g, c in zip(spec.gateways, spec.cidrs, strict=True)),
                          **common),
        LogicalSwitchPort(name=lsp, switch=naming.switch(spec.name), type="router",
                          addresses=("router",), options=fmap({"router-port": lrp}), **common),
    ]
