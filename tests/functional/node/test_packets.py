"""Real packets: two pods plugged by ycloud-cni on one node, bound by a real ovn-controller
to a hand-made NB switch (a private NB/SB/northd), answer each other; ADD returns only once
ovn-controller marked the port ovn-installed."""

from __future__ import annotations

from pathlib import Path

import pytest
from ovn_sandbox import Sandbox, SandboxError
from ycloud_lab.nodeenv import NodeEnv, sh

from topology import naming

PODS = {"pa": ("0a:58:0a:10:00:0a", "10.16.0.10"), "pb": ("0a:58:0a:10:00:0b", "10.16.0.11")}


@pytest.fixture
def central(tmp_path: Path):  # noqa: ANN201 - a generator fixture
    box = Sandbox(tmp_path / "central")
    try:
        state = box.start()
    except SandboxError as exc:
        pytest.skip(str(exc))
    try:
        yield box, state
    finally:
        box.stop()


def test_two_pods_plugged_by_the_plugin_talk_through_ovn(fresh_node: NodeEnv, central) -> None:  # noqa: ANN001
    box, state = central
    node = fresh_node
    box.nbctl("ls-add", "ovn-default")
    for name, (mac, ip) in PODS.items():
        port = naming.pod_port("default", name)
        box.nbctl("lsp-add", "ovn-default", port, "--", "lsp-set-addresses", port, f"{mac} {ip}")
    node.start_agent("--ovn-sb-db", state.sb_remote, "--ovn-installed-timeout", "60")
    assert node.chassis is not None
    node.procs.append(node.chassis.start_controller())
    netns = {}
    for i, (name, (mac, ip)) in enumerate(PODS.items()):
        netns[name], result, host = node.plugged_pod(name, f"feedbee{i}", ip, mac)
        assert node.interfaces()[host][naming.OVS_INSTALLED] == "true"  # before ADD answered
    assert "pa.default" in box.sbctl("--bare", "--columns=logical_port", "list",
                                     "Port_Binding")
    ping = sh("nsenter", f"--net={netns['pa']}", "ping", "-c", "3", "-i", "0.2", "-W", "5",
              PODS["pb"][1], check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
