"""Vpc -> its router, its ClusterIP load-balancer group and its static routes."""

from __future__ import annotations

from topology import naming
from topology.builders.vpc import Route, VpcSpec, build_vpc
from topology.model import Owner
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import (
    Context,
    Outcome,
    invalid_effects,
    ready_effects,
    refused_effects,
)

KIND = "Vpc"


def owner(name: str) -> Owner:
    return Owner(KIND, name)


def reconcile_vpc(ctx: Context, key: str) -> Outcome:
    net = ctx.network()
    obj = ctx.store(KIND).get(key)
    err = net.error(KIND, key)
    if err is not None:
        return Outcome(rows={owner(key): None}, effects=invalid_effects(res.VPCS, obj, err),
                       invalid=err)
    view = net.vpcs.get(key)
    if view is None:  # deleted (the default VPC always exists)
        return Outcome(rows={owner(key): []})
    rows = build_vpc(VpcSpec(name=key, owner=owner(key),
                             routes=tuple(Route(r.cidr, r.nexthop, r.policy)
                                          for r in view.routes)))
    status = {"router": naming.router(key), "lbGroup": naming.lb_group(key),
              "subnets": sorted(s.name for s in net.subnets_of(key))}
    return Outcome(rows={owner(key): rows}, effects=ready_effects(res.VPCS, obj, status),
                   on_refused=refused_effects(res.VPCS, obj))
