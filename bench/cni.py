"""`python -m bench --cni [--cni-pods 100]`: the node half under a burst (root needed).

A private OVN (ovn_sandbox: NB, SB, northd) and one node (ycloud_lab.nodeenv: a network
namespace with its own ovsdb-server/ovs-vswitchd (netdev), a real ovn-controller on the
sandbox's SB, FakeKube reachable over a veth, the node agent, the installed ycloud-cni). The
controller (in this process, on FakeKube through ApiBackend) annotates the pods and writes their
NB ports, so northd -> SB -> ovn-controller sets ovn-installed.

N pods are created on the node and the controller's annotations awaited (the controller's own
latency is the service bench's subject, not this one's); then the plugin ADD is invoked for all
N at once, one thread per pod each running the plugin executable as a runtime does (CNI_*
environment, the installed conflist on stdin, a netns per pod made with `ip netns add`).
Each call is timed from its start to its successful result: the agent answers once
ovn-controller marked the port ovn-installed. Reported: p50/p99/max ADD latency, the batch's
wall time, and the agent's peak RSS (VmHWM). Then DEL for all at once, and a check that no
pod port is left on br-int, no pod veth in the node's namespace, no pod netns after removal.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ovn_sandbox import Sandbox
from ycloud_lab.nodeenv import NODE, NodeEnv, eventually

from bench.report import machine, pct, write_results
from topology import naming
from ycloud_controller import keys, logs
from ycloud_controller.kube import resources as res


def vm(pid: int, key: str) -> int:
    """A /proc/<pid>/status figure in kB (VmHWM: peak RSS, VmRSS: current)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} for pid {pid}")


def batch(node: NodeEnv, command: str, pods: list[str], netns: dict[str, str]
          ) -> tuple[dict[str, tuple[float, int, dict[str, Any] | None, str]], float]:
    """`command` for every pod at once: {pod: (seconds, exit code, result, stdout)}, wall."""
    start = threading.Barrier(len(pods) + 1)

    def one(i: int, pod: str) -> tuple[float, int, dict[str, Any] | None, str]:
        start.wait()
        t0 = time.monotonic()
        code, result, raw = node.cni(command, f"bench{i:08x}", netns[pod], pod)
        return time.monotonic() - t0, code, result, raw

    with ThreadPoolExecutor(max_workers=len(pods)) as pool:
        futures = {pod: pool.submit(one, i, pod) for i, pod in enumerate(pods)}
        start.wait()
        t0 = time.monotonic()
        out = {pod: f.result() for pod, f in futures.items()}
        wall = time.monotonic() - t0
    return out, wall


def pod_ports(node: NodeEnv, pods: list[str]) -> set[str]:
    """br-int's ports that plug one of the pods."""
    ifaces, ids = node.interfaces(), {naming.pod_port("default", p) for p in pods}
    return {p for p in node.ports_of("br-int") if ifaces.get(p, {}).get(naming.OVS_IFACE_ID) in ids}


def agent_seconds(node: NodeEnv, pods: list[str]) -> list[float]:
    """The agent's own time of each ADD (its cni_add line: request read to ovn-installed)."""
    want, out = {f"default/{p}" for p in pods}, []
    for line in (node.dir / "agent.log").read_text().splitlines():
        if '"cni_add"' in line:
            rec = json.loads(line)
            if rec.get("event") == "cni_add" and rec.get("pod") in want:
                out.append(float(rec["seconds"]))
    return out


def plugin_start(node: NodeEnv, runs: int = 3) -> float:
    """The plugin executable alone (CNI_COMMAND=VERSION, no agent), median of `runs`."""
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        code = node.cni("VERSION")[0]
        times.append(time.monotonic() - t0)
        if code != 0:
            raise RuntimeError("ycloud-cni VERSION failed")
    return sorted(times)[len(times) // 2]


def annotated(node: NodeEnv, pods: list[str]) -> bool:
    assert node.fake is not None
    return all(keys.ANN_IP in (node.fake.store.get(res.PODS, p, "default")["metadata"]
                               .get("annotations") or {}) for p in pods)


def measure(n: int, workdir: Path) -> dict[str, Any]:
    box = Sandbox(workdir / "central")
    state = box.start()
    (workdir / "node").mkdir(parents=True, exist_ok=True)
    node = NodeEnv(workdir / "node")
    try:
        node.start()
        assert node.fake is not None and node.chassis is not None
        node.start_ycloud_controller(state.nb_remote)
        pods = [f"burst-{i:03d}" for i in range(n)]
        for pod in pods:
            node.create(res.PODS, {"metadata": {"name": pod, "namespace": "default"},
                                   "spec": {"nodeName": NODE, "containers": []}})
        agent = node.start_agent("--ovn-sb-db", state.sb_remote, "--ovn-installed-timeout",
                                 "120", "--annotation-timeout", "120", "--log-level",
                                 "info")  # its cni_add lines, without debug's cost
        node.procs.append(node.chassis.start_controller())
        eventually(lambda: annotated(node, pods), "the controller's pod annotations", 120)
        eventually(lambda: node.interfaces().get("ycloud0", {}).get(naming.OVS_INSTALLED),
                   "the node port bound by ovn-controller", timeout=120)
        netns = {pod: node.netns(pod) for pod in pods}
        start_alone = plugin_start(node)
        rss_before = vm(agent.pid, "VmRSS")
        adds, add_wall = batch(node, "ADD", pods, netns)
        failed = {p: raw for p, (_, code, _, raw) in adds.items() if code != 0}
        if failed:
            raise RuntimeError(f"{len(failed)} ADDs failed, e.g. {next(iter(failed.items()))}")
        ifaces = node.interfaces()
        hosts = [adds[p][2]["interfaces"][0]["name"] for p in pods]  # type: ignore[index]
        installed = sum(1 for h in hosts if ifaces.get(h, {}).get(naming.OVS_INSTALLED))
        peak = vm(agent.pid, "VmHWM")
        dels, del_wall = batch(node, "DEL", pods, netns)
        del_failed = sum(1 for _, code, _, _ in dels.values() if code != 0)
        left_ports = pod_ports(node, pods)
        links = node.links()
        left_veths = sorted(h for h in hosts if h in links)
        for ns in node.pod_netns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        left_netns = sorted(ns for ns in node.pod_netns if ns in listed.split())
        node.pod_netns.clear()
        latencies, inside = [adds[p][0] for p in pods], agent_seconds(node, pods)
        return {
            "pods": n, "add_p50_ms": pct(latencies, 50) * 1000,
            "add_p99_ms": pct(latencies, 99) * 1000, "add_max_ms": max(latencies) * 1000,
            "add_min_ms": min(latencies) * 1000, "add_wall_s": add_wall,
            "agent_p50_ms": pct(inside, 50) * 1000, "agent_p99_ms": pct(inside, 99) * 1000,
            "agent_adds": len(inside), "plugin_alone_ms": start_alone * 1000,
            "ovn_installed": installed, "del_wall_s": del_wall, "del_failed": del_failed,
            "agent_rss_before_mb": rss_before / 1024, "agent_peak_rss_mb": peak / 1024,
            "left_ports": sorted(left_ports), "left_veths": left_veths,
            "left_netns": left_netns, "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        }
    finally:
        node.stop()
        box.stop()


def render(r: dict[str, Any], info: dict[str, str], command: str, label: str) -> str:
    return (
        f"#### {label}: CNI ADD burst on one node\n\n"
        f"`{command}`; {info['cpu']}, {info['memory']}, {info['ovn']}; load average "
        f"{' '.join(r['loadavg'])} at the end\n\n"
        "| pods at once | ADD p50 | ADD p99 | ADD max | batch wall | in the agent p50 / p99 "
        "| plugin alone | ovn-installed | DEL wall | agent RSS before | agent peak RSS (VmHWM) "
        "| left after DEL |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {r['pods']} | {r['add_p50_ms']:.0f} ms | {r['add_p99_ms']:.0f} ms | "
        f"{r['add_max_ms']:.0f} ms | {r['add_wall_s']:.2f} s | {r['agent_p50_ms']:.0f} / "
        f"{r['agent_p99_ms']:.0f} ms | {r['plugin_alone_ms']:.0f} ms | "
        f"{r['ovn_installed']}/{r['pods']} "
        f"| {r['del_wall_s']:.2f} s | {r['agent_rss_before_mb']:.0f} MB | "
        f"{r['agent_peak_rss_mb']:.0f} MB | "
        f"{len(r['left_ports']) + len(r['left_veths']) + len(r['left_netns'])} |\n\n"
        "ADD: the plugin executable's call, from its start to its result (the agent answers "
        "once ovn-controller marked the port ovn-installed), all calls started together "
        "after the controller had annotated every pod. In the agent: its own time per ADD "
        "(its cni_add log line: request read to ovn-installed). Plugin alone: one "
        "`ycloud-cni` VERSION call on the idle node (the interpreter's start), median of "
        "3.\n\n")


def run(args: argparse.Namespace, command: str, log: Any) -> int:
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="ycloud-bench-cni-"))
    workdir.mkdir(parents=True, exist_ok=True)
    logs.configure("console", args.log_level)  # the in-process controller's lines
    log(f"cni: {args.cni_pods} pods at once on one node (work directory {workdir})")
    result = measure(args.cni_pods, workdir)
    label = "cni" if args.label == "latest" else args.label
    block = render(result, machine(), command, label)
    sys.stdout.write(block)
    if args.results != "-":
        write_results(Path(args.results), label, block)
        log(f"wrote {args.results} (block '{label}')")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    left = result["left_ports"] or result["left_veths"] or result["left_netns"]
    return 1 if left or result["del_failed"] else 0
