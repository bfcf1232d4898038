"""The controller of `python -m bench --pipeline`, run as a child process.

    python -m bench.pipeline_worker --remote unix:nb.sock --services N

Fills a MemoryStore with the bench's objects (bench.workload), assembles the controller as
`ycloud-controller run --bump-nb-cfg` does (manifests mode, no HTTP server, no leader
election), runs its loop in a thread, and once the startup full sync is done and the
controller is quiet prints one line `ready {json}` on stdout. Then it reads commands on stdin,
one per line, makes the Kubernetes event each names (a write into the store, what an
informer's watch delivers) and answers with the time of that write (time.monotonic,
CLOCK_MONOTONIC: the parent's NB monitor uses the same clock) and the count of NB
transactions the controller committed before it:

    service I        a new Service svc<I> and its EndpointSlice (3 ready endpoints)
    endpoint I V     service I's EndpointSlice moved to version V (bench.workload)
    pod N J          a new Pod pod<J> in namespace N (its IP and MAC requested, Running)
    quit             stop the controller; prints `done {json}` (peak RSS, NB transactions)
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from typing import Any

from bench import workload
from bench.probes import proc_status
from bench.worker import nb_txn_counter, wait_quiet


def new_pod(shape: workload.Shape, n: int, j: int) -> dict[str, Any]:
    """Pod j of namespace n (j beyond the generated ones: a new pod), shaped as the
    generated pods are (bench.workload.pods)."""
    from ycloud_controller import keys
    pod = copy.deepcopy(next(workload.pods(shape)))
    md = pod["metadata"]
    md.update(name=f"pod{j}", namespace=workload.namespace(shape, n), labels={"app": f"pod{j}"})
    md["annotations"] = {keys.ANN_IP: workload.pod_ip(shape, n, j),
                         keys.ANN_MAC: workload.pod_mac(n, j)}
    pod["spec"]["nodeName"] = f"node{j % 3}"
    return pod


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.pipeline_worker")
    p.add_argument("--remote", required=True)
    p.add_argument("--services", type=int, required=True)
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    from ycloud_controller import config as config_mod
    from ycloud_controller import logs
    from ycloud_controller.assemble import assemble
    from ycloud_controller.kube import resources as res
    from ycloud_controller.memkube.backend import MemoryBackend

    logs.configure("json", args.log_level)
    shape = workload.Shape(args.services)
    store = workload.fill_store(shape)
    cfg = config_mod.load(None, nb_remote=args.remote, batch_size=500, resync_seconds=3600.0,
                          bump_nb_cfg=True)
    t0 = time.monotonic()
    parts = assemble(cfg, MemoryBackend(store), nb_timeout=300.0, emulate=True)
    if not parts.start(wait=300):
        raise RuntimeError("informers did not sync")
    ctl = parts.ctl
    loop = parts.serve(name="controller")
    while not ctl.ready():
        if not loop.is_alive():
            raise RuntimeError("the controller loop died before it was ready (see the log)")
        time.sleep(0.005)
    quiet = wait_quiet(ctl, 300.0)
    reply({"startup_seconds": quiet - t0, "ready_at": quiet}, "ready")
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        txns = nb_txn_counter()
        t = time.monotonic()
        if words[0] == "service":
            i = int(words[1])
            store.create(res.SERVICES, workload.service(shape, i))
            store.create(res.ENDPOINTSLICES, workload.endpoint_slice(shape, i))
        elif words[0] == "endpoint":
            i, version = int(words[1]), int(words[2])
            store.update(res.ENDPOINTSLICES, workload.endpoint_slice(shape, i, version))
        elif words[0] == "pod":
            pod = new_pod(shape, int(words[1]), int(words[2]))
            status = pod.pop("status")
            created = store.create(res.PODS, pod)
            created["status"] = status
            store.update(res.PODS, created, subresource="status")
        else:
            raise ValueError(f"unknown command {line!r}")
        sys.stdout.write(f"{t!r} {txns:.0f}\n")
        sys.stdout.flush()
    parts.stop()
    reply({"peak_rss_kb": proc_status("VmHWM"), "transactions": nb_txn_counter()}, "done")
    return 0


def reply(data: dict[str, Any], word: str) -> None:
    sys.stdout.write(f"{word} {json.dumps(data)}\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
