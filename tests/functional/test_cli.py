"""The CLI as users run it: sync --once, render and inspect on the example manifests."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from ovn_sandbox import Sandbox

from tests.functional.conftest import find, nb_db_file
from topology.nbsync.client import NbClient

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests" / "examples"


def cli(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess:
    assert sandbox.state is not None
    cmd = [sys.executable, "-m", "ycloud_controller.cli", *args, "--ovn-nb-db",
           sandbox.state.nb_remote, "--log-format", "json"]
    if args[0] in ("sync", "render"):
        cmd += ["--ovn-sb-db", sandbox.state.sb_remote]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=ROOT)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sync_once_builds_examples_and_second_run_changes_nothing(sandbox: Sandbox,
                                                                   nb: NbClient) -> None:
    first = cli(sandbox, "sync", "--once", "--manifests", str(EXAMPLES))
    assert first.returncode == 0, first.stderr[-2000:]
    assert "converged" in first.stdout
    # rows that wait for an EIP pool are not sent early only to be refused
    assert "owner not applied" not in first.stderr
    show = sandbox.nbctl("show")
    for name in ("(vpc-vpc1)", "(vpc-vpc2)", "(ovn-cluster)", "(subnet1)", "(subnet0)",
                 "(eipgw-pool1)", "(svcgw-pool1)", "(eipts-pool1)", "(ext-pool1)",
                 "port web-1.ns-vpc1", "port node-node1", "port vnic.vm-1.ns-vpc1"):
        assert name in show, name
    lbs = {lb["name"] for lb in find(sandbox, "Load_Balancer")}
    assert {"Service_ns-vpc1/web_TCP_cluster", "Service_ns-vpc1/web_UDP_cluster",
            "Service_default/nginx_TCP_cluster", "Service_ns-vpc1/web-eip_TCP_eip",
            "Service_demo/multi_TCP_eip", "Service_default/ysvc1_TCP_cluster"} <= lbs
    sandbox.nbctl("--wait=sb", "sync")
    before = digest(nb_db_file(sandbox))
    second = cli(sandbox, "sync", "--once", "--manifests", str(EXAMPLES))
    assert second.returncode == 0, second.stderr[-2000:]
    assert digest(nb_db_file(sandbox)) == before


def test_render_prints_the_plan_without_writing(sandbox: Sandbox, nb: NbClient) -> None:
    before = digest(nb_db_file(sandbox))
    out = cli(sandbox, "render", "--manifests", str(EXAMPLES), "--format", "json")
    assert out.returncode == 0, out.stderr[-2000:]
    changes = json.loads(out.stdout)
    inserted = {(c["table"], c["key"]) for c in changes if c["op"] == "insert"}
    assert ("Logical_Router", "vpc-vpc1") in inserted
    assert ("Load_Balancer", "Service_default/nginx_TCP_cluster") in inserted
    assert digest(nb_db_file(sandbox)) == before
    assert cli(sandbox, "sync", "--once", "--manifests", str(EXAMPLES)).returncode == 0
    again = cli(sandbox, "render", "--manifests", str(EXAMPLES))
    assert again.returncode == 0 and "no changes" in again.stdout


def test_inspect_shows_a_service_and_where_it_is_attached(sandbox: Sandbox,
                                                           nb: NbClient) -> None:
    assert cli(sandbox, "sync", "--once", "--manifests", str(EXAMPLES)).returncode == 0
    out = cli(sandbox, "inspect", "service/ns-vpc1/web")
    assert out.returncode == 0, out.stderr
    assert "Service_ns-vpc1/web_TCP_cluster" in out.stdout
    assert "vip 10.96.10.10:80 -> " in out.stdout
    assert "in group vpc-vpc1 on switches subnet1, subnet2" in out.stdout
    assert "ovn-nbctl find Load_Balancer external_ids:ycloud.io/kind=Service" in out.stdout
    data = json.loads(cli(sandbox, "inspect", "svc/ns-vpc1/web-eip", "--format",
                          "json").stdout)
    assert {"lb": "Service_ns-vpc1/web-eip_TCP_eip", "router": "vpc-vpc1"} in \
        data["attachments"]
    missing = cli(sandbox, "inspect", "service/nope/nothing")
    assert missing.returncode == 1 and "no NB rows" in missing.stdout


def test_bad_manifests_are_reported_not_fatal(sandbox: Sandbox, nb: NbClient,
                                              tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("this: [is: not yaml\n")
    (tmp_path / "objects.yaml").write_text("""
apiVersion: iaas.yusur.io/v1
kind: Subnet
metadata: {name: broken}
spec: {cidrBlock: 10.9.0.0/33}
---
apiVersion: iaas.yusur.io/v1
kind: Subnet
metadata: {name: good}
spec: {cidrBlock: 10.9.1.0/24}
""")
    out = cli(sandbox, "sync", "--once", "--manifests", str(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "invalid Subnet broken" in out.stderr
    assert find(sandbox, "Logical_Switch", "name=good")
    assert not find(sandbox, "Logical_Switch", "name=broken")
    strict = cli(sandbox, "sync", "--once", "--strict", "--manifests", str(tmp_path))
    assert strict.returncode == 1


def test_usage_errors_say_what_is_wrong(sandbox: Sandbox) -> None:
    out = subprocess.run([sys.executable, "-m", "ycloud_controller.cli", "sync", "--once",
                          "--manifests", str(EXAMPLES)], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, cwd=ROOT, timeout=60)
    assert out.returncode == 1 and "no NB remote" in out.stderr
