"""FakeKube: an in-process Kubernetes API server on a MemoryStore, for tests.

It speaks the real wire protocol (paths, list/watch with resourceVersion, chunked watch
streams with bookmarks and 410 Gone, PATCH content types, /status, Status error
bodies, discovery), so the official ``kubernetes`` client, ``kubectl`` and ApiBackend
run against it unchanged. Fault injection: :meth:`FakeKube.inject`,
:meth:`FakeKube.drop_watches`, :meth:`FakeKube.compact`; every request is logged in
:attr:`FakeKube.requests` and counted by verb and resource (:meth:`FakeKube.counts`, also
served as JSON on ``GET /debug/requests`` for a FakeKube in another process; ``DELETE
/debug/requests`` resets the counts). Counting is for telling how many requests a client
made: kinds are "VERB RESOURCE[/SUBRESOURCE]" with Kubernetes' verbs (get, list, watch,
create, update, patch, delete, deletecollection) and resources (``pods``,
``vpcs.iaas.yusur.io``, ``pods/status``), and "VERB nonresource" for discovery; writes
are also counted per object (:meth:`FakeKube.writes_per_object`; every create counts as a
new object).
"""

from __future__ import annotations

import collections
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import structlog
import yaml
from kubernetes.client import ApiClient, Configuration

from fakekube.handler import Handler
from ycloud_controller.kube.client import configure_transport
from ycloud_controller.kube.errors import ApiError, Expired
from ycloud_controller.kube.resources import ALL, NAMESPACES, Resource
from ycloud_controller.memkube.store import MemoryStore
from ycloud_controller.memkube.watch import Subscription

log = structlog.get_logger(__name__)

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class RequestRecord(NamedTuple):
    time: float  # time.monotonic() when the response started
    method: str
    path: str  # path with query string, as sent
    status: int
    kind: str = ""  # "VERB RESOURCE[/SUBRESOURCE]" (see the module docstring)


def writes(counts: dict[str, int]) -> dict[str, int]:
    """The write requests among ``counts`` (FakeKube.counts or /debug/requests)."""
    return {k: v for k, v in counts.items() if k.split(" ", 1)[0] in WRITE_VERBS}


def count_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Requests counted between two snapshots of FakeKube.counts."""
    delta = {k: v - before.get(k, 0) for k, v in after.items()}
    return {k: v for k, v in sorted(delta.items()) if v}


@dataclass
class _Fault:
    method: str | None
    pattern: re.Pattern[str]
    status: int
    remaining: int
    retry_after: float | None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeKube) -> None:
        self.fake = fake
        super().__init__(address, Handler)


class FakeKube:
    """In-process fake Kubernetes API server (see the module docstring).

    ``bookmark_interval``: seconds between BOOKMARK events on watches that allow them.
    ``history``: watch history size of the store. ``gone_as_http``: answer a too-old
    watch with HTTP 410 instead of a 200 stream holding one ERROR event (what the
    real server does). ``resources``: initially registered resources (CRDs created at
    runtime are added). ``write_latency``: seconds each write request waits before it is
    served (a real API server's admission and etcd commit; concurrent requests wait
    together, as there).
    """

    def __init__(
        self,
        *,
        bookmark_interval: float = 1.0,
        history: int = 1000,
        resources: tuple[Resource, ...] = ALL,
        host: str = "127.0.0.1",
        port: int = 0,
        gone_as_http: bool = False,
        namespaces: tuple[str, ...] = DEFAULT_NAMESPACES,
        write_latency: float = 0.0,
    ) -> None:
        self.bookmark_interval = bookmark_interval
        self.write_latency = write_latency
        self.gone_as_http = gone_as_http
        self.store = MemoryStore(resources, history=history)
        self.requests: list[RequestRecord] = []
        self._counts: collections.Counter[str] = collections.Counter()
        self._object_writes: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self._write_times: tuple[float, float] | None = None  # first and last write counted
        self.stopping = False
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._watches: set[Subscription] = set()
        self._snapshots: collections.OrderedDict[str, tuple[list[Any], str, int]] = (
            collections.OrderedDict()
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        for name in namespaces:
            self.store.create(NAMESPACES, {"metadata": {"name": name}})

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> FakeKube:
        self._server = _Server((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="fakekube", daemon=True,
        )
        self._thread.start()
        log.info("fakekube_started", url=self.url)
        return self

    def stop(self) -> None:
        self.stopping = True
        self.drop_watches()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeKube is not started")
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def api_client(self) -> ApiClient:
        """A kubernetes ApiClient for this server (private Configuration)."""
        cfg = configure_transport(Configuration(host=self.url))
        return ApiClient(configuration=cfg)

    def kubeconfig(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fakekube", "cluster": {"server": self.url}}],
            "users": [{"name": "fakekube", "user": {"token": "fakekube"}}],
            "contexts": [{"name": "fakekube", "context": {
                "cluster": "fakekube", "user": "fakekube", "namespace": "default"}}],
            "current-context": "fakekube",
        }

    def write_kubeconfig(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(yaml.safe_dump(self.kubeconfig()))
        return path

    # ---------------------------------------------------------------- faults
    def inject(
        self,
        method: str | None,
        path_regex: str,
        status: int,
        count: int = 1,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``count`` requests whose method matches (None: any) and whose
        path-with-query matches ``path_regex`` (re.search) with ``status`` (a Status body,
        plus a Retry-After header when ``retry_after`` is given; real servers send whole
        seconds, fractions keep tests fast)."""
        with self._lock:
            self._faults.append(_Fault(method.upper() if method else None,
                                       re.compile(path_regex), status, count, retry_after))

    def take_fault(self, method: str, path: str) -> tuple[int, float | None] | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining <= 0 or (fault.method and fault.method != method):
                    continue
                if fault.pattern.search(path):
                    fault.remaining -= 1
                    return fault.status, fault.retry_after
        return None

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def drop_watches(self) -> int:
        """Close every open watch stream abruptly (no end of the chunked body)."""
        with self._lock:
            watches = list(self._watches)
        for sub in watches:
            sub.close(dropped=True)
        return len(watches)

    def compact(self) -> None:
        """Drop the store's history: watches from an older resourceVersion get 410."""
        self.store.compact()
        with self._lock:
            self._snapshots.clear()

    # ---------------------------------------------------------------- bookkeeping
    def record(self, method: str, path: str, status: int, kind: str = "",
               target: tuple[str, str, str] | None = None) -> None:
        self.requests.append(RequestRecord(time.monotonic(), method, path, status, kind))
        kind = kind or f"{method.lower()} unknown"
        with self._lock:
            self._counts[kind] += 1
            verb, _, resource = kind.partition(" ")
            if verb in WRITE_VERBS:
                now = time.monotonic()
                self._write_times = (self._write_times or (now, now))[0], now
                if target is None:  # a create (or a deletecollection): an object of its own
                    target = (resource, "", f"#{len(self.requests)}")
                self._object_writes[target] += 1

    def counts(self) -> dict[str, int]:
        """Requests served so far (answered faults included) by kind, "VERB RESOURCE[/SUB]"
        (see the module docstring), sorted."""
        with self._lock:
            return dict(sorted(self._counts.items()))

    def writes_per_object(self) -> dict[tuple[str, str, str], int]:
        """Write requests by object written, (resource, namespace or "", name); each create
        is an object of its own."""
        with self._lock:
            return dict(self._object_writes)

    def request_report(self, examples: int = 50) -> dict[str, Any]:
        """What ``GET /debug/requests`` answers: ``requests`` (:meth:`counts`),
        ``objects_written`` (how many objects got a write request) and
        ``written_more_than_once`` (up to ``examples`` of those that got several, "resource
        namespace/name": writes), ``write_span_seconds`` (from the first write counted to the
        last)."""
        per_object = self.writes_per_object()
        several = sorted((k for k, v in per_object.items() if v > 1),
                         key=lambda k: -per_object[k])
        with self._lock:
            first, last = self._write_times or (0.0, 0.0)
        return {"requests": self.counts(), "objects_written": len(per_object),
                "write_span_seconds": last - first,
                "written_more_than_once": {
                    f"{r} {ns + '/' if ns else ''}{name}": per_object[(r, ns, name)]
                    for r, ns, name in several[:examples]}}

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self._object_writes.clear()
            self._write_times = None

    def requests_matching(self, method: str | None, path_regex: str) -> list[RequestRecord]:
        pattern = re.compile(path_regex)
        return [r for r in list(self.requests)
                if (method is None or r.method == method) and pattern.search(r.path)]

    def watch_opened(self, sub: Subscription) -> None:
        with self._lock:
            self._watches.add(sub)

    def watch_closed(self, sub: Subscription) -> None:
        with self._lock:
            self._watches.discard(sub)

    def open_watches(self) -> int:
        with self._lock:
            return len(self._watches)

    def undelivered(self) -> int:
        """Watch events queued for open watches and not yet sent."""
        with self._lock:
            watches = list(self._watches)
        return sum(sub.pending() for sub in watches)

    def list_page(
        self, res: Resource, namespace: str | None, query: dict[str, str]
    ) -> dict[str, Any]:
        """A list response, paginated with limit/continue over a consistent snapshot."""
        limit = int(query.get("limit") or 0)
        token = query.get("continue")
        if token:
            with self._lock:
                snapshot = self._snapshots.pop(token, None)
            if snapshot is None:
                raise Expired("The provided continue parameter is too old to display a "
                              "consistent list result. You can start a new list without "
                              "the continue parameter.")
            items, resource_version, start = snapshot
        else:
            items, resource_version = self.store.list(
                res, namespace, query.get("labelSelector"), query.get("fieldSelector"),
                copy=False,
            )
            start = 0
        end = start + limit if limit > 0 else len(items)
        meta: dict[str, Any] = {"resourceVersion": resource_version}
        if end < len(items):
            next_token = uuid.uuid4().hex
            with self._lock:
                self._snapshots[next_token] = (items, resource_version, end)
                while len(self._snapshots) > 100:
                    self._snapshots.popitem(last=False)
            meta["continue"] = next_token
            meta["remainingItemCount"] = len(items) - end
        return {"kind": res.list_kind, "apiVersion": res.api_version, "metadata": meta,
                "items": items[start:end]}


__all__ = ["ApiError", "FakeKube", "RequestRecord", "count_delta", "writes"]
