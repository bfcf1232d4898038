"""EIPs of LoadBalancer services: allocation and the rows that carry them.

Scenario 3 (backends in one VPC): the EIP load balancer sits on the VPC router, whose port on
the pool's transit switch is a distributed gateway port; eipgw-<pool> routes EIP/32 to the
VPC's transit address; the client's address is preserved. The EIP is also a VIP of the
service's ClusterIP LB, so pods of the VPC reach it without leaving the VPC (hairpin).
Scenario 4 (backends in several VPCs): the EIP load balancer sits on svcgw-<pool>, which
SNATs to its link address toward the chosen backend's VPC; eipgw-<pool> routes EIP/32 to it.
In both, a stateless NAT row lets eipgw answer ARP for an EIP inside the external subnet.

Pods reaching a multi-VPC EIP: each backend VPC routes EIP/32 over its own link to svcgw, so
the path is VPC router -> svcgw -> backend. Through the transit switch (client VPC gateway
port SNAT, eipgw, svcgw, backend VPC, all on the gateway chassis) the userspace datapath drops
the packet: "Max recirculation depth exceeded" (dpif-netdev allows 6 recirculations). Pods of
VPCs that are not backends of the service therefore cannot reach it on a netdev datapath.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from topology import naming
from topology.builders.common import host_prefix
from topology.builders.eip_gateway import onlink_nat
from topology.builders.service import Health, LbSpec, Vip, build_lb
from topology.builders.service_gateway import link_svcgw_ip, svcgw_transit_ip
from topology.model import Owner, Row, StaticRoute, fmap
from ycloud_controller.api.common import Invalid
from ycloud_controller.api.service import ServiceView
from ycloud_controller.ipam import IpamError
from ycloud_controller.reconcilers.base import Context, NotReady
from ycloud_controller.reconcilers.eippool import ensure_pool, pool_of_service
from ycloud_controller.reconcilers.health_sources import probe_mappings

LB_CLASS = "ycloud.io/eip"


def eip_owner(key: str) -> str:
    return f"Service/{key}"


def release(ctx: Context, key: str) -> None:
    ctx.eips.release(eip_owner(key))


def allocate(ctx: Context, svc: ServiceView) -> tuple[str, str]:
    """(pool name, EIP) for a LoadBalancer service."""
    net = ctx.network()
    pool = pool_of_service(net, svc)
    if pool is None:
        named = f"EipPool {svc.eip_pool} does not exist" if svc.eip_pool else \
            "no default EipPool"
        raise Invalid("NoEipPool", f"{named}: create one, or name one with annotation "
                                   f"{naming.ANN_EIP_POOL}")
    wanted = svc.load_balancer_ip
    if wanted is not None and not pool.contains(wanted):
        raise Invalid("EIPOutsidePool", f"requested EIP {wanted} is outside pool {pool.name} "
                                        f"({pool.cidr})")
    try:
        ensure_pool(ctx, pool)
        alloc = ctx.eips.allocate(eip_owner(svc.key), pool.name,
                                  ips=(wanted,) if wanted is not None else ())
    except IpamError as exc:
        raise Invalid("EIPUnavailable", f"EIP from pool {pool.name}: {exc.message}") from exc
    return pool.name, str(alloc.ips[0])


def _target(ctx: Context, svc: ServiceView, vpc: str | None, pool: str) -> tuple[str, str]:
    """(router carrying the EIP LB, next hop of eipgw's EIP/32 route)."""
    net = ctx.network()
    if vpc is None:
        refused = [ctx.refused_links[(pool, v)] for v in svc.vpcs if (pool, v) in ctx.refused_links]
        if refused:
            raise Invalid(*refused[0])
        missing = [v for v in svc.vpcs if (pool, v) not in ctx.internal.links]
        if missing:
            raise NotReady(f"service gateway {naming.service_gateway(pool)} has no link to "
                           f"VPC {missing[0]} yet")
        return naming.service_gateway(pool), svcgw_transit_ip(str(ctx.internal.block(pool)))
    view = net.vpcs[vpc]
    attached = view.eip_pool or (net.default_pool().name if net.default_pool() else None)
    if attached != pool:
        raise Invalid("EIPPoolNotAttached",
                      f"VPC {vpc} is attached to EIP pool {attached or '(none)'}; an EIP of "
                      f"pool {pool} cannot reach it (set Vpc spec.eipPool)")
    hop = ctx.internal.transit.get((pool, f"Vpc/{vpc}"))
    if hop is None:
        raise NotReady(f"VPC {vpc} is not attached to pool {pool} yet")
    return naming.router(vpc), hop


def eip_lbs(ctx: Context, svc: ServiceView, vpc: str | None, owner: Owner,
            backends_of: Any) -> tuple[list[Row], dict[str, Any], str | None]:
    """Rows, Service status fields and the EIP of a LoadBalancer service."""
    if svc.type != "LoadBalancer" or (svc.lb_class and svc.lb_class != LB_CLASS):
        release(ctx, svc.key)
        return [], {}, None
    pool, eip = allocate(ctx, svc)
    router, hop = _target(ctx, svc, vpc, pool)
    by_proto: dict[str, list[Vip]] = defaultdict(list)
    for sp in svc.ports:
        by_proto[sp.protocol].append(Vip(eip, sp.port, tuple(backends_of(sp, 4))))
    health = (Health(svc.health.interval, svc.health.timeout, svc.health.success,
                     svc.health.failure) if svc.health else None)
    ids = ((naming.SERVICE, svc.key), (naming.POOL, pool), (naming.EIP, eip))
    rows: list[Row] = []
    for proto, vips in sorted(by_proto.items()):
        mappings = probe_mappings(ctx, svc.vpcs or (vpc,),
                                  {ip for v in vips for ip, _ in v.backends}) if health else ()
        rows += build_lb(LbSpec(
            name=naming.service_lb(svc.namespace, svc.name, proto, "eip"), owner=owner,
            vpc=vpc, protocol=proto, vips=tuple(vips), routers=(router,),
            affinity_timeout=svc.affinity_timeout, health=health, ip_port_mappings=mappings,
            extra_ids=ids))
    rows.append(StaticRoute(router=naming.eip_gateway(pool), ip_prefix=host_prefix(eip),
                            nexthop=hop, owner=owner, vpc=vpc, ids=fmap(dict(ids))))
    if vpc is None:  # backend VPCs reach the EIP over their own link to svcgw
        for link_vpc in svc.vpcs:
            gw = link_svcgw_ip(str(ctx.internal.links[(pool, link_vpc)]))
            rows.append(StaticRoute(router=naming.router(link_vpc), ip_prefix=host_prefix(eip),
                                    nexthop=gw, owner=owner, vpc=link_vpc,
                                    ids=fmap(dict(ids))))
    rows.append(onlink_nat(pool, eip, owner, vpc))
    return rows, {"loadBalancer": {"ingress": [{"ip": eip}]}}, eip
