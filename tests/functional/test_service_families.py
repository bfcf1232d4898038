"""IPv6, dual-stack and SCTP Services against real NB and northd: the Load_Balancer rows the
controller writes are the ones northd turns into SB rows — an IPv6 backend's health check
(ip_port_mappings in brackets, as OVN 23.03 reads them) becomes an SB Service_Monitor on its
IPv6 address and port; an SCTP Service is an sctp Load_Balancer without health checks."""

from __future__ import annotations

import json

from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional.conftest import find
from ycloud_controller import keys
from ycloud_controller.controller import Controller
from ycloud_controller.kube import resources as res
from ycloud_controller.memkube.store import MemoryStore

GROUP = "iaas.yusur.io/v1"


def service_monitors(sandbox: Sandbox) -> set[tuple[str, int, str]]:
    sandbox.nbctl("--wait=sb", "sync")
    data = json.loads(sandbox.sbctl("--format=json", "--columns=ip,port,logical_port", "list",
                                    "Service_Monitor"))
    return {(row[0], row[1], row[2]) for row in data["data"]}


def test_dual_stack_health_checked_and_sctp_services_reach_sb(
        svc_ctl: Controller, svc_store: MemoryStore, sandbox: Sandbox) -> None:
    assert svc_ctl.full_sync().converged
    svc_store.create(res.SUBNETS, {
        "apiVersion": GROUP, "kind": "Subnet", "metadata": {"name": "ds"},
        "spec": {"vpc": "ovn-cluster", "cidrBlock": "10.30.0.0/24,fd30::/64",
                 "gateway": "10.30.0.1,fd30::1"}})
    for i in (1, 2):
        svc_store.create(res.PODS, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"ds-{i}", "namespace": "default", "labels": {"app": "ds"},
                         "annotations": {keys.ANN_SUBNET: "ds"}},
            "spec": {"nodeName": f"n{i}", "containers": [{"name": "c", "image": "x"}]}})
    ports = [{"name": "p", "protocol": "TCP", "port": 80, "targetPort": 8080},
             {"name": "s", "protocol": "SCTP", "port": 9000, "targetPort": 9000}]
    svc_store.create(res.SERVICES, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "ds", "namespace": "default",
                     "annotations": {keys.ANN_HEALTH_CHECK: '{"interval": 2}'}},
        "spec": {"type": "ClusterIP", "clusterIP": "fd00:96::7",
                 "clusterIPs": ["fd00:96::7", "10.96.5.7"], "ipFamilyPolicy": "RequireDualStack",
                 "ipFamilies": ["IPv6", "IPv4"], "selector": {"app": "ds"}, "ports": ports}})
    assert svc_ctl.drain(timeout=30)

    def tcp_lb() -> dict | None:
        found = find(sandbox, "Load_Balancer", 'name="Service_default/ds_TCP_cluster"')
        return found[0] if found and len(found[0]["vips"]["[fd00:96::7]:80"].split(",")) == 2 \
            else None

    lb = wait_for(tcp_lb, 20, what="the dual-stack LB with both IPv6 backends")
    v6 = sorted(b.rsplit(":", 1)[0].strip("[]") for b in lb["vips"]["[fd00:96::7]:80"].split(","))
    assert all(ip.startswith("fd30::") for ip in v6)
    assert {k for k in lb["ip_port_mappings"] if k.startswith("[")} == {f"[{ip}]" for ip in v6}
    assert {lb["ip_port_mappings"][f"[{ip}]"].split(":", 1)[1] for ip in v6} == \
        {"[fd30::ffff:ffff:ffff:ffff]"}
    assert sorted(lb["options"]["hairpin_snat_ip"].split()) == ["10.96.5.7", "fd00:96::7"]
    # northd read the IPv6 mappings: an SB Service_Monitor per IPv6 backend and port
    monitors = wait_for(lambda: {m for m in service_monitors(sandbox) if ":" in m[0]}
                        or None, 20, what="IPv6 Service_Monitors in SB")
    assert {(ip, port) for ip, port, _ in monitors} == {(ip, 8080) for ip in v6}
    assert {lport for *_, lport in monitors} == {"ds-1.default", "ds-2.default"}

    (sctp,) = find(sandbox, "Load_Balancer", 'name="Service_default/ds_SCTP_cluster"')
    assert sctp["protocol"] == "sctp" and sctp["health_check"] in ([], None)
    assert set(sctp["vips"]) == {"[fd00:96::7]:9000", "10.96.5.7:9000"}
