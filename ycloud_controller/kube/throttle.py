"""The client-side limit of the controller's Kubernetes writes (`--kube-api-qps`,
`--kube-api-burst`).

A token bucket as client-go's (``burst`` tokens, refilled at ``qps`` a second): each
create, update, patch and delete the controller's write path sends (statuses, annotations,
owned objects, Events) takes a token, waiting for one when the bucket is empty, so that a
cold start with thousands of objects to write goes out at ``qps`` after a first ``burst``.
Reads are not limited: informers list and watch once each, and the writer's few gets
precede a write that waits anyway. ``qps`` 0 means no limit. Thread-safe: the writer's
workers share one bucket, and each reserves its slot under a lock, so concurrent writers
never exceed the rate together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ycloud_controller.kube.resources import Resource

# 200 writes/s after a burst of 400: see README, Configuration ("Kubernetes writes")
DEFAULT_QPS = 200.0
DEFAULT_BURST = 400


class TokenBucket:
    """``burst`` tokens refilled at ``qps`` a second; ``qps`` <= 0: unlimited.

    :meth:`reserve` takes a token now and returns how long the caller must wait before
    using it (0 when one was there): tokens may go below zero, so that callers queue in
    the order they reserved (golang.org/x/time/rate's ``Reserve``). ``clock`` and
    ``sleep`` are injectable for tests."""

    def __init__(self, qps: float, burst: int, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.qps = float(qps)
        self.burst = max(1, int(burst))
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._stamp = clock()
        self.waited = 0.0  # seconds callers were told to wait, in total (a metric)

    @property
    def unlimited(self) -> bool:
        return self.qps <= 0

    def reserve(self) -> float:
        if self.unlimited:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst),
                               self._tokens + (now - self._stamp) * self.qps)
            self._stamp = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.qps
            self.waited += wait
            return wait

    def take(self) -> None:
        """Wait for a token."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)


class ThrottledBackend:
    """A Backend whose writes (create, update, update_status, patch, delete) each take a
    token of ``bucket`` first; everything else is the wrapped backend's."""

    def __init__(self, backend: Any, bucket: TokenBucket) -> None:
        self.backend = backend
        self.bucket = bucket

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def create(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        self.bucket.take()
        return self.backend.create(res, obj)

    def update(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        self.bucket.take()
        return self.backend.update(res, obj)

    def update_status(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        self.bucket.take()
        return self.backend.update_status(res, obj)

    def patch(self, res: Resource, name: str, namespace: str | None, patch: dict[str, Any],
              subresource: str | None = None, **kwargs: Any) -> dict[str, Any]:
        self.bucket.take()
        return self.backend.patch(res, name, namespace, patch, subresource, **kwargs)

    def delete(self, res: Resource, name: str, namespace: str | None = None,
               **kwargs: Any) -> None:
        self.bucket.take()
        self.backend.delete(res, name, namespace, **kwargs)
