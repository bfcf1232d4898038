"""Kubernetes Events (core/v1) about the objects the controller handles.

:meth:`EventRecorder.event` never blocks on the API and never raises: it queues the
event for a background writer thread (started on first use). Repeats of the same
(object, type, reason, message) are aggregated into one Event whose ``count`` and
``lastTimestamp`` are updated, and each object gets a token bucket (``burst`` events,
refilled at ``qps``) so a hot loop cannot flood the API. Without a backend (manifests
mode) events are only logged.
"""

from __future__ import annotations

import collections
import socket
import threading
import time
import uuid
from typing import Any

import structlog

from ycloud_controller.kube.backend import Backend
from ycloud_controller.kube.errors import ApiError, NotFound
from ycloud_controller.kube.objects import now_rfc3339
from ycloud_controller.kube.resources import EVENTS

log = structlog.get_logger(__name__)
MAX_NAME = 253  # a DNS-1123 subdomain, the longest object name

MAX_MESSAGE = 1024
EventKey = tuple[str, str, str, str, str]


class _Bucket:
    def __init__(self, burst: int) -> None:
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self, burst: int, qps: float) -> bool:
        now = time.monotonic()
        self.tokens = min(float(burst), self.tokens + (now - self.stamp) * qps)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class EventRecorder:
    """Records Events; see the module docstring. Thread-safe."""

    def __init__(
        self,
        backend: Backend | None,
        component: str = "ycloud-controller",
        host: str | None = None,
        *,
        burst: int = 25,
        qps: float = 1.0 / 30.0,
        queue_size: int = 1000,
        cache_size: int = 4096,
    ) -> None:
        self.backend = backend
        self.component = component
        self.host = host or socket.gethostname()
        self.burst = burst
        self.qps = qps
        self.queue_size = queue_size
        self.cache_size = cache_size
        self.dropped = 0
        self._cond = threading.Condition()
        self._pending: collections.deque[tuple[EventKey, dict[str, Any]]] = collections.deque()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._closed = False
        self._buckets: collections.OrderedDict[str, _Bucket] = collections.OrderedDict()
        self._written: collections.OrderedDict[EventKey, dict[str, Any]] = (
            collections.OrderedDict()
        )

    # ---------------------------------------------------------------- public
    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Record an event about ``obj`` ("Normal" or "Warning"); never raises."""
        try:
            involved = self._involved(obj)
        except (AttributeError, TypeError, KeyError) as exc:
            log.warning("event_bad_object", reason=reason, error=str(exc))
            return
        message = str(message)[:MAX_MESSAGE]
        log.info("kube_event", type=type_, reason=reason, message=message,
                 object=f"{involved['kind']}/{involved.get('namespace', '')}/{involved['name']}")
        if self.backend is None:
            return
        object_id = involved.get("uid") or (
            f"{involved['kind']}/{involved.get('namespace', '')}/{involved['name']}"
        )
        key: EventKey = (object_id, involved["kind"], type_, reason, message)
        with self._cond:
            if self._closed:
                return
            bucket = self._buckets.get(object_id)
            if bucket is None:
                bucket = self._buckets[object_id] = _Bucket(self.burst)
                while len(self._buckets) > self.cache_size:
                    self._buckets.popitem(last=False)
            if not bucket.take(self.burst, self.qps) or len(self._pending) >= self.queue_size:
                self.dropped += 1
                log.debug("event_dropped", reason=reason, object=object_id)
                return
            self._pending.append((key, {"involved": involved, "type": type_,
                                        "reason": reason, "message": message}))
            self._ensure_thread()
            self._cond.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until queued events are written; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush, then stop the writer thread."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # ---------------------------------------------------------------- writer
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._writer, name="event-recorder", daemon=True
            )
            self._thread.start()

    def _writer(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                key, item = self._pending.popleft()
                self._busy = True
            try:
                self._write(key, item)
            except ApiError as exc:
                log.warning("event_write_failed", reason=item["reason"], code=exc.code,
                            error=exc.message)
            except Exception:  # the writer thread must survive anything (logged)
                log.exception("event_write_crashed", reason=item["reason"])
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _write(self, key: EventKey, item: dict[str, Any]) -> None:
        assert self.backend is not None
        now = now_rfc3339()
        with self._cond:
            previous = self._written.get(key)
        if previous is not None:
            count = int(previous.get("count", 1)) + 1
            try:
                updated = self.backend.patch(
                    EVENTS, previous["metadata"]["name"], previous["metadata"]["namespace"],
                    {"count": count, "lastTimestamp": now},
                )
                self._remember(key, updated)
                return
            except NotFound:
                pass  # the event expired on the server: record a new one
        involved = item["involved"]
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                # <object>.<16 hex> like client-go, the object part cut so that the name
                # stays within the 253 characters the API server accepts
                "name": f"{involved['name'][:MAX_NAME - 17].rstrip('.-')}."
                        f"{uuid.uuid4().hex[:16]}",
                "namespace": involved.get("namespace") or "default",
            },
            "involvedObject": involved,
            "type": item["type"],
            "reason": item["reason"],
            "message": item["message"],
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": self.component, "host": self.host},
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        }
        self._remember(key, self.backend.create(EVENTS, body))

    def _remember(self, key: EventKey, event: dict[str, Any]) -> None:
        with self._cond:
            self._written[key] = {"metadata": event["metadata"], "count": event.get("count", 1)}
            self._written.move_to_end(key)
            while len(self._written) > self.cache_size:
                self._written.popitem(last=False)

    @staticmethod
    def _involved(obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        involved: dict[str, Any] = {
            "apiVersion": obj.get("apiVersion", ""),
            "kind": obj["kind"],
            "name": meta["name"],
        }
        for src, dst in (("namespace", "namespace"), ("uid", "uid"),
                         ("resourceVersion", "resourceVersion")):
            if meta.get(src):
                involved[dst] = meta[src]
        return involved
