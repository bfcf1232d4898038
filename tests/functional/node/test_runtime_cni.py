"""containerd (the lab's runtime, its CRI API driven as kubelet drives it) calls the installed
ycloud-cni, which the node agent answers: two pods made by RunPodSandbox, bound by a real
ovn-controller, ping each other; StopPodSandbox/RemovePodSandbox (two DELs) unplug them.

The runtime is the harness' (scripts/ycloud_lab/runtime.py, pods.py, on main since the wip-cri
merge): the test is skipped where the harness has no runtime yet."""

from __future__ import annotations

import pytest

pytest.importorskip("grpc")
pytest.importorskip("ycloud_lab.runtime")

from ycloud_lab.nodeenv import NodeEnv  # noqa: E402
from ycloud_lab.pods import create_pod, delete_pod, pod_exec  # noqa: E402
from ycloud_lab.runtime import chassis_runtime, cni_bin_dir, missing_tools  # noqa: E402

from tests.functional.node.test_packets import PODS, central  # noqa: E402, F401
from topology import naming  # noqa: E402


def test_pods_made_by_containerd_through_ycloud_cni(fresh_node: NodeEnv, central) -> None:  # noqa: ANN001, F811
    if missing_tools():
        pytest.skip(f"missing {', '.join(missing_tools())}")
    box, state = central
    node = fresh_node
    box.nbctl("ls-add", "ovn-default")
    uids = {}
    for name, (mac, ip) in PODS.items():
        port = naming.pod_port("default", name)
        box.nbctl("lsp-add", "ovn-default", port, "--", "lsp-set-addresses", port, f"{mac} {ip}")
        uids[name] = node.pod(name, ip=ip, mac=mac)["metadata"]["uid"]
    node.start_agent("--ovn-sb-db", state.sb_remote, "--ovn-installed-timeout", "60")
    assert node.chassis is not None
    node.procs.append(node.chassis.start_controller())
    runtime = chassis_runtime(node.dir / "chassis", node.ns,
                              cni_bin=cni_bin_dir(node.dir / "cni-bin",
                                                  {"ycloud-cni": node.plugin}),
                              cni_conf=node.dir / "net.d")
    runtime.start()
    try:
        pods = {name: create_pod(runtime, name, "default", uid=uids[name]) for name in PODS}
        assert {n: p.ips for n, p in pods.items()} == {n: (ip,) for n, (_, ip) in PODS.items()}
        ping = pod_exec(pods["pa"], "ping", "-c", "3", "-i", "0.2", "-W", "5", PODS["pb"][1],
                        check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        ours = {n for n, ids in node.interfaces().items() if naming.NODE_AGENT_OWNER in ids}
        assert len(ours) == 2
        for pod in pods.values():
            delete_pod(runtime, pod)
        assert not ours & set(node.interfaces())
    finally:
        assert runtime.stop() == []
        runtime.purge()
