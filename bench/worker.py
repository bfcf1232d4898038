"""The controller side of the benchmark, run as a child process (one per measurement).

    python -m bench.worker sync --remote unix:nb.sock --shape small --services N --out r.json
    python -m bench.worker run  --remote unix:nb.sock --shape max --services N --out r.json \
        --rates 100,1000 --seconds 30

Both fill a MemoryStore with the generated objects (the in-memory path of manifests mode,
without YAML) and then run the product's own code:

- `sync` runs `ycloud-controller sync --once` through `ycloud_controller.cli.main`, with the
  source replaced by that store (`open_source` patched; everything else is the CLI's code).
- `run` builds the Controller as `ycloud-controller run` does (no HTTP server, no leader
  election), runs its loop in a thread, waits for the startup full sync (a restart against
  the converged NB), then writes into the store at fixed offered rates (the churn): of every
  4 events 3 are EndpointSlice updates (a ClusterIP Service's endpoints move) and 1 a pod
  creation or deletion (a new pod without requested addresses, or one created earlier);
  it records when each write happened (time.monotonic, CLOCK_MONOTONIC: the parent's NB
  observer uses the same clock) and what the observer must see (the LB's vips, or the
  pod's switch port present or gone).

Results go to --out as JSON; peak RSS is this process's VmHWM, CPU its user+sys seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import shapes, workload
from bench.probes import STAGES, TIMERS, SyncTimes, proc_status

RSS_AT_START = 0


def nb_txn_counter() -> float:
    from topology.nbsync import metrics
    return metrics.NB_TRANSACTIONS.labels(result="ok")._value.get()  # noqa: SLF001


def do_sync(args: argparse.Namespace, shape: workload.Shape, out: dict[str, Any]) -> int:
    from ycloud_controller import cli
    from ycloud_controller.memkube.backend import MemoryBackend
    from ycloud_controller.source import Source

    t = time.monotonic()
    store = workload.fill_store(shape)
    out["fill_seconds"] = time.monotonic() - t
    out["rss_after_fill_kb"] = proc_status("VmRSS")
    out["objects_in_store"] = sum(len(b) for b in store._objects.values())  # noqa: SLF001
    cli.open_source = lambda _args: Source(MemoryBackend(store), emulate=True)
    times = SyncTimes()
    times.install()
    TIMERS.install()
    argv = ["sync", "--once", "--ovn-nb-db", args.remote, "--manifests", "<in-memory>",
            "--log-format", "json", "--log-level", args.log_level]
    out["command"] = "ycloud-controller " + " ".join(argv)
    before = nb_txn_counter()
    rv0 = int(store.resource_version)
    cpu0 = cpu_seconds()
    t0 = time.monotonic()
    rc = cli.main(argv)
    t1 = time.monotonic()
    # every write to the store (the controller's Kubernetes writes: annotations, status,
    # derived objects, events) bumps its resourceVersion by one
    out["kube_writes"] = int(store.resource_version) - rv0
    out.update(rc=rc, start=t0, end=t1, seconds=t1 - t0, syncs=times.syncs,
               first_nb_send=times.first_nb_send,
               informers_synced=times.informers_synced, verify=times.verify,
               rss_imports_kb=RSS_AT_START,
               controller_transactions=nb_txn_counter() - before,
               peak_rss_kb=proc_status("VmHWM"), cpu_seconds=cpu_seconds() - cpu0)
    return rc


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (every thread); a sync reports
    those of cli.main only (not generating the objects and filling the store)."""
    t = os.times()
    return t.user + t.system


def do_run(args: argparse.Namespace, shape: workload.Shape, out: dict[str, Any]) -> int:
    from ycloud_controller import config as config_mod
    from ycloud_controller import logs
    from ycloud_controller.assemble import assemble
    from ycloud_controller.kube import resources as res
    from ycloud_controller.memkube.backend import MemoryBackend

    logs.configure("json", args.log_level)
    t = time.monotonic()
    store = workload.fill_store(shape)
    out["fill_seconds"] = time.monotonic() - t
    out["rss_after_fill_kb"] = proc_status("VmRSS")
    times = SyncTimes()
    times.install()
    TIMERS.install()
    cfg = config_mod.load(None, nb_remote=args.remote, batch_size=500, resync_seconds=3600.0)
    before = nb_txn_counter()
    t0 = time.monotonic()
    parts = assemble(cfg, MemoryBackend(store), nb_timeout=180.0, emulate=True)
    ctl = parts.ctl
    if not parts.start(wait=300):
        raise RuntimeError("informers did not sync")
    STAGES.install(ctl)

    def timed_loop() -> None:
        TIMERS.time_this_thread()  # the controller loop's thread, from its first step
        ctl.run()

    loop = parts.serve(timed_loop, name="controller")
    while not ctl.ready():
        if not loop.is_alive():
            raise RuntimeError("the controller loop died before it was ready (see the log)")
        time.sleep(0.005)
    t_ready = time.monotonic()
    quiet = wait_quiet(ctl, 120.0)
    out["startup"] = {"start": t0, "ready": t_ready, "seconds": t_ready - t0,
                      "quiet_seconds": quiet - t0, "syncs": list(times.syncs),
                      "controller_transactions": nb_txn_counter() - before}
    out["churn"] = []
    versions = [0] * shape.services
    cursor = 0
    pods = PodChurn(store, res.PODS, shape)
    for rate in args.rates:
        phase, cursor = churn(ctl, store, res.ENDPOINTSLICES, shape, versions, rate,
                              args.seconds, cursor, pods)
        out["churn"].append(phase)
    parts.stop()
    out["peak_rss_kb"] = proc_status("VmHWM")
    out["cpu_seconds"] = cpu_seconds()
    out["controller_transactions"] = nb_txn_counter() - before
    return 0


def wait_quiet(ctl, timeout: float) -> float:  # noqa: ANN001
    """Wait until the queue is empty and the Kubernetes writer idle for 0.5 s; returns when."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        busy = len(ctl.queue) or ctl.queue.processing() or not ctl.writer.idle()
        now = time.monotonic()
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= 0.5:
            return quiet_since
        time.sleep(0.01)
    return time.monotonic()


class PodChurn:
    """Pod events of the churn: creations of new pods and deletions of the ones created
    LAG pod events earlier, alternating (after the first POD_LAG creations)."""

    LAG = 50

    def __init__(self, store, pods_res, shape: workload.Shape):  # noqa: ANN001
        self.store, self.res, self.shape = store, pods_res, shape
        self.created: list[tuple[str, str]] = []  # (namespace, name), oldest first
        self.count = 0  # pods created so far
        self.events = 0

    def step(self) -> tuple[str, str | None]:
        """Write one pod event; (observer key, what it must see)."""
        from topology import naming
        self.events += 1
        if len(self.created) >= self.LAG and self.events % 2 == 0:
            ns, name = self.created.pop(0)
            self.store.delete(self.res, name, ns)
            return f"port:{naming.pod_port(ns, name)}", None
        obj = workload.churn_pod(self.shape, self.count)
        self.count += 1
        workload.put(self.store, obj)
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        self.created.append((ns, name))
        return f"port:{naming.pod_port(ns, name)}", "present"


def churn(ctl, store, slices_res, shape: workload.Shape, versions: list[int],  # noqa: ANN001
          rate: int, seconds: float, cursor: int,
          pods: PodChurn | None = None) -> tuple[dict[str, Any], int]:
    """Write `rate` EndpointSlice updates per second for `seconds`, on schedule (no dropping:
    a late write goes out at once and the achieved rate shows it)."""
    total = int(rate * seconds)
    events: list[tuple[float, str, str]] = []
    samples: list[tuple[float, int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            samples.append((time.monotonic(), len(ctl.queue), ctl.queue.processing()))

    sampler = threading.Thread(target=sample, name="queue-sampler", daemon=True)
    sampler.start()
    before = TIMERS.snapshot()
    import gc
    gc_before = [g["collected"] for g in gc.get_stats()]
    start = time.monotonic() + 0.05
    late = 0
    STAGES.enqueued.clear()
    STAGES.batch.clear()
    STAGES.on = True
    moves = 0
    for k in range(total):
        pod_event = pods is not None and k % 4 == 3
        if not pod_event:
            i = (cursor + moves) % shape.services
            moves += 1
            versions[i] += 1
            obj = workload.endpoint_slice(shape, i, versions[i])
            expected: str | None = workload.vips_value(shape, i, versions[i])
        due = start + k / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        elif now - due > 0.001:
            late += 1
        t_write = time.monotonic()
        if pod_event:
            assert pods is not None
            key, expected = pods.step()
        else:
            store.update(slices_res, obj)
            key = workload.service_key(shape, i)
        events.append((t_write, key, expected))
    t_end = time.monotonic()
    quiet = wait_quiet(ctl, 120.0)
    STAGES.on = False
    stop.set()
    sampler.join()
    after = TIMERS.snapshot()
    timers = {k: round(v - before.get(k, 0.0), 4) for k, v in after.items()
              if v - before.get(k, 0.0) > 0}
    gc_garbage = [g["collected"] - b for g, b in zip(gc.get_stats(), gc_before, strict=True)]
    phase = {"rate": rate, "seconds": seconds, "offered": total, "start": start, "end": t_end,
             "gc_collected": gc_garbage, "stages": stage_latencies(events),
             "batches": [(a, b, c, len(k)) for a, b, c, k in STAGES.batch],
             "timers": timers, "gc_pauses": [e for e in TIMERS.gc_events if e[0] >= start],
             "late_writes": late, "drained_at": quiet, "events": events, "queue": samples}
    return phase, cursor + moves


def stage_latencies(events: list[tuple[float, str, str]]) -> dict[str, list[float]]:
    """Per event: write -> queued -> batch picked up -> reconciled -> NB apply returned."""
    import bisect
    from collections import defaultdict
    enq: dict[str, list[float]] = defaultdict(list)
    for t, key in STAGES.enqueued:
        enq[key].append(t)
    got: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for t_got, t_rec, t_app, keys in STAGES.batch:
        for key in keys:
            got[key].append((t_got, t_rec, t_app))
    out: dict[str, list[float]] = {"queued": [], "picked": [], "reconciled": [], "applied": []}
    for t_write, key, _ in events:
        qs = enq.get(key, [])
        i = bisect.bisect_left(qs, t_write)
        if i == len(qs):
            continue
        t_q = qs[i]
        bs = got.get(key, [])
        j = bisect.bisect_left(bs, (t_q, 0.0, 0.0))
        if j == len(bs):
            continue
        t_got, t_rec, t_app = bs[j]
        out["queued"].append(t_q - t_write)
        out["picked"].append(t_got - t_q)
        out["reconciled"].append(t_rec - t_got)
        out["applied"].append(t_app - t_rec)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.worker")
    p.add_argument("mode", choices=("sync", "run"))
    p.add_argument("--remote", required=True)
    p.add_argument("--shape", default="small", choices=shapes.NAMES)
    p.add_argument("--services", type=int, required=True, help="the small shape's count")
    p.add_argument("--out", required=True)
    p.add_argument("--rates", default="100,1000")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    args.rates = [int(r) for r in args.rates.split(",") if r]
    shape = shapes.by_spec(args.shape, args.services)
    import ycloud_controller.cli  # noqa: F401
    global RSS_AT_START
    RSS_AT_START = proc_status("VmRSS")
    out: dict[str, Any] = {"mode": args.mode, "services": args.services, "pid": os.getpid(),
                           "python": sys.version.split()[0]}
    try:
        rc = do_sync(args, shape, out) if args.mode == "sync" else do_run(args, shape, out)
    finally:
        Path(args.out).write_text(json.dumps(out))
    return rc


if __name__ == "__main__":
    sys.exit(main())
