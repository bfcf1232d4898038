"""ycloud-cni's own checks (no agent needed) and the node agent's pure helpers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from topology import naming
from ycloud_controller import keys
from ycloud_controller.node import addressing, plugin
from ycloud_controller.node.chassis import gateway_providers, merged_mappings
from ycloud_controller.node.vfpool import VfPair, VfPool, parse_pairs

ROOT = Path(__file__).resolve().parents[2]
CONF = {"cniVersion": "1.0.0", "name": "ycloud", "type": "ycloud-cni",
        "socket": "/nonexistent/cni.sock"}
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/var/run/netns/x",
       "CNI_IFNAME": "eth0", "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"}


def run(env: dict[str, str], conf: object = CONF) -> tuple[int, dict]:
    code, out = plugin.run(env, conf if isinstance(conf, str) else json.dumps(conf))
    return code, json.loads(out) if out else {}


def test_the_plugin_imports_only_the_standard_library() -> None:
    code = ("import sys; before = set(sys.modules); import ycloud_controller.node.plugin; "
            "print('\\n'.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.split()
    outside = {m for m in out if m.split(".")[0].lstrip("_") not in sys.stdlib_module_names}
    assert outside == {"ycloud_controller", "ycloud_controller.node",
                       "ycloud_controller.node.plugin"}


def test_version_needs_nothing_but_stdin() -> None:
    assert run({"CNI_COMMAND": "VERSION"}, {"cniVersion": "0.4.0"}) == (
        0, {"cniVersion": "1.0.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]})


@pytest.mark.parametrize("env,conf,code,msg", [
    ({**ENV, "CNI_COMMAND": "GC"}, CONF, 4, "CNI_COMMAND 'GC' is not one of"),
    ({**ENV, "CNI_IFNAME": "a-very-long-ifname"}, CONF, 4, "CNI_IFNAME"),
    ({**ENV, "CNI_ARGS": "K8S_POD_NAME"}, CONF, 4, "CNI_ARGS"),
    (ENV, "[]", 6, "not a JSON object"),
    (ENV, {**CONF, "cniVersion": ""}, 7, "no cniVersion"),
    (ENV, {**CONF, "timeoutSeconds": -1}, 7, "timeoutSeconds"),
    (ENV, {"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "bridge"}]}, 7,
     "no ycloud-cni plugin"),
    (ENV, CONF, 11, "the ycloud node agent is not reachable"),
])
def test_errors_before_the_agent(env: dict, conf: object, code: int, msg: str) -> None:
    got_code, out = run(env, conf)
    assert got_code == 1 and out["code"] == code and msg in out["msg"]
    assert out["cniVersion"] in ("1.0.0",)


def test_a_conflist_on_stdin_is_read_as_its_ycloud_entry() -> None:
    conf = plugin.read_config(json.dumps({"cniVersion": "1.0.0", "name": "k8s", "plugins": [
        {"type": "ycloud-cni", "socket": "/run/x.sock"}, {"type": "portmap"}]}))
    assert conf == {"type": "ycloud-cni", "socket": "/run/x.sock", "cniVersion": "1.0.0",
                    "name": "k8s"}


def test_del_needs_no_netns_nor_pod() -> None:
    req = plugin.build_request({"CNI_CONTAINERID": "abc", "CNI_IFNAME": "eth0"}, CONF, "DEL")
    assert (req["netns"], req["podName"]) == ("", "")


def test_addressing_dual_stack() -> None:
    addr = addressing.parse({
        keys.ANN_IP: "10.16.0.5,fd16::5", keys.ANN_MAC: "0A:58:0A:10:00:05",
        keys.ANN_GATEWAY: "10.16.0.1,fd16::1", keys.ANN_CIDR: "10.16.0.0/16,fd16::/112",
        keys.ANN_MTU: "1400"})
    assert addr.ips == ("10.16.0.5/16", "fd16::5/112") and addr.mac == "0a:58:0a:10:00:05"
    assert addr.gateway_for("fd16::5/112") == "fd16::1" and addr.mtu == 1400


@pytest.mark.parametrize("change,why", [
    ({keys.ANN_IP: "10.17.0.5"}, "is in none of"),
    ({keys.ANN_MAC: "nope"}, "is not a MAC"),
    ({keys.ANN_MTU: "99"}, "out of range"),
])
def test_addressing_rejects(change: dict, why: str) -> None:
    ann = {keys.ANN_IP: "10.16.0.5", keys.ANN_MAC: "0a:58:0a:10:00:05",
           keys.ANN_GATEWAY: "10.16.0.1", keys.ANN_CIDR: "10.16.0.0/16", **change}
    with pytest.raises(addressing.BadAnnotations, match=why):
        addressing.parse(ann)


def test_bridge_mappings_of_gateway_nodes() -> None:
    pools = [{"metadata": {"name": "p1"}, "spec": {
        "cidr": "192.0.2.0/24", "gateway": "192.0.2.1", "providerNetwork": "ext",
        "gatewayNodes": ["n1", "n2"]}},
        {"metadata": {"name": "bad"}, "spec": {"providerNetwork": "broken"}}]
    assert gateway_providers("n1", pools) == ({"ext"}, {"ext"})
    assert gateway_providers("n3", pools) == (set(), {"ext"})
    assert merged_mappings("phys:br-p,ext:br-old", {"ext": "br-ext"}, {"ext"}) == \
        "phys:br-p,ext:br-ext"
    assert merged_mappings("phys:br-p,ext:br-old", {}, {"ext"}) == "phys:br-p"


def test_vf_pool() -> None:
    assert parse_pairs(["vf0:rep0,vf1:rep1", "vf2:rep2"]) == (
        VfPair("vf0", "rep0"), VfPair("vf1", "rep1"), VfPair("vf2", "rep2"))
    with pytest.raises(ValueError, match="VF:REPRESENTOR"):
        parse_pairs(["vf0"])
    with pytest.raises(ValueError, match="twice"):
        parse_pairs(["vf0:rep0,vf0:rep1"])
    pool = VfPool(parse_pairs(["vf0:rep0,vf1:rep1"]))
    used = [{"name": "rep0", "external_ids": {naming.REPRESENTOR: "vf0"}}]
    assert pool.free(used) == VfPair("vf1", "rep1") and pool.vf_of("rep1") == "vf1"
