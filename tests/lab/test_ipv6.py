"""IPv6 and dual-stack Services with real packets: a dual-stack subnet of vpc1, backends on
node1 and node2, a RequireDualStack Service (IPv6 first) reached over IPv6 and IPv4 from a
pod of the subnet; the client's address is kept; OVN health-checks the IPv6 backends (SB
Service_Monitor on the IPv6 address) and takes a dead one out; a backend reaching its own
service over IPv6 is SNATed to the IPv6 ClusterIP (hairpin_snat_ip of both families).

Runs on the examples served by the in-process controller (`examples` fixture)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ycloud_lab.scenarios import service_monitors, wait_until

from topology import naming
from ycloud_controller import keys
from ycloud_controller.kube import resources as res

from .conftest import Examples, lb_vips, wait_deleted, wait_vip

pytestmark = pytest.mark.lab

NS, SUBNET = "ns-vpc1", "subnet-ds"
VIP6, VIP4 = "fd00:96::30", "10.96.10.30"
BACKENDS = {"ds-1": "node1", "ds-2": "node2"}
CLIENT = "ds-client"
PORTS = {name: naming.pod_port(NS, name) for name in (*BACKENDS, CLIENT)}


def pod(name: str, node: str, labels: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels,
                         "annotations": {keys.ANN_SUBNET: SUBNET}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "agnhost"}]}}


@pytest.fixture(scope="module")
def dual_stack(examples: Examples) -> Iterator[dict[str, list[str]]]:
    """The subnet, the pods (plugged, servers on [::]:8080) and the Service; {port: IPs}."""
    lab, backend = examples.lab, examples.backend
    backend.create(res.SUBNETS, {
        "apiVersion": "iaas.yusur.io/v1", "kind": "Subnet", "metadata": {"name": SUBNET},
        "spec": {"vpc": "vpc1", "cidrBlock": "10.1.6.0/24,fd00:10:1:6::/64",
                 "gateway": "10.1.6.1,fd00:10:1:6::1"}})
    for name, node in BACKENDS.items():
        backend.create(res.PODS, pod(name, node, {"app": "ds"}))
    backend.create(res.PODS, pod(CLIENT, "node1", {"app": "ds-client"}))
    backend.create(res.SERVICES, {
        "apiVersion": "v1", "kind": "Service", "metadata": {
            "name": "ds", "namespace": NS,
            "annotations": {keys.ANN_HEALTH_CHECK: '{"interval": 1, "failureCount": 2, '
                                                   '"timeout": 1}'}},
        "spec": {"type": "ClusterIP", "clusterIP": VIP6, "clusterIPs": [VIP6, VIP4],
                 "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6", "IPv4"],
                 "selector": {"app": "ds"},
                 "ports": [{"name": "p", "port": 80, "targetPort": 8080}]}})
    servers = []
    try:
        wait_until(lambda: set(PORTS.values()) <= set(lab.cni_sync()), 30, "the pods plugged")
        examples.resolver.refresh()
        ips = {name: examples.resolver.port_ips(port) for name, port in PORTS.items()}
        assert all(len(v) == 2 for v in ips.values()), ips  # one address per family
        for name in BACKENDS:
            servers.append(lab.start_server(PORTS[name], name, "tcp", 8080, bind="::"))
        v6 = sorted(ip for name in BACKENDS for ip in ips[name] if ":" in ip)
        wait_vip(lab, f"[{VIP6}]:80", lambda got: got == [f"[{ip}]" for ip in v6],
                 "both IPv6 backends in the IPv6 VIP")
        yield ips
    finally:
        for server in servers:
            lab.stop_server(server)
        wait_deleted(examples, "Service", "ds", NS)
        for name in (*BACKENDS, CLIENT):
            wait_deleted(examples, "Pod", name, NS)
        wait_until(lambda: not set(PORTS.values()) & set(lab.cni_sync()), 30,
                   "the pods unplugged")
        backend.delete(res.SUBNETS, SUBNET, None)
        wait_until(lambda: backend.get(res.SUBNETS, SUBNET) is None, 10, "the subnet deleted")
        wait_until(lambda: f"[{VIP6}]:80" not in lb_vips(lab), 20, "the ds LB removed")


def v6_of(ips: dict[str, list[str]], name: str) -> str:
    return next(ip for ip in ips[name] if ":" in ip)


def test_dual_stack_service_carries_ipv6_and_ipv4_traffic(
        examples: Examples, dual_stack: dict[str, list[str]]) -> None:
    lab, ips = examples.lab, dual_stack
    client_port = PORTS[CLIENT]
    for vip, client_ip in ((VIP6, v6_of(ips, CLIENT)),
                           (VIP4, next(ip for ip in ips[CLIENT] if "." in ip))):
        replies = lab.requests(client_port, "tcp", vip, 80, count=20)
        assert all(r.ok for r in replies), [str(r) for r in replies]
        assert {r.server for r in replies} == set(BACKENDS), [str(r) for r in replies]
        assert {r.source_ip for r in replies} == {client_ip}  # the client address is kept


def test_ipv6_backends_are_health_checked_and_a_dead_one_is_avoided(
        examples: Examples, dual_stack: dict[str, list[str]]) -> None:
    lab, ips = examples.lab, dual_stack
    dead = v6_of(ips, "ds-2")
    for name in BACKENDS:
        wait_until(lambda n=name: service_monitors(lab).get(f"{v6_of(ips, n)}:8080")
                   == "online", 30, f"OVN's IPv6 health check of {name} online")
    assert lab.stop_server("ds-2")
    try:
        wait_until(lambda: service_monitors(lab).get(f"{dead}:8080") == "offline", 30,
                   "the IPv6 health check of ds-2 offline")
        replies = lab.requests(PORTS[CLIENT], "tcp", VIP6, 80, count=10)
        assert all(r.ok and r.server == "ds-1" for r in replies), [str(r) for r in replies]
    finally:
        lab.start_server(PORTS["ds-2"], "ds-2", "tcp", 8080, bind="::")
    wait_until(lambda: service_monitors(lab).get(f"{dead}:8080") == "online", 30,
               "the IPv6 health check of ds-2 online again")


def test_ipv6_hairpin_is_snated_to_the_ipv6_cluster_ip(
        examples: Examples, dual_stack: dict[str, list[str]]) -> None:
    lab, ips = examples.lab, dual_stack
    seen: dict[str, set[str]] = {}

    def both() -> bool:
        for r in lab.requests(PORTS["ds-1"], "tcp", VIP6, 80, count=10):
            assert r.ok, str(r)
            seen.setdefault(r.server or "", set()).add(r.source_ip or "")
        return set(seen) == set(BACKENDS)

    wait_until(both, 30, "ds-1 answered by both backends through the IPv6 VIP")
    assert seen == {"ds-1": {VIP6}, "ds-2": {v6_of(ips, "ds-1")}}, seen

