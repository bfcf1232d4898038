"""EipPool -> ext switch + localnet, eipgw router (HA over the gateway nodes), transit switch,
and the pool's service gateway with a link to every VPC that backs a multi-VPC service."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import structlog

from topology import naming
from topology.builders.eip_gateway import PoolSpec, build_pool
from topology.builders.service_gateway import (
    Link,
    ServiceGatewaySpec,
    build_service_gateway,
    svcgw_transit_ip,
)
from ycloud_controller import keys
from ycloud_controller.api.common import Invalid, key_of, meta, overlaps
from ycloud_controller.api.eippool import EipPoolView
from ycloud_controller.api.service import ServiceView, parse_service
from ycloud_controller.api.subnet import SubnetView
from ycloud_controller.ipam import IpamError
from ycloud_controller.kube import resources as res
from ycloud_controller.network import NetworkModel
from ycloud_controller.reconcilers.base import (
    Context,
    EventEffect,
    ModelReconciler,
    Outcome,
    PatchEffect,
)

log = structlog.get_logger(__name__)


def pool_subnet(pool: EipPoolView) -> SubnetView:
    """The pool as an address range for the EIP allocator."""
    excludes = list(pool.excludes)
    if pool.uplink_ip is not None:
        excludes.append((pool.uplink_ip, pool.uplink_ip))
    return SubnetView(name=pool.name, vpc="", cidrs=(pool.cidr,), gateways=(pool.gateway,),
                      excludes=tuple(excludes), reserve_probe=False)


def pool_of_service(net: NetworkModel, svc: ServiceView) -> EipPoolView | None:
    if svc.eip_pool:
        return net.pools.get(svc.eip_pool)
    if svc.load_balancer_ip is not None:
        found = [p for p in net.pools.values() if p.contains(svc.load_balancer_ip)]
        if found:
            return found[0]
    return net.default_pool()


def multi_vpc_users(ctx: Context, pool: str) -> dict[str, list[str]]:
    """VPC -> multi-VPC LoadBalancer services of this pool with backends in it."""
    net = ctx.network()
    users: dict[str, list[str]] = defaultdict(list)
    for obj in ctx.store("Service").list():
        spec = obj.get("spec") or {}
        if spec.get("type") != "LoadBalancer":
            continue
        try:
            svc = parse_service(obj)
        except Invalid:
            continue
        if len(svc.vpcs) < 2:
            continue
        chosen = pool_of_service(net, svc)
        if chosen is not None and chosen.name == pool:
            for vpc in svc.vpcs:
                users[vpc].append(key_of(obj))
    return users


def ensure_pool(ctx: Context, view: EipPoolView) -> str:
    """Register the pool's range with the EIP allocator; return the uplink address."""
    ctx.eips.set_subnet(pool_subnet(view))
    if view.uplink_ip is not None:
        return str(view.uplink_ip)
    return str(ctx.eips.allocate(f"{res.EIPPOOLS.kind}/{view.name}", view.name).ips[0])


def _links(ctx: Context, net: NetworkModel, pool: str,
           users: dict[str, list[str]]) -> tuple[list[Link], dict[str, str]]:
    """Links of the pool's service gateway to the VPCs its multi-VPC services use. VPCs
    already linked come first, then the others in the precedence of their first service
    (ycloud_controller.precedence), so a VPC whose subnets overlap a linked VPC's is the one
    refused: a newcomer never takes a link from a holder."""
    links: list[Link] = []
    refused: dict[str, str] = {}
    taken: list[tuple[str, SubnetView]] = []
    for (p, vpc) in [k for k in ctx.refused_links if k[0] == pool]:
        del ctx.refused_links[(p, vpc)]
    # the linked VPCs first (restored from NB at start), then by their oldest service
    linked = {vpc for (p, vpc) in ctx.internal.links if p == pool}
    ranking = ctx.precedence.ranking()
    ranks = {key_of(o): ranking.rank("Service", o) for o in ctx.store("Service").list()}
    order = sorted(users, key=lambda v: (v not in linked,
                                         min(ranks.get(k, (2, "", k)) for k in users[v]), v))
    for vpc in order:
        if vpc not in net.vpcs:
            refused[vpc] = f"VPC {vpc} does not exist"
            ctx.refused_links[(pool, vpc)] = ("UnknownVPC", refused[vpc])
            continue
        subnets = [s for s in net.subnets_of(vpc) if s.name != net.join_subnet]
        clash = next(((v, o, s) for v, o in taken for s in subnets
                      if overlaps(o.cidrs, s.cidrs)), None)
        if clash is not None:
            other_vpc, other, mine = clash
            refused[vpc] = (f"subnet {mine.name} of VPC {vpc} overlaps subnet {other.name} of "
                            f"VPC {other_vpc}: service gateway {naming.service_gateway(pool)} "
                            "cannot route both")
            ctx.refused_links[(pool, vpc)] = ("OverlappingSubnets", refused[vpc])
            ctx.internal.release_link(pool, vpc)
            continue
        taken += [(vpc, s) for s in subnets]
        cidrs = tuple(c for s in subnets for c in s.cidr_strs if ":" not in c)
        links.append(Link(vpc=vpc, cidr=str(ctx.internal.link(pool, vpc)), subnets=cidrs))
    for (p, vpc) in list(ctx.internal.links):
        if p == pool and vpc not in {link.vpc for link in links}:
            ctx.internal.release_link(pool, vpc)
    return links, refused


class EipPoolReconciler(ModelReconciler):
    RESOURCE = res.EIPPOOLS
    MODEL = "pools"

    def gone(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> Outcome:
        ctx.eips.remove_subnet(key)
        ctx.internal.release_pool(key)
        outcome = super().gone(ctx, key, obj)
        finalizers = list(meta(obj or {}).get("finalizers") or [])
        if obj is not None and keys.EIPPOOL_FINALIZER in finalizers:
            outcome.effects.append(PatchEffect(res.EIPPOOLS, key, None, {"metadata": {
                "finalizers": [f for f in finalizers if f != keys.EIPPOOL_FINALIZER]}}))
        return outcome

    def reconcile(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> Outcome:
        net = ctx.network()
        err = net.error(res.EIPPOOLS.kind, key)
        if err is not None:
            raise err
        view = net.pools[key]
        md = meta(obj or {})
        finalizers = list(md.get("finalizers") or [])
        if md.get("deletionTimestamp"):
            users = sorted(o.removeprefix("Service/") for o, a in ctx.eips.owners().items()
                           if a.subnet == key and o.startswith("Service/"))
            raise Invalid("DeletionBlocked", f"{len(users)} service(s) still use EIPs of this "
                                             f"pool: {', '.join(users[:10])}")
        try:
            uplink = ensure_pool(ctx, view)
        except IpamError as exc:
            raise Invalid(exc.reason, exc.message) from None
        block = str(ctx.internal.block(key))
        rows = build_pool(PoolSpec(
            name=key, owner=self.owner(key), cidr=str(view.cidr), gateway=str(view.gateway),
            uplink_ip=uplink, provider=view.provider, gateway_nodes=view.gateway_nodes,
            transit_cidr=block, vlan=view.vlan))
        links, refused = _links(ctx, net, key, multi_vpc_users(ctx, key))
        chassis = ctx.active_chassis(naming.eip_gateway_uplink(key)) or view.gateway_nodes[0]
        rows += build_service_gateway(ServiceGatewaySpec(
            pool=key, owner=self.owner(key), chassis=chassis, transit_cidr=block,
            transit_ip=svcgw_transit_ip(block), links=tuple(links)))
        used, available = ctx.eips.usage(key).get(view.cidr.version, (0, 0))
        uplink_holder = f"{res.EIPPOOLS.kind}/"
        eips: dict[str, Any] = {str(a.ips[0]): holder for holder, a in ctx.eips.owners().items()
                                if a.subnet == key and not holder.startswith(uplink_holder)}
        status = {"uplinkIP": uplink, "usedIPs": used, "availableIPs": available, "eips": eips}
        outcome = self.ready(key, obj, rows, status, f"{len(eips)} EIPs in use, service "
                                                     f"gateway on {chassis}")
        if obj is not None and keys.EIPPOOL_FINALIZER not in finalizers:
            outcome.effects.append(PatchEffect(res.EIPPOOLS, key, None, {"metadata": {
                "finalizers": [*finalizers, keys.EIPPOOL_FINALIZER]}}))
        if obj is not None:
            outcome.effects += [EventEffect(obj, "Warning", "LinkRefused", msg)
                                for msg in refused.values()]
        return outcome


reconcile_eippool = EipPoolReconciler()
