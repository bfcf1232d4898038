"""`python -m bench --cni` stays green: with 5 pods at once on one node (a private OVN, a real
ovn-controller, the controller, the node agent and the installed ycloud-cni), every ADD
succeeds once its port is ovn-installed, the agent's peak RSS is read, and DEL leaves nothing
behind. It times nothing against a limit: the figures are read in the README, not asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ycloud_lab.nodeenv import skip_reason

ROOT = Path(__file__).resolve().parents[2]


def test_cni_bench_runs_a_small_burst(tmp_path: Path) -> None:
    why = skip_reason()
    if why:
        pytest.skip(why)
    out = tmp_path / "cni.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--cni", "--cni-pods", "5", "--dir",
         str(tmp_path / "work"), "--json", str(out), "--results", "-", "--log-level",
         "warning"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["pods"] == 5 and result["ovn_installed"] == 5
    assert 0 < result["add_min_ms"] <= result["add_p50_ms"] <= result["add_p99_ms"] \
        <= result["add_max_ms"]
    assert result["agent_peak_rss_mb"] >= result["agent_rss_before_mb"] > 0
    assert result["agent_adds"] == 5 and result["plugin_alone_ms"] > 0  # the breakdown
    assert result["del_failed"] == 0
    assert (result["left_ports"], result["left_veths"], result["left_netns"]) == ([], [], [])
    assert "| 5 |" in proc.stdout  # the table
