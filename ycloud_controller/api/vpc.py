"""Vpc (iaas.yusur.io/v1, cluster scoped): a logical router and the namespaces bound to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ycloud_controller.api.common import (
    Invalid,
    bool_field,
    name_of,
    parse_cidrs,
    parse_ip,
    spec,
    str_list,
)

POLICIES = {"dst": "dst-ip", "src": "src-ip", "dst-ip": "dst-ip", "src-ip": "src-ip"}


@dataclass(frozen=True)
class StaticRoute:
    cidr: str
    nexthop: str
    policy: str


@dataclass(frozen=True)
class VpcView:
    name: str
    namespaces: tuple[str, ...] = ()
    routes: tuple[StaticRoute, ...] = ()
    nat_outgoing: bool | None = None
    eip_pool: str | None = None


def parse_vpc(obj: dict[str, Any]) -> VpcView:
    s = spec(obj)
    name = name_of(obj)
    routes = []
    raw_routes = s.get("staticRoutes") or []
    if not isinstance(raw_routes, list):
        raise Invalid("InvalidRoute", "staticRoutes must be a list")
    for i, r in enumerate(raw_routes):
        if not isinstance(r, dict):
            raise Invalid("InvalidRoute", f"staticRoutes[{i}] must be an object")
        cidr = parse_cidrs(r.get("cidr"), f"staticRoutes[{i}].cidr", 1)[0]
        hop = parse_ip(r.get("nextHop"), f"staticRoutes[{i}].nextHop")
        if hop.version != cidr.version:
            raise Invalid("InvalidRoute", f"staticRoutes[{i}]: nextHop {hop} and cidr {cidr} "
                                          "are of different IP families")
        policy = POLICIES.get(str(r.get("policy", "dst")))
        if policy is None:
            raise Invalid("InvalidRoute", f"staticRoutes[{i}].policy must be dst or src")
        routes.append(StaticRoute(str(cidr), str(hop), policy))
    pool = s.get("eipPool")
    return VpcView(name=name, namespaces=str_list(s.get("namespaces"), "namespaces"),
                   routes=tuple(routes),
                   nat_outgoing=bool_field(s.get("natOutgoing"), "natOutgoing"),
                   eip_pool=str(pool) if pool else None)
