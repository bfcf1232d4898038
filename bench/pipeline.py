"""`python -m bench --pipeline`: event to dataplane, with ovn-northd and ovn-controllers working.

A lab (scripts/ycloud_lab) with --chassis worker chassis (node0, node1, ...: each its own
namespace with ovsdb-server, ovs-vswitchd (netdev) and a real ovn-controller, Geneve between
them) around a central NB/SB with ovn-northd running. For each --pipeline-services count
(the bench's shape, bench.workload: 5 VPCs x 10 subnets, N Services of 3 endpoints):

1. the controller (bench.pipeline_worker: `ycloud-controller run --bump-nb-cfg` in manifests
   mode on an in-memory store, in a child process) starts on an empty NB; its startup sync,
   and then the time until every chassis has applied it (hv_cfg caught up), are recorded;
2. events, --events of each kind, one at a time (each waited for before the next):
   a) a new Service (+ its EndpointSlice), b) an endpoint change (EndpointSlice moved to
   other pods), c) a new Pod. Each is timed from the store write (the Kubernetes event) to
   NB showing the change (bench.witness: the update that carries the row carries the
   transaction's nb_cfg), to NB_Global.sb_cfg reaching that nb_cfg (northd wrote SB), to
   NB_Global.hv_cfg reaching it (every chassis' ovn-controller installed the flows);
3. the pipeline floor, interleaved with (2) event by event: the same NB change (rows from
   the product's builders: the Service's Load_Balancer inserted into its VPC's group, the
   LB's vips and hash updated, the Pod's Logical_Switch_Port inserted into its switch) made
   directly with one raw transaction that bumps nb_cfg, timed from just before it is sent,
   with the same witness. Controller overhead = (controller - floor) / floor. Each event
   starts once ovn-northd has been idle for 0.3 s (the recomputes that follow a change, for
   its own writes and the chassis' acknowledgements, are over).

At the count nearest 10k (bench.pipeline_topo), with the controller stopped: SB Logical_Flow
count and ovn-northd recompute time with this project's placement (Load_Balancer_Group per
VPC on every switch) against the same LBs placed per switch (Logical_Switch.load_balancer,
as kube-ovn does), and the time each placement takes through northd and the chassis.

Results: a table on stdout and the block `pipeline` of bench/RESULTS.md
(bench.pipeline_report). Root is needed (namespaces).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ovn_sandbox import SandboxState

from bench import ovsdb, pipeline_report, pipeline_topo, workload
from bench.raw import row_values
from bench.report import machine, pct, write_results
from bench.witness import Seen, Witness
from topology import naming
from topology.builders.port import PortSpec, build_port
from topology.model import Owner

HERE = Path(__file__).resolve().parent
KINDS = ("service", "endpoint", "pod")
BUMP = {"op": "mutate", "table": "NB_Global", "where": [], "mutations": [["nb_cfg", "+=", 1]]}


def lab_shape(path: Path, chassis: int) -> Path:
    """A lab of `chassis` workers named as the bench's pods' nodes (node0, node1, ...)."""
    import yaml
    nodes = [{"name": f"node{i}", "role": "worker", "tunnel_ip": f"192.168.251.{11 + i}"}
             for i in range(chassis)]
    path.write_text(yaml.safe_dump({
        "name": "bench-pipeline", "pod_mtu": 1400, "ovn_monitor_all": True,
        "underlay": {"cidr": "192.168.251.0/24", "mtu": 1500},
        "external": {"cidr": "172.19.0.0/24", "gateway": "172.19.0.1", "provider": "physnet",
                     "bridge": "br-ex", "hosts": []},
        "chassis": nodes}))
    return path


class Controller:
    """bench.pipeline_worker in a child process: events by command, on stdin."""

    def __init__(self, remote: str, services: int, log: Path):
        self.log = open(log, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.pipeline_worker", "--remote", remote,
             "--services", str(services)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log, text=True, cwd=HERE.parent,
            env={**os.environ, "PYTHONPATH": str(HERE.parent)})

    def expect(self, word: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith(word + " "):
            self.proc.kill()
            raise RuntimeError(f"pipeline worker said {line!r}; see {self.log.name}")
        return json.loads(line.split(" ", 1)[1])

    def event(self, *words: object) -> tuple[float, int]:
        """Make one event: (the time of its store write, the controller's NB transactions
        before it)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(" ".join(map(str, words)) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"pipeline worker ended; see {self.log.name}")
        t, txns = line.split()
        return float(t), int(txns)

    def stop(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        done = self.expect("done")
        self.proc.wait(timeout=60)
        self.log.close()
        return done


# -- chassis with local datapaths -------------------------------------------------------------
def bind_ports(lab, shape: workload.Shape) -> dict[str, list[str]]:  # noqa: ANN001 - Lab
    """On every chassis, one internal port per VPC bound to a pod's switch port (iface-id), so
    that every VPC's datapaths are local to every chassis and each ovn-controller installs
    their flows (without a bound port a chassis installs nothing for them). Returns the
    interface names per chassis; the ports claim their pods once the controller made them."""
    st = lab.store.load()
    out: dict[str, list[str]] = {}
    for c, name in enumerate(sorted(st.chassis)):
        ch = lab.chassis(st, name)
        args: list[str] = []
        for v in range(shape.vpcs):
            n = v * shape.subnets_per_vpc
            iface = f"bp{v}"
            pod = f"pod{c % shape.pods_per_namespace}"
            lsp = naming.pod_port(workload.namespace(shape, n), pod)
            args += ["--", "--may-exist", "add-port", "br-int", iface, "--", "set", "Interface",
                     iface, "type=internal", f"external_ids:{naming.OVS_IFACE_ID}={lsp}"]
        ch.vsctl(*args[1:])
        out[name] = [f"bp{v}" for v in range(shape.vpcs)]
    return out


def wait_installed(lab, ports: dict[str, list[str]], timeout: float) -> bool:  # noqa: ANN001
    """Whether every bound port is ovn-installed (its flows are in) within the timeout."""
    st = lab.store.load()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(set(ifaces) <= lab.chassis(st, name).installed_interfaces()
               for name, ifaces in ports.items()):
            return True
        time.sleep(0.5)
    return False


# -- the raw floor ----------------------------------------------------------------------------
def raw_service(shape: workload.Shape, i: int) -> list[dict[str, Any]]:
    row = workload.lb_row(shape, i)
    return [{"op": "insert", "table": "Load_Balancer", "row": row_values(row),
             "uuid-name": "lb"},
            {"op": "mutate", "table": "Load_Balancer_Group",
             "where": [["name", "==", row.groups[0]]],
             "mutations": [["load_balancer", "insert", ["set", [["named-uuid", "lb"]]]]]}]


def raw_endpoint(shape: workload.Shape, i: int, version: int) -> list[dict[str, Any]]:
    row = workload.lb_row(shape, i, version)
    cols = row_values(row)
    return [{"op": "update", "table": "Load_Balancer", "where": [["name", "==", row.name]],
             "row": {"vips": cols["vips"], "external_ids": cols["external_ids"]}}]


def pod_port_row(shape: workload.Shape, n: int, j: int):  # noqa: ANN201 - LogicalSwitchPort
    """The switch port the controller writes for new pod j of namespace n."""
    v, s = divmod(n, shape.subnets_per_vpc)
    ns = workload.namespace(shape, n)
    net = ipaddress.ip_network(f"{workload.pod_ip(shape, n, 0)}/22", strict=False)
    (row,) = build_port(PortSpec(
        name=naming.pod_port(ns, f"pod{j}"), switch=workload.subnet_name(v, s),
        owner=Owner("Pod", f"{ns}/pod{j}"), vpc=workload.vpc_name(v),
        mac=workload.pod_mac(n, j), ips=(workload.pod_ip(shape, n, j),), role=naming.ROLE_POD,
        node=f"node{j % 3}", gateways=(str(net.network_address + 1),), cidrs=(str(net),),
        mtu=1400))
    return row


def raw_pod(shape: workload.Shape, n: int, j: int) -> list[dict[str, Any]]:
    row = pod_port_row(shape, n, j)
    return [{"op": "insert", "table": "Logical_Switch_Port", "row": row_values(row),
             "uuid-name": "lsp"},
            {"op": "mutate", "table": "Logical_Switch", "where": [["name", "==", row.switch]],
             "mutations": [["ports", "insert", ["set", [["named-uuid", "lsp"]]]]]}]


# -- one event --------------------------------------------------------------------------------
def target(shape: workload.Shape, kind: str, a: int, b: int) -> tuple[str, str, str | None]:
    """What the witness awaits for event (kind, a, b): service a, endpoint (a, version b),
    pod (namespace a, index b)."""
    if kind == "pod":
        return "lsp", naming.pod_port(workload.namespace(shape, a), f"pod{b}"), None
    version = b if kind == "endpoint" else 0
    return ("lb", naming.service_lb(workload.namespace(shape, workload.service_ns(shape, a)),
                                    workload.service_name(a), "TCP"),
            workload.vips_value(shape, a, version))


def one(witness: Witness, shape: workload.Shape, kind: str, a: int, b: int, by: str,
        ctl: Controller, client: ovsdb.Client, timeout: float) -> dict[str, float | None]:
    witness.expect(*target(shape, kind, a, b))
    txns = None
    if by == "controller":
        t0, txns = ctl.event(kind, a, *([b] if kind != "service" else []))
    else:
        ops = (raw_service(shape, a) if kind == "service" else
               raw_endpoint(shape, a, b) if kind == "endpoint" else raw_pod(shape, a, b))
        data = client.encode("transact", [ovsdb.DB, *ops, BUMP])
        t0 = time.monotonic()
        ovsdb.check(client.call_raw(data))
    seen: Seen = witness.wait(timeout)
    out: dict[str, float | None] = {k: (getattr(seen, k) - t0 if getattr(seen, k) is not None
                                        else None) for k in ("nb", "sb", "hv")}
    out["txns_before"], out["at"] = txns, t0
    return out


def events(witness: Witness, shape: workload.Shape, ctl: Controller, client: ovsdb.Client,
           central: SandboxState, count: int, timeout: float,
           log) -> dict[str, dict[str, list]]:  # noqa: ANN001
    """`count` events of each kind by the controller and as many raw floors, interleaved."""
    out: dict[str, dict[str, list]] = {k: {"controller": [], "floor": []} for k in KINDS}
    spaces = shape.namespaces
    for k in range(count):
        for kind in KINDS:
            for side, by in enumerate(("controller", "floor")):
                if kind == "service":
                    a, b = shape.services + 2 * k + side, 0
                elif kind == "endpoint":
                    a, b = 2 * k + side, 1  # service a's slice: version 0 -> 1
                else:
                    a, b = k % spaces, shape.pods_per_namespace + 2 * (k // spaces) + side
                got = one(witness, shape, kind, a, b, by, ctl, client, timeout)
                out[kind][by].append(got)
                pipeline_topo.northd_quiet(central)  # each event starts on an idle pipeline
        log(f"[{shape.services}] events {k + 1}/{count}: " + ", ".join(
            f"{kind} {summary(out[kind]['controller'])}/{summary(out[kind]['floor'])}"
            for kind in KINDS))
    return out


def per_event_transactions(raw: dict[str, dict[str, list]], total: float) -> dict[str, float]:
    """NB transactions the controller committed per event of each kind (from the counts
    before each of its events, in the order they were made; the last one's end: `total`)."""
    made = sorted((s["at"], s["txns_before"], kind) for kind, sides in raw.items()
                  for s in sides["controller"])
    ends = [c for _, c, _ in made[1:]] + [int(total)]
    per: dict[str, list[int]] = {k: [] for k in raw}
    for (_, before, kind), end in zip(made, ends, strict=True):
        per[kind].append(end - before)
    return {k: statistics.fmean(v) if v else float("nan") for k, v in per.items()}


def summary(samples: list[dict[str, float | None]]) -> str:
    hv = [s["hv"] for s in samples if s["hv"] is not None]
    return f"{statistics.median(hv) * 1000:.0f}ms" if hv else "-"


def stats(samples: list[dict[str, float | None]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(samples),
                           "missed": sum(1 for s in samples if s["hv"] is None)}
    for stage in ("nb", "sb", "hv"):
        vals = [s[stage] for s in samples if s[stage] is not None]
        out[stage] = {"p50_ms": pct(vals, 50) * 1000, "p99_ms": pct(vals, 99) * 1000,
                      "max_ms": max(vals) * 1000 if vals else float("nan")}
    return out


# -- one count --------------------------------------------------------------------------------
def measure(n: int, central: SandboxState, args: argparse.Namespace, workdir: Path, lab,
            log) -> dict[str, Any]:  # noqa: ANN001
    shape = workload.Shape(n)
    client = ovsdb.Client(central.nb_sockets[0])
    client.transact(ovsdb.wipe_ops())
    witness = Witness(central.nb_sockets[0]).start_monitor()
    witness.caught_up(120)
    out: dict[str, Any] = {"services": n, "pods": shape.pods, "chassis": args.chassis}
    log(f"[{n}] controller: startup sync from an empty NB (northd and {args.chassis} "
        "chassis running)")
    ports = bind_ports(lab, shape)
    t0 = time.monotonic()
    ctl = Controller(central.nb_remote, n, workdir / f"pipeline-{n}.log")
    try:
        ready = ctl.expect("ready")
        sb, hv = witness.caught_up(args.timeout * 20)
        out["startup"] = {"process_to_quiet_s": ready["ready_at"] - t0,
                          "quiet_to_sb_s": (sb - ready["ready_at"]) if sb else None,
                          "quiet_to_every_chassis_s": (hv - ready["ready_at"]) if hv else None}
        log(f"[{n}] controller quiet after {ready['ready_at'] - t0:.1f}s, every chassis "
            f"caught up {out['startup']['quiet_to_every_chassis_s']}s later")
        out["ports_installed"] = wait_installed(lab, ports, args.timeout * 4)
        time.sleep(1.0)
        before = pipeline_topo.engine_counts(central, lab)
        raw = events(witness, shape, ctl, client, central, args.events, args.timeout, log)
        after = pipeline_topo.engine_counts(central, lab)
        made = 2 * len(KINDS) * args.events
        out["engine_per_event"] = {k: [(after[k][i] - before[k][i]) / made for i in (0, 1)]
                                   for k in after}
        out["events"] = {kind: {side: stats(v) for side, v in sides.items()}
                         for kind, sides in raw.items()}
        out["samples"] = raw
        done = ctl.stop()
        out["controller_peak_rss_mb"] = done["peak_rss_kb"] / 1024
        out["transactions_per_event"] = per_event_transactions(raw, done["transactions"])
    finally:
        if ctl.proc.poll() is None:
            ctl.proc.kill()
    if args.topology and n == min(args.counts, key=lambda c: abs(c - 10000)):
        witness.caught_up(args.timeout * 20)
        out["topology"] = pipeline_topo.compare(central, lab, witness, log, args.timeout * 20)
    witness.stop()
    client.close()
    return out


def run(args: argparse.Namespace, command: str, log) -> int:  # noqa: ANN001, C901
    from ycloud_lab import Lab
    args.counts = [int(x) for x in args.pipeline_services.split(",") if x]
    started = time.monotonic()
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="ycloud-pipeline-"))
    workdir.mkdir(parents=True, exist_ok=True)
    lab = Lab(lab_shape(workdir / "shape.yaml", args.chassis), workdir / "lab")
    log(f"lab: {args.chassis} chassis with ovn-controller, northd running ({workdir})")
    up = lab.up()
    results: list[dict[str, Any]] = []
    try:
        central = SandboxState.load(lab.dir / "central")
        for n in args.counts:
            results.append(measure(n, central, args, workdir, lab, log))
    finally:
        lab.down()
    elapsed = time.monotonic() - started
    block = pipeline_report.render(results, machine(), command, elapsed, up["seconds"])
    sys.stdout.write(block)
    if args.results != "-":
        label = args.label if args.label != "latest" else "pipeline"
        write_results(Path(args.results), label, block)
        log(f"wrote {args.results} (block '{label}')")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("--pipeline (bench/pipeline.py)")
    g.add_argument("--pipeline", action="store_true",
                   help="instead: event to dataplane with ovn-northd and real ovn-controllers "
                        "(lab chassis, root needed), against one raw transaction per change; "
                        "and the LB placement comparison; RESULTS.md block 'pipeline'")
    g.add_argument("--pipeline-services", default="10000,20000",
                   help="service counts of the pipeline run (default 10000,20000: the small "
                        "shape and the largest this machine carries)")
    g.add_argument("--chassis", type=int, default=4, help="lab chassis (default 4)")
    g.add_argument("--events", type=int, default=20,
                   help="events of each kind, and as many raw floors (default 20)")
    g.add_argument("--timeout", type=float, default=60.0,
                   help="seconds one event may take to reach every chassis (default 60)")
    g.add_argument("--no-topology", dest="topology", action="store_false",
                   help="skip the LB placement comparison")
