"""Tenancy (issue 9): what a YusurService may select, and where a pod may be placed.

- A YusurService selects pods and Vnics by labels in any namespace, but only in the VPCs of
  its scope: `vpc` its one VPC, `multi-vpc` its listed VPCs, `cluster` the default VPC. Labels
  alone never pull in a backend of another VPC.
- A pod of a namespace bound to vpc1 cannot be placed in vpc2's subnet by annotation
  (SubnetNotAllowed: condition and Event, no port in NB), unless that subnet lists the
  namespace.

Checked on both sides: the YusurService's EndpointSlices in Kubernetes, its load balancer's
backends in NB. Runs the examples (vpc1 with ns-vpc1, vpc2 with ns-vpc2, the default VPC) plus
a third VPC, and one pod and one Vnic labeled `tenant: probe` in each VPC.
"""

from __future__ import annotations

from typing import Any

import pytest
from fakekube.server import FakeKube
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional.bad_input.support import (
    DEADLINE,
    EXAMPLES,
    assert_alive,
    condition,
    create,
    load_dir,
    warnings,
)
from tests.functional.conftest import find
from tests.functional.test_controller import running
from topology.nbsync.client import NbClient
from ycloud_controller import keys
from ycloud_controller.kube import resources as res

GROUP = "iaas.yusur.io/v1"
PROBE = {"tenant": "probe"}


def pod(name: str, ns: str, annotations: dict[str, str] | None = None,
        labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or dict(PROBE),
                         "annotations": annotations or {}},
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]}}


def vnic(name: str, ns: str, subnet: str) -> dict[str, Any]:
    return {"apiVersion": GROUP, "kind": "Vnic",
            "metadata": {"name": name, "namespace": ns, "labels": dict(PROBE)},
            "spec": {"subnet": subnet, "node": "node2"}}


def ysvc(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": GROUP, "kind": "YusurService", "metadata": {"name": name,
                                                                     "namespace": ns},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": dict(PROBE),
                     "healthCheck": {"enabled": False}, **spec}}


# workloads labeled tenant=probe, per VPC: (kind, namespace, name)
WORKLOADS = {
    "vpc1": {("Pod", "ns-vpc1", "p1"), ("Vnic", "ns-vpc1", "v1")},
    "vpc2": {("Pod", "ns-vpc2", "p2"), ("Vnic", "ns-vpc2", "v2")},
    "vpc3": {("Pod", "ns-vpc3", "p3")},
    "ovn-cluster": {("Pod", "default", "p0"), ("Vnic", "default", "v0")},
}
# YusurService -> (VPCs it may select from, the VIP its LB serves)
SERVICES = {
    ("ns-vpc1", "in-vpc1"): (("vpc1",), "10.96.30.1:80"),
    # a service living in ns-vpc2 (vpc2's namespace) scoped to vpc1: the scope decides
    ("ns-vpc2", "vpc1-from-vpc2"): (("vpc1",), "10.96.30.2:80"),
    ("ns-vpc1", "in-vpc2"): (("vpc2",), "10.96.30.3:80"),
    ("demo", "both"): (("vpc1", "vpc2"), "172.18.0.70:80"),
    ("ns-vpc3", "cluster"): (("ovn-cluster",), "10.96.30.4:80"),
}


def world() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns-vpc3"}},
        {"apiVersion": GROUP, "kind": "Vpc", "metadata": {"name": "vpc3"},
         "spec": {"namespaces": ["ns-vpc3"]}},
        {"apiVersion": GROUP, "kind": "Subnet", "metadata": {"name": "subnet4"},
         "spec": {"vpc": "vpc3", "cidrBlock": "10.3.1.0/24"}},
        pod("p1", "ns-vpc1"), vnic("v1", "ns-vpc1", "subnet1"),
        pod("p2", "ns-vpc2"), vnic("v2", "ns-vpc2", "subnet3"),
        pod("p3", "ns-vpc3"),
        pod("p0", "default"), vnic("v0", "default", "ovn-default"),
        ysvc("in-vpc1", "ns-vpc1", type="ClusterIP", scope="vpc", vpc="vpc1",
             clusterIP="10.96.30.1"),
        ysvc("vpc1-from-vpc2", "ns-vpc2", type="ClusterIP", scope="vpc", vpc="vpc1",
             clusterIP="10.96.30.2"),
        ysvc("in-vpc2", "ns-vpc1", type="ClusterIP", scope="vpc", vpc="vpc2",
             clusterIP="10.96.30.3"),
        ysvc("both", "demo", type="LoadBalancer", scope="multi-vpc", vpcs=["vpc1", "vpc2"],
             eip="172.18.0.70"),
        ysvc("cluster", "ns-vpc3", type="ClusterIP", scope="cluster", clusterIP="10.96.30.4"),
    ]


def addresses(fake: FakeKube, kind: str, ns: str, name: str) -> set[str]:
    """The addresses the controller gave a pod (annotation) or a Vnic (status)."""
    if kind == "Pod":
        obj = fake.store.get(res.PODS, name, ns)
        ips = (obj["metadata"].get("annotations") or {}).get(keys.ANN_IP, "")
        return {ip for ip in ips.split(",") if ip}
    status = fake.store.get(res.VNICS, name, ns).get("status") or {}
    return {ip for ip in str(status.get("ip", "")).split(",") if ip} | set(
        status.get("extraIPs") or [])


def expected(fake: FakeKube, vpcs: tuple[str, ...]) -> set[str]:
    return {ip for vpc in vpcs for w in WORKLOADS[vpc] for ip in addresses(fake, *w)}


def slice_addresses(fake: FakeKube, ns: str, name: str) -> set[str]:
    slices, _ = fake.store.list(res.ENDPOINTSLICES, ns,
                                label_selector=f"kubernetes.io/service-name={name}")
    return {a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]}


def lb_backends(sandbox: Sandbox, ns: str, name: str, vip: str) -> set[str] | None:
    scope = "eip" if not vip.startswith("10.96.") else "cluster"
    lbs = find(sandbox, "Load_Balancer", f"name=Service_{ns}/{name}_TCP_{scope}")
    if not lbs:
        return None
    raw = (lbs[0]["vips"] or {}).get(vip, "")
    return {b.rpartition(":")[0] for b in raw.split(",") if b}


def selections(fake: FakeKube, sandbox: Sandbox) -> dict[tuple[str, str], tuple]:
    return {key: (slice_addresses(fake, *key), lb_backends(sandbox, *key, vip))
            for key, (_, vip) in SERVICES.items()}


def wanted(fake: FakeKube) -> dict[tuple[str, str], tuple]:
    return {key: (expected(fake, vpcs), expected(fake, vpcs))
            for key, (vpcs, _) in SERVICES.items()}


@pytest.fixture
def placed(fake: FakeKube) -> FakeKube:
    create(fake, load_dir(EXAMPLES))
    create(fake, world())
    return fake


def placed_everywhere(fake: FakeKube) -> bool:
    return all(addresses(fake, *w) for ws in WORKLOADS.values() for w in ws)


def test_scope_decides_which_vpcs_backends_come_from(placed: FakeKube, sandbox: Sandbox,
                                                     nb: NbClient) -> None:
    fake = placed
    with running(fake, sandbox, emulate=True, wait_synced=True) as ctl:
        wait_for(lambda: placed_everywhere(fake), timeout=DEADLINE, what="workloads placed")
        wait_for(lambda: selections(fake, sandbox) == wanted(fake), timeout=DEADLINE,
                 what="every YusurService selecting its scope's workloads only")
        got = selections(fake, sandbox)
        for (ns, name), (vpcs, _) in SERVICES.items():
            others = {ip for vpc in WORKLOADS if vpc not in vpcs
                      for w in WORKLOADS[vpc] for ip in addresses(fake, *w)}
            slices, backends = got[(ns, name)]
            assert slices and not slices & others, (name, slices)
            assert backends and not backends & others, (name, backends)
            status = fake.store.get(res.YUSURSERVICES, name, ns)["status"]
            assert status["totalBackends"] == len(expected(fake, vpcs))

        # a new labeled pod in vpc2 joins the services scoped to vpc2 only, through the watch
        fake.store.create(res.PODS, pod("p2b", "ns-vpc2"))
        WORKLOADS["vpc2"].add(("Pod", "ns-vpc2", "p2b"))
        try:
            wait_for(lambda: addresses(fake, "Pod", "ns-vpc2", "p2b"), timeout=DEADLINE)
            wait_for(lambda: selections(fake, sandbox) == wanted(fake), timeout=DEADLINE,
                     what="p2b selected by the vpc2 services only")
            ip = addresses(fake, "Pod", "ns-vpc2", "p2b").pop()
            assert ip not in selections(fake, sandbox)[("ns-vpc1", "in-vpc1")][1]
            assert ip in selections(fake, sandbox)[("demo", "both")][1]
        finally:
            WORKLOADS["vpc2"].discard(("Pod", "ns-vpc2", "p2b"))
        assert_alive(ctl)


def test_a_pod_cannot_take_another_vpcs_subnet_by_annotation(placed: FakeKube,
                                                             sandbox: Sandbox,
                                                             nb: NbClient) -> None:
    fake = placed
    intruders = [pod("intruder", "ns-vpc1", {keys.ANN_SUBNET: "subnet3"}),
                 pod("intruder", "ns-vpc3", {keys.ANN_SUBNET: "subnet1"}),
                 pod("intruder", "default", {keys.ANN_SUBNET: "subnet4"}),
                 {**vnic("intruder", "ns-vpc2", "subnet4")}]
    create(fake, intruders)
    with running(fake, sandbox, emulate=True, wait_synced=True) as ctl:
        for obj in intruders:
            resource = res.PODS if obj["kind"] == "Pod" else res.VNICS
            ns = obj["metadata"]["namespace"]
            got = wait_for(lambda r=resource, n=ns: condition(fake.store.get(r, "intruder", n))
                           .get("status") == "False" and condition(
                               fake.store.get(r, "intruder", n)), timeout=DEADLINE,
                           what=f"{obj['kind']} {ns}/intruder refused")
            assert got["reason"] == "SubnetNotAllowed", got
            wait_for(lambda k=obj["kind"], n=ns: "SubnetNotAllowed" in warnings(fake).get(
                (k, n, "intruder"), ()), timeout=DEADLINE, what="SubnetNotAllowed Event")
        wait_for(lambda: placed_everywhere(fake), timeout=DEADLINE)
        ports = wait_for(lambda: (names := {p["name"] for p in find(
            sandbox, "Logical_Switch_Port")}) >= {"p1.ns-vpc1", "vnic.v2.ns-vpc2"} and names,
            timeout=DEADLINE, what="the other workloads' ports")
        assert not {p for p in ports if p.startswith("intruder.") or ".intruder." in p}
        # and their labels got them into no service
        wait_for(lambda: selections(fake, sandbox) == wanted(fake), timeout=DEADLINE)
        assert_alive(ctl)


def test_a_subnet_that_lists_the_namespace_lets_the_pod_in(placed: FakeKube, sandbox: Sandbox,
                                                          nb: NbClient) -> None:
    fake = placed
    fake.store.create(res.SUBNETS, {
        "apiVersion": GROUP, "kind": "Subnet", "metadata": {"name": "subnet5"},
        "spec": {"vpc": "vpc2", "cidrBlock": "10.2.5.0/24", "namespaces": ["ns-vpc1"]}})
    fake.store.create(res.PODS, pod("guest", "ns-vpc1", {keys.ANN_SUBNET: "subnet5"}))
    with running(fake, sandbox, emulate=True, wait_synced=True):
        wait_for(lambda: condition(fake.store.get(res.SUBNETS, "subnet5")), timeout=DEADLINE)
        assert condition(fake.store.get(res.SUBNETS, "subnet5"))["status"] == "True", \
            condition(fake.store.get(res.SUBNETS, "subnet5"))
        got = wait_for(lambda: condition(fake.store.get(res.PODS, "guest", "ns-vpc1")),
                       timeout=DEADLINE)
        assert got["status"] == "True", got
        ip = addresses(fake, "Pod", "ns-vpc1", "guest").pop()
        assert ip.startswith("10.2.5.")
        assert find(sandbox, "Logical_Switch_Port", "name=guest.ns-vpc1"), sandbox.nbctl("show")
        # the guest now lives in vpc2: the vpc1 services must not select it, vpc2's do
        wait_for(lambda: ip in (selections(fake, sandbox)[("ns-vpc1", "in-vpc2")][1] or ()),
                 timeout=DEADLINE)
        assert ip not in selections(fake, sandbox)[("ns-vpc1", "in-vpc1")][1]
        # other pods of ns-vpc1 still land in vpc1
        assert addresses(fake, "Pod", "ns-vpc1", "p1").pop().startswith("10.1.1.")
