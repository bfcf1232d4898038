"""Prometheus metrics of the node agent (served on /metrics with /healthz)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("ycloud_cni_requests_total", "CNI requests by command and result",
                   ["command", "result"])
SECONDS = Histogram("ycloud_cni_request_seconds",
                    "Duration of a CNI request in the node agent (ADD: until ovn-installed)",
                    ["command"],
                    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
ERRORS = Counter("ycloud_cni_errors_total", "CNI errors by command and spec error code",
                 ["command", "code"])
GC_REMOVED = Counter("ycloud_cni_gc_removed_total",
                     "Interfaces removed because their pod or Vnic is gone", ["role"])
