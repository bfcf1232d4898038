"""EIP pool -> external switch, EIP gateway router, transit switch; VPC attachment to a pool.

eipgw-<pool> is a router whose uplink on ext-<pool> is a distributed gateway port bound to an
HA_Chassis_Group of the pool's gateway nodes (priorities in their order), so losing the
active gateway node moves it. Its other port sits on the transit switch eipts-<pool>, where
every attached VPC router has a distributed gateway port in the same HA group (so they all
fail over together), and where the pool's service gateway has its port.

Egress: a VPC router SNATs its subnets to its own transit address (unique per VPC, so
overlapping VPC CIDRs never meet outside their VPC); eipgw SNATs a VPC's transit address to
the uplink address when the VPC may reach the outside. Replies come back through conntrack.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from topology import naming
from topology.builders.common import default_prefix, stable_mac, with_prefix
from topology.model import (
    HAChassis,
    HAChassisGroup,
    LogicalRouter,
    LogicalRouterPort,
    LogicalSwitch,
    LogicalSwitchPort,
    Nat,
    Owner,
    Row,
    StaticRoute,
    fmap,
)

HA_TOP_PRIORITY = 100


def router_link(switch: str, lrp: str, owner: Owner, vpc: str | None, ids: tuple,
                nat_addresses: bool = False) -> LogicalSwitchPort:
    """The switch side (type router) of a router port."""
    options = {"router-port": lrp}
    if nat_addresses:
        options["nat-addresses"] = "router"  # the active chassis sends GARPs for NAT IPs
    return LogicalSwitchPort(name=naming.link_switch_port(switch, lrp), switch=switch,
                             type="router", addresses=("router",), options=fmap(options),
                             owner=owner, vpc=vpc, ids=ids)


@dataclass(frozen=True)
class PoolSpec:
    name: str
    owner: Owner
    cidr: str  # external network
    gateway: str  # upstream router on the external network
    uplink_ip: str  # eipgw's own address on the external network
    provider: str  # ovn-bridge-mappings name
    gateway_nodes: tuple[str, ...]
    transit_cidr: str  # this pool's block of the internal range
    vlan: int | None = None
    onlink_eips: tuple[str, ...] = ()  # answered by ARP through a stateless NAT row


def transit_gateway_ip(transit_cidr: str) -> str:
    return str(ipaddress.ip_network(transit_cidr).network_address + 1)


def build_pool(spec: PoolSpec) -> list[Row]:
    p = spec.name
    ext, ts, gw = naming.ext_switch(p), naming.eip_transit(p), naming.eip_gateway(p)
    uplink, ts_port = naming.eip_gateway_uplink(p), naming.eip_gateway_transit_port(p)
    group = naming.eip_ha_group(p)
    ids = fmap({naming.POOL: p, naming.ROLE: naming.ROLE_TRANSIT})
    common = {"owner": spec.owner, "ids": ids}
    ln_options = {"network_name": spec.provider}
    ln_ids = fmap({naming.POOL: p, naming.ROLE: naming.ROLE_LOCALNET})
    rows: list[Row] = [
        LogicalSwitch(name=ext, **common),
        LogicalSwitchPort(name=naming.localnet_port(p), switch=ext, type="localnet",
                          addresses=("unknown",), options=fmap(ln_options), tag=spec.vlan or None,
                          owner=spec.owner, ids=ln_ids),
        HAChassisGroup(name=group, **common),
        *[HAChassis(group=group, chassis_name=node, priority=HA_TOP_PRIORITY - 10 * i, **common)
          for i, node in enumerate(spec.gateway_nodes)],
        LogicalRouter(name=gw, **common),
        LogicalRouterPort(name=uplink, router=gw, mac=stable_mac(uplink),
                          networks=(with_prefix(spec.uplink_ip, spec.cidr),),
                          ha_chassis_group=group, **common),
        router_link(ext, uplink, spec.owner, None, ids, nat_addresses=True),
        LogicalSwitch(name=ts, **common),
        LogicalRouterPort(name=ts_port, router=gw, mac=stable_mac(ts_port),
                          networks=(with_prefix(transit_gateway_ip(spec.transit_cidr),
                                                spec.transit_cidr),), **common),
        router_link(ts, ts_port, spec.owner, None, ids),
        StaticRoute(router=gw, ip_prefix=default_prefix(spec.gateway), nexthop=spec.gateway,
                    output_port=uplink, **common),
    ]
    rows += [onlink_nat(p, eip, spec.owner) for eip in spec.onlink_eips]
    return rows


def onlink_nat(pool: str, eip: str, owner: Owner, vpc: str | None = None) -> Nat:
    """A stateless dnat_and_snat EIP->EIP on the gateway: it only makes eipgw answer ARP for an
    EIP that sits inside the external subnet; traffic is then routed by the EIP's /32 route."""
    return Nat(router=naming.eip_gateway(pool), type="dnat_and_snat", external_ip=eip,
               logical_ip=eip, options=fmap({"stateless": "true"}), owner=owner, vpc=vpc,
               ids=fmap({naming.POOL: pool, naming.EIP: eip}))


@dataclass(frozen=True)
class AttachSpec:
    """A VPC attached to a pool: its transit port, default route and SNAT."""

    vpc: str
    pool: str
    owner: Owner
    transit_ip: str
    transit_cidr: str
    snat_cidrs: tuple[str, ...]  # subnets SNATed to the transit address at the VPC router
    outside: bool  # eipgw SNATs the transit address to the uplink address
    uplink_ip: str
    default_route: bool = True


def build_attachment(spec: AttachSpec) -> list[Row]:
    router = naming.router(spec.vpc)
    lrp = naming.vpc_transit_port(spec.vpc, spec.pool)
    ts = naming.eip_transit(spec.pool)
    ids = fmap({naming.POOL: spec.pool, naming.ROLE: naming.ROLE_TRANSIT})
    common = {"owner": spec.owner, "vpc": spec.vpc, "ids": ids}
    hop = transit_gateway_ip(spec.transit_cidr)
    rows: list[Row] = [
        LogicalRouterPort(name=lrp, router=router, mac=stable_mac(lrp),
                          networks=(with_prefix(spec.transit_ip, spec.transit_cidr),),
                          ha_chassis_group=naming.eip_ha_group(spec.pool), **common),
        router_link(ts, lrp, spec.owner, spec.vpc, ids),
    ]
    if spec.default_route:
        rows.append(StaticRoute(router=router, ip_prefix=default_prefix(hop), nexthop=hop,
                                **common))
    rows += [Nat(router=router, type="snat", external_ip=spec.transit_ip, logical_ip=cidr,
                 **common) for cidr in spec.snat_cidrs]
    if spec.outside:
        rows.append(Nat(router=naming.eip_gateway(spec.pool), type="snat",
                        external_ip=spec.uplink_ip, logical_ip=spec.transit_ip, **common))
    return rows
