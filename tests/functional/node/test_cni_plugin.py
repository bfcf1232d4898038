"""The ycloud-cni plugin against a real node agent, real OVS (netdev) and real network
namespaces, invoked as a runtime invokes it."""

from __future__ import annotations

from ycloud_lab.nodeenv import NODE, NodeEnv, eventually, sh

from topology import naming
from ycloud_controller.kube import resources as res


def ours(node: NodeEnv, container: str) -> dict[str, dict[str, str]]:
    return {n: ids for n, ids in node.interfaces().items()
            if ids.get(naming.CONTAINER) == container}


def test_version(node: NodeEnv) -> None:
    code, out, _ = node.cni("VERSION", conf={"cniVersion": "1.0.0"})
    assert code == 0
    assert out == {"cniVersion": "1.0.0",
                   "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]}


def test_add_twice_gives_one_interface_and_the_same_result(node: NodeEnv) -> None:
    node.pod("web-1")
    netns = node.netns("web-1")
    code, first, raw = node.cni("ADD", "c0ffee01", netns, "web-1")
    assert code == 0, raw
    assert first["cniVersion"] == "1.0.0"
    host = first["interfaces"][0]["name"]
    assert first["interfaces"][1] == {"name": "eth0", "mac": "0a:58:0a:10:00:05",
                                      "sandbox": netns}
    assert first["ips"] == [{"address": "10.16.0.5/16", "gateway": "10.16.0.1", "interface": 1}]
    assert first["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.16.0.1"}]
    assert first["dns"] == {}
    eth0 = node.links(netns)["eth0"]
    assert eth0["address"] == "0a:58:0a:10:00:05" and eth0["mtu"] == 1400
    assert "UP" in eth0["flags"]
    assert {(a["local"], a["prefixlen"]) for a in eth0["addr_info"]} >= {("10.16.0.5", 16)}
    assert "default via 10.16.0.1 dev eth0" in sh("nsenter", f"--net={netns}", "ip", "route").stdout
    ids = node.interfaces()[host]
    assert ids[naming.OVS_IFACE_ID] == "web-1.default"
    assert ids[naming.NODE_AGENT_OWNER] == "pod" and ids[naming.POD] == "default/web-1"
    assert host in node.ports_of("br-int")
    assert host in node.links()  # the host end lives in the node's namespace
    # ADD again (a runtime retrying): the same interface, the same answer
    code, again, raw = node.cni("ADD", "c0ffee01", netns, "web-1")
    assert code == 0, raw
    assert again == first
    assert list(ours(node, "c0ffee01")) == [host]
    assert [n for n in node.links(netns) if n != "lo"] == ["eth0"]


def test_check_of_a_healthy_and_of_a_broken_interface(node: NodeEnv) -> None:
    node.pod("web-2", ip="10.16.0.6", mac="0a:58:0a:10:00:06")
    netns = node.netns("web-2")
    assert node.cni("ADD", "c0ffee02", netns, "web-2")[0] == 0
    code, out, raw = node.cni("CHECK", "c0ffee02", netns, "web-2")
    assert (code, raw) == (0, "")
    sh("nsenter", f"--net={netns}", "ip", "addr", "flush", "dev", "eth0")
    code, out, _ = node.cni("CHECK", "c0ffee02", netns, "web-2")
    assert code == 1 and out["code"] == 100
    assert "eth0 lacks address 10.16.0.6/16" in out["details"]
    assert "lacks the default route via 10.16.0.1" in out["details"]
    code, out, _ = node.cni("CHECK", "c0ffee99", netns, "web-2")
    assert code == 1 and out["code"] == 3 and "c0ffee99" in out["msg"]


def test_del_after_the_netns_is_gone(node: NodeEnv) -> None:
    netns, result, host = node.plugged_pod("web-3", "c0ffee03", "10.16.0.7",
                                           "0a:58:0a:10:00:07")
    sh("ip", "netns", "del", netns.rsplit("/", 1)[1])
    code, out, raw = node.cni("DEL", "c0ffee03", netns, "web-3")
    assert (code, raw) == (0, "")
    assert host not in node.ports_of("br-int") and ours(node, "c0ffee03") == {}
    assert host not in node.links()
    # DEL again, and DEL without CNI_NETNS (both allowed by the spec): still fine
    assert node.cni("DEL", "c0ffee03", netns, "web-3")[0] == 0
    assert node.cni("DEL", "c0ffee03", "", "web-3", drop=("CNI_NETNS",))[0] == 0


def test_del_of_an_unknown_container(node: NodeEnv) -> None:
    before = node.interfaces()
    code, out, raw = node.cni("DEL", "c0ffeeff", "/var/run/netns/none", "nobody")
    assert (code, raw) == (0, "")
    assert node.interfaces() == before


def _nothing_left(node: NodeEnv, container: str, netns: str) -> None:
    assert ours(node, container) == {}
    assert [n for n in node.links(netns) if n != "lo"] == []
    assert not [n for n in node.links() if n.startswith(("yc", "yt"))
                and n not in node.interfaces()]


def test_malformed_stdin(node: NodeEnv) -> None:
    netns = node.netns("bad-1")
    code, out, _ = node.cni("ADD", "c0ffee10", netns, "web-1", conf="{not json")
    assert code == 1 and out["code"] == 6
    assert out["msg"] == "cannot decode the network configuration on stdin"
    _nothing_left(node, "c0ffee10", netns)


def test_missing_environment_variables(node: NodeEnv) -> None:
    netns = node.netns("bad-2")
    for var in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"):
        code, out, _ = node.cni("ADD", "c0ffee11", netns, "web-1", drop=(var,))
        assert code == 1 and out["code"] == 4 and out["msg"] == f"{var} is not set"
    code, out, _ = node.cni("ADD", "c0ffee11", netns, "web-1", drop=("CNI_COMMAND",))
    assert code == 1 and out["code"] == 4 and "CNI_COMMAND" in out["msg"]
    code, out, _ = node.cni("ADD", "c0ffee11", netns, "", env={"CNI_ARGS": "IgnoreUnknown=1"})
    assert code == 1 and out["code"] == 4 and "K8S_POD_NAMESPACE" in out["msg"]
    code, out, _ = node.cni("ADD", "bad/id", netns, "web-1")
    assert code == 1 and out["code"] == 4 and "CNI_CONTAINERID" in out["msg"]
    _nothing_left(node, "c0ffee11", netns)


def test_unsupported_version_and_field(node: NodeEnv) -> None:
    netns = node.netns("bad-3")
    conf = {"cniVersion": "2.0.0", "name": "ycloud", "type": "ycloud-cni",
            "socket": node.socket}
    code, out, _ = node.cni("ADD", "c0ffee12", netns, "web-1", conf=conf)
    assert code == 1 and out["code"] == 1
    assert out["msg"] == "cniVersion 2.0.0 is not supported"
    code, out, _ = node.cni("CHECK", "c0ffee12", netns, "web-1",
                            conf={**conf, "cniVersion": "0.3.1"})
    assert code == 1 and out["code"] == 1 and "CHECK" in out["msg"]
    code, out, _ = node.cni("ADD", "c0ffee12", netns, "web-1",
                            conf={**conf, "cniVersion": "1.0.0", "ipam": {"type": "dhcp"}})
    assert code == 1 and out["code"] == 2 and "ipam" in out["msg"]
    _nothing_left(node, "c0ffee12", netns)


def test_a_pod_the_controller_has_not_annotated(node: NodeEnv) -> None:
    node.pod("bare", ip=None)
    netns = node.netns("bare")
    code, out, _ = node.cni("ADD", "c0ffee13", netns, "bare")
    assert code == 1 and out["code"] == 11
    assert out["msg"].startswith("pod default/bare has no ycloud.io/ip_address")
    assert "ycloud-controller writes the addresses" in out["details"]
    # a pod of another node (annotated, but the agent lists spec.nodeName=node1 only), and a
    # pod that does not exist
    node.create(res.PODS, {"metadata": {"name": "elsewhere", "namespace": "default",
                                        "annotations": node.pod_annotations()},
                           "spec": {"nodeName": "node9", "containers": []}})
    for name in ("elsewhere", "nowhere"):
        code, out, _ = node.cni("ADD", "c0ffee14", netns, name)
        assert code == 1 and out["code"] == 11 and "not in the node agent's cache" in out["msg"]
    _nothing_left(node, "c0ffee13", netns)
    _nothing_left(node, "c0ffee14", netns)


def test_the_agent_unreachable_is_try_again_later(node: NodeEnv) -> None:
    netns = node.netns("bad-4")
    conf = {"cniVersion": "1.0.0", "name": "ycloud", "type": "ycloud-cni",
            "socket": str(node.dir / "nobody.sock")}
    code, out, _ = node.cni("ADD", "c0ffee15", netns, "web-1", conf=conf)
    assert code == 1 and out["code"] == 11
    assert out["msg"] == "the ycloud node agent is not reachable"


def test_pod_deleted_its_port_is_collected(node: NodeEnv) -> None:
    netns, result, host = node.plugged_pod("gone", "c0ffee16", "10.16.0.8",
                                           "0a:58:0a:10:00:08")
    assert node.fake is not None
    node.fake.store.delete(res.PODS, "gone", "default")
    eventually(lambda: host not in node.ports_of("br-int") and host not in node.links(),
               "the port and the veth of a deleted pod to go")
    assert node.cni("DEL", "c0ffee16", netns, "gone")[0] == 0  # kubelet's DEL after it


def test_chassis_external_ids(node: NodeEnv) -> None:
    ids = dict(kv.split("=", 1) for kv in node.vsctl(
        "--bare", "get", "Open_vSwitch", ".", "external_ids").strip("{}\n").replace(
        '"', "").split(", "))
    assert ids["system-id"] == NODE and ids["hostname"] == NODE
    assert ids["ovn-remote"] == "tcp:192.0.2.1:6642"
    assert ids["ovn-encap-type"] == "geneve" and ids["ovn-encap-ip"] == node.node_ip
    assert ids["ovn-bridge-datapath-type"] == "netdev"
    assert "ovn-bridge-mappings" not in ids
    assert node.vsctl("get", "Bridge", "br-int", "datapath_type").strip() == "netdev"


def test_a_new_sandbox_of_a_pod_replaces_the_interface_of_the_old_one(node: NodeEnv) -> None:
    old_netns, _, old_host = node.plugged_pod("again", "c0ffee20", "10.16.0.9",
                                              "0a:58:0a:10:00:09")
    new_netns = node.netns("again-2")
    code, result, raw = node.cni("ADD", "c0ffee21", new_netns, "again")
    assert code == 0, raw
    new_host = result["interfaces"][0]["name"]
    bound = {n for n, ids in node.interfaces().items()
             if ids.get(naming.OVS_IFACE_ID) == "again.default"}
    assert bound == {new_host} and old_host not in node.links()
    assert node.cni("DEL", "c0ffee20", old_netns, "again")[0] == 0  # the old sandbox's DEL
    assert new_host in node.ports_of("br-int")


def test_many_adds_and_dels_at_once(node: NodeEnv) -> None:
    """What kubelet does when a node gets a batch of pods: concurrent plugin calls."""
    from concurrent.futures import ThreadPoolExecutor
    names = [f"batch-{i}" for i in range(24)]
    for i, name in enumerate(names):
        node.pod(name, ip=f"10.16.1.{i + 10}", mac=f"0a:58:0a:10:01:{i + 10:02x}")
    netns = {name: node.netns(name) for name in names}
    with ThreadPoolExecutor(len(names)) as pool:
        adds = list(pool.map(lambda n: node.cni("ADD", f"b{n[6:]}ff", netns[n], n), names))
    assert [a[0] for a in adds] == [0] * len(names), [a[2] for a in adds if a[0]]
    hosts = {a[1]["interfaces"][0]["name"] for a in adds}
    assert len(hosts) == len(names) and hosts <= node.ports_of("br-int")
    for (_, result, _), name in zip(adds, names, strict=True):
        assert result["interfaces"][1]["mac"] == node.links(netns[name])["eth0"]["address"]
    with ThreadPoolExecutor(len(names)) as pool:
        dels = list(pool.map(lambda n: node.cni("DEL", f"b{n[6:]}ff", netns[n], n), names))
    assert [d[0] for d in dels] == [0] * len(names)
    assert not hosts & node.ports_of("br-int")
