"""SCTP through a ClusterIP with real packets. The lab's kernel has no SCTP stack (no sctp
module: `socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP)` fails with EPROTONOSUPPORT), so the
first round trip of an association is sent and answered with raw sockets
(`ycloud_lab.sctp`: INIT -> INIT ACK).

What the userspace (netdev) datapath does with it: its connection tracker knows SCTP only as
an address pair (`ovs-appctl dpctl/dump-conntrack`: `sctp,orig=(src=..,dst=<VIP>,sport=0,
dport=0),reply=(src=<backend>,..,sport=0,dport=0)`), so the load balancer's DNAT rewrites the
address and never the port (the datapath action is `ct(commit,..,nat(dst=<backend>:<target
port>))`, the packet arrives on the service port). A Service whose port equals its
targetPort works, the client address kept; one whose targetPort differs reaches the backend
on the service port. Every association of one client to one VIP shares one conntrack entry,
so they all go to one backend; and while a client has an entry with a backend (directly, or
through another VIP), a new one through a VIP that picks that backend would have the same
reply tuple: the NAT finds no free tuple (no ports to vary) and the packet is dropped. The two
tests therefore use different clients.

Runs on the examples served by the in-process controller (`examples` fixture)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from ycloud_lab import Lab
from ycloud_lab.scenarios import CLIENT1, WEB, wait_until
from ycloud_lab.workload import traffic_env

from topology import naming
from ycloud_controller.kube import resources as res

from .conftest import Examples, chassis_of, lb_vips, service, wait_deleted, wait_vip

pytestmark = pytest.mark.lab

WEB_PORTS = {name: naming.pod_port("ns-vpc1", name) for name in WEB}
OTHER_CLIENT = naming.pod_port("ns-vpc1", "iperf-1")  # a pod of vpc1 that is no web backend


def sctp(lab: Lab, target: str, *args: str) -> list[str]:
    return lab.exec_argv(target, sys.executable, "-m", "ycloud_lab.sctp", *args)


def probe(lab: Lab, target: str, ip: str, port: int) -> dict:
    out = subprocess.run(sctp(lab, target, "probe", ip, str(port)), env=traffic_env(),
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def responders(examples: Examples) -> Iterator[None]:
    """On web-1 and web-2: SCTP responders on 8080 (named web-N) and on 80 (web-N:80)."""
    procs = [subprocess.Popen(sctp(examples.lab, port, "responder", "--name", label,
                                   "--port", str(number)), env=traffic_env())
             for name, port in WEB_PORTS.items()
             for number, label in ((8080, name), (80, f"{name}:80"))]
    yield
    for proc in procs:
        proc.kill()
        proc.wait(10)


def sctp_service(examples: Examples, name: str, vip: str, port: int) -> None:
    examples.backend.create(res.SERVICES, service(name, "ns-vpc1", vip, {"app": "web"},
                                                  port=port, target_port=8080, proto="SCTP"))
    wait_vip(examples.lab, f"{vip}:{port}", lambda ips: ips is not None and len(ips) == 2,
             f"the SCTP Service {name} with both backends")


def remove(examples: Examples, name: str, vip: str, port: int) -> None:
    wait_deleted(examples, "Service", name, "ns-vpc1")
    wait_until(lambda: f"{vip}:{port}" not in lb_vips(examples.lab), 20, f"{name} removed")


def test_sctp_reaches_a_backend_through_a_cluster_ip(examples: Examples,
                                                     responders: None) -> None:
    lab, vip = examples.lab, "10.96.10.40"
    client = examples.resolver.port_ips(CLIENT1)[0]
    sctp_service(examples, "sctp", vip, 8080)
    try:
        replies = [probe(lab, CLIENT1, vip, 8080) for _ in range(5)]
        assert all(r["ok"] for r in replies), replies
        # answered by a backend, un-NATed back from the VIP, the client address kept
        assert {r["server"] for r in replies} <= set(WEB), replies
        assert {(r["from"], r["source"]) for r in replies} == {(vip, client)}, replies
    finally:
        remove(examples, "sctp", vip, 8080)


def test_sctp_port_translation_is_lost_in_the_userspace_datapath(
        examples: Examples, responders: None) -> None:
    lab, vip = examples.lab, "10.96.10.41"
    sctp_service(examples, "sctp-80", vip, 80)  # port 80 -> targetPort 8080
    try:
        reply = probe(lab, OTHER_CLIENT, vip, 80)
        # the backend got it on the service port: the DNAT did not rewrite the port
        assert reply["ok"] and reply["server"] in {f"{n}:80" for n in WEB}, reply
        st = lab.store.load()
        entries = lab.chassis(st, chassis_of(lab, OTHER_CLIENT)).appctl(
            "dpctl/dump-conntrack").splitlines()
        mine = [e for e in entries if e.startswith("sctp,") and f"dst={vip}," in e]
        assert mine and all("sport=0,dport=0" in e for e in mine), entries
    finally:
        remove(examples, "sctp-80", vip, 80)
