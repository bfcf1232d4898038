"""The ycloud-cni plugin against a real node agent, real OVS (netdev) and real network
namespaces, invoked as a runtime invokes it."""

from __future__ import annotations

from topology import naming
from tests.functional.node.nodeenv import NODE, NodeEnv, eventually, sh
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
