"""VPC -> its logical router, its ClusterIP load-balancer group and its static routes."""

from __future__ import annotations

from dataclasses import dataclass

from topology import naming
from topology.model import LoadBalancerGroup, LogicalRouter, Owner, Row, StaticRoute


@dataclass(frozen=True)
class Route:
    cidr: str
    nexthop: str
    policy: str = "dst-ip"  # dst-ip | src-ip


@dataclass(frozen=True)
class VpcSpec:
    name: str
    owner: Owner
    routes: tuple[Route, ...] = ()


def build_vpc(spec: VpcSpec) -> list[Row]:
    router = naming.router(spec.name)
    group = naming.lb_group(spec.name)
    rows: list[Row] = [
        LogicalRouter(name=router, owner=spec.owner, vpc=spec.name),
        LoadBalancerGroup(name=group, owner=spec.owner, vpc=spec.name),
    ]
    rows += [StaticRoute(router=router, ip_prefix=r.cidr, nexthop=r.nexthop, policy=r.policy,
                         owner=spec.owner, vpc=spec.name) for r in spec.routes]
    return rows
