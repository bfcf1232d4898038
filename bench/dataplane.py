"""`python -m bench --dataplane`: the original design's dataplane table (bandwidth, packet
rate, latency, requests/s of a Service with a remote backend against the same traffic without
a Service), reproduced in the lab (root needed; nothing of it is in the test suite).

The lab (tests/lab/shape.yaml: node1, node2, gw1, gw2, external hosts) comes up as the lab
tests bring it up: FakeKube holding manifests/examples plus bench/manifests/dataplane.yaml,
the controller in-process on it, node agent + ycloud-cni + containerd on every chassis, the
examples prepared as scripts/demo does (scenarios.prepare_examples). The bench's objects: a
client pod on node1 (ns-vpc1), a server pod on node2 in ns-vpc1 and one in the default VPC,
and four Services whose ONLY backend is a server on node2 (so every Service path has a remote
backend and iperf3's connections all reach one server).

Paths (the clients run in the pod's / chassis' / host's network namespace by
`ip netns exec`, not in the pod's busybox image; the server tools likewise run in the server
pods' namespaces):
  direct          pod -> pod IP across chassis (node1 -> node2): THE baseline of every ratio
  node-direct     node1 -> the default-VPC server pod's IP (routed by the node port, if
                  routable): a node's own traffic without a Service, shown for reference
  pod-clusterip   pod -> ClusterIP of the vpc1 server (scenario 1)
  node-clusterip  node1 -> ClusterIP of the default-VPC server (scenario 2)
  ext-eip         ext1 -> EIP of a LoadBalancer Service in vpc1 (scenario 3, via a gateway)
  ext-multi       ext1 -> multi-VPC EIP (scenario 4, via the service gateway, SNAT)
External -> backend pod IP is not routable (pod addresses are private to their VPC), so the
external paths are compared with the same pod-to-pod baseline.

Per path and round: bandwidth = `iperf3 -c` TCP, one stream, Gbit/s received; packet rate =
`iperf3 -u -l 64 -b 0` (64-byte UDP payloads, unlimited), packets the server received per
second; latency = p50 of 1-byte round trips on one persistent TCP connection (bench/rr.py,
as netperf TCP_RR); requests/s = new TCP connection per request (connect, 1 byte each way,
server closes; as netperf TCP_CRR: what a Service's load balancer does per connection). The
original design does not say how its requests/s were made; new connections are the harder
case for a Service (a conntrack entry and a backend choice per request). The requests/s loop
also reads every chassis' `dpif-netdev/pmd-stats-show` before and after: datapath packets
and recirculations per request, which do not depend on the machine's load.

Rounds (Settings: 7 rounds of 3 s runs; `--quick`: 1 round of 2 s, writes nothing): metric
by metric, all paths one after the other, the order rotated each round; ratios are taken
within a round (bench/dptable.py). Each path's requests/s loop uses its own source ports
(`source_ports`): with the kernel's ephemeral ports, OVS 3.1's userspace conntrack aborted
ovs-vswitchd in the direct loop (a direct connection taking the tuple an earlier Service
connection of the client was DNATed to). A lab daemon that dies mid-round anyway drops the
round: the chassis is restarted (stop/start-chassis), the servers started again, the round
run again (at most MAX_CRASHES times); the block lists each with what was running. After the rounds,
`ycloud_lab.recirc` counts one request's recirculations per path. The lab is taken down in
every case (`finally`), the servers (bounded by `timeout`) stopped by pid before it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ycloud_lab import checkrun, inprocess, recirc, scenarios
from ycloud_lab.cluster import Cluster, load_manifests
from ycloud_lab.lab import DEFAULT_SHAPE, Lab
from ycloud_lab.ovsdb import rows
from ycloud_lab.proc import LabError

from bench import dptable
from bench.report import machine, write_results
from topology import naming
from ycloud_controller import logs

HERE = Path(__file__).resolve().parent
MANIFESTS = HERE / "manifests" / "dataplane.yaml"
IPERF_PORT, RR_PORT = 5201, 5202  # the servers' ports, the Services' ports and targetPorts
SPORTS_FIRST, SPORTS_PER_PATH = 8000, 4000  # 8000-31999: under 32768, the ephemeral range
MAX_CRASHES = 5  # chassis restarts (a daemon died mid-round) before the run gives up
CLIENT = naming.pod_port("ns-vpc1", "dp-client")
SERVER = naming.pod_port("ns-vpc1", "dp-server")
NODE_SERVER = naming.pod_port("default", "dp-node-server")
NODE = "node1"
EXT = scenarios.EXT_HOST
BASELINE = "direct"
SERVER_LIFETIME = 3600  # seconds: every server is bounded (`timeout`) and stopped by pid


@dataclass(frozen=True)
class DpPath:
    id: str
    label: str
    client: str  # lab target
    server: str  # the server pod's NB port
    vip: str | None = None  # None: the server pod's own IP (a direct path)
    service: bool = True


PATHS = (
    DpPath(BASELINE, "pod -> pod across chassis (direct, baseline)", CLIENT, SERVER,
           service=False),
    DpPath("node-direct", "node -> pod across chassis (direct)", NODE, NODE_SERVER,
           service=False),
    DpPath("pod-clusterip", "pod -> ClusterIP", CLIENT, SERVER, "10.96.30.30"),
    DpPath("node-clusterip", "node -> ClusterIP", NODE, NODE_SERVER, "10.96.30.31"),
    DpPath("ext-eip", "external -> EIP (one VPC)", EXT, SERVER, "172.18.0.70"),
    DpPath("ext-multi", "external -> multi-VPC EIP", EXT, SERVER, "172.18.0.80"),
)
SERVICES = tuple(p.id for p in PATHS if p.service)


@dataclass(frozen=True)
class Settings:
    rounds: int = 7
    seconds: int = 3  # per iperf3 run and per requests/s loop
    round_trips: int = 2000  # per latency run


QUICK = Settings(rounds=1, seconds=2, round_trips=300)


# -- servers: bounded, stopped by pid ------------------------------------------------------------
class Servers:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, lab: Lab, target: str, *cmd: str) -> None:
        argv = ["ip", "netns", "exec", lab.namespace_of(target), "timeout",
                str(SERVER_LIFETIME), *cmd]
        env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
        self.procs.append(subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))

    def stop(self) -> None:
        """TERM to each `timeout` (it passes the signal to its child), KILL after 5 s."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()


def start_tools(lab: Lab, servers: Servers) -> None:
    """iperf3 and rr in both server pods."""
    for pod in (SERVER, NODE_SERVER):
        servers.start(lab, pod, "iperf3", "-s", "-p", str(IPERF_PORT))
        servers.start(lab, pod, sys.executable, "-m", "bench.rr", "server", "--port",
                      str(RR_PORT), "--seconds", str(SERVER_LIFETIME))


class LabCrash(LabError):
    """Lab processes died (`dead`: their lab names, e.g. node1/ovs-vswitchd)."""

    def __init__(self, message: str, dead: list[str]):
        super().__init__(message)
        self.dead = dead


def check_lab(lab: Lab, during: str) -> None:
    """LabCrash naming every lab process that died (ovs-vswitchd aborting, say) with the last
    line of its log, and what was being measured."""
    dead = lab.unhealthy(lab.store.load())
    if not dead:
        return
    lines = [f"{name}: {words}" for name, words in lab.last_words(dead).items()]
    raise LabCrash(f"{', '.join(dead)} died during {during}: {'; '.join(lines)}", dead)


def restart_chassis(lab: Lab, dead: list[str], log: Any) -> None:
    """Start again every chassis a dead daemon belongs to (Lab.revive_chassis)."""
    central = [name for name in dead if name.split("/", 1)[0] == "central"]
    if central:
        raise LabError(f"cannot restart {', '.join(central)}: not a chassis")
    for name in lab.revive_chassis():
        log(f"dataplane: {name} died; its chassis restarted")


# -- one measurement ------------------------------------------------------------------------
def _json(lab: Lab, target: str, cmd: list[str], timeout: float) -> dict[str, Any]:
    env_cmd = ["env", f"PYTHONPATH={HERE.parent}", *cmd]
    res = lab.exec(target, *env_cmd, timeout=timeout)
    try:
        return json.loads(res.stdout)
    except json.JSONDecodeError as exc:
        raise dptable.ToolError(f"{' '.join(cmd[:3])} in {target}: exit {res.returncode}, "
                                f"{(res.stderr or res.stdout).strip()[:300]}") from exc


def iperf(lab: Lab, path: DpPath, ip: str, s: Settings, udp: bool) -> float:
    cmd = ["iperf3", "-c", ip, "-p", str(IPERF_PORT), "-t", str(s.seconds), "-J",
           "--connect-timeout", "3000"]
    cmd += ["-u", "-l", "64", "-b", "0"] if udp else ["-O", "1"]
    doc = _json(lab, path.client, cmd, s.seconds + 30)
    return dptable.iperf_udp_kpps(doc) if udp else dptable.iperf_tcp_gbps(doc)


def source_ports(path: DpPath) -> str:
    """The requests/s loop's source ports of `path` (FIRST:COUNT): one range per path, all
    below the kernel's ephemeral range. No direct connection then takes the tuple a Service
    connection of the same client was DNATed to, the collision after which OVS 3.1's userspace
    conntrack aborted ovs-vswitchd (conntrack.c:1063) in the direct path's loop."""
    return f"{SPORTS_FIRST + PATHS.index(path) * SPORTS_PER_PATH}:{SPORTS_PER_PATH}"


def rr(lab: Lab, path: DpPath, ip: str, s: Settings, mode: str) -> tuple[float, int]:
    """latency: (p50 round trip in us, round trips); crr: (requests/s, requests)."""
    cmd = [sys.executable, "-m", "bench.rr", "client", mode, ip, str(RR_PORT),
           "--count", str(s.round_trips), "--seconds", str(s.seconds)]
    if mode == "crr":
        cmd += ["--sports", source_ports(path)]
    doc = _json(lab, path.client, cmd, s.seconds + 60)
    if mode == "latency":
        return float(dptable.median(doc["rtt_us"]) or 0.0), len(doc["rtt_us"])
    if not doc["requests"]:
        raise dptable.ToolError(f"rr crr: no request answered ({doc['errors']} errors)")
    return doc["requests"] / doc["seconds"], doc["requests"]


def datapath_counters(lab: Lab) -> dict[str, tuple[int, int]]:
    """Every running chassis' (packets received, recirculations) so far."""
    st = lab.store.load()
    return {c: dptable.pmd_stats(lab.exec(c, "ovs-appctl", "dpif-netdev/pmd-stats-show",
                                         check=True).stdout)
            for c, cst in sorted(st.chassis.items()) if not cst.stopped}


def measure_one(lab: Lab, path: DpPath, ip: str, s: Settings, metric: str,
                extra: dict[str, float | None]) -> float:
    """One metric's value; the requests/s loop also puts the datapath's work per request
    (packets and recirculations, all chassis together) in `extra`."""
    if metric in ("gbps", "kpps"):
        return iperf(lab, path, ip, s, udp=metric == "kpps")
    if metric == "lat_us":
        return rr(lab, path, ip, s, "latency")[0]
    before = datapath_counters(lab)
    rate, requests = rr(lab, path, ip, s, "crr")
    after = datapath_counters(lab)
    for key, i in (("dp_packets_per_req", 0), ("recirc_per_req", 1)):
        extra[key] = sum(after[c][i] - before[c][i] for c in after if c in before) / requests
    return rate


def run_round(lab: Lab, paths: list[DpPath], ips: dict[str, str], s: Settings, index: int,
              errors: list[str]) -> dict[str, dict[str, float | None]]:
    """Every path once: metric by metric (one metric's runs of all paths follow each other,
    so a path and the baseline share the machine's load of the same minute), the paths'
    order rotated by one each round."""
    k = index % len(paths)
    order = paths[k:] + paths[:k]
    rnd: dict[str, dict[str, float | None]] = {p.id: {} for p in paths}
    for metric in dptable.METRICS:
        for p in order:
            try:
                rnd[p.id][metric] = measure_one(lab, p, ips[p.id], s, metric, rnd[p.id])
            except (dptable.ToolError, LabError, KeyError, ValueError) as exc:
                rnd[p.id][metric] = None
                errors.append(f"round {index + 1} {p.id} {metric}: {exc}")
            check_lab(lab, f"{p.id} {metric}")
    return rnd


# -- the lab ------------------------------------------------------------------------------------
def vips_present(lab: Lab) -> bool:
    want = {f"{p.vip}:{port}" for p in PATHS if p.vip for port in (IPERF_PORT, RR_PORT)}
    have: set[str] = set()
    for r in rows("ovn-nbctl", lab.nb_remote, "--columns=vips", "list", "Load_Balancer",
                  what="read NB Load_Balancers"):
        have |= set(r["vips"])
    return want <= have


def bring_up(lab: Lab, log: Any) -> inprocess.InProcessController:
    res = lab.up()
    log(f"dataplane: lab {res['lab_id']} up in {res['seconds']}s")
    lab.cluster = Cluster(lab, scenarios.EXAMPLES).start()
    load_manifests(lab.cluster.store, MANIFESTS.parent)
    ctl = inprocess.InProcessController(lab.nb_remote, lab.sb_remote,
                                        store=lab.cluster.store).start(timeout=300)
    scenarios.wait_until(lambda: vips_present(lab), 120, "the bench's load balancers in NB")
    handles = scenarios.prepare_examples(lab, timeout=120)
    log(f"dataplane: examples and bench pods plugged, {len(handles)} echo servers running")
    return ctl


def addresses(lab: Lab) -> dict[str, str]:
    resolver = checkrun.Resolver(lab)
    return {p.id: p.vip or resolver.port_ips(p.server)[0] for p in PATHS}


def reachable(lab: Lab, path: DpPath, ip: str) -> str | None:
    """None when one request/response gets through, else why not."""
    try:
        rr(lab, path, ip, Settings(rounds=1, seconds=1, round_trips=3), "latency")
        return None
    except (dptable.ToolError, LabError, KeyError) as exc:
        return str(exc)


def recirculations(lab: Lab, servers: Servers, ips: dict[str, str],
                   paths: list[DpPath]) -> dict[str, str]:
    """Per path, one request's datapath recirculations per chassis (ycloud_lab.recirc), with
    the lab's echo server on the request/response port in place of bench/rr.py."""
    servers.stop()
    for pod in (SERVER, NODE_SERVER):
        lab.start_server(pod, pod, "tcp", RR_PORT)
    out = {}
    for p in paths:
        try:
            out[p.id] = recirc.measure(lab, p.client, "tcp", ips[p.id], RR_PORT).describe()
        except LabError as exc:
            out[p.id] = f"not measured: {exc}"
    return out


# -- the run ------------------------------------------------------------------------------------
def measure(workdir: Path, s: Settings, log: Any) -> dict[str, Any]:
    lab = Lab(DEFAULT_SHAPE, workdir / "lab")
    servers = Servers()
    ctl: inprocess.InProcessController | None = None
    try:
        ctl = bring_up(lab, log)
        ips = addresses(lab)
        start_tools(lab, servers)
        time.sleep(1.0)  # the servers bind
        paths, skipped = [], {}
        for p in PATHS:
            why = reachable(lab, p, ips[p.id])
            if why is None:
                paths.append(p)
            else:
                skipped[p.id] = why
                log(f"dataplane: {p.id} ({ips[p.id]}) not reachable, left out: {why}")
        rounds: list[dict[str, dict[str, float | None]]] = []
        errors: list[str] = []
        crashes: list[str] = []
        out = {"rounds": rounds, "errors": errors, "crashes": crashes, "skipped": skipped,
               "ips": ips}
        while len(rounds) < s.rounds:
            index = len(rounds) + len(crashes)
            round_errors: list[str] = []
            try:
                rnd = run_round(lab, paths, ips, s, index, round_errors)
            except LabCrash as exc:  # the round is not counted; the chassis starts again
                crashes.append(f"round {len(rounds) + 1} (attempt {index + 1}): {exc}")
                log(f"dataplane: {exc}")
                if len(crashes) > MAX_CRASHES:
                    errors.append(f"rounds stopped after {len(crashes)} crashes")
                    return out
                servers.stop()  # iperf3 stays busy with a test whose client is gone
                restart_chassis(lab, exc.dead, log)
                start_tools(lab, servers)
                time.sleep(1.0)  # the servers bind
                continue
            errors += round_errors
            rounds.append(rnd)
            log(f"dataplane: round {len(rounds)}/{s.rounds}: " + "; ".join(
                f"{p} " + " ".join(f"{m}={v:.4g}" if v is not None else f"{m}=failed"
                                   for m, v in vals.items()) for p, vals in rnd.items()))
        return {**out, "recirc": recirculations(lab, servers, ips, paths)}
    finally:
        servers.stop()
        if ctl is not None:
            ctl.stop()
        if lab.cluster is not None:
            lab.cluster.stop()
            lab.cluster = None
        done = lab.down()
        log(f"dataplane: lab down ({len(done['processes'])} processes, "
            f"{len(done['namespaces'])} namespaces)")


def run(args: argparse.Namespace, command: str, log: Any) -> int:
    from bench.dprender import render

    workdir = Path(args.dir or tempfile.mkdtemp(prefix="ycloud-bench-dp-"))
    workdir.mkdir(parents=True, exist_ok=True)
    logs.configure("console", "warning")  # the in-process controller's lines stay out
    s = QUICK if args.quick else Settings()
    started = time.monotonic()
    result = measure(workdir, s, log)
    result["seconds"] = round(time.monotonic() - started, 1)
    result["load"] = os.getloadavg()
    label = "dataplane" if args.label == "latest" else args.label
    block = render(result, machine(), command, label, s)
    sys.stdout.write(block)
    if args.results != "-" and not args.quick:
        write_results(Path(args.results), label, block)
        log(f"wrote {args.results} (block '{label}')")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 1 if result["errors"] or BASELINE in result["skipped"] else 0
