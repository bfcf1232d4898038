"""`python -m bench`: measure the controller against the raw OVSDB limit, in one run.

For each cluster shape of --shape (bench/shapes.py; `small` is one shape per --services
count, default 1000,10000: today's 5 VPCs x 10 subnets; `mid`; `max`, Kubernetes' published
limits), on a private sandbox started here:

1. raw limit: every row the controller writes (every table of topology.model.TABLES,
   captured from the NB its first cold sync converged, references as named UUIDs:
   bench/raw.py), inserted in ONE `transact` over a plain unix socket. Timed from the first
   byte sent to the reply parsed (request pre-encoded); median of 3, NB wiped before each.
2. cold sync: `ycloud-controller sync --once` (bench.worker sync: the CLI's own code with an
   in-memory source) from an empty NB. Reported two ways, each with its ratio to (1):
   - e2e: the whole `sync --once` (cli.main: informers list the store, full sync, drain of
     Kubernetes writes, and the verification that nothing is left to write);
   - NB phase: the first full sync that writes (plan, commit), i.e. empty NB to converged
     NB (manifests mode first settles its Kubernetes-side state with a plan-only pass).
   Object generation and filling the store (the stand-in for reading YAML) are not timed.
   (1) and (2) are measured in --cold-runs rounds (default 3): round 1 is a cold sync, the
   capture, then the raw limit; later rounds a raw limit, then a cold sync from the emptied
   NB. The round of the median e2e ratio is reported, every round's ratio is listed. With
   one round the raw limit's rows stay in NB and the restart (3) runs on them.
   Afterwards one `select` checks the LB row of every ClusterIP Service: expected backends,
   and the same content hash as the product's builder gives. No observer is connected
   during (1) and (2): ovsdb-server does the same work for its clients in both.
3. restart, nothing changed: `sync --once` again in a new process on the converged NB: wall
   time of cli.main, and NB transactions written, counted on the server side (NB file size
   unchanged, and update notifications seen by the observer), with the controller's own
   ycloud_nb_transactions_total as a cross-check; the in-memory store's writes.
4. churn (every shape but small, and small's largest count): `bench.worker run` starts the
   controller loop (its startup full sync is a second restart measurement), then writes at
   each offered rate for --churn-seconds: of every 4 events 3 EndpointSlice updates and 1
   pod creation or deletion. Event-to-commit latency: store write -> the observer (its own
   socket, another process) sees the LB row with the new backends, or the pod's switch port
   inserted / deleted. Also achieved write rate, commit rate and queue depth over time
   (backlog growth).
5. peak RSS (VmHWM) of each controller process, the RSS right after filling the in-memory
   store, and CPU (user+sys seconds of the cold sync's cli.main) per generated object. For
   small at its largest count (with churn), also cluster mode (bench/cluster.py): the same
   objects served by a FakeKube in another process, a cold `sync --once --kubeconfig`
   through ApiBackend and the kubernetes client, its peak RSS (`--no-cluster` skips it).

Results: a table on stdout and a block in the History of bench/RESULTS.md (--label); the
current table of every shape and the plot (bench/current.py) at the top of RESULTS.md and in
README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ovn_sandbox import Sandbox, SandboxState

from bench import cluster, cni, ovsdb, pipeline, shapes, workload
from bench.current import update_current
from bench.nbfacts import (
    LbLog,
    analyse_churn,
    check_lbs,
    nb_file,
    observer_tables,
    select_lbs,
    wait_updates_settle,
)
from bench.raw import capture_ops, raw_limit, wipe
from bench.report import machine, render, write_results

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
PY = sys.executable


# -- child processes --------------------------------------------------------------------------
def run_worker(mode: str, remote: str, shape: workload.Shape, workdir: Path, extra: list[str],
               profile: Path | None, tag: str) -> tuple[dict[str, Any], float]:
    out = workdir / f"{tag}.json"
    cmd = [PY, "-m", "bench.worker", mode, "--remote", remote, "--shape", shape.name,
           "--services", str(shape.services), "--out", str(out), *extra]
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
        gil = ["--gil"] if os.environ.get("BENCH_PYSPY_GIL") else []  # only GIL holders
        cmd = [spy, "record", "--threads", "--nonblocking", *gil, "--rate", "200",
               "--format", "raw", "-o", str(profile / f"{tag}.txt"), "--", *cmd]
    log = open(workdir / f"{tag}.log", "w")  # noqa: SIM115
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=HERE.parent,
                          env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    wall = time.monotonic() - t0
    log.close()
    if proc.returncode != 0 or not out.exists():
        tail = (workdir / f"{tag}.log").read_text()[-3000:]
        raise RuntimeError(f"bench.worker {mode} failed ({proc.returncode}):\n{tail}")
    return json.loads(out.read_text()), wall


# -- one shape --------------------------------------------------------------------------------
def tag_of(shape: workload.Shape) -> str:
    return str(shape.services) if shape.name == "small" else shape.name


def cold_sync(state: SandboxState, client: ovsdb.Client, shape: workload.Shape, workdir: Path,
              extra: list[str], prof: Path | None, tag: str) -> dict[str, Any]:
    """(2): a cold sync from the emptied NB."""
    if select_lbs(client)[0]:
        raise RuntimeError("NB not empty after wipe")
    log(f"[{tag_of(shape)}] cold sync: sync --once from an empty NB")
    size0 = nb_file(state).stat().st_size
    cold, wall = run_worker("sync", state.nb_remote, shape, workdir, extra, prof, tag)
    # the first full sync that may write NB (manifests mode first settles in plan-only mode)
    first = next(s for s in cold["syncs"] if not s.get("plan_only"))
    settle = [s for s in cold["syncs"] if s.get("plan_only")]
    return {
        "rc": cold["rc"], "e2e": cold["seconds"], "process_wall": wall,
        # from the first transaction of rows (since the "early" block, during the settle
        # pass) to the end of the full sync that writes NB: empty NB to converged NB
        "nb_phase": first["end"] - min(cold.get("first_nb_send") or first["start"],
                                       first["start"]),
        "full_sync": first["end"] - first["start"],
        "nb_phase_changes": first["changes"], "nb_phase_transactions": first["transactions"],
        "timers": first.get("timers", {}),
        "verify_sync": cold["verify"]["end"] - cold["verify"]["start"],
        "reused": first.get("reused", 0),
        "settle_sync": sum(s["end"] - s["start"] for s in settle),
        "fill": cold["fill_seconds"], "rss_after_fill_mb": cold["rss_after_fill_kb"] / 1024,
        "peak_rss_mb": cold["peak_rss_kb"] / 1024, "cpu_s": cold.get("cpu_seconds", 0.0),
        "kube_writes": cold.get("kube_writes"),
        "nb_bytes_written": nb_file(state).stat().st_size - size0,
        "controller_transactions": cold["controller_transactions"],
        "check": check_lbs(client, shape), "command": cold["command"],
    }


def cold_rounds(state: SandboxState, client: ovsdb.Client, shape: workload.Shape,
                workdir: Path, args: argparse.Namespace, extra: list[str],
                prof: Path | None) -> list[dict[str, Any]]:
    """(1) and (2) in --cold-runs rounds. The raw transaction is captured from the NB the
    first cold sync converged, so round 1 is (cold sync, capture, raw limit) and the others
    (raw limit, cold sync). With one round the raw limit's last insert stays in NB and the
    restart runs on it (the restart writing nothing then also shows the capture complete);
    with more, the restart runs on the last cold sync's NB."""
    tag = tag_of(shape)
    rounds: list[dict[str, Any]] = []
    ops: list[dict[str, Any]] = []
    wipe(client)
    for i in range(args.cold_runs):
        name = f"cold-{tag}" if args.cold_runs == 1 else f"cold-{tag}-{i + 1}"
        cold = None
        counts: dict[str, int] = {}
        if i == 0:
            cold = cold_sync(state, client, shape, workdir, extra, prof, name)
            ops, counts = capture_ops(client)
            log(f"[{tag}] captured {len(ops)} rows of the converged NB: {counts}")
        log(f"[{tag}] raw limit: {len(ops)} rows in one transaction")
        raw = raw_limit(client, ops, keep=args.cold_runs == 1)
        if i > 0:
            cold = cold_sync(state, client, shape, workdir, extra, prof, name)
        assert cold is not None
        r = {"raw_all": raw, "raw": statistics.median(raw), "cold": cold,
             "raw_rows": len(ops), "command": cold.pop("command")}
        if i == 0:
            r["raw_tables"] = counts
        rounds.append(r)
        log(f"[{tag}] cold e2e {cold['e2e']:.2f}s ({cold['e2e'] / r['raw']:.2f}x), NB "
            f"phase {cold['nb_phase']:.2f}s, raw {r['raw']:.3f}s")
    return rounds


def measure(shape: workload.Shape, box: Sandbox, args: argparse.Namespace, workdir: Path,
            churn: bool) -> dict[str, Any]:
    state = box.state
    assert state is not None
    remote = state.nb_remote
    tag = tag_of(shape)
    client = ovsdb.Client(state.nb_sockets[0])
    out: dict[str, Any] = {"shape": shape.name, "services": shape.services, "pods": shape.pods,
                           "objects": shape.objects, "definition": asdict(shape)}
    prof = Path(args.profile) if args.profile else None
    extra = ["--log-level", args.log_level]

    rounds = cold_rounds(state, client, shape, workdir, args, extra, prof)
    # the round of the median e2e ratio stands for the whole (its raw limit, its NB phase,
    # its details); every round's ratio is listed with it
    chosen = sorted(rounds, key=lambda r: r["cold"]["e2e"] / r["raw"])[len(rounds) // 2]
    out.update(chosen)
    out["raw_tables"] = rounds[0]["raw_tables"]
    out["cold_rounds"] = [{"raw": r["raw"], "e2e": r["cold"]["e2e"],
                           "nb_phase": r["cold"]["nb_phase"]} for r in rounds]

    # from here on an independent observer watches NB (its own socket, this process);
    # it is not attached during (1) and (2), which are compared with each other
    lb_log = LbLog()
    observer = ovsdb.Observer(state.nb_sockets[0], observer_tables(), on_lb=lb_log,
                             on_port=lb_log.port)
    observer.start_monitor()
    log(f"[{tag}] restart with nothing changed: sync --once again")
    time.sleep(0.5)
    size1, upd1 = nb_file(state).stat().st_size, observer.snapshot_updates()
    again, wall = run_worker("sync", remote, shape, workdir, extra, prof, f"restart-{tag}")
    time.sleep(0.5)
    wait_updates_settle(observer)
    out["restart"] = {
        "rc": again["rc"], "e2e": again["seconds"], "process_wall": wall,
        "first_sync": next(s["end"] - s["start"] for s in again["syncs"]
                           if not s.get("plan_only")),
        "nb_bytes_written": nb_file(state).stat().st_size - size1,
        "observed_updates": observer.snapshot_updates() - upd1,
        "controller_transactions": again["controller_transactions"],
        "peak_rss_mb": again["peak_rss_kb"] / 1024, "cpu_s": again.get("cpu_seconds", 0.0),
        "kube_writes": again.get("kube_writes"),
    }
    log(f"[{tag}] restart {again['seconds']:.2f}s, NB bytes written "
        f"{out['restart']['nb_bytes_written']}, updates {out['restart']['observed_updates']}")

    if churn:
        log(f"[{tag}] churn: rates {args.rates} for {args.churn_seconds}s each")
        upd2 = observer.snapshot_updates()
        lb_log.changes.clear()
        lb_log.on = True
        run, wall = run_worker("run", remote, shape, workdir,
                               [*extra, "--rates", ",".join(map(str, args.rates)),
                                "--seconds", str(args.churn_seconds)], prof, f"churn-{tag}")
        wait_updates_settle(observer)
        lb_log.on = False
        st = run["startup"]
        out["run_startup"] = {
            "seconds": st["seconds"], "transactions": st["controller_transactions"],
            "observed_updates_before_churn": sum(
                1 for t in observer.update_times if t < run["churn"][0]["start"]) - upd2
            if run["churn"] else None,
        }
        out["churn"] = [analyse_churn(p, lb_log) for p in run["churn"]]
        out["run_peak_rss_mb"] = run["peak_rss_kb"] / 1024
        for c in out["churn"]:
            log(f"[{tag}] churn {c['rate']}/s: achieved {c['achieved_rate']:.0f}/s, p50 "
                f"{c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms, max {c['max_ms']:.1f} ms, "
                f"lost {c['lost']}, queue max {c['queue_max']}")
    observer.stop()
    # cluster mode (bench/cluster.py): the small shape's largest count, and each other shape
    # without the runs at the default limit (a cold sync there is rate-bound: (writes -
    # burst) / qps, 14 minutes at max) and against write latency
    if args.cluster and (churn if shape.name == "small" else shape.name in args.cluster_shapes):
        log(f"[{tag}] cluster mode: sync --once against the API server in another process")
        wipe(client)
        small = shape.name == "small"
        out["cluster"] = cluster.measure(shape.services, remote, workdir, args.log_level,
                                         default_limit=small, latency=small,
                                         shape=shape.name)
        log(f"[{tag}] cluster mode: {out['cluster']['e2e']:.1f}s, peak RSS "
            f"{out['cluster']['peak_rss_mb']:.0f} MB")
    client.close()
    return out


def log(msg: str) -> None:
    sys.stderr.write(f"bench: {msg}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="small",
                   help="comma-separated cluster shapes (bench/shapes.py): small (the "
                        "--services counts, 5 VPCs x 10 subnets), mid, max (Kubernetes' "
                        "published limits), tiny (smoke); default small")
    p.add_argument("--services", default="1000,10000",
                   help="comma-separated service counts of the small shape (default "
                        "1000,10000)")
    p.add_argument("--churn-seconds", type=float, default=30.0,
                   help="seconds per churn rate, at the largest count (0: no churn)")
    p.add_argument("--rates", default="100,1000", help="churn offered rates per second")
    p.add_argument("--cold-runs", type=int,
                   help="rounds of (raw limit, cold sync) per count; the round of the median "
                        "ratio is reported, every round's ratio is listed (default 3; 1 with "
                        "--quick)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 300 services (small) or the given shapes, 5 s of churn; "
                        "nothing written to RESULTS.md")
    p.add_argument("--northd", choices=("pause", "run"), default="pause",
                   help="ovn-northd paused (default: the controller and OVSDB are measured, "
                        "not northd) or running")
    p.add_argument("--label", default="latest",
                   help="RESULTS.md history block to (re)write; the current table and the "
                        "plot at the top are rewritten too (per shape)")
    p.add_argument("--results", default=str(RESULTS), help="results file (default "
                   "bench/RESULTS.md); '-' to not write it")
    p.add_argument("--profile", metavar="DIR",
                   help="record every controller process with py-spy (raw stacks) into DIR")
    p.add_argument("--log-level", default="info", help="controller log level (default info)")
    p.add_argument("--cluster-shapes", default="mid,max",
                   help="shapes other than small measured in cluster mode too (default "
                        "mid,max; small: at its largest count)")
    p.add_argument("--no-cluster", dest="cluster", action="store_false",
                   help="skip the cluster-mode run (bench/cluster.py) at the largest count")
    p.add_argument("--dir", help="sandbox/work directory (default: a temporary one)")
    p.add_argument("--json", metavar="FILE", help="also write every measurement as JSON")
    p.add_argument("--cni", action="store_true",
                   help="instead: the node half under a burst (bench/cni.py, root needed): "
                        "ycloud-cni ADD latency for --cni-pods pods at once on one node, the "
                        "agent's peak RSS; RESULTS.md block 'cni' unless --label is given")
    p.add_argument("--dataplane", action="store_true",
                   help="instead: the dataplane table in the lab (bench/dataplane.py, root "
                        "needed); RESULTS.md block 'dataplane' unless --label is given")
    p.add_argument("--cni-pods", type=int, default=100,
                   help="pods created and ADDed at once with --cni (default 100)")
    pipeline.add_arguments(p)
    args = p.parse_args(argv)
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.cni:
        return cni.run(args, command, log)
    if args.pipeline:
        return pipeline.run(args, command, log)
    if args.dataplane:  # the lab's imports only for this mode
        from bench import dataplane
        return dataplane.run(args, command, log)
    if args.quick:
        args.services, args.churn_seconds = "300", min(args.churn_seconds, 5.0)
        if args.results == str(RESULTS):
            args.results = "-"
    if args.cold_runs is None:
        args.cold_runs = 1 if args.quick else 3
    if args.cold_runs < 1:
        p.error("--cold-runs must be at least 1")
    counts = [int(x) for x in args.services.split(",") if x]
    try:
        points = [sh for name in args.shape.split(",") if name
                  for sh in shapes.resolve(name, counts)]
    except ValueError as exc:
        p.error(str(exc))
    args.rates = [int(x) for x in args.rates.split(",") if x]
    args.cluster_shapes = [x for x in args.cluster_shapes.split(",") if x]
    started = time.monotonic()
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="ycloud-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    box = Sandbox(workdir / "central")
    box.start()
    results: list[dict[str, Any]] = []
    try:
        if args.northd == "pause":
            box.appctl(box.dir / "northd.ctl", "pause")
        info = machine()
        for shape in points:
            # churn at every shape, and for small at its largest count only
            churn = args.churn_seconds > 0 and (shape.name != "small"
                                                or shape.services == max(counts))
            results.append(measure(shape, box, args, workdir, churn))
            if args.json:  # kept shape by shape: a later shape failing loses nothing
                Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    finally:
        box.stop()
    elapsed = time.monotonic() - started
    block = render(results, info, command, args.label, args.northd, elapsed)
    sys.stdout.write(block)
    if args.results != "-":
        write_results(Path(args.results), args.label, block)
        update_current(Path(args.results), results, command)
        log(f"wrote {args.results} (block '{args.label}', the current table and the plot)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    log(f"work directory {workdir}")
    return 0
