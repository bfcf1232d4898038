"""Health checks with real packets: YusurService backends (pods and a Vnic) behind a VIP and
behind a multi-VPC EIP; a backend that stops answering leaves the service within
interval x failureCount + 1 s (the service's own healthCheck numbers) and its NetworkProbe
says Offline; started again, it comes back and the probe says Online.

Runs on the examples served by the in-process controller (`examples` fixture)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest
from ycloud_lab.scenarios import (
    CHECKS_BY_ID,
    CLIENT1,
    EXT_HOST,
    MULTI_EIP,
    ServerSpec,
    Target,
    service_monitors,
    wait_check,
    wait_until,
)

from topology import naming
from ycloud_controller.kube import resources as res

from .conftest import Examples, lb_vips, wait_deleted, wait_vip

pytestmark = pytest.mark.lab

IPERF1, VM1 = naming.pod_port("ns-vpc1", "iperf-1"), naming.vnic_port("ns-vpc1", "vm-1")


def _probe_state(examples: Examples, namespace: str, ip: str, port: int) -> dict:
    probe = examples.controller.probe_for(namespace, ip, port)
    return (probe or {}).get("status") or {}


def _offline_and_avoided(examples: Examples, namespace: str, ip: str, port: int,
                         client: str, vip: str, vport: int, dead: str) -> bool:
    """The probe of ip:port says Offline, and 10 new connections through vip all answer from
    other backends."""
    status = _probe_state(examples, namespace, ip, port)
    if status.get("state") != "Offline" or status.get("healthy") is not False:
        return False
    replies = examples.lab.requests(client, "tcp", vip, vport, count=10, timeout=1)
    return all(r.ok and r.server != dead for r in replies)


def _online(examples: Examples, namespace: str, ips: list[str], port: int) -> bool:
    return all(_probe_state(examples, namespace, ip, port).get("state") == "Online"
               and _probe_state(examples, namespace, ip, port).get("healthy") is True
               for ip in ips)


def test_ysvc1_answers_on_its_vip_from_a_pod_and_a_vnic(examples: Examples) -> None:
    """The reference YusurService: one pod and one Vnic with two IPs, bound in ns-vpc1."""
    lab, resolver = examples.lab, examples.resolver
    row = examples.check("ysvc1", batch=20, most=60)
    assert row.ok, row
    assert set(row.answered) == {"iperf-1", "vm-1"}, row
    vnic_ips = resolver.port_ips(VM1)
    assert len(vnic_ips) == 2  # the Vnic's address and its extra IP 10.1.1.200
    backends = sorted([resolver.port_ips(IPERF1)[0], *vnic_ips])
    vip = resolver.target_ip(CHECKS_BY_ID["ysvc1"].target, 5001)
    assert lb_vips(lab)[f"{vip}:5001"] == backends
    # one NetworkProbe per backend address; OVN probes them (defaults: every 5 s)
    wait_until(lambda: _online(examples, "default", backends, 5001), 30,
               "ysvc1's three NetworkProbes Online")
    for ip in vnic_ips:  # both Vnic addresses are really there
        reply = lab.request(CLIENT1, "tcp", ip, 5001)
        assert reply.ok and reply.server == "vm-1", reply


FAST = {"interval": 1, "failureCount": 2, "timeout": 1}


@pytest.fixture
def ysvc_fast(examples: Examples) -> Iterator[tuple[str, dict]]:
    """A dedicated ClusterIP YusurService over ysvc1's backends (iperf-1 and the Vnic vm-1) on
    port 5002 with fast health checks (its own OVN monitors: ysvc1 watches port 5001)."""
    lab = examples.lab
    specs = [ServerSpec(IPERF1, "iperf-1", "tcp", 5002), ServerSpec(VM1, "vm-1", "tcp", 5002)]
    handles = {s: lab.start_server(s.target, s.name, s.proto, s.port) for s in specs}
    examples.backend.create(res.YUSURSERVICES, {
        "apiVersion": "iaas.yusur.io/v1", "kind": "YusurService",
        "metadata": {"name": "ysvc-fast", "namespace": "ns-vpc1"},
        "spec": {"type": "ClusterIP", "scope": "vpc", "vpc": "vpc1",
                 "ports": [{"name": "fast", "port": 5002, "protocol": "TCP",
                            "targetPort": 5002}],
                 "selector": {"svc": "svc1-ep"}, "healthCheck": FAST}})
    try:
        lb = naming.service_lb("ns-vpc1", "ysvc-fast", "TCP")
        vip = wait_until(lambda: examples.resolver.target_ip(Target(lb=lb), 5002)
                         if lb in lab.nbctl("--bare", "--columns=name", "list",
                                            "Load_Balancer") else None,
                         20, "the ysvc-fast LB")
        yield vip, handles
    finally:
        wait_deleted(examples, "YusurService", "ysvc-fast", "ns-vpc1")
        examples.controller.wait_idle()
        wait_until(lambda: not any(k.endswith(":5002") for k in service_monitors(lab)), 20,
                   "ysvc-fast's OVN monitors removed")
        for handle in handles.values():
            lab.stop_server(handle)


def owned_leftovers(examples: Examples, name: str, namespace: str) -> list[str]:
    """Objects a deleted YusurService owned that still exist."""
    ctl = examples.controller
    out = [f"Service/{name}"] if ctl.get("Service", name, namespace) else []
    for kind in ("EndpointSlice", "NetworkProbe"):
        out += [f"{kind}/{o['metadata']['name']}" for o in ctl.list(kind, namespace)
                if any(r.get("name") == name and r.get("kind") == "YusurService"
                       for r in o["metadata"].get("ownerReferences") or [])]
    return out


def test_yusurservice_deleted_right_after_creation_leaves_nothing(examples: Examples) -> None:
    """Writes queued by a reconcile that ran before the delete must not re-create what the
    YusurService owned (the writer checks the controller owner still exists)."""
    leaks = []
    try:
        for gap in (0, 0.001, 0.005, 0.01, 0.02, 0.05):
            examples.backend.create(res.YUSURSERVICES, {
                "apiVersion": "iaas.yusur.io/v1", "kind": "YusurService",
                "metadata": {"name": "ysvc-brief", "namespace": "ns-vpc1"},
                "spec": {"type": "ClusterIP", "scope": "vpc", "vpc": "vpc1",
                         "ports": [{"name": "brief", "port": 5003, "protocol": "TCP",
                                    "targetPort": 5003}],
                         "selector": {"svc": "svc1-ep"}, "healthCheck": FAST}})
            time.sleep(gap)  # the window: reconciled before the delete, written after it
            wait_deleted(examples, "YusurService", "ysvc-brief", "ns-vpc1")
            examples.controller.wait_idle()
            leaks += owned_leftovers(examples, "ysvc-brief", "ns-vpc1")
    finally:
        lb = naming.service_lb("ns-vpc1", "ysvc-brief", "TCP")
        wait_until(lambda: lb not in examples.lab.nbctl("--bare", "--columns=name", "list",
                                                        "Load_Balancer"), 20,
                   "ysvc-brief's LB removed")
    assert leaks == [], leaks


def test_dead_backend_leaves_clusterip_ysvc_and_comes_back(
        examples: Examples, ysvc_fast: tuple[str, dict]) -> None:
    lab, resolver = examples.lab, examples.resolver
    vip, handles = ysvc_fast
    ips = sorted([resolver.port_ips(IPERF1)[0], *resolver.port_ips(VM1)])
    check = dataclasses.replace(CHECKS_BY_ID["ysvc1"], id="ysvc-fast", target=Target(vip),
                                port=5002)
    wait_vip(lab, f"{vip}:5002", lambda got: got == ips, "ysvc-fast's three backends")
    wait_until(lambda: _online(examples, "ns-vpc1", ips, 5002), 20,
               "ysvc-fast's NetworkProbes Online")
    row = wait_check(lab, check, 10, resolver=resolver)
    assert row.ok, row

    pod_ip = resolver.port_ips(IPERF1)[0]
    iperf = next(h for s, h in handles.items() if s.target == IPERF1)
    budget = FAST["interval"] * FAST["failureCount"] + 1
    stopped = time.monotonic()
    assert lab.stop_server(iperf)
    wait_until(lambda: _offline_and_avoided(examples, "ns-vpc1", pod_ip, 5002, CLIENT1, vip,
                                            5002, "iperf-1"), budget + 10,
               "iperf-1 Offline and avoided")
    took = time.monotonic() - stopped
    print(f"ClusterIP: iperf-1 out after {took:.2f}s (budget {budget}s)")
    assert took <= budget, f"iperf-1 left the service after {took:.2f}s, budget {budget}s"
    assert service_monitors(lab)[f"{pod_ip}:5002"] == "offline"

    handles[ServerSpec(IPERF1, "iperf-1", "tcp", 5002)] = lab.start_server(
        IPERF1, "iperf-1", "tcp", 5002)
    restarted = time.monotonic()
    wait_until(lambda: _online(examples, "ns-vpc1", [pod_ip], 5002), 20,
               "iperf-1's NetworkProbe Online again")
    row = wait_check(lab, check, 10, resolver=resolver)
    assert row.ok, row
    print(f"ClusterIP: iperf-1 back after {time.monotonic() - restarted:.2f}s")


def test_dead_backend_leaves_multi_vpc_eip_and_comes_back(examples: Examples) -> None:
    """The examples' `multi` (namespace demo, backends in vpc1 and vpc2, healthCheck interval
    2, failureCount 2) through its EIP from the external host."""
    lab, resolver = examples.lab, examples.resolver
    ysvc = examples.controller.get("YusurService", "multi", "demo")
    assert ysvc is not None
    health = ysvc["spec"]["healthCheck"]
    budget = health["interval"] * health["failureCount"] + 1
    ip = resolver.port_ips(naming.pod_port("ns-vpc1", "multi-1"))[0]
    both = [ip, resolver.port_ips(naming.pod_port("ns-vpc2", "multi-2"))[0]]
    wait_until(lambda: _online(examples, "demo", both, 8080), 20, "multi's probes Online")
    row = examples.check("s4")
    assert row.ok, row

    stopped = time.monotonic()
    spec = examples.stop_server("multi-1", 8080)
    try:
        wait_until(lambda: _offline_and_avoided(examples, "demo", ip, 8080, EXT_HOST,
                                                MULTI_EIP, 80, "multi-1"), budget + 10,
                   "multi-1 Offline and avoided")
        took = time.monotonic() - stopped
        print(f"EIP: multi-1 out after {took:.2f}s (budget {budget}s)")
        assert took <= budget, f"multi-1 left the EIP after {took:.2f}s, budget {budget}s"
        assert service_monitors(lab)[f"{ip}:8080"] == "offline"
    finally:
        examples.start_server(spec)
    restarted = time.monotonic()
    wait_until(lambda: _online(examples, "demo", [ip], 8080), 20,
               "multi-1's NetworkProbe Online again")
    row = wait_check(lab, CHECKS_BY_ID["s4"], 10, resolver=resolver)
    assert row.ok and set(row.answered) == {"multi-1", "multi-2"}, row
    print(f"EIP: multi-1 back after {time.monotonic() - restarted:.2f}s")
