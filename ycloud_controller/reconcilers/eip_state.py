"""EIP pools' shared state, each part with one owner: who holds an address of a pool
(`EipHolder`), which Services use a pool's service gateway (`MULTI_VPC_INDEX`, an index of the
Service store), and the gateway's links to their VPCs (`link_plan`).

While a pool has multi-VPC services, its service gateway links every VPC attached to the pool,
not only their backend VPCs: a VPC's pods then reach a multi-VPC EIP over the VPC's own link
(one chassis hop to svcgw, four conntrack recirculations there), where the path through the
transit switch (the VPC gateway port's SNAT, eipgw, svcgw) needs one recirculation more than
the userspace datapath allows (README, Known limits: recirculations per path). The links of
backend VPCs ("users") come first; a client VPC never takes a link from a user.

The links of a pool's service gateway are a function of what is, not of who looked first:
the multi-VPC LoadBalancer Services of the pool (the index: the informer keeps it, whatever
is reconciled), the network model, the precedence of those Services, and the links the gateway
already has (its link addresses, restored from NB at start: a VPC linked keeps its link, a
newcomer whose subnets overlap it is refused). The EipPool reconciler builds the gateway's
rows from the plan and each multi-VPC Service reconciler its routes over it: both compute the
same plan, allocating the same link addresses whichever comes first, so the order in which
pools and Services are reconciled does not matter. Computing a plan again with nothing
changed gives the same plan (the linked VPCs come first and keep refusing what they refused).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, ClassVar

from topology import naming
from topology.builders.service_gateway import Link
from ycloud_controller import keys
from ycloud_controller.api.common import Invalid, key_of, meta
from ycloud_controller.api.eippool import EipPoolView
from ycloud_controller.api.service import ServiceView, parse_service
from ycloud_controller.api.subnet import SubnetView
from ycloud_controller.network import NetworkModel
from ycloud_controller.reconcilers.base import Context

MULTI_VPC_INDEX = "multi-vpc"  # index of the Service store, and its one value


@dataclass(frozen=True)
class EipHolder:
    """Who holds an address of an EIP pool in `Context.eips`: a LoadBalancer Service (its
    EIP) or the pool itself (its uplink address). `str()` is the allocator's owner string."""

    SERVICE: ClassVar[str] = "Service"
    UPLINK: ClassVar[str] = "EipPool"

    kind: str
    key: str  # namespace/name of the Service, or the pool's name

    @classmethod
    def service(cls, key: str) -> EipHolder:
        return cls(cls.SERVICE, key)

    @classmethod
    def uplink(cls, pool: str) -> EipHolder:
        return cls(cls.UPLINK, pool)

    @classmethod
    def parse(cls, owner: str) -> EipHolder:
        kind, _, key = owner.partition("/")
        return cls(kind, key)

    @property
    def is_service(self) -> bool:
        return self.kind == self.SERVICE

    def __str__(self) -> str:
        return f"{self.kind}/{self.key}"


def service_holders(ctx: Context, pool: str) -> dict[str, EipHolder]:
    """EIP -> the Service holding it, for one pool."""
    out = {}
    for owner, alloc in ctx.eips.owners().items():
        holder = EipHolder.parse(owner)
        if alloc.subnet == pool and holder.is_service:
            out[str(alloc.ips[0])] = holder
    return out


def pool_of_service(net: NetworkModel, svc: ServiceView) -> EipPoolView | None:
    if svc.eip_pool:
        return net.pools.get(svc.eip_pool)
    if svc.load_balancer_ip is not None:
        found = [p for p in net.pools.values() if p.contains(svc.load_balancer_ip)]
        if found:
            return found[0]
    return net.default_pool()


def multi_vpc_index(obj: dict[str, Any]) -> list[str]:
    """Index function for Services: a LoadBalancer Service of several VPCs (a user of a
    service gateway) is indexed under MULTI_VPC_INDEX."""
    if (obj.get("spec") or {}).get("type") != "LoadBalancer":
        return []
    vpcs = str((meta(obj).get("annotations") or {}).get(keys.ANN_VPC, "")).split(",")
    return [MULTI_VPC_INDEX] if len([v for v in vpcs if v]) > 1 else []


def multi_vpc_users(ctx: Context, pool: str) -> dict[str, list[dict[str, Any]]]:
    """VPC -> the multi-VPC LoadBalancer Services of this pool with backends in it."""
    net = ctx.network()
    users: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for obj in ctx.store("Service").by_index(MULTI_VPC_INDEX, MULTI_VPC_INDEX):
        try:
            svc = parse_service(obj)
        except Invalid:
            continue
        chosen = pool_of_service(net, svc)
        if len(svc.vpcs) > 1 and chosen is not None and chosen.name == pool:
            for vpc in svc.vpcs:
                users[vpc].append(obj)
    return users


def attached_vpcs(net: NetworkModel, pool: str) -> list[str]:
    """The VPCs attached to the pool (spec.eipPool, else the default pool), by name."""
    return sorted(name for name, view in net.vpcs.items()
                  if (chosen := net.pool_for(view.eip_pool)) is not None and chosen.name == pool)


@dataclass(frozen=True)
class LinkPlan:
    """A pool's service-gateway links, and the VPCs refused one: vpc -> (reason, message).
    `links`: to the backend VPCs of the pool's multi-VPC services; `clients`: to the other
    VPCs attached to the pool (their pods reach the multi-VPC EIPs over them)."""

    links: tuple[Link, ...]
    refused: tuple[tuple[str, tuple[str, str]], ...] = ()
    clients: tuple[Link, ...] = ()

    @property
    def every_link(self) -> tuple[Link, ...]:
        return self.links + self.clients

    def link(self, vpc: str) -> Link | None:
        return next((link for link in self.links if link.vpc == vpc), None)

    def refusal(self, vpc: str) -> tuple[str, str] | None:
        return dict(self.refused).get(vpc)


def link_plan(ctx: Context, pool: str, release: bool = False) -> LinkPlan:
    """The links of the pool's service gateway to the VPCs its multi-VPC services use and,
    while it has any, to every other VPC attached to the pool (link addresses allocated;
    with `release`, the pool's reconcile, which rewrites the gateway's rows, also frees those
    of VPCs no longer linked: an address is never handed to another link while NB still has
    it). VPCs already linked come first, then the others in the precedence of their first
    service (ycloud_controller.precedence), so a VPC whose subnets overlap a linked VPC's is
    the one refused: a newcomer never takes a link from a holder. Attached VPCs that back no
    service come after every user (linked first, then by name): a client never refuses a
    user. A link kept for a VPC no longer used changes no decision: only users are ordered."""
    net = ctx.network()
    users = multi_vpc_users(ctx, pool)
    linked = {vpc for (p, vpc) in ctx.internal.links if p == pool}
    ranking = ctx.precedence.ranking()
    ranks = {key_of(o): ranking.rank("Service", o) for objs in users.values() for o in objs}
    order = sorted(users, key=lambda v: (v not in linked,
                                         min(ranks[key_of(o)] for o in users[v]), v))
    clients = sorted((v for v in attached_vpcs(net, pool) if v not in users) if users else (),
                     key=lambda v: (v not in linked, v))
    taken = Taken()
    refused: dict[str, tuple[str, str]] = {}
    planned: dict[str, list[Link]] = {"users": [], "clients": []}
    for role, vpcs in (("users", order), ("clients", clients)):
        for vpc in vpcs:
            link = _plan_link(ctx, net, pool, vpc, taken, refused, role == "clients")
            if link is not None:
                planned[role].append(link)
    kept = {link.vpc for links in planned.values() for link in links}
    for (p, vpc) in list(ctx.internal.links) if release else ():
        if p == pool and vpc not in kept:
            ctx.internal.release_link(pool, vpc)
    return LinkPlan(tuple(planned["users"]), tuple(refused.items()), tuple(planned["clients"]))


class Taken:
    """The subnets linked so far (vpc, subnet), in order, with their address ranges sorted:
    the first of them a subnet overlaps is found by bisection, not by a scan of every pair
    (at 100 VPCs of 20 subnets the scan was 2 million `overlaps` per link_plan, and every
    LoadBalancer Service's reconcile plans its pool's links: minutes of a cold sync)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, SubnetView]] = []
        # per IP version: (first, last, entry index) sorted by first; while no two ranges
        # overlap (always, but for overlapping subnets of one VPC) the lasts are sorted too
        self.ranges: dict[int, list[tuple[int, int, int]]] = {4: [], 6: []}
        self.disjoint = True

    def add(self, vpc: str, subnet: SubnetView) -> None:
        index = len(self.entries)
        self.entries.append((vpc, subnet))
        for cidr in subnet.cidrs:
            first, last = int(cidr.network_address), int(cidr.broadcast_address)
            ranges = self.ranges[cidr.version]
            if self._hits(ranges, first, last):
                self.disjoint = False
            bisect.insort(ranges, (first, last, index))

    def _hits(self, ranges: list[tuple[int, int, int]], first: int, last: int) -> list[int]:
        """Entry indexes of the ranges that overlap [first, last]."""
        if not self.disjoint:
            return [i for a, b, i in ranges if a <= last and b >= first]
        hi = bisect.bisect_right(ranges, (last, 1 << 129, 0))
        out = []
        for k in range(hi - 1, -1, -1):  # disjoint: the overlapping ones end the prefix
            a, b, i = ranges[k]
            if b < first:
                break
            out.append(i)
        return out

    def first_clash(self, subnets: list[SubnetView]) -> tuple[str, SubnetView, SubnetView] | None:
        """(vpc, taken subnet, one of `subnets`) of the first taken subnet, in order, that
        one of `subnets` overlaps (the first of those), as a scan of every pair finds it."""
        best: tuple[int, int] | None = None
        for k, s in enumerate(subnets):
            for cidr in s.cidrs:
                for i in self._hits(self.ranges[cidr.version], int(cidr.network_address),
                                    int(cidr.broadcast_address)):
                    if best is None or (i, k) < best:
                        best = (i, k)
        if best is None:
            return None
        vpc, other = self.entries[best[0]]
        return vpc, other, subnets[best[1]]


def _plan_link(ctx: Context, net: NetworkModel, pool: str, vpc: str, taken: Taken,
               refused: dict[str, tuple[str, str]], client: bool) -> Link | None:
    """One VPC's link, or its refusal (in `refused`); `taken` holds the subnets linked so far.
    A client VPC without IPv4 subnets has no pods to link."""
    if vpc not in net.vpcs:
        refused[vpc] = ("UnknownVPC", f"VPC {vpc} does not exist")
        return None
    subnets = [s for s in net.subnets_of(vpc) if s.name != net.join_subnet]
    clash = taken.first_clash(subnets)
    if clash is not None:
        other_vpc, other, mine = clash
        refused[vpc] = ("OverlappingSubnets",
                        f"subnet {mine.name} of VPC {vpc} overlaps subnet {other.name} of "
                        f"VPC {other_vpc}: service gateway {naming.service_gateway(pool)} "
                        "cannot route both")
        return None
    cidrs = tuple(c for s in subnets for c in s.cidr_strs if ":" not in c)
    if client and not cidrs:
        return None
    for s in subnets:
        taken.add(vpc, s)
    return Link(vpc=vpc, cidr=str(ctx.internal.link(pool, vpc)), subnets=cidrs)
