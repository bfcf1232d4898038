"""A client-go style work queue of hashable keys, with delays and per-key backoff.

Semantics (as client-go's rate-limited work queue):

* a key is queued at most once: adds while it waits coalesce;
* a key handed out by :meth:`WorkQueue.get_batch` is *processing* until :meth:`done`;
  adding it meanwhile marks it dirty and it is re-queued by ``done()``, so one key is
  never processed by two workers at once;
* :meth:`retry` re-adds a key after a per-key exponential delay with jitter (reset by
  :meth:`forget` after a success); :meth:`add_after` delays an add.

Every method is thread-safe.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import threading
import time
from collections.abc import Hashable, Iterable

import structlog

from ycloud_controller.kube.backoff import delay_for, exp_jitter

log = structlog.get_logger(__name__)


class WorkQueue:
    """Work queue of hashable keys (see the module docstring)."""

    def __init__(
        self, *, base_delay: float = 0.05, max_delay: float = 60.0, name: str = "queue"
    ) -> None:
        self.name = name
        self._wait = exp_jitter(base_delay, max_delay)
        self._cond = threading.Condition()
        self._queue: collections.deque[Hashable] = collections.deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._added_at: dict[Hashable, float] = {}
        self._delayed: list[tuple[float, int, Hashable]] = []
        self._delayed_at: dict[Hashable, float] = {}
        self._seq = itertools.count()
        self._failures: dict[Hashable, int] = {}
        self._shutdown = False

    # ------------------------------------------------------------------ adding
    def add(self, key: Hashable) -> None:
        """Queue ``key`` now (coalesces with a queued or processing copy)."""
        self.add_many((key,))

    def add_many(self, keys: Iterable[Hashable]) -> None:
        """Queue every key of ``keys`` now, as ``add`` each (one lock and clock read for all:
        a full sync's network rebuild queues every object)."""
        with self._cond:
            queued = self._add_locked(keys, time.monotonic())
            if queued:
                self._cond.notify(queued)

    def _add_locked(self, keys: Iterable[Hashable], now: float) -> int:
        """Queue `keys` (lock held); returns how many joined the queue (the caller wakes as
        many takers)."""
        if self._shutdown:
            return 0
        dirty, processing, added_at, queue = self._dirty, self._processing, self._added_at, \
            self._queue
        queued = 0
        for key in keys:
            if key in dirty:
                continue
            dirty.add(key)
            added_at[key] = now
            if key in processing:
                continue  # re-queued by done()
            queue.append(key)
            queued += 1
        return queued

    def add_after(self, key: Hashable, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds (the earliest pending delay wins)."""
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            ready = time.monotonic() + delay
            current = self._delayed_at.get(key)
            if current is not None and current <= ready:
                return
            self._delayed_at[key] = ready
            heapq.heappush(self._delayed, (ready, next(self._seq), key))
            self._cond.notify_all()

    def retry(self, key: Hashable, reason: str = "") -> float:
        """Re-queue ``key`` after its next backoff delay; returns the delay."""
        with self._cond:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
        delay = delay_for(self._wait, failures)
        log.info("queue_retry", queue=self.name, key=str(key), retries=failures,
                 delay=round(delay, 3), reason=reason)
        self.add_after(key, delay)
        return delay

    def forget(self, *keys: Hashable) -> None:
        """Reset the backoff of ``keys`` (after they were processed successfully)."""
        with self._cond:
            failures = self._failures
            if failures:
                for key in keys:
                    failures.pop(key, None)

    def retries(self, key: Hashable) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    # ------------------------------------------------------------------ taking
    def _promote_locked(self, now: float) -> None:
        due = []
        while self._delayed and self._delayed[0][0] <= now:
            ready, _, key = heapq.heappop(self._delayed)
            if self._delayed_at.get(key) != ready:
                continue  # superseded by an earlier add_after
            del self._delayed_at[key]
            due.append(key)
        queued = self._add_locked(due, now) if due else 0
        if queued:
            self._cond.notify(queued)

    def get_batch(self, max_items: int, timeout: float) -> list[Hashable]:
        """Up to ``max_items`` distinct ready keys, now marked processing.

        Blocks until at least one key is ready or ``timeout`` passes (then returns []).
        After :meth:`shutdown` it returns what is still queued, then [].
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                self._promote_locked(now)
                if self._queue or self._shutdown:
                    break
                wait = deadline - now
                if wait <= 0:
                    return []
                if self._delayed:
                    wait = min(wait, max(0.0, self._delayed[0][0] - now))
                self._cond.wait(wait)
            batch: list[Hashable] = []
            while self._queue and len(batch) < max(1, max_items):
                key = self._queue.popleft()
                self._dirty.discard(key)
                self._added_at.pop(key, None)
                self._processing.add(key)
                batch.append(key)
            return batch

    def done(self, *keys: Hashable) -> None:
        """Finish processing ``keys``; re-queue those added meanwhile."""
        with self._cond:
            requeued = False
            for key in keys:
                self._processing.discard(key)
                if key in self._dirty and not self._shutdown:
                    self._queue.append(key)
                    requeued = True
            if requeued:
                self._cond.notify()

    # ------------------------------------------------------------------ state
    def shutdown(self) -> None:
        """Stop accepting keys and wake every waiting ``get_batch``."""
        with self._cond:
            self._shutdown = True
            self._delayed.clear()
            self._delayed_at.clear()
            self._cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        with self._cond:
            return self._shutdown

    def __len__(self) -> int:
        """Keys ready to be handed out (delayed and processing keys not counted)."""
        with self._cond:
            self._promote_locked(time.monotonic())
            return len(self._queue)

    def delayed(self) -> int:
        with self._cond:
            return len(self._delayed_at)

    def processing(self) -> int:
        with self._cond:
            return len(self._processing)

    def oldest_age(self) -> float:
        """Seconds the oldest ready key has been waiting (0.0 when none)."""
        with self._cond:
            now = time.monotonic()
            self._promote_locked(now)
            if not self._queue:
                return 0.0
            return max(0.0, now - min(self._added_at.get(k, now) for k in self._queue))
