"""The node agent's own work: restart after SIGKILL, EipPool bridge mappings, the node port,
Vnic host interfaces, DPU mode (veth pairs standing in for VF + representor), /metrics."""

from __future__ import annotations

import json
import subprocess
import sys

from ycloud_lab.nodeenv import NODE, NodeEnv, eventually, sh

from topology import naming
from ycloud_controller import keys
from ycloud_controller.kube import resources as res


def iface_row(node: NodeEnv, name: str) -> dict[str, str]:
    out = json.loads(node.vsctl("--format=json", "--columns=_uuid,ofport", "list",
                                "Interface", name))
    uuid, ofport = out["data"][0]
    return {"uuid": uuid[1], "ofport": str(ofport)}


def system_ids(node: NodeEnv) -> dict[str, str]:
    out = json.loads(node.vsctl("--format=json", "--columns=external_ids", "list",
                                "Open_vSwitch"))
    return dict(out["data"][0][0][1])


def test_sigkill_restart_keeps_existing_ports_and_serves_the_next_add(
        fresh_node: NodeEnv) -> None:
    node = fresh_node
    node.start_agent()
    netns, result, host = node.plugged_pod("keep", "feed0001", "10.16.0.20",
                                           "0a:58:0a:10:00:14")
    before = iface_row(node, host)
    link_before = node.links()[host]["ifindex"]
    node.kill_agent()  # SIGKILL: no cleanup of any kind
    node.start_agent()
    node.pod("next", ip="10.16.0.21", mac="0a:58:0a:10:00:15")
    code, second, raw = node.cni("ADD", "feed0002", node.netns("next"), "next")
    assert code == 0, raw
    # the first pod's port and veth are the very same rows and netdev
    assert iface_row(node, host) == before
    assert node.links()[host]["ifindex"] == link_before
    assert "10.16.0.20" in json.dumps(node.links(netns)["eth0"]["addr_info"])
    assert {host, second["interfaces"][0]["name"]} <= node.ports_of("br-int")
    # ADD of the first pod again after the restart: same answer, same port
    assert node.cni("ADD", "feed0001", netns, "keep")[1] == result
    assert iface_row(node, host) == before


def test_restart_collects_ports_of_pods_deleted_while_it_was_down_and_nothing_else(
        fresh_node: NodeEnv) -> None:
    node = fresh_node
    node.start_agent()
    node.pod("doomed", ip="10.16.0.22", mac="0a:58:0a:10:00:16")
    code, result, raw = node.cni("ADD", "feed0003", node.netns("doomed"), "doomed")
    assert code == 0, raw
    host = result["interfaces"][0]["name"]
    # a port somebody else put on br-int: never ours to touch
    sh("ip", "netns", "exec", node.ns, "ip", "link", "add", "foreign0", "type", "veth",
       "peer", "name", "foreign1")
    node.vsctl("add-port", "br-int", "foreign0", "--", "set", "Interface", "foreign0",
               "external_ids:iface-id=someone-elses")
    node.kill_agent()
    assert node.fake is not None
    node.fake.store.delete(res.PODS, "doomed", "default")
    node.start_agent()
    eventually(lambda: host not in node.ports_of("br-int"), "the deleted pod's port to go")
    assert "foreign0" in node.ports_of("br-int")
    assert node.interfaces()["foreign0"] == {"iface-id": "someone-elses"}


def test_gateway_node_gets_the_bridge_mapping_of_its_eippool(fresh_node: NodeEnv) -> None:
    node = fresh_node
    node.vsctl("set", "Open_vSwitch", ".", "external_ids:ovn-bridge-mappings=physnet9:br-nine")
    node.start_agent("--provider-bridge", "extnet=br-ex")
    assert "ovn-cms-options" not in system_ids(node)
    pool = {"metadata": {"name": "pool1"},
            "spec": {"cidr": "192.0.2.0/24", "gateway": "192.0.2.1",
                     "providerNetwork": "extnet", "gatewayNodes": ["node9", NODE]}}
    node.create(res.EIPPOOLS, pool)
    other = {"metadata": {"name": "pool2"},
             "spec": {"cidr": "198.51.100.0/24", "gateway": "198.51.100.1",
                      "providerNetwork": "othernet", "gatewayNodes": ["node9"]}}
    node.create(res.EIPPOOLS, other)
    ids = eventually(lambda: (i := system_ids(node)).get("ovn-bridge-mappings", "").endswith(
        "extnet:br-ex") and i, "the bridge mapping of pool1")
    # the operator's mapping stays; the pool this node is not a gateway of maps nothing
    assert ids["ovn-bridge-mappings"] == "physnet9:br-nine,extnet:br-ex"
    assert ids["ovn-cms-options"] == "enable-chassis-as-gw"
    assert node.vsctl("get", "Bridge", "br-ex", "datapath_type").strip() == "netdev"
    # the node leaves the pool's gateways: its mapping goes, the operator's stays
    assert node.fake is not None
    node.fake.store.delete(res.EIPPOOLS, "pool1")
    eventually(lambda: system_ids(node).get("ovn-bridge-mappings") == "physnet9:br-nine",
               "the mapping to go with the pool")
    assert "ovn-cms-options" not in system_ids(node)


def test_node_port_from_the_node_annotations(fresh_node: NodeEnv) -> None:
    node = fresh_node
    node.start_agent()
    assert node.fake is not None
    node.fake.store.patch(res.NODES, NODE, None, {"metadata": {"annotations": {
        keys.ANN_IP: "100.64.0.2", keys.ANN_MAC: "0a:58:64:40:00:02",
        keys.ANN_GATEWAY: "100.64.0.1", keys.ANN_CIDR: "100.64.0.0/16",
        keys.ANN_MTU: "1400", keys.ANN_ROUTES: "10.96.0.0/12,10.16.0.0/16"}}})
    def node_ips() -> list[tuple[str, int]]:
        link = node.links().get("ycloud0") or {"addr_info": []}
        return [(a["local"], a["prefixlen"]) for a in link["addr_info"] if a["scope"] != "link"]

    eventually(node_ips, "the node interface with its address")
    link = node.links()["ycloud0"]
    assert link["address"] == "0a:58:64:40:00:02" and "UP" in link["flags"]
    assert node_ips() == [("100.64.0.2", 16)]
    ids = node.interfaces()["ycloud0"]
    assert ids[naming.OVS_IFACE_ID] == "node-node1" and ids[naming.NODE_AGENT_OWNER] == "node"
    routes = sh("ip", "netns", "exec", node.ns, "ip", "route").stdout
    assert "10.96.0.0/12 via 100.64.0.1 dev ycloud0" in routes
    assert "10.16.0.0/16 via 100.64.0.1 dev ycloud0" in routes


def test_vnic_host_interface_is_plugged_and_unplugged(fresh_node: NodeEnv) -> None:
    node = fresh_node
    sh("ip", "netns", "exec", node.ns, "ip", "link", "add", "tapvm1", "type", "veth",
       "peer", "name", "tapvm1-vm")
    node.start_agent()
    vnic = {"metadata": {"name": "vm1", "namespace": "default"},
            "spec": {"subnet": "ovn-default", "node": NODE, "type": "vm",
                     "hostInterface": "tapvm1"}}
    elsewhere = {"metadata": {"name": "vm2", "namespace": "default"},
                 "spec": {"subnet": "ovn-default", "node": "node9", "hostInterface": "tapvm2"}}
    node.create(res.VNICS, vnic)
    node.create(res.VNICS, elsewhere)
    eventually(lambda: "tapvm1" in node.ports_of("br-int"), "the Vnic's tap on br-int")
    ids = node.interfaces()["tapvm1"]
    assert ids[naming.OVS_IFACE_ID] == "vnic.vm1.default"
    assert ids[naming.NODE_AGENT_OWNER] == "vnic"
    assert node.fake is not None
    node.fake.store.delete(res.VNICS, "vm1", "default")
    eventually(lambda: "tapvm1" not in node.ports_of("br-int"), "the tap to be unplugged")
    assert "tapvm1" in node.links()  # the hypervisor's netdev stays


def test_dpu_mode_moves_a_vf_into_the_pod_and_plugs_its_representor(
        fresh_node: NodeEnv) -> None:
    node = fresh_node
    for i in (0, 1):  # veth pairs standing in for VF netdev + representor
        sh("ip", "netns", "exec", node.ns, "ip", "link", "add", f"vf{i}", "type", "veth",
           "peer", "name", f"rep{i}")
    node.start_agent("--hw-offload", "--vf-pool", "vf0:rep0,vf1:rep1")
    assert node.vsctl("get", "Open_vSwitch", ".", "other_config:hw-offload").strip() == \
        '"true"'
    node.pod("dpu", ip="10.16.0.30", mac="0a:58:0a:10:00:1e")
    netns = node.netns("dpu")
    code, result, raw = node.cni("ADD", "feed0010", netns, "dpu")
    assert code == 0, raw
    assert result["interfaces"][0]["name"] == "rep0"
    eth0 = node.links(netns)["eth0"]
    assert eth0["address"] == "0a:58:0a:10:00:1e" and eth0["mtu"] == 1400
    assert "vf0" not in node.links()  # moved into the pod, renamed eth0
    ids = node.interfaces()["rep0"]
    assert ids[naming.OVS_IFACE_ID] == "dpu.default" and ids[naming.REPRESENTOR] == "vf0"
    assert node.cni("ADD", "feed0010", netns, "dpu")[1] == result  # idempotent
    # the second pod gets the second pair
    node.pod("dpu2", ip="10.16.0.31", mac="0a:58:0a:10:00:1f")
    code, second, raw = node.cni("ADD", "feed0011", node.netns("dpu2"), "dpu2")
    assert code == 0 and second["interfaces"][0]["name"] == "rep1", raw
    # DEL gives the VF back to the node and unplugs the representor
    assert node.cni("DEL", "feed0010", netns, "dpu")[0] == 0
    assert "rep0" not in node.ports_of("br-int")
    assert "vf0" in node.links() and "eth0" not in node.links(netns)
    # the pool is exhausted while both are in use
    node.pod("dpu3", ip="10.16.0.32", mac="0a:58:0a:10:00:20")
    node.pod("dpu4", ip="10.16.0.33", mac="0a:58:0a:10:00:21")
    assert node.cni("ADD", "feed0012", node.netns("dpu3"), "dpu3")[0] == 0
    code, out, _ = node.cni("ADD", "feed0013", node.netns("dpu4"), "dpu4")
    assert code == 1 and out["code"] == 11 and out["msg"] == "no free VF on this node"


def test_metrics_and_healthz(node_with_traffic: NodeEnv) -> None:
    node = node_with_traffic
    get = ("import sys, urllib.request as u; o = u.build_opener(u.ProxyHandler({})); "
           "print(o.open('http://127.0.0.1:10666' + sys.argv[1]).read().decode())")
    run = ["ip", "netns", "exec", node.ns, sys.executable, "-c", get]
    health = subprocess.run([*run, "/healthz"], capture_output=True, text=True, timeout=30)
    assert health.stdout.strip() == "ok", health.stderr
    text = subprocess.run([*run, "/metrics"], capture_output=True, text=True,
                          timeout=30).stdout
    assert 'ycloud_cni_requests_total{command="ADD",result="ok"} 1.0' in text
    assert 'ycloud_cni_errors_total{code="11",command="ADD"} 1.0' in text
    assert 'ycloud_cni_request_seconds_count{command="ADD"} 2.0' in text
