"""The network model: every VPC, subnet and EIP pool, validated together.

`build_network` is a pure function of the Vpc, Subnet and EipPool objects and the config. It
decides, deterministically, which objects are valid: an object that conflicts with another
(overlapping CIDRs in one VPC, two default subnets, a namespace bound twice) loses to the one
that ranks first by `Precedence` (the holder NB records, then the older in cluster mode, then
the name: ycloud_controller.precedence), and gets a reason instead. Reconcilers read the
model; they never re-validate across objects themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ycloud_controller.api.common import Invalid, IPNetwork, name_of, overlaps
from ycloud_controller.api.eippool import EipPoolView, parse_eippool
from ycloud_controller.api.subnet import SubnetView, config_subnet, parse_subnet
from ycloud_controller.api.vpc import VpcView, parse_vpc
from ycloud_controller.config import Config
from ycloud_controller.precedence import Precedence


@dataclass
class NetworkModel:
    default_vpc: str
    join_subnet: str
    default_subnet: str
    vpcs: dict[str, VpcView] = field(default_factory=dict)
    subnets: dict[str, SubnetView] = field(default_factory=dict)
    pools: dict[str, EipPoolView] = field(default_factory=dict)
    errors: dict[tuple[str, str], Invalid] = field(default_factory=dict)  # (kind, name)
    namespace_vpc: dict[str, str] = field(default_factory=dict)
    namespace_subnet: dict[str, str] = field(default_factory=dict)
    config_subnets: frozenset[str] = frozenset()

    def vpc_of_namespace(self, namespace: str) -> str:
        return self.namespace_vpc.get(namespace, self.default_vpc)

    def subnets_of(self, vpc: str) -> list[SubnetView]:
        return [s for s in self.subnets.values() if s.vpc == vpc]

    def default_pool(self) -> EipPoolView | None:
        marked = sorted(p.name for p in self.pools.values() if p.default)
        if marked:
            return self.pools[marked[0]]
        return self.pools[sorted(self.pools)[0]] if len(self.pools) == 1 else None

    def pool_for(self, name: str | None) -> EipPoolView | None:
        return self.pools.get(name) if name else self.default_pool()

    def error(self, kind: str, name: str) -> Invalid | None:
        return self.errors.get((kind, name))


def _no_claim(view: Any) -> tuple[IPNetwork, ...]:
    return ()


def _parsed(kind: str, objs: Iterable[dict], parse: Callable[[dict], Any],
            precedence: Precedence, claim: Callable[[Any], tuple[IPNetwork, ...]] = _no_claim,
            ) -> list[tuple[dict, Any]]:
    """(object, its view or the Invalid it raised), in precedence order. `claim`: the CIDRs
    a valid view asks for (subnets, pools), held only where NB records an overlapping
    range for the object."""
    out = []
    for obj in objs:
        try:
            view = parse(obj)
        except Invalid as exc:
            view = exc
        out.append((obj, view))
    ranking = precedence.ranking()
    return sorted(out, key=lambda ov: ranking.rank(
        kind, ov[0], () if isinstance(ov[1], Invalid) else claim(ov[1])))


def build_network(vpcs: Iterable[dict], subnets: Iterable[dict], pools: Iterable[dict],
                  cfg: Config, retired: frozenset[str] = frozenset(),
                  precedence: Precedence = Precedence()) -> NetworkModel:
    """`retired`: pools being deleted that nothing uses any more; they leave the model so
    that VPCs detach from them before their own rows go."""
    model = NetworkModel(default_vpc=cfg.default_vpc, join_subnet=cfg.join_subnet.name,
                         default_subnet=cfg.default_subnet.name)
    model.vpcs[cfg.default_vpc] = VpcView(name=cfg.default_vpc)
    for obj, view in _parsed("Vpc", vpcs, parse_vpc, precedence):
        name = name_of(obj)
        if isinstance(view, Invalid):
            model.errors[("Vpc", name)] = view
            continue
        if name == cfg.default_vpc:
            view = VpcView(name=name, routes=view.routes, nat_outgoing=view.nat_outgoing,
                           eip_pool=view.eip_pool)
        taken = [ns for ns in view.namespaces if ns in model.namespace_vpc]
        if taken:
            model.errors[("Vpc", name)] = Invalid(
                "NamespaceConflict", f"namespace {taken[0]} is already bound to VPC "
                                     f"{model.namespace_vpc[taken[0]]}")
            continue
        model.vpcs[name] = view
        for ns in view.namespaces:
            model.namespace_vpc[ns] = name
    for sub in (config_subnet(cfg.join_subnet.name, cfg.join_subnet.cidr, cfg.default_vpc),
                config_subnet(cfg.default_subnet.name, cfg.default_subnet.cidr, cfg.default_vpc)):
        model.subnets[sub.name] = sub
    model.config_subnets = frozenset(model.subnets)
    for obj, view in _parsed("Subnet", subnets, lambda o: parse_subnet(o, cfg.default_vpc),
                             precedence, lambda v: v.cidrs):
        name = name_of(obj)
        if name in model.config_subnets:
            model.errors[("Subnet", name)] = Invalid(
                "ReservedName", f"subnet {name} is defined by the controller configuration")
            continue
        try:
            if isinstance(view, Invalid):
                raise view
            _check_subnet(model, view)
        except Invalid as exc:
            model.errors[("Subnet", name)] = exc
            continue
        model.subnets[name] = view
        if view.default:
            model.default_subnet = name
        for ns in _binds(model, view):
            model.namespace_subnet[ns] = name
            if view.vpc != cfg.default_vpc:
                model.namespace_vpc.setdefault(ns, view.vpc)
    for obj, pool in _parsed("EipPool", pools, parse_eippool, precedence,
                             lambda p: (p.cidr,)):
        name = name_of(obj)
        if name in retired:
            continue
        try:
            if isinstance(pool, Invalid):
                raise pool
            clash = next((p for p in model.pools.values() if overlaps([p.cidr], [pool.cidr])),
                         None)
            if pool.default and any(p.default for p in model.pools.values()):
                raise Invalid("DefaultConflict", "another EipPool is already the default")
            if clash is not None:
                raise Invalid("CIDRConflict", f"cidr {pool.cidr} overlaps EipPool {clash.name} "
                                              f"({clash.cidr})")
        except Invalid as exc:
            model.errors[("EipPool", name)] = exc
            continue
        model.pools[name] = pool
    return model


def _check_subnet(model: NetworkModel, view: SubnetView) -> None:
    if view.vpc not in model.vpcs:
        raise Invalid("UnknownVPC", f"VPC {view.vpc} does not exist or is invalid")
    for other in model.subnets_of(view.vpc):
        if overlaps(other.cidrs, view.cidrs):
            raise Invalid("CIDRConflict",
                          f"cidrBlock {','.join(view.cidr_strs)} overlaps subnet {other.name} "
                          f"({','.join(other.cidr_strs)}) in VPC {view.vpc}")
    if view.default and view.vpc != model.default_vpc:
        raise Invalid("InvalidDefault", "only a subnet of the default VPC can be default")
    if view.default and model.default_subnet not in model.config_subnets:
        raise Invalid("DefaultConflict", f"subnet {model.default_subnet} is already the "
                                         "default subnet")
    bound = [ns for ns in _binds(model, view) if ns in model.namespace_subnet]
    if bound:
        raise Invalid("NamespaceConflict", f"namespace {bound[0]} is already bound to subnet "
                                           f"{model.namespace_subnet[bound[0]]}")


def _binds(model: NetworkModel, view: SubnetView) -> list[str]:
    """The namespaces a subnet binds (their pods' default subnet). A namespace of another
    VPC that the subnet lists is not bound, only allowed in: its pods may ask for the subnet
    with the ycloud.io/subnet annotation (tenancy check in reconcilers/pod.py)."""
    return [ns for ns in view.namespaces if model.namespace_vpc.get(ns, view.vpc) == view.vpc]
