"""One owner of a multi-VPC service's EIP truth (reconcilers/eip_state.py): the service
gateway's links are planned from the Service index, the network and what is linked, so pools
and Services reconciled in either order give the same rows; and the typed EIP holder."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit import factories as f
from tests.unit.cluster import Cluster
from topology import naming
from topology.model import LogicalSwitch, Owner, Row, StaticRoute
from ycloud_controller.keys import ANN_VPC
from ycloud_controller.reconcilers.base import Outcome
from ycloud_controller.reconcilers.eip_state import EipHolder, link_plan, service_holders
from ycloud_controller.reconcilers.eippool import reconcile_eippool
from ycloud_controller.reconcilers.service import reconcile_service
from ycloud_controller.reconcilers.vpc import reconcile_vpc

POOL = Owner("EipPool", "pool1")
A, B = Owner("Service", "ns/a"), Owner("Service", "ns/b")


def multi(name: str, vpcs: str, eip: str, age: int) -> dict[str, Any]:
    svc = f.service(name, "ns", cluster_ips=[f"10.96.0.{age + 5}"], type="LoadBalancer",
                    loadBalancerIP=eip, annotations={ANN_VPC: vpcs})
    svc["metadata"]["creationTimestamp"] = f"2024-01-01T00:00:{age:02d}Z"
    return svc


def cluster() -> Cluster:
    """a (vpcs v1, v2) and, younger, b (v2, v3): v3's subnet overlaps v1's, so the pool's
    service gateway links v1 and v2 and refuses v3 (b is refused, a is served)."""
    c = Cluster().add(
        f.vpc("v1"), f.vpc("v2"), f.vpc("v3"),
        f.subnet("s1", "10.1.1.0/24", "v1"), f.subnet("s2", "10.2.1.0/24", "v2"),
        f.subnet("s3", "10.1.1.0/25", "v3"),
        f.eippool("pool1", "172.18.0.0/24", "172.18.0.1", default=True),
        multi("a", "v1,v2", "172.18.0.60", 1), multi("b", "v2,v3", "172.18.0.61", 2),
        f.endpoint_slice("a", [f.endpoint("10.1.1.3"), f.endpoint("10.2.1.3")],
                         namespace="ns")).sync_subnets()
    for vpc in (naming.DEFAULT_VPC, "v1", "v2", "v3"):
        reconcile_vpc(c.ctx, vpc)
    return c


def run(order: list[tuple[str, str]]) -> tuple[Cluster, dict[Owner, Outcome]]:
    c = cluster()
    reconcilers = {"EipPool": reconcile_eippool, "Service": reconcile_service}
    outcomes = {Owner(kind, key): reconcilers[kind](c.ctx, key) for kind, key in order}
    return c, outcomes


def rows(out: Outcome, owner: Owner) -> list[Row]:
    return list(out.rows[owner] or ())


POOL_FIRST = [("EipPool", "pool1"), ("Service", "ns/a"), ("Service", "ns/b")]
SERVICES_FIRST = [("Service", "ns/b"), ("Service", "ns/a"), ("EipPool", "pool1")]


def test_pools_and_services_in_either_order_give_the_same_rows() -> None:
    c1, first = run(POOL_FIRST)
    c2, last = run(SERVICES_FIRST)
    for owner in (POOL, A, B):
        assert rows(first[owner], owner) == rows(last[owner], owner), owner
        assert [r.external_ids() for r in rows(first[owner], owner)] == \
            [r.external_ids() for r in rows(last[owner], owner)]
    assert c1.ctx.internal.links == c2.ctx.internal.links
    # and what they are: a served over links to v1 and v2, b refused for v3
    for out in (first, last):
        assert out[A].invalid is None and out[A].retry is None
        assert out[B].invalid is not None and out[B].invalid.reason == "OverlappingSubnets"
        switches = {r.name for r in rows(out[POOL], POOL) if isinstance(r, LogicalSwitch)}
        assert {naming.svcgw_link_switch("pool1", v) for v in ("v1", "v2")} <= switches
        assert naming.svcgw_link_switch("pool1", "v3") not in switches
        routes = {(r.router, r.nexthop) for r in rows(out[A], A) if isinstance(r, StaticRoute)
                  and r.router != naming.eip_gateway("pool1")}
        # its backend VPCs and the pool's other attached VPC (the default VPC: a client)
        assert routes == {(naming.router(v), str(c1.ctx.internal.links[("pool1", v)][1]))
                          for v in ("v1", "v2", naming.DEFAULT_VPC)}
        refusals = [e.message for e in out[POOL].effects if getattr(e, "reason", "") ==
                    "LinkRefused"]
        assert refusals == [out[B].invalid.message]


def test_a_plan_computed_again_is_the_same_plan() -> None:
    c, _ = run(POOL_FIRST)
    plan = link_plan(c.ctx, "pool1")
    assert link_plan(c.ctx, "pool1") == plan
    assert [link.vpc for link in plan.links] == ["v1", "v2"]
    assert plan.refusal("v3") is not None and plan.refusal("v3")[0] == "OverlappingSubnets"
    assert [link.vpc for link in plan.clients] == [naming.DEFAULT_VPC]


def test_every_attached_vpc_is_linked_while_the_pool_has_multi_vpc_services() -> None:
    """A VPC that backs no service of the pool gets a link too (its pods reach the EIPs over
    it), after every backend VPC: a client overlapping a backend VPC is the one refused."""
    c, _ = run(POOL_FIRST)
    c.add(f.vpc("v4"), f.subnet("s4", "10.4.1.0/24", "v4"),
          f.vpc("v5"), f.subnet("s5", "10.2.1.0/25", "v5"),  # overlaps v2, a backend VPC
          f.vpc("v6")).sync_subnets()  # no subnet: no pods to link
    plan = link_plan(c.ctx, "pool1")
    assert [link.vpc for link in plan.links] == ["v1", "v2"]
    assert [link.vpc for link in plan.clients] == [naming.DEFAULT_VPC, "v4"]
    assert plan.refusal("v5") is not None and plan.refusal("v5")[0] == "OverlappingSubnets"
    assert plan.link("v4") is None  # a client is not one of the services' VPCs
    out = reconcile_service(c.ctx, "ns/a")
    routed = {r.router for r in rows(out, A) if isinstance(r, StaticRoute)}
    assert naming.router("v4") in routed and naming.router("v5") not in routed
    gateway = reconcile_eippool(c.ctx, "pool1")
    switches = {r.name for r in rows(gateway, POOL) if isinstance(r, LogicalSwitch)}
    assert naming.svcgw_link_switch("pool1", "v4") in switches
    assert naming.svcgw_link_switch("pool1", "v5") not in switches
    # the services go: no users, no clients, and the pool frees every link address
    c.remove("Service", "ns/a")
    c.remove("Service", "ns/b")
    assert link_plan(c.ctx, "pool1") == link_plan(c.ctx, "pool1", release=True)
    assert link_plan(c.ctx, "pool1").every_link == ()
    assert c.ctx.internal.links == {}


def test_a_client_vpc_never_refuses_a_backend_vpc() -> None:
    """A client VPC linked first yields its link to a newer service's backend VPC that
    overlaps it."""
    c, _ = run(POOL_FIRST)
    c.add(f.vpc("v7"), f.subnet("s7", "10.7.1.0/24", "v7")).sync_subnets()
    reconcile_eippool(c.ctx, "pool1")
    assert ("pool1", "v7") in c.ctx.internal.links  # linked as a client
    c.add(f.vpc("v8"), f.subnet("s8", "10.7.1.0/25", "v8")).sync_subnets()
    c.add(multi("c", "v1,v8", "172.18.0.63", 3))
    plan = link_plan(c.ctx, "pool1")
    assert "v8" in {link.vpc for link in plan.links}
    assert plan.refusal("v7") is not None and plan.refusal("v7")[0] == "OverlappingSubnets"


def test_a_linked_vpc_keeps_its_link_when_an_older_service_wants_an_overlapping_one() -> None:
    c, _ = run(POOL_FIRST)
    before = dict(c.ctx.internal.links)
    c.add(multi("old", "v3,v2", "172.18.0.62", 0))  # older than a, but v1 is linked
    plan = link_plan(c.ctx, "pool1")
    assert {link.vpc for link in plan.links} == {"v1", "v2"} and plan.refusal("v3")
    assert c.ctx.internal.links == before


def test_only_multi_vpc_loadbalancer_services_are_users() -> None:
    c = cluster()
    c.add(f.service("one", "ns", cluster_ips=["10.96.0.20"], type="LoadBalancer",
                    annotations={ANN_VPC: "v1"}),
          f.service("cip", "ns", cluster_ips=["10.96.0.21"], annotations={ANN_VPC: "v1,v2"}))
    users = c.ctx.store("Service").by_index("multi-vpc", "multi-vpc")
    assert sorted(u["metadata"]["name"] for u in users) == ["a", "b"]


@pytest.mark.parametrize("holder", [EipHolder.service("ns/web"), EipHolder.uplink("pool1")])
def test_eip_holder_round_trips(holder: EipHolder) -> None:
    assert EipHolder.parse(str(holder)) == holder
    assert holder.is_service == (holder.kind == "Service")


def test_service_holders_of_a_pool() -> None:
    c, _ = run(POOL_FIRST)
    assert service_holders(c.ctx, "pool1") == {"172.18.0.60": EipHolder.service("ns/a"),
                                               "172.18.0.61": EipHolder.service("ns/b")}


def test_only_the_pool_reconcile_frees_link_addresses() -> None:
    """A link address is freed when the pool rewrites its gateway's rows, not when a Service
    computes the plan: NB never has one address on two links."""
    c, _ = run(POOL_FIRST)
    held = dict(c.ctx.internal.links)
    c.remove("Service", "ns/a")
    c.remove("Service", "ns/b")
    assert link_plan(c.ctx, "pool1").links == ()
    assert c.ctx.internal.links == held
    out = reconcile_eippool(c.ctx, "pool1")
    assert not [r for r in rows(out, POOL) if isinstance(r, LogicalSwitch)
                and r.name.startswith(naming.svcgw_link_switch("pool1", ""))]
    assert c.ctx.internal.links == {}


def test_the_first_clash_is_the_one_a_scan_of_every_pair_finds() -> None:
    """Taken finds overlaps by bisection; it reports the clash the plain scan reported (the
    first taken subnet, in order, then the first of the new VPC's subnets), also once two
    taken subnets of one VPC overlap each other."""
    from ycloud_controller.api.common import overlaps
    from ycloud_controller.api.subnet import config_subnet
    from ycloud_controller.reconcilers.eip_state import Taken

    def scan(taken: list[tuple[str, Any]], subnets: list[Any]) -> tuple[str, str, str] | None:
        hit = next(((v, o, s) for v, o in taken for s in subnets
                    if overlaps(o.cidrs, s.cidrs)), None)
        return None if hit is None else (hit[0], hit[1].name, hit[2].name)

    cidrs = ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/23", "10.0.4.0/22", "10.0.0.0/16",
             "10.0.3.128/25", "10.1.0.0/24", "fd00::/64", "fd00::/48", "10.0.8.0/24"]
    groups = [cidrs[k:k + 3] for k in range(0, len(cidrs), 3)]
    for order in (groups, groups[::-1], [groups[1], groups[3], groups[0], groups[2]]):
        taken, plain = Taken(), []
        for n, group in enumerate(order):
            vpc = f"v{n}"
            subnets = [config_subnet(f"{vpc}-{i}", c, vpc) for i, c in enumerate(group)]
            found = taken.first_clash(subnets)
            assert (None if found is None else (found[0], found[1].name, found[2].name)) \
                == scan(plain, subnets)
            for s in subnets:  # as _plan_link does only without a clash; here always
                taken.add(vpc, s)
                plain.append((vpc, s))
    assert not taken.disjoint
