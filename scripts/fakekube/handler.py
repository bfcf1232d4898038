"""HTTP/1.1 request handler of the fake API server: the Kubernetes REST wire protocol
on top of a MemoryStore (CRUD, list pagination, chunked watch streams, discovery)."""

from __future__ import annotations

import json
import select
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import structlog
import yaml

from fakekube import discovery
from ycloud_controller.kube.errors import REASONS, ApiError, Expired, NotFound
from ycloud_controller.kube.patch import APPLY, MERGE
from ycloud_controller.kube.resources import Resource
from ycloud_controller.memkube.watch import Subscription

if TYPE_CHECKING:
    from fakekube.server import FakeKube

log = structlog.get_logger(__name__)

_WATCH_POLL = 0.2
DEBUG_REQUESTS = "/debug/requests"  # GET: FakeKube.request_report(); DELETE: reset the counts
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _parts(path: str) -> list[str]:
    return [unquote(p) for p in path.strip("/").split("/") if p]
_OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


class Handler(BaseHTTPRequestHandler):
    """One connection; requests are served sequentially (keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "fakekube/1.0"
    kind = "unknown"  # what the current request is (_kind), for FakeKube.record
    target: tuple[str, str, str] | None = None  # the object it names (resource, ns, name)

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this Nagle's algorithm
        # waits for the client's delayed ACK (~40 ms per request)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def fake(self) -> FakeKube:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fakekube_http", message=format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ---------------------------------------------------------------- plumbing
    def _dispatch(self, method: str) -> None:
        raw = self._read_body()
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if url.path == DEBUG_REQUESTS:  # not Kubernetes: the request counts, uncounted
            if method == "DELETE":
                self.fake.reset_counts()
            self._send_json(200, self.fake.request_report(), count=False)
            return
        self.kind = self._kind(method, url.path, query)
        if self.fake.write_latency and method != "GET":
            time.sleep(self.fake.write_latency)
        fault = self.fake.take_fault(method, self.path)
        if fault is not None:
            status, retry_after = fault
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            error = ApiError(status, REASONS.get(status, "InternalError"),
                             f"fakekube injected fault ({status})")
            self._send_json(status, error.status_dict(), headers)
            return
        try:
            self._route(method, url.path, query, raw)
        except ApiError as exc:
            self._send_json(exc.code, exc.status_dict())
        except (ValueError, yaml.YAMLError) as exc:
            error = ApiError(400, "BadRequest", f"cannot decode request: {exc}")
            self._send_json(400, error.status_dict())

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None,
                   count: bool = True) -> None:
        data = json.dumps(body).encode()
        if count:
            self.fake.record(self.command, self.path, status, self.kind, self.target)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self, raw: bytes) -> Any:
        if not raw:
            raise ApiError(400, "BadRequest", "request body is required")
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type.endswith("yaml"):
            return yaml.safe_load(raw)
        return json.loads(raw)

    # ---------------------------------------------------------------- routing
    def _route(self, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
        parts = _parts(path)
        if method == "GET" and parts == ["openapi", "v2"]:
            self._send_empty_openapi_v2()
            return
        if method == "GET":
            static = self._static(parts)
            if static is not None:
                self._send_json(200, static)
                return
        res, namespace, name, sub = self._resolve(parts)
        if name is None:
            self._collection(method, res, namespace, query, raw)
        else:
            self._object(method, res, namespace, name, sub, query, raw)

    def _kind(self, method: str, path: str, query: dict[str, str]) -> str:
        """What the request is, as Kubernetes' audit log names it: "VERB RESOURCE[/SUB]"
        (verbs get, list, watch, create, update, patch, delete, deletecollection; resources
        "plural" or "plural.group"), or "VERB nonresource" (discovery, openapi)."""
        self.target = None
        try:
            res, namespace, name, sub = self._resolve(_parts(path))
        except ApiError:
            return f"{method.lower()} nonresource"
        if method == "GET":
            verb = "get" if name else ("watch" if query.get("watch") in ("true", "1")
                                       else "list")
        elif method == "DELETE" and name is None:
            verb = "deletecollection"
        else:
            verb = _VERBS.get(method, method.lower())
        resource = f"{res.plural}.{res.group}" if res.group else res.plural
        if name is not None:
            self.target = (resource, namespace or "", name)
        return f"{verb} {resource}/{sub}" if sub else f"{verb} {resource}"

    def _resolve(
        self, parts: list[str]
    ) -> tuple[Resource, str | None, str | None, str | None]:
        """The resource, namespace, name and subresource a path names (ApiError 404 when
        it names none)."""
        store = self.fake.store
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = store.resource_for(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        res = store.resource_for(group, version, rest[0])
        if res is None or (namespace is not None and not res.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return res, namespace, name, sub

    def _send_empty_openapi_v2(self) -> None:
        """An empty OpenAPI v2 document (zero-length protobuf): clients such as kubectl
        find no schema for any kind and skip client-side validation."""
        self.fake.record(self.command, self.path, 200, self.kind, self.target)
        self.send_response(200)
        self.send_header("Content-Type", _OPENAPI_V2_PROTOBUF)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _static(self, parts: list[str]) -> dict[str, Any] | None:
        store = self.fake.store
        if parts == ["version"]:
            return discovery.version()
        if parts == ["api"]:
            return discovery.api_versions(self.fake.address)
        if parts == ["apis"]:
            return discovery.api_group_list(store)
        if len(parts) == 2 and parts[0] == "apis":
            return discovery.api_group(store, parts[1])
        if len(parts) == 2 and parts[0] == "api":
            return discovery.api_resource_list(store, "", parts[1])
        if len(parts) == 3 and parts[0] == "apis":
            return discovery.api_resource_list(store, parts[1], parts[2])
        return None

    # ---------------------------------------------------------------- collections
    def _collection(
        self, method: str, res: Resource, namespace: str | None, query: dict[str, str],
        raw: bytes,
    ) -> None:
        store = self.fake.store
        labels, fields = query.get("labelSelector"), query.get("fieldSelector")
        if method == "GET":
            if query.get("watch") in ("true", "1"):
                self._watch(res, namespace, query)
            else:
                self._send_json(200, self.fake.list_page(res, namespace, query))
        elif method == "POST":
            obj = self._body(raw)
            self._fill_namespace(res, obj, namespace)
            created = store.create(res, obj, dry_run=bool(query.get("dryRun")))
            self._send_json(201, created)
        elif method == "DELETE":
            deleted = store.delete_collection(res, namespace, labels, fields)
            self._send_json(200, {"kind": res.list_kind, "apiVersion": res.api_version,
                                  "metadata": {"resourceVersion": store.resource_version},
                                  "items": deleted})
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")

    @staticmethod
    def _fill_namespace(res: Resource, obj: Any, namespace: str | None) -> None:
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the request body must be an object")
        meta = obj.setdefault("metadata", {})
        if not res.namespaced:
            return
        if not namespace:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                           "match the namespace sent on the request")
        meta["namespace"] = namespace

    # ---------------------------------------------------------------- objects
    def _object(
        self, method: str, res: Resource, namespace: str | None, name: str, sub: str | None,
        query: dict[str, str], raw: bytes,
    ) -> None:
        store = self.fake.store
        if sub not in (None, "status"):
            raise ApiError(404, "NotFound", f"unknown subresource {sub!r}")
        if sub == "status" and not res.has_status:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        dry_run = bool(query.get("dryRun"))
        if method == "GET":
            self._send_json(200, store.get(res, name, namespace))
        elif method == "PUT":
            obj = self._body(raw)
            self._fill_namespace(res, obj, namespace)
            if obj["metadata"].get("name", name) != name:
                raise ApiError(400, "BadRequest", "the name of the object does not match the "
                               "name on the URL")
            obj["metadata"]["name"] = name
            self._send_json(200, store.update(res, obj, subresource=sub, dry_run=dry_run))
        elif method == "PATCH":
            self._patch(res, namespace, name, sub, raw, dry_run)
        elif method == "DELETE":
            options = json.loads(raw) if raw else {}
            propagation = query.get("propagationPolicy") or (options or {}).get(
                "propagationPolicy") or "Background"
            preconditions = (options or {}).get("preconditions") or {}
            deleted = store.delete(res, name, namespace, propagation=propagation,
                                   precondition_rv=preconditions.get("resourceVersion"),
                                   precondition_uid=preconditions.get("uid"), dry_run=dry_run)
            if (res.group, res.plural) in discovery.RETURNS_OBJECT_ON_DELETE:
                self._send_json(200, deleted)
            else:
                self._send_json(200, {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": res.group, "kind": res.plural,
                                "uid": deleted["metadata"].get("uid")},
                })
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on an object")

    def _patch(
        self, res: Resource, namespace: str | None, name: str, sub: str | None, raw: bytes,
        dry_run: bool,
    ) -> None:
        store = self.fake.store
        content_type = (self.headers.get("Content-Type") or MERGE).split(";")[0].strip()
        patch = self._body(raw)
        try:
            patched = store.patch(res, name, namespace, patch, content_type,
                                  subresource=sub, dry_run=dry_run)
        except NotFound:
            if content_type != APPLY or sub:
                raise
            self._fill_namespace(res, patch, namespace)
            patch["metadata"]["name"] = name
            self._send_json(201, store.create(res, patch, dry_run=dry_run))
            return
        self._send_json(200, patched)

    # ---------------------------------------------------------------- watch
    def _watch(self, res: Resource, namespace: str | None, query: dict[str, str]) -> None:
        fake = self.fake
        timeout = float(query.get("timeoutSeconds") or 1800)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        try:
            sub = fake.store.watch(res, namespace, query.get("resourceVersion"),
                                   query.get("labelSelector"), query.get("fieldSelector"))
        except Expired as exc:
            if fake.gone_as_http:
                raise
            self._start_stream()
            self._chunk({"type": "ERROR", "object": exc.status_dict()})
            self._end_stream()
            return
        fake.watch_opened(sub)
        try:
            self._start_stream()
            self._stream(sub, time.monotonic() + timeout, bookmarks)
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            self.close_connection = True
        finally:
            sub.stop()
            fake.watch_closed(sub)

    def _stream(self, sub: Subscription, deadline: float, bookmarks: bool) -> None:
        interval = self.fake.bookmark_interval
        next_bookmark = time.monotonic() + interval
        while True:
            now = time.monotonic()
            if sub.closed:  # dropped by drop_watches() or the server stopping
                self._abort()
                return
            if now >= deadline:
                self._end_stream()
                return
            if bookmarks and now >= next_bookmark:
                sub.bookmark()
                next_bookmark = now + interval
            wait = min(deadline - now, _WATCH_POLL)
            if bookmarks:
                wait = min(wait, max(0.0, next_bookmark - now))
            event = sub.next_event(timeout=wait)
            if event is not None:
                self._chunk(event)
            elif self._client_gone():
                return

    def _client_gone(self) -> bool:
        """True when the client closed its side (a watch request sends nothing more)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _start_stream(self) -> None:
        self.fake.record(self.command, self.path, 200, self.kind, self.target)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()

    def _chunk(self, event: dict[str, Any]) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _abort(self) -> None:
        """Close the connection without ending the chunked body (a broken stream)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
