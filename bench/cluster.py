"""Cluster mode: the controller against an API server in another process (largest N only).

The manifests-mode measurements keep the API server's store in the controller process. Here
the same objects live in a FakeKube (the tests' fake API server: the real HTTP list/watch
protocol) run as its own process, and the controller under test is `ycloud-controller sync
--once --kubeconfig ...` (the CLI's own code, through ApiBackend and the official kubernetes
client), from an empty NB. Reported: its peak RSS (the number a Deployment's memory limit
needs) and its wall time; Kubernetes writes (10k status conditions, 1k pod annotations) go
over HTTP one at a time, so the wall time is mostly the fake server's, not a target.

    python -m bench.cluster serve --services N --kubeconfig PATH   (until SIGTERM)
    python -m bench.cluster sync --kubeconfig PATH --remote R --out FILE
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
from pathlib import Path
from typing import Any

from bench import workload
from bench.probes import proc_status

HERE = Path(__file__).resolve().parent


def serve(args: argparse.Namespace) -> int:
    import logging

    import structlog
    from fakekube.server import FakeKube
    # stdout carries only the URL: the server's logs (warnings only) go to stderr
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr),
                        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    fake = FakeKube(bookmark_interval=60.0, history=100_000)
    workload.fill_store(workload.Shape(args.services), fake.store)
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
            "--log-format", "json", "--log-level", args.log_level]
    t0 = time.monotonic()
    rc = cli.main(argv)
    out = {"rc": rc, "seconds": time.monotonic() - t0, "peak_rss_kb": proc_status("VmHWM"),
           "rss_imports_kb": rss_imports, "command": "ycloud-controller " + " ".join(argv)}
    Path(args.out).write_text(json.dumps(out))
    return rc


def measure(n: int, remote: str, workdir: Path, log_level: str) -> dict[str, Any]:
    """Runner side: serve the objects from another process, time one cold `sync --once`
    against them; the caller has emptied NB."""
    kubeconfig, out = workdir / f"cluster-{n}.kubeconfig", workdir / f"cluster-{n}.json"
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    logs = open(workdir / f"cluster-{n}.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.cluster", "serve", "--services", str(n),
         "--kubeconfig", str(kubeconfig)], stdout=subprocess.PIPE, stderr=logs, text=True,
        cwd=HERE.parent, env=env)
    try:
        assert server.stdout is not None
        if not server.stdout.readline():
            raise RuntimeError(f"bench.cluster serve failed: see {logs.name}")
        proc = subprocess.run(
            [sys.executable, "-m", "bench.cluster", "sync", "--kubeconfig", str(kubeconfig),
             "--remote", remote, "--out", str(out), "--log-level", log_level],
            stdout=logs, stderr=subprocess.STDOUT, cwd=HERE.parent, env=env)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"bench.cluster sync failed ({proc.returncode}): see {logs.name}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        logs.close()
    got = json.loads(out.read_text())
    return {"e2e": got["seconds"], "peak_rss_mb": got["peak_rss_kb"] / 1024,
            "rss_imports_mb": got["rss_imports_kb"] / 1024, "command": got["command"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.cluster")
    p.add_argument("mode", choices=("serve", "sync"))
    p.add_argument("--services", type=int, default=10000)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--remote")
    p.add_argument("--out")
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    return serve(args) if args.mode == "serve" else sync(args)


if __name__ == "__main__":
    sys.exit(main())
