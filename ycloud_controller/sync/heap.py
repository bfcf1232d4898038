"""The cyclic garbage collector and the controller's long-lived state: `freeze_heap`, called
as each commit ends (a full sync also pauses the collector while it runs: topology.ovsdb.values
`gc_paused`)."""

from __future__ import annotations

import gc
import time

_SWEEP_SECONDS = 600.0
_last_sweep = time.monotonic()


def freeze_heap(full: bool) -> None:
    """Keep the cyclic garbage collector off the controller's long-lived state.

    What survives a batch (informer caches, desired rows, the NB index) lives on, and the
    controller makes no garbage cycles in steady state (measured: the collector found nothing
    to free over 20k endpoint updates), yet each full collection scans the whole heap: about
    0.5 s at 10k services, a latency spike for every event in flight. So what survives each
    batch is frozen (gc.freeze, O(1)); reference counting still frees it. After a full sync,
    at most every ten minutes, a sweep (unfreeze, collect, freeze) frees any cycles frozen
    meanwhile."""
    global _last_sweep
    if full and time.monotonic() - _last_sweep >= _SWEEP_SECONDS:
        gc.unfreeze()
        gc.collect()
        _last_sweep = time.monotonic()
    gc.freeze()
