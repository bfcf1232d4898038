"""Cluster mode: the controller against an API server in another process (each shape).

The manifests-mode measurements keep the API server's store in the controller process. Here
the same objects live in a FakeKube (the tests' fake API server: the real HTTP list/watch
protocol) run as its own process, and the controller under test is `ycloud-controller sync
--once --kubeconfig ...` (the CLI's own code, through ApiBackend and the official kubernetes
client). Four runs:

- `cold`: from an empty NB and objects nothing has written to yet, at the default client-side
  limit of Kubernetes writes (`--kube-api-qps`/`--kube-api-burst`);
- `restart`: `sync --once` again against the same server and NB: nothing to write, anywhere;
- `cold_unlimited`: NB emptied, a fresh server, `--kube-api-qps 0` (no client-side limit);
- `cold_unlimited_latency`: the same against a server whose writes take LATENCY each (a
  real API server's commit; FakeKube alone answers in well under a millisecond, so there
  the server's CPU bounds the writes, not their concurrency).

For each: its wall time, its peak RSS, and the API requests the server counted during it by
verb and resource (FakeKube's `/debug/requests`), with how many objects got a write.

    python -m bench.cluster serve [--shape NAME] --services N --kubeconfig PATH \
        [--write-latency S]
    python -m bench.cluster sync --kubeconfig PATH --remote R --out FILE [--kube-api-qps Q]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import ovsdb, raw, shapes, workload
from bench.probes import proc_status

HERE = Path(__file__).resolve().parent
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
# what each write costs a real API server (admission, an etcd commit), for the run that shows
# the writes going out concurrently: one at a time they would take writes x this
LATENCY = 0.005


def serve(args: argparse.Namespace) -> int:
    import logging

    import structlog
    from fakekube.server import FakeKube
    # stdout carries only the URL: the server's logs (warnings only) go to stderr
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr),
                        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    fake = FakeKube(bookmark_interval=60.0, history=100_000, write_latency=args.write_latency)
    workload.fill_store(shapes.by_spec(args.shape, args.services), fake.store)
    fake.start()
    fake.write_kubeconfig(args.kubeconfig)
    sys.stdout.write(fake.url + "\n")
    sys.stdout.flush()
    stop.wait()
    fake.stop()
    return 0


def sync(args: argparse.Namespace) -> int:
    from ycloud_controller import cli
    rss_imports = proc_status("VmRSS")
    argv = ["sync", "--once", "--kubeconfig", args.kubeconfig, "--ovn-nb-db", args.remote,
            "--log-format", "json", "--log-level", args.log_level,
            # at the default limit a cold sync takes (writes - burst) / qps seconds at least
            "--timeout", "3600"]
    if args.kube_api_qps is not None:
        argv += ["--kube-api-qps", args.kube_api_qps]
    t0 = time.monotonic()
    rc = cli.main(argv)
    out = {"rc": rc, "seconds": time.monotonic() - t0, "peak_rss_kb": proc_status("VmHWM"),
           "rss_imports_kb": rss_imports, "command": "ycloud-controller " + " ".join(argv)}
    Path(args.out).write_text(json.dumps(out))
    return rc


def _report(url: str, method: str = "GET") -> dict[str, Any]:
    """FakeKube's request report (DELETE: and reset the counts)."""
    request = urllib.request.Request(f"{url}/debug/requests", method=method)
    with urllib.request.urlopen(request, timeout=30) as resp:
        got = json.loads(resp.read())
    got["writes"] = sum(v for k, v in got["requests"].items()
                        if k.split(" ")[0] in WRITE_VERBS)
    return got


class _Server:
    """A `bench.cluster serve` process."""

    def __init__(self, n: int, workdir: Path, tag: str, logs: Any, env: dict[str, str],
                 write_latency: float = 0.0, shape: str = "small"):
        self.kubeconfig = workdir / f"cluster-{tag}.kubeconfig"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.cluster", "serve", "--shape", shape,
             "--services", str(n),
             "--kubeconfig", str(self.kubeconfig), "--write-latency", str(write_latency)],
            stdout=subprocess.PIPE, stderr=logs,
            text=True, cwd=HERE.parent, env=env)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url:
            self.stop()
            raise RuntimeError(f"bench.cluster serve failed: see {logs.name}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _run(server: _Server, remote: str, workdir: Path, tag: str, log_level: str, logs: Any,
         env: dict[str, str], qps: str | None = None) -> dict[str, Any]:
    out = workdir / f"cluster-{tag}.json"
    _report(server.url, "DELETE")  # each run's own counts
    cmd = [sys.executable, "-m", "bench.cluster", "sync", "--kubeconfig",
           str(server.kubeconfig), "--remote", remote, "--out", str(out), "--log-level",
           log_level] + (["--kube-api-qps", qps] if qps is not None else [])
    logs.flush()
    proc = subprocess.run(cmd, stdout=logs, stderr=subprocess.STDOUT, cwd=HERE.parent, env=env)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"bench.cluster sync {tag} failed ({proc.returncode}): see "
                           f"{logs.name}")
    got = json.loads(out.read_text())
    return {"seconds": got["seconds"], "peak_rss_mb": got["peak_rss_kb"] / 1024,
            "rss_imports_mb": got["rss_imports_kb"] / 1024, "command": got["command"],
            **_report(server.url)}


def _wipe(remote: str) -> None:
    assert remote.startswith("unix:"), remote
    client = ovsdb.Client(remote.split(",")[0].removeprefix("unix:"))
    try:
        raw.wipe(client)
    finally:
        client.close()


def measure(n: int, remote: str, workdir: Path, log_level: str, *,
            default_limit: bool = True, latency: bool = True,
            shape: str = "small") -> dict[str, Any]:
    """Runner side: the runs of the module docstring; the caller has emptied NB.

    `default_limit=False` leaves out `cold` (at the default limit a cold sync takes at least
    (writes - burst) / qps seconds: 14 minutes for 170k objects), and the restart follows
    `cold_unlimited`; `latency=False` leaves out `cold_unlimited_latency`. `shape`: the
    objects of bench/shapes.py's shape of that name (small: of `n` services).

    Keys: `e2e`, `peak_rss_mb`, `rss_imports_mb`, `command` (the first cold sync, as
    before), `kube_api` (the default `qps` and `burst`, and the `write_latency` of the
    latency run), and `cold`, `restart`, `cold_unlimited`, `cold_unlimited_latency` (those
    made), each {seconds, peak_rss_mb, rss_imports_mb, command, requests: {"VERB
    RESOURCE[/SUB]": n}, writes, objects_written, written_more_than_once,
    write_span_seconds (first write to last, as the server saw them)}."""
    from ycloud_controller.kube.throttle import DEFAULT_BURST, DEFAULT_QPS
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result: dict[str, Any] = {"kube_api": {"qps": DEFAULT_QPS, "burst": DEFAULT_BURST,
                                           "write_latency": LATENCY}}
    # (key, client-side limit, write latency, a restart after it); NB empty before each
    plan = [("cold", None, 0.0, True)] if default_limit else []
    plan.append(("cold_unlimited", "0", 0.0, not default_limit))
    if latency:
        plan.append(("cold_unlimited_latency", "0", LATENCY, False))
    tag = f"{n}" if shape == "small" else shape
    with open(workdir / f"cluster-{tag}.log", "w") as logs:
        for i, (key, qps, write_latency, restart) in enumerate(plan):
            if i:
                _wipe(remote)
            server = _Server(n, workdir, f"{tag}-{key}", logs, env, write_latency, shape)
            try:
                result[key] = _run(server, remote, workdir, f"{key}-{tag}", log_level, logs,
                                   env, qps=qps)
                if restart:
                    result["restart"] = _run(server, remote, workdir, f"restart-{tag}",
                                             log_level, logs, env)
            finally:
                server.stop()
    cold = result[plan[0][0]]
    return {"e2e": cold["seconds"], "peak_rss_mb": cold["peak_rss_mb"],
            "rss_imports_mb": cold["rss_imports_mb"], "command": cold["command"], **result}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.cluster")
    p.add_argument("mode", choices=("serve", "sync"))
    p.add_argument("--services", type=int, default=10000)
    p.add_argument("--shape", default="small", help="serve: bench/shapes.py's shape of that "
                   "name (small: of --services services)")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--remote")
    p.add_argument("--out")
    p.add_argument("--log-level", default="warning")
    p.add_argument("--kube-api-qps", help="passed to the controller (default: its own)")
    p.add_argument("--write-latency", type=float, default=0.0,
                   help="serve: seconds each write waits (a real API server's commit)")
    args = p.parse_args(argv)
    return serve(args) if args.mode == "serve" else sync(args)


if __name__ == "__main__":
    sys.exit(main())
