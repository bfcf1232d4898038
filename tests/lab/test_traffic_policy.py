"""Traffic policy Local with real packets on two chassis, built on OVN 23.03 template load
balancers: a Service with a policy Local gets template LBs whose VIPs expand, on each chassis,
to the Chassis_Template_Var variable the Node reconciler writes for it (the backends on that
node).

- internalTrafficPolicy: Local: a client on node1 reaches only the backend on node1, a
  client on node2 only the one on node2 (the VIP's LB runs on the client's chassis).
- externalTrafficPolicy: Local on an EIP of one VPC: the EIP's LB sits on the VPC router and
  runs where its gateway port is active (gw1), so ext1 reaches only the backends on that
  gateway node, with its own address kept; the backend on a worker is never used. gw1
  fails: the port moves to gw2, and ext1 reaches gw2's backend.

Runs on the examples served by the in-process controller (`examples` fixture)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ycloud_lab.ovsdb import rows
from ycloud_lab.scenarios import CLIENT1, EXT_HOST, EXT_IP, wait_until

from topology import naming
from ycloud_controller import keys
from ycloud_controller.kube import resources as res

from .conftest import Examples, chassis_of, lb_vips, wait_deleted, wait_vip
from .test_scenarios_eip import _all_on as all_on

pytestmark = pytest.mark.lab

NS = "ns-vpc1"
ITP_VIP, ETP_VIP, ETP_EIP = "10.96.10.50", "10.96.10.51", "172.18.0.55"


def pod(name: str, node: str, app: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "agnhost"}]}}


def service(name: str, vip: str, app: str, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS,
                         "annotations": {keys.ANN_EIP_POOL: "pool1"}},
            "spec": {"type": "ClusterIP", "clusterIP": vip, "selector": {"app": app},
                     "ports": [{"name": "p", "port": 80, "targetPort": 8080}], **spec}}


@pytest.fixture
def workloads(examples: Examples, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Pods {name: node} (servers on 8080 named after them) and a Service; {name: port}."""
    lab, backend = examples.lab, examples.backend
    pods, svc = request.param
    for name, (node, app) in pods.items():
        backend.create(res.PODS, pod(name, node, app))
    backend.create(res.SERVICES, svc)
    ports = {name: naming.pod_port(NS, name) for name in pods}
    try:
        wait_until(lambda: set(ports.values()) <= set(lab.cni_sync()), 30, "the pods plugged")
        examples.resolver.refresh()
        for name, (_, app) in pods.items():
            if app != "client":
                lab.start_server(ports[name], name, "tcp", 8080)
        yield ports
    finally:
        name = svc["metadata"]["name"]
        wait_deleted(examples, "Service", name, NS)
        for pod_name in pods:
            wait_deleted(examples, "Pod", pod_name, NS)
        wait_until(lambda: not set(ports.values()) & set(lab.cni_sync()), 30,
                   "the pods unplugged")
        vip = svc["spec"]["clusterIP"]
        wait_until(lambda: f"{vip}:80" not in lb_vips(lab), 20, f"{name} removed")


def template_vars(examples: Examples) -> dict[str, dict[str, str]]:
    return {r["chassis"]: r["variables"] for r in rows(
        "ovn-nbctl", examples.lab.nb_remote, "--columns=chassis,variables", "list",
        "Chassis_Template_Var")}


ITP = ({"itp-1": ("node1", "itp"), "itp-2": ("node2", "itp"), "itp-client": ("node2", "client")},
       service("itp", ITP_VIP, "itp", internalTrafficPolicy="Local"))


@pytest.mark.parametrize("workloads", [ITP], indirect=True)
def test_internal_traffic_policy_local_keeps_clients_on_their_node(
        examples: Examples, workloads: dict[str, str]) -> None:
    lab, resolver = examples.lab, examples.resolver
    ips = {name: resolver.port_ips(port)[0] for name, port in workloads.items()}
    wait_vip(lab, f"{ITP_VIP}:80", lambda got: got is not None and len(got) == 1
             and got[0].startswith("^"), "the template LB (its backends a template variable)")
    wait_until(lambda: {ch: [v for v in variables.values() if v]
                        for ch, variables in template_vars(examples).items()
                        if ch in ("node1", "node2")} ==
               {"node1": [f"{ips['itp-1']}:8080"], "node2": [f"{ips['itp-2']}:8080"]},
               20, "each node's template variable holds its own backend")
    lab.wait_hv()
    assert chassis_of(lab, CLIENT1) == "node1"
    for client, want in ((CLIENT1, "itp-1"), (workloads["itp-client"], "itp-2")):
        replies = lab.requests(client, "tcp", ITP_VIP, 80, count=20)
        assert all(r.ok for r in replies), [str(r) for r in replies]
        assert {r.server for r in replies} == {want}, [str(r) for r in replies]


ETP = ({"etp-gw": ("gw1", "etp"), "etp-gw2": ("gw2", "etp"), "etp-worker": ("node1", "etp")},
       service("etp", ETP_VIP, "etp", type="LoadBalancer", loadBalancerIP=ETP_EIP,
               allocateLoadBalancerNodePorts=False, externalTrafficPolicy="Local"))


@pytest.mark.parametrize("workloads", [ETP], indirect=True)
def test_external_traffic_policy_local_uses_the_gateway_nodes_backends_and_keeps_the_client(
        examples: Examples, workloads: dict[str, str]) -> None:
    lab = examples.lab
    wait_vip(lab, f"{ETP_EIP}:80", lambda got: got is not None, "the EIP's LBs")
    lab.wait_hv()

    def answered() -> bool:
        return lab.request(EXT_HOST, "tcp", ETP_EIP, 80, timeout=1).ok

    wait_until(answered, 20, "the EIP answers")
    replies = lab.requests(EXT_HOST, "tcp", ETP_EIP, 80, count=20)
    assert all(r.ok for r in replies), [str(r) for r in replies]
    assert {r.server for r in replies} == {"etp-gw"}, [str(r) for r in replies]
    assert {r.source_ip for r in replies} == {EXT_IP}  # the client address is kept
    # inside the cluster the EIP stays a cluster-wide VIP (pods reach every backend)
    inside = {r.server for r in lab.requests(CLIENT1, "tcp", ETP_EIP, 80, count=30)}
    assert inside == {"etp-gw", "etp-gw2", "etp-worker"}, inside

    # gw1 fails: the gateway port moves to gw2, and the EIP to the backend on gw2
    wait_until(lambda: all_on(lab, "gw1"), 30, "gateway ports on gw1")
    lab.stop_chassis("gw1")
    try:
        wait_until(answered, 30, "the EIP answers through gw2")
        replies = lab.requests(EXT_HOST, "tcp", ETP_EIP, 80, count=20)
        assert all(r.ok for r in replies), [str(r) for r in replies]
        assert {r.server for r in replies} == {"etp-gw2"}, [str(r) for r in replies]
        assert {r.source_ip for r in replies} == {EXT_IP}
    finally:
        lab.start_chassis("gw1")
        wait_until(lambda: all_on(lab, "gw1"), 30, "gateway ports back on gw1")
        lab.wait_hv()
    wait_until(lambda: lab.request(EXT_HOST, "tcp", ETP_EIP, 80, timeout=1).server == "etp-gw",
               30, "the EIP back on gw1's backend")
