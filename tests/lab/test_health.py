"""Health checks with real packets: YusurService backends (pods and a Vnic) behind a VIP and
behind a multi-VPC EIP; a backend that stops answering leaves the service and its
NetworkProbe says Offline; started again, it comes back and the probe says Online. The probe
OVN runs (SB Service_Monitor) has the service's own healthCheck numbers (interval,
failureCount, timeout): OVN takes a backend out after failureCount failed probes, one every
interval. How long that took is recorded (`record_property`, the log), never asserted.

Runs on the examples served by the in-process controller (`examples` fixture)."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ycloud_lab.checkrun import wait_check
from ycloud_lab.ovsdb import rows
from ycloud_lab.scenarios import (
    CHECKS_BY_ID,
    CLIENT1,
    EXT_HOST,
    MULTI_EIP,
    ServerSpec,
    Target,
    service_monitors,
    wait_until,
)

from topology import naming
from ycloud_controller.kube import resources as res

from .conftest import Examples, lb_vips, wait_deleted, wait_vip

pytestmark = pytest.mark.lab

IPERF1, VM1 = naming.pod_port("ns-vpc1", "iperf-1"), naming.vnic_port("ns-vpc1", "vm-1")
log = logging.getLogger(__name__)


def monitor_options(examples: Examples, ip: str, port: int) -> dict[str, str]:
    """Options of the SB Service_Monitor that probes ip:port: the probe OVN runs (northd
    copies them from the Load_Balancer_Health_Check the controller wrote)."""
    for r in rows("ovn-sbctl", examples.lab.sb_remote, "--columns=ip,port,options", "list",
                  "Service_Monitor", what="read SB Service_Monitor options"):
        if f"{r['ip']}:{r['port']}" == f"{ip}:{port}":
            return r["options"] if isinstance(r["options"], dict) else {}
    return {}


def assert_probed_as_asked(examples: Examples, ip: str, port: int,
                           health: dict[str, Any]) -> None:
    """OVN probes ip:port with the service's healthCheck numbers: it takes the backend out
    after failureCount failed probes, one every interval, each waiting timeout seconds."""
    want = {"interval": str(health["interval"]), "failure_count": str(health["failureCount"])}
    if "timeout" in health:
        want["timeout"] = str(health["timeout"])
    got = monitor_options(examples, ip, port)
    assert {k: got.get(k) for k in want} == want, got


def report_seconds(record_property: Callable[[str, object], None], name: str,
                   seconds: float) -> None:
    """How long something took: recorded for the report (junit property, log), not asserted."""
    record_property(name, round(seconds, 2))
    log.info("%s: %.2f s", name, seconds)


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
        examples: Examples, ysvc_fast: tuple[str, dict], record_property) -> None:
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
    for ip in ips:  # out after failureCount failed probes, one every interval
        assert_probed_as_asked(examples, ip, 5002, FAST)
    iperf = next(h for s, h in handles.items() if s.target == IPERF1)
    stopped = time.monotonic()
    assert lab.stop_server(iperf)
    wait_until(lambda: _offline_and_avoided(examples, "ns-vpc1", pod_ip, 5002, CLIENT1, vip,
                                            5002, "iperf-1"), 60,
               "iperf-1 Offline and avoided")
    report_seconds(record_property, "ysvc_fast_backend_out_s", time.monotonic() - stopped)
    assert service_monitors(lab)[f"{pod_ip}:5002"] == "offline"

    handles[ServerSpec(IPERF1, "iperf-1", "tcp", 5002)] = lab.start_server(
        IPERF1, "iperf-1", "tcp", 5002)
    restarted = time.monotonic()
    wait_until(lambda: _online(examples, "ns-vpc1", [pod_ip], 5002), 20,
               "iperf-1's NetworkProbe Online again")
    row = wait_check(lab, check, 10, resolver=resolver)
    assert row.ok, row
    report_seconds(record_property, "ysvc_fast_backend_back_s", time.monotonic() - restarted)


def test_dead_backend_leaves_multi_vpc_eip_and_comes_back(examples: Examples,
                                                           record_property) -> None:
    """The examples' `multi` (namespace demo, backends in vpc1 and vpc2, healthCheck interval
    2, failureCount 2) through its EIP from the external host."""
    lab, resolver = examples.lab, examples.resolver
    ysvc = examples.controller.get("YusurService", "multi", "demo")
    assert ysvc is not None
    health = ysvc["spec"]["healthCheck"]
    ip = resolver.port_ips(naming.pod_port("ns-vpc1", "multi-1"))[0]
    both = [ip, resolver.port_ips(naming.pod_port("ns-vpc2", "multi-2"))[0]]
    wait_until(lambda: _online(examples, "demo", both, 8080), 20, "multi's probes Online")
    row = examples.check("s4")
    assert row.ok, row
    for backend in both:  # out after failureCount failed probes, one every interval
        assert_probed_as_asked(examples, backend, 8080, health)

    stopped = time.monotonic()
    spec = examples.stop_server("multi-1", 8080)
    try:
        wait_until(lambda: _offline_and_avoided(examples, "demo", ip, 8080, EXT_HOST,
                                                MULTI_EIP, 80, "multi-1"), 60,
                   "multi-1 Offline and avoided")
        report_seconds(record_property, "multi_eip_backend_out_s", time.monotonic() - stopped)
        assert service_monitors(lab)[f"{ip}:8080"] == "offline"
    finally:
        examples.start_server(spec)
    restarted = time.monotonic()
    wait_until(lambda: _online(examples, "demo", [ip], 8080), 20,
               "multi-1's NetworkProbe Online again")
    row = wait_check(lab, CHECKS_BY_ID["s4"], 10, resolver=resolver)
    assert row.ok and set(row.answered) == {"multi-1", "multi-2"}, row
    report_seconds(record_property, "multi_eip_backend_back_s", time.monotonic() - restarted)
