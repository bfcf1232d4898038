"""Bad input: two multi-VPC services on top of the examples, each fine alone, that together
want one service gateway to route a CIDR to two VPCs, on the real controller (FakeKube, a
real NB). The younger is refused with a condition and a Warning Event; the older keeps its
EIP, its link and its route.
"""

from __future__ import annotations

from typing import Any

from fakekube.server import FakeKube
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional.bad_input.support import (
    DEADLINE,
    assert_alive,
    condition,
    create,
    next_second,
    warnings,
)
from tests.functional.conftest import find
from tests.functional.test_controller import running
from topology import naming
from topology.nbsync.client import NbClient
from ycloud_controller.kube import resources as res


def ysvc(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "iaas.yusur.io/v1", "kind": "YusurService",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}], **spec}}


def test_multi_vpc_services_whose_vpcs_overlap_only_together(
        fake: FakeKube, sandbox: Sandbox, nb: NbClient, examples: list[dict[str, Any]],
        corpus: list[dict[str, Any]]) -> None:
    """Each service alone is fine; together they want one service gateway to route
    10.50.0.0/24 to vpc-a and to vpc-b. The younger service is refused with a condition on
    it (not left retrying in silence), the older one keeps its EIP."""
    scaffolding = [o for o in corpus if o["metadata"]["name"] in (
        "bad", "ns-a", "ns-b", "vpc-a", "vpc-b", "sub-a", "sub-b", "near-a", "near-b")]
    create(fake, examples)
    create(fake, scaffolding)
    older = ysvc("older", "bad", type="LoadBalancer", scope="multi-vpc", vpcs=["vpc1", "vpc-b"],
                 selector={"app": "near"}, healthCheck={"enabled": False})
    younger = ysvc("younger", "bad", type="LoadBalancer", scope="multi-vpc",
                   vpcs=["vpc-a", "vpc2"], selector={"app": "near"},
                   healthCheck={"enabled": False})
    with running(fake, sandbox, emulate=True, wait_synced=True) as ctl:
        fake.store.create(res.YUSURSERVICES, older)
        wait_for(lambda: find(sandbox, "Load_Balancer", "name=Service_bad/older_TCP_eip"),
                 timeout=DEADLINE, what="EIP LB of the older service")
        next_second()
        fake.store.create(res.YUSURSERVICES, younger)
        got = wait_for(lambda: condition(fake.store.get(res.YUSURSERVICES, "younger", "bad"))
                       .get("status") == "False" and condition(
                           fake.store.get(res.YUSURSERVICES, "younger", "bad")),
                       timeout=DEADLINE, what="the younger service refused")
        assert got["reason"] == "OverlappingSubnets", got
        wait_for(lambda: "OverlappingSubnets" in warnings(fake).get(
            ("YusurService", "bad", "younger"), ()), timeout=DEADLINE, what="Warning Event")
        assert condition(fake.store.get(res.SERVICES, "younger", "bad"))["reason"] == \
            "OverlappingSubnets"
        assert condition(fake.store.get(res.YUSURSERVICES, "older", "bad"))["status"] == "True"
        # the older service keeps its link to vpc-b and the route of 10.50.0.0/24 through it
        lrps = {p["name"] for p in find(sandbox, "Logical_Router_Port")}
        assert "svcgw-pool1-to-vpc-b" in lrps and "svcgw-pool1-to-vpc-a" not in lrps
        routes = {(r["ip_prefix"], r["nexthop"]) for r in find(
            sandbox, "Logical_Router_Static_Route", f"external_ids:{naming.OWNER}=pool1")}
        link_b = next(p for p in find(sandbox, "Logical_Router_Port",
                                      "name=vpc-b-to-svcgw-pool1"))
        assert ("10.50.0.0/24", link_b["networks"].partition("/")[0]) in routes
        assert find(sandbox, "Load_Balancer", "name=Service_bad/older_TCP_eip")
        assert not find(sandbox, "Load_Balancer", "name=Service_bad/younger_TCP_eip")
        assert_alive(ctl)
