"""EipPool -> ext switch + localnet, eipgw router (HA over the gateway nodes), transit switch,
and the pool's service gateway with a link to every VPC that backs a multi-VPC service and,
while there is one, to every other VPC attached to the pool (the links:
eip_state.link_plan)."""

from __future__ import annotations

from typing import Any

import structlog

from topology import naming
from topology.builders.eip_gateway import PoolSpec, build_pool
from topology.builders.service_gateway import (
    ServiceGatewaySpec,
    build_service_gateway,
    svcgw_transit_ip,
)
from ycloud_controller import keys
from ycloud_controller.api.common import Invalid, meta
from ycloud_controller.api.eippool import EipPoolView
from ycloud_controller.api.subnet import SubnetView
from ycloud_controller.ipam import IpamError
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import (
    Context,
    EventEffect,
    ModelReconciler,
    Outcome,
    PatchEffect,
)
from ycloud_controller.reconcilers.eip_state import EipHolder, link_plan, service_holders

log = structlog.get_logger(__name__)


def pool_subnet(pool: EipPoolView) -> SubnetView:
    """The pool as an address range for the EIP allocator."""
    excludes = list(pool.excludes)
    if pool.uplink_ip is not None:
        excludes.append((pool.uplink_ip, pool.uplink_ip))
    return SubnetView(name=pool.name, vpc="", cidrs=(pool.cidr,), gateways=(pool.gateway,),
                      excludes=tuple(excludes), reserve_probe=False)


def ensure_pool(ctx: Context, view: EipPoolView) -> str:
    """Register the pool's range with the EIP allocator; return the uplink address."""
    ctx.eips.set_subnet(pool_subnet(view))
    if view.uplink_ip is not None:
        return str(view.uplink_ip)
    return str(ctx.eips.allocate(str(EipHolder.uplink(view.name)), view.name).ips[0])


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
            users = sorted(h.key for h in service_holders(ctx, key).values())
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
        plan = link_plan(ctx, key, release=True)
        chassis = ctx.active_chassis(naming.eip_gateway_uplink(key)) or view.gateway_nodes[0]
        rows += build_service_gateway(ServiceGatewaySpec(
            pool=key, owner=self.owner(key), chassis=chassis, transit_cidr=block,
            transit_ip=svcgw_transit_ip(block), links=plan.every_link))
        used, available = ctx.eips.usage(key).get(view.cidr.version, (0, 0))
        eips = {eip: str(holder) for eip, holder in service_holders(ctx, key).items()}
        status = {"uplinkIP": uplink, "usedIPs": used, "availableIPs": available, "eips": eips}
        outcome = self.ready(key, obj, rows, status, f"{len(eips)} EIPs in use, service "
                                                     f"gateway on {chassis}")
        if obj is not None and keys.EIPPOOL_FINALIZER not in finalizers:
            outcome.effects.append(PatchEffect(res.EIPPOOLS, key, None, {"metadata": {
                "finalizers": [*finalizers, keys.EIPPOOL_FINALIZER]}}))
        if obj is not None:
            outcome.effects += [EventEffect(obj, "Warning", "LinkRefused", msg)
                                for _, (_, msg) in plan.refused]
        return outcome


reconcile_eippool = EipPoolReconciler()
