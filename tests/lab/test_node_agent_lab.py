"""The node half on the lab (issue 20): every chassis runs the node agent, pods are made by
the chassis' containerd through the installed ycloud-cni.

- the agent killed (SIGKILL) while pods run: their connections keep flowing, and once it is
  started again the next ADD (a new pod) works;
- a pod deleted: its port leaves br-int and its veth goes;
- a gateway node's bridge mapping appears when an EipPool names the node, and goes with it."""

from __future__ import annotations

import json
import os
import signal

import pytest
from ycloud_lab import Lab
from ycloud_lab.scenarios import CLIENT1, wait_until

from topology import naming
from ycloud_controller.kube import resources as res

from .conftest import Examples, chassis_of

pytestmark = pytest.mark.lab

WEB1 = naming.pod_port("ns-vpc1", "web-1")


def br_int_ports(lab: Lab, chassis: str) -> dict[str, str]:
    """{interface: iface-id} of chassis' br-int ports that carry one."""
    ch = lab.chassis(lab.store.load(), chassis)
    names = set(ch.vsctl("list-ports", "br-int").split())
    out = json.loads(ch.vsctl("--format=json", "--columns=name,external_ids", "list",
                              "Interface"))
    return {row[0]: dict(row[1][1]).get(naming.OVS_IFACE_ID, "") for row in out["data"]
            if row[0] in names and dict(row[1][1]).get(naming.OVS_IFACE_ID)}


def new_pod(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns-vpc1", "labels": {"app": "agent-test"}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}


def test_agent_killed_pods_keep_connections_and_next_add_works(
        examples: Examples, lab: Lab) -> None:
    cluster = lab.cluster
    assert cluster is not None
    node = chassis_of(lab, WEB1)
    web1_ip = examples.resolver.port_ips(WEB1)[0]
    held = lab.open_connection(CLIENT1, web1_ip, 8080)
    port = naming.pod_port("ns-vpc1", "late-1")
    try:
        assert held.send().ok
        rec = cluster.agent_record(node)
        os.kill(rec.current_pid(), signal.SIGKILL)
        wait_until(lambda: not rec.alive(), 10, f"the node agent of {node} gone")
        for _ in range(3):
            reply = held.send()
            assert reply.ok and reply.server == "web-1", reply
        assert lab.request(CLIENT1, "tcp", web1_ip, 8080).ok  # new connections too
        cluster.restart_agent(node)
        examples.backend.create(res.PODS, new_pod("late-1", node))
        mapping = lab.cni_sync()
        assert port in mapping
        assert port in br_int_ports(lab, node).values()
        assert held.send().ok
        lab.start_server(port, "late-1", "tcp", 8080)
        examples.resolver.refresh()
        reply = lab.request(CLIENT1, "tcp", examples.resolver.port_ips(port)[0], 8080)
        assert reply.ok and reply.server == "late-1", reply
    finally:
        held.close()
        if examples.backend.get(res.PODS, "late-1", "ns-vpc1") is not None:
            examples.backend.delete(res.PODS, "late-1", "ns-vpc1")
        lab.cni_sync()


def test_deleted_pod_leaves_br_int(examples: Examples, lab: Lab) -> None:
    node = "node2"
    port = naming.pod_port("ns-vpc1", "gone-1")
    examples.backend.create(res.PODS, new_pod("gone-1", node))
    try:
        assert port in lab.cni_sync()
        plugged = [i for i, p in br_int_ports(lab, node).items() if p == port]
        assert len(plugged) == 1
    finally:
        examples.backend.delete(res.PODS, "gone-1", "ns-vpc1")
    assert port not in lab.cni_sync()
    assert port not in br_int_ports(lab, node).values()
    ch = lab.chassis(lab.store.load(), node)
    assert ch.vsctl("--if-exists", "get", "Interface", plugged[0], "name").strip() == ""
    links = lab.exec(node, "ip", "-o", "link", "show").stdout
    assert f" {plugged[0]}@" not in links and f" {plugged[0]}:" not in links


def test_gateway_bridge_mapping_follows_the_eippools_naming_the_node(
        examples: Examples, lab: Lab) -> None:
    ch = lab.chassis(lab.store.load(), "node1")

    def ids() -> dict[str, str]:
        raw = ch.vsctl("--format=json", "--columns=external_ids", "list", "Open_vSwitch")
        return dict(json.loads(raw)["data"][0][0][1])

    assert "physnet9" not in ids().get("ovn-bridge-mappings", "")
    pool = {"apiVersion": "iaas.yusur.io/v1", "kind": "EipPool",
            "metadata": {"name": "pool9"},
            "spec": {"cidr": "172.29.0.0/24", "gateway": "172.29.0.1",
                     "uplinkIP": "172.29.0.2", "providerNetwork": "physnet9",
                     "gatewayNodes": ["node1"]}}
    examples.backend.create(res.EIPPOOLS, pool)
    try:
        found = wait_until(lambda: "physnet9:br-physnet9" in ids().get(
            "ovn-bridge-mappings", "") and ids(), 30, "node1's mapping of physnet9")
        assert "enable-chassis-as-gw" in found.get("ovn-cms-options", "")
        assert ch.vsctl("br-exists", "br-physnet9") == ""
    finally:
        examples.backend.delete(res.EIPPOOLS, "pool9", None)
    gone = wait_until(lambda: "physnet9" not in ids().get("ovn-bridge-mappings", "") and ids(),
                      30, "node1's mapping of physnet9 removed")
    assert "enable-chassis-as-gw" not in gone.get("ovn-cms-options", "")
    examples.controller.wait_idle()
