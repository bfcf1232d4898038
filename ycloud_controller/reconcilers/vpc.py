"""Vpc -> its router, its ClusterIP load-balancer group, its static routes, and its attachment
to an EIP pool (transit port, default route, SNAT of subnets with natOutgoing)."""

from __future__ import annotations

from typing import Any

from topology import naming
from topology.builders.eip_gateway import AttachSpec, build_attachment
from topology.builders.vpc import Route, VpcSpec, build_vpc
from topology.model import Row
from ycloud_controller.api.common import Invalid
from ycloud_controller.api.subnet import SubnetView
from ycloud_controller.api.vpc import VpcView
from ycloud_controller.ipam import IpamError
from ycloud_controller.kube import resources as res
from ycloud_controller.network import NetworkModel
from ycloud_controller.reconcilers.base import (
    Context,
    ModelReconciler,
    Outcome,
    invalid_effects,
)
from ycloud_controller.reconcilers.eippool import ensure_pool


def nat_outgoing(net: NetworkModel, vpc: VpcView, subnet: SubnetView) -> bool:
    """Subnet setting, else the VPC's, else on for the default VPC only."""
    if subnet.nat_outgoing is not None:
        return subnet.nat_outgoing
    if vpc.nat_outgoing is not None:
        return vpc.nat_outgoing
    return vpc.name == net.default_vpc


def attachment(ctx: Context, net: NetworkModel, view: VpcView) -> tuple[list[Row], dict]:
    pool = net.pool_for(view.eip_pool)
    if view.eip_pool and pool is None:
        raise Invalid("UnknownEipPool", f"eipPool {view.eip_pool} does not exist or is invalid")
    if pool is None:
        return [], {}
    try:
        uplink = ensure_pool(ctx, pool)
    except IpamError as exc:
        raise Invalid(exc.reason, f"pool {pool.name}: {exc.message}") from exc
    block = str(ctx.internal.block(pool.name))
    transit_ip = ctx.internal.transit_ip(pool.name, f"{res.VPCS.kind}/{view.name}")
    subnets = [s for s in net.subnets_of(view.name) if s.name != net.join_subnet]
    snat = tuple(c for s in sorted(subnets, key=lambda s: s.name) if nat_outgoing(net, view, s)
                 for c in s.cidr_strs if ":" not in c)
    rows = build_attachment(AttachSpec(
        vpc=view.name, pool=pool.name, owner=VpcReconciler.owner(view.name), transit_ip=transit_ip,
        transit_cidr=block, snat_cidrs=snat, outside=bool(snat), uplink_ip=uplink,
        default_route=not any(r.cidr in ("0.0.0.0/0", "::/0") for r in view.routes)))
    return rows, {pool.name: transit_ip}


class VpcReconciler(ModelReconciler):
    RESOURCE = res.VPCS
    MODEL = "vpcs"

    def gone(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> Outcome:
        ctx.internal.release_owner(f"{res.VPCS.kind}/{key}")
        return super().gone(ctx, key, obj)

    def reconcile(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> Outcome:
        net = ctx.network()
        err = net.error(res.VPCS.kind, key)
        if err is not None and key != net.default_vpc:
            raise err
        view = net.vpcs[key]
        if err is not None:
            # a bad object named like the default VPC is refused; the default VPC stays as
            # the configuration defines it (the model keeps its plain view)
            outcome = self._build(ctx, net, view, None)
            outcome.effects = invalid_effects(res.VPCS, obj, err)
            outcome.invalid = err
            return outcome
        return self._build(ctx, net, view, obj)

    def _build(self, ctx: Context, net: NetworkModel, view: VpcView,
               obj: dict[str, Any] | None) -> Outcome:
        key = view.name
        rows = build_vpc(VpcSpec(name=key, owner=self.owner(key),
                                 routes=tuple(Route(r.cidr, r.nexthop, r.policy)
                                              for r in view.routes)))
        try:
            attach, transit = attachment(ctx, net, view)
        except Invalid as exc:
            return self.refuse(ctx, key, obj, exc)
        status = {"router": naming.router(key), "lbGroup": naming.lb_group(key),
                  "subnets": sorted(s.name for s in net.subnets_of(key)),
                  "transitIPs": transit}
        return self.ready(key, obj, rows + attach, status)


reconcile_vpc = VpcReconciler()
