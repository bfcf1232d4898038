"""The contract end to end: the real controller (on FakeKube and a private NB/SB/northd)
annotates a pod and the Node, the node agent plugs the pod through ycloud-cni and makes the
node port from those annotations alone (it never reads NB), ovn-controller binds both, and the
pod reaches the node over the default VPC's router and the join subnet (scenario 2's path)."""

from __future__ import annotations

from ycloud_lab.nodeenv import NODE, NodeEnv, eventually, sh

from tests.functional.node.test_packets import central  # noqa: F401 - fixture
from topology import naming
from ycloud_controller import keys
from ycloud_controller.kube import resources as res


def test_pod_plugged_from_the_controllers_annotations_reaches_the_node(
        fresh_node: NodeEnv, central) -> None:  # noqa: ANN001, F811
    box, state = central
    node = fresh_node
    assert node.fake is not None and node.chassis is not None
    node.start_ycloud_controller(state.nb_remote)
    try:
        node.create(res.PODS, {"metadata": {"name": "web", "namespace": "default"},
                               "spec": {"nodeName": NODE, "containers": []}})
        node.start_agent("--ovn-sb-db", state.sb_remote, "--ovn-installed-timeout", "60",
                         "--annotation-timeout", "60")
        node.procs.append(node.chassis.start_controller())
        netns = node.netns("web")
        code, result, raw = node.cni("ADD", "0ddba11", netns, "web")
        assert code == 0, raw
        pod = node.fake.store.get(res.PODS, "web", "default")
        ann = pod["metadata"]["annotations"]
        assert result["ips"] == [{"address": f"{ann[keys.ANN_IP]}/16",
                                  "gateway": ann[keys.ANN_GATEWAY], "interface": 1}]
        assert result["interfaces"][1]["mac"] == ann[keys.ANN_MAC]
        node_ann = eventually(lambda: (node.fake.store.get(res.NODES, NODE)["metadata"]
                                       .get("annotations") or {}).get(keys.ANN_IP),
                              "the controller's node annotations")
        eventually(lambda: node.interfaces().get("ycloud0", {}).get(naming.OVS_INSTALLED),
                   "the node port bound by ovn-controller", timeout=60)
        ping = sh("nsenter", f"--net={netns}", "ping", "-c", "3", "-i", "0.2", "-W", "5",
                  node_ann, check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
    finally:
        node.stop_ycloud_controller()  # before the sandbox (central) goes
