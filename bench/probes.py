"""What the benchmark's worker records inside the controller process: where a full sync's time
goes (`Timers`), when each Service key passed the stages of the pipeline during churn
(`Stages`), when each full sync and the verification ran and what they wrote (`SyncTimes`),
and the process's RSS (`proc_status`). They wrap the product's own functions; only a few
calls per full sync are timed (see `Timers`)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from ycloud_controller.keys import SERVICE_NAME_LABEL


def proc_status(field: str) -> int:  # noqa: D103 - see below
    """A /proc/self/status value in kB (VmHWM: peak RSS, VmRSS: current RSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Timers:
    """Wall time spent inside some functions (main thread only), to say where a full sync's
    time goes. Nested timed calls are counted in each of them.

    Only functions called a few times per full sync are wrapped (a wrapper costs about a
    microsecond, which per object would be part of what is measured): the reconciles' time
    is the controller's own `ycloud_reconcile_seconds` histogram, read at each snapshot."""

    RECONCILE = "reconcile (all kinds)"

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.gc_events: list[tuple[float, float, int]] = []  # (start, seconds, generation)
        self.main_ident = threading.main_thread().ident

    def time_this_thread(self) -> None:
        """Time the calling thread (instead of the main thread) from now on."""
        self.main_ident = threading.get_ident()

    def wrap(self, owner: Any, attr: str, label: str) -> None:
        fn = getattr(owner, attr)
        totals = self.totals
        timers = self
        get_ident = threading.get_ident

        def timed(*args: Any, **kwargs: Any) -> Any:
            if get_ident() != timers.main_ident:
                return fn(*args, **kwargs)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[label] = totals.get(label, 0.0) + time.perf_counter() - t0

        setattr(owner, attr, timed)

    def install(self) -> None:
        """Wrap what exists (the same worker also measures older trees of the project)."""
        import importlib
        targets = [
            ("ycloud_controller.sync.batch", None, "restore_ipam", "restore IPAM from NB"),
            ("ycloud_controller.controller", None, "restore_ipam", "restore IPAM from NB"),
            ("ycloud_controller.sync.commit", "Committer", "commit",
             "commit (apply + bookkeeping)"),
            ("ycloud_controller.controller", "Controller", "_commit",
             "commit (apply + bookkeeping)"),
            ("topology.nbsync.applier", "Applier", "apply", "Applier.apply"),
            ("topology.nbsync.applier", None, "compute_plan", "plan (compute_plan)"),
            ("topology.nbsync.applier", None, "Transaction", "build JSON-RPC ops"),
            ("topology.nbsync.applier", "Reply", "wait", "wait for the NB reply"),
            ("topology.nbsync.chunks", "Stream", "send",
             "streamed chunk (wait previous + plan + send)"),
            ("ycloud_controller.writer", "KubeWriter", "submit", "KubeWriter.submit"),
            ("ycloud_controller.kube.workqueue", "WorkQueue", "forget", "WorkQueue.forget"),
        ]
        for module, cls, attr, label in targets:
            try:
                owner: Any = importlib.import_module(module)
                if cls is not None:
                    owner = getattr(owner, cls)
                getattr(owner, attr)
            except (ImportError, AttributeError):
                continue
            self.wrap(owner, attr, label)
        import gc
        state: dict[str, float] = {}

        events = self.gc_events

        def on_gc(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                state["t"] = time.perf_counter()
                state["m"] = time.monotonic()
            elif "t" in state:
                gen = info.get("generation")
                label = f"garbage collection (gen{gen}, all threads)"
                took = time.perf_counter() - state.pop("t")
                totals[label] = totals.get(label, 0.0) + took
                if took > 0.005:
                    events.append((state.pop("m"), round(took, 4), gen))

        totals = self.totals
        gc.callbacks.append(on_gc)

    def snapshot(self) -> dict[str, float]:
        out = dict(self.totals)
        reconciled = _reconcile_seconds()
        if reconciled is not None:
            out[self.RECONCILE] = reconciled
        return out


def _reconcile_seconds() -> float | None:
    """The sum of the controller's reconcile-duration histogram over all kinds (every
    reconcile runs in the controller loop's thread), or None in a tree without it."""
    try:
        from ycloud_controller import metrics
    except ImportError:
        return None
    histogram = getattr(metrics, "RECONCILE_SECONDS", None)
    if histogram is None:
        return None
    return sum(sample.value for family in histogram.collect() for sample in family.samples
               if sample.name.endswith("_sum"))


TIMERS = Timers()


class Stages:
    """When each Service key passed the stages of the pipeline (churn only): its EndpointSlice
    event reached the work queue, its reconcile began, its batch's NB apply returned."""

    def __init__(self) -> None:
        self.enqueued: list[tuple[float, str]] = []
        self.batch: list[tuple[float, float, float, list[str]]] = []  # got, reconciled, applied
        self.on = False

    def install(self, ctl) -> None:  # noqa: ANN001
        stages = self
        triggers = ctl.triggers
        original_on_event = triggers.on_event

        def on_event(kind: str, event: str, obj: dict, old: dict | None) -> None:
            original_on_event(kind, event, obj, old)
            if stages.on and kind == "EndpointSlice":
                md = obj.get("metadata") or {}
                svc = (md.get("labels") or {}).get(SERVICE_NAME_LABEL)
                stages.enqueued.append((time.monotonic(), f"{md.get('namespace')}/{svc}"))

        triggers.on_event = on_event
        # the sync engine's own objects (ycloud_controller.sync), or an older tree's controller
        batches = getattr(ctl, "worker", ctl)
        committer = getattr(ctl, "committer", None)
        original_run_batch = batches.run_batch
        original_commit = committer.commit if committer is not None else ctl._commit  # noqa: SLF001

        def run_batch(keys, *args):  # noqa: ANN001, ANN002, ANN202
            stages._got = time.monotonic()  # noqa: SLF001
            return original_run_batch(keys, *args)

        def commit(outcomes, full, **kwargs):  # noqa: ANN001, ANN003, ANN202
            reconciled = time.monotonic()
            report = original_commit(outcomes, full, **kwargs)
            if stages.on and not full:
                stages.batch.append((stages._got, reconciled, time.monotonic(),  # noqa: SLF001
                                     [k[1] for k in outcomes if k[0] == "Service"]))
            return report

        batches.run_batch = run_batch
        if committer is not None:
            committer.commit = commit
        else:
            ctl._commit = commit  # noqa: SLF001


STAGES = Stages()


class SyncTimes:
    """Wraps each full sync (FullSync.run; Controller.full_sync in older trees) and
    Controller.verify to record when each ran and what it wrote."""

    def __init__(self) -> None:
        self.syncs: list[dict[str, Any]] = []
        self.informers_synced: dict[str, Any] = {}
        self.verify: dict[str, Any] = {}
        self.first_nb_send: float | None = None

    def install(self) -> None:
        from ycloud_controller.controller import Controller
        try:  # one full sync is a FullSync (ycloud_controller.sync.full); older trees differ
            from ycloud_controller.sync.full import FullSync
            owner: Any = FullSync
            attr = "run"
        except ImportError:
            owner, attr = Controller, "full_sync"
        original = getattr(owner, attr)
        recorder = self

        def full_sync(sync):  # noqa: ANN001, ANN202
            start = time.monotonic()
            rss_start = proc_status("VmRSS") // 1024
            plan_only = sync.plan_only
            before = TIMERS.snapshot()
            report = original(sync)
            after = TIMERS.snapshot()
            timers = {k: round(v - before.get(k, 0.0), 4) for k, v in after.items()
                      if v - before.get(k, 0.0) > 0}
            recorder.syncs.append({"start": start, "end": time.monotonic(),
                                   "rss_start_mb": rss_start,
                                   "rss_mb": proc_status("VmRSS") // 1024,
                                   "hwm_mb": proc_status("VmHWM") // 1024,
                                   "transactions": report.transactions,
                                   "changes": report.changes, "objects": report.objects,
                                   "refused": len(report.refused), "plan_only": plan_only,
                                   "reused": report.reused,
                                   "timers": timers,
                                   "invalid": len(report.invalid)})
            return report

        setattr(owner, attr, full_sync)
        original_verify = Controller.verify

        def verify(ctl):  # noqa: ANN001, ANN202
            start = time.monotonic()
            report = original_verify(ctl)
            recorder.verify = {"start": start, "end": time.monotonic(),
                               "changes": report.changes, "objects": report.objects}
            return report

        Controller.verify = verify  # type: ignore[method-assign]
        original_wait = Controller.wait_synced

        def wait_synced(ctl, timeout: float = 60.0) -> bool:  # noqa: ANN001
            ok = original_wait(ctl, timeout)
            recorder.informers_synced = {"at": time.monotonic(),
                                         "rss_mb": proc_status("VmRSS") // 1024}
            return ok

        Controller.wait_synced = wait_synced  # type: ignore[method-assign]
        from topology.nbsync.applier import Applier
        original_send = Applier.send

        def send(applier, *args: Any, **kwargs: Any):  # noqa: ANN001, ANN202
            if recorder.first_nb_send is None:  # the first transaction of rows sent to NB
                recorder.first_nb_send = time.monotonic()
            return original_send(applier, *args, **kwargs)

        Applier.send = send  # type: ignore[method-assign]
