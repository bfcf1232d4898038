"""EIPs of LoadBalancer services: allocation and the rows that carry them.

Scenario 3 (backends in one VPC): the EIP load balancer sits on the VPC router, whose port on
the pool's transit switch is a distributed gateway port; eipgw-<pool> routes EIP/32 to the
VPC's transit address; the client's address is preserved. The EIP is also a VIP of the
service's ClusterIP LB, so pods of the VPC reach it without leaving the VPC (hairpin).
Scenario 4 (backends in several VPCs): the EIP load balancer sits on svcgw-<pool>, which
SNATs to its link address toward the chosen backend's VPC; eipgw-<pool> routes EIP/32 to it.
In both, a stateless NAT row lets eipgw answer ARP for an EIP inside the external subnet.

Pods reaching a multi-VPC EIP: every VPC attached to the pool (its backend VPCs and, while
the pool has multi-VPC services, every other attached VPC: eip_state.link_plan) routes EIP/32
over its own link to svcgw, so the path is VPC router -> svcgw -> backend: on the gateway
chassis a tunnel pop and five recirculations (svcgw's defrag, dp_hash, ct_lb, undnat, SNAT),
within dpif-netdev's limit of 6. Through the transit switch (the client VPC gateway port's
SNAT, eipgw, svcgw) it is one more, and the userspace datapath drops the packet ("Max
recirculation depth exceeded"): README, Known limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from topology import naming
from topology.builders.common import host_prefix
from topology.builders.eip_gateway import onlink_nat
from topology.builders.service import LbPlacement
from topology.builders.service_gateway import Link, svcgw_transit_ip
from topology.model import Owner, Row, StaticRoute, fmap
from ycloud_controller import keys
from ycloud_controller.api.common import Invalid
from ycloud_controller.api.service import ServiceView
from ycloud_controller.ipam import IpamError
from ycloud_controller.reconcilers.base import Context, NotReady
from ycloud_controller.reconcilers.eip_state import EipHolder, link_plan, pool_of_service
from ycloud_controller.reconcilers.eippool import ensure_pool


def release(ctx: Context, key: str) -> None:
    ctx.eips.release(str(EipHolder.service(key)))


def allocate(ctx: Context, svc: ServiceView) -> tuple[str, str]:
    """(pool name, EIP) for a LoadBalancer service."""
    net = ctx.network()
    pool = pool_of_service(net, svc)
    if pool is None:
        named = f"EipPool {svc.eip_pool} does not exist" if svc.eip_pool else \
            "no default EipPool"
        raise Invalid("NoEipPool", f"{named}: create one, or name one with annotation "
                                   f"{keys.ANN_EIP_POOL}")
    wanted = svc.load_balancer_ip
    if wanted is not None and not pool.contains(wanted):
        raise Invalid("EIPOutsidePool", f"requested EIP {wanted} is outside pool {pool.name} "
                                        f"({pool.cidr})")
    try:
        ensure_pool(ctx, pool)
        alloc = ctx.eips.allocate(str(EipHolder.service(svc.key)), pool.name,
                                  ips=(wanted,) if wanted is not None else ())
    except IpamError as exc:
        raise Invalid("EIPUnavailable", f"EIP from pool {pool.name}: {exc.message}") from exc
    return pool.name, str(alloc.ips[0])


@dataclass(frozen=True)
class EipPlacement:
    """A LoadBalancer service's EIP, its pool, and where its EIP LB goes."""

    pool: str
    eip: str
    hop: str  # next hop of eipgw's EIP/32 route: the VPC's transit address, or svcgw's
    lbs: LbPlacement  # the VPC router (one VPC) or the pool's service gateway (several)
    links: tuple[Link, ...] = ()  # several VPCs: the service gateway's links to them
    clients: tuple[Link, ...] = ()  # and its links to the pool's other attached VPCs


def _target(ctx: Context, svc: ServiceView, vpc: str | None, pool: str, eip: str,
            ) -> EipPlacement:
    net = ctx.network()
    if vpc is None:  # the links are those the pool's service gateway gets (one plan)
        plan = link_plan(ctx, pool)
        refused = [r for r in map(plan.refusal, svc.vpcs) if r is not None]
        if refused:
            raise Invalid(*refused[0])
        links = tuple(link for link in map(plan.link, svc.vpcs) if link is not None)
        if len(links) < len(svc.vpcs):  # not one of the pool's users (cannot be)
            raise NotReady(f"service gateway {naming.service_gateway(pool)} has no link to "
                           f"every VPC of the service yet")
        return EipPlacement(pool, eip, svcgw_transit_ip(str(ctx.internal.block(pool))),
                            LbPlacement.service_gateway(pool, eip), links, plan.clients)
    view = net.vpcs[vpc]
    chosen = net.pool_for(view.eip_pool)
    attached = view.eip_pool or (chosen.name if chosen else None)
    if attached != pool:
        raise Invalid("EIPPoolNotAttached",
                      f"VPC {vpc} is attached to EIP pool {attached or '(none)'}; an EIP of "
                      f"pool {pool} cannot reach it (set Vpc spec.eipPool)")
    hop = ctx.internal.transit.get((pool, f"Vpc/{vpc}"))
    if hop is None:
        raise NotReady(f"VPC {vpc} is not attached to pool {pool} yet")
    return EipPlacement(pool, eip, hop, LbPlacement.vpc_router(vpc, pool, eip))


def eip_placement(ctx: Context, svc: ServiceView, vpc: str | None) -> EipPlacement | None:
    """The EIP of a LoadBalancer service (allocated here) and where it goes; None for other
    services (whose EIP, if any, is released)."""
    if svc.type != "LoadBalancer" or (svc.lb_class and svc.lb_class != keys.LB_CLASS):
        release(ctx, svc.key)
        return None
    pool, eip = allocate(ctx, svc)
    return _target(ctx, svc, vpc, pool, eip)


def eip_routes(svc: ServiceView, vpc: str | None, owner: Owner,
               place: EipPlacement) -> list[Row]:
    """The rows that bring the EIP to its LB: eipgw's EIP/32 route, the routes of the backend
    VPCs and of the pool's other attached VPCs over their svcgw links (several VPCs), and
    eipgw's on-link NAT."""
    pool, eip = place.pool, place.eip
    ids = fmap({naming.SERVICE: svc.key, naming.POOL: pool, naming.EIP: eip})
    rows: list[Row] = [StaticRoute(router=naming.eip_gateway(pool), ip_prefix=host_prefix(eip),
                                   nexthop=place.hop, owner=owner, vpc=vpc, ids=ids)]
    for link in place.links + place.clients:  # every linked VPC reaches it over its link
        rows.append(StaticRoute(router=naming.router(link.vpc), ip_prefix=host_prefix(eip),
                                nexthop=link.svcgw_ip, owner=owner, vpc=link.vpc, ids=ids))
    rows.append(onlink_nat(pool, eip, owner, vpc))
    return rows


def eip_status(place: EipPlacement | None) -> dict[str, Any]:
    return {"loadBalancer": {"ingress": [{"ip": place.eip}]}} if place else {}
