"""Prometheus metrics of the Kubernetes side (NB metrics live in topology.nbsync.metrics)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("ycloud_reconciles_total", "Reconciles by kind and result",
                     ["kind", "result"])
RECONCILE_SECONDS = Histogram(
    "ycloud_reconcile_seconds", "Duration of one reconcile (in memory, without NB)", ["kind"],
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1))
BATCH_SECONDS = Histogram(
    "ycloud_batch_seconds", "Duration of a batch: reconciles plus its NB transaction",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
QUEUE_DEPTH = Gauge("ycloud_queue_depth", "Keys waiting in the work queue")
QUEUE_OLDEST = Gauge("ycloud_queue_oldest_seconds", "Age of the oldest queued key")
QUEUE_UNFINISHED = Gauge("ycloud_queue_unfinished", "Keys not done yet: waiting, waiting for a "
                                                    "retry, or being reconciled")
WATCH_RESTARTS = Counter("ycloud_watch_restarts_total", "Informer relists and reconnects",
                         ["kind", "reason"])
WORK_PENDING = Gauge(
    "ycloud_work_pending", "Work not finished: keys not done (waiting, waiting for a retry, "
    "being reconciled), Kubernetes writes not made yet, and informers behind the writes made "
    "so far where the backend can tell (the in-memory store of manifests mode)")
LEADER = Gauge("ycloud_leader", "1 when this replica is the leader and writes NB")
SYNCS = Counter("ycloud_full_syncs_total", "Full syncs (start, leadership, resync)", ["result"])


def track_queue(depth: Callable[[], int], oldest: Callable[[], float],
                unfinished: Callable[[], int] = lambda: 0,
                pending: Callable[[], int] = lambda: 0) -> None:
    QUEUE_DEPTH.set_function(depth)
    QUEUE_OLDEST.set_function(oldest)
    QUEUE_UNFINISHED.set_function(unfinished)
    WORK_PENDING.set_function(pending)


def watch_restart_hook(kind: str) -> Callable[[str], None]:
    def hook(reason: str) -> None:
        WATCH_RESTARTS.labels(kind=kind, reason=reason).inc()
    return hook
