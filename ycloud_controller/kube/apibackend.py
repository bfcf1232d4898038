"""Backend on a real API server through the official client's ApiClient.

Requests go through ``ApiClient.param_serialize`` (host, auth headers, token refresh of
the loaded kubeconfig) and ``ApiClient.call_api``, which returns the raw urllib3
response: bodies are parsed with ``json.loads`` and never deserialized into models, so
lists of 10k+ objects stay cheap. Watches stream the chunked response line by line.

Idempotent reads (get, list) are retried with tenacity on connection errors, 429 and
5xx, bounded and jittered, waiting at least the server's Retry-After. Writes and watch
requests raise to the caller, who decides (the informer reconnects, reconcilers requeue).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import structlog
import tenacity
import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from ycloud_controller.kube.backoff import RetryAfterWait
from ycloud_controller.kube.errors import ApiError, Expired, NotFound, from_status
from ycloud_controller.kube.objects import compact
from ycloud_controller.kube.patch import MERGE
from ycloud_controller.kube.resources import Resource

log = structlog.get_logger(__name__)

_CONNECTION_ERRORS = (urllib3.exceptions.HTTPError, OSError)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ApiError) and exc.retryable


class HttpWatch:
    """Iterator over one watch response's events; ``close()`` works from any thread."""

    def __init__(self, response: urllib3.BaseHTTPResponse, res: Resource) -> None:
        self._resp = response
        self._res = res
        self._lock = threading.Lock()
        self._closed = False
        self._done = False
        self._consumer: int | None = None
        self._events = self._read_events()

    def __iter__(self) -> HttpWatch:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._consumer is None and self._closed:
            raise StopIteration
        self._consumer = threading.get_ident()
        return next(self._events)

    def _chunks(self) -> Iterator[bytes]:
        if self._resp.chunked:
            yield from self._resp.stream(amt=None, decode_content=False)
        else:
            yield from iter(lambda: self._resp.read1(65536), b"")

    def _read_events(self) -> Iterator[dict[str, Any]]:
        buffer = b""
        clean = False
        try:
            for chunk in self._chunks():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield self._event(line)
            if buffer.strip() and not self._closed:
                yield self._event(buffer)
            clean = True
        except (*_CONNECTION_ERRORS, ValueError) as exc:
            if not self._closed:
                raise ApiError(0, "connection", f"watch stream broken: {exc}") from exc
        finally:
            self._finish(clean)

    def _finish(self, clean: bool) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
            if not clean or self._closed:
                self._resp.close()
            self._resp.release_conn()

    def _event(self, line: bytes) -> dict[str, Any]:
        event = json.loads(line)
        if event.get("type") == "ERROR":
            status = event.get("object") or {}
            code = int(status.get("code") or 500)
            if code == 410:
                raise Expired(str(status.get("message", "too old resource version")))
            raise from_status(code, status)
        obj = event.get("object")
        if isinstance(obj, dict) and event.get("type") != "BOOKMARK":
            event["object"] = compact(obj)  # cached by informers: share repeated strings
        return event

    def close(self) -> None:
        """Abort the stream.

        From another thread this only shuts the socket down, so that a ``next()`` blocked
        in the consuming thread ends (StopIteration); from the consuming thread (or
        before iteration started) it also releases the response.
        """
        with self._lock:
            self._closed = True
            if self._done:
                return
            conn = getattr(self._resp, "connection", None)
            sock = getattr(conn, "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._consumer is None or self._consumer == threading.get_ident():
            try:
                self._events.close()
            except ValueError:  # started meanwhile in another thread: it ends by itself
                return
            self._finish(clean=False)


class ApiBackend:
    """Backend talking to an API server (see the module docstring). Thread-safe as far
    as the ApiClient's urllib3 pool is (it is)."""

    def __init__(
        self,
        api_client: ApiClient,
        *,
        request_timeout: float = 30.0,
        page_size: int = 500,
        read_attempts: int = 5,
        retry_initial: float = 0.2,
        retry_max: float = 10.0,
    ) -> None:
        self.api_client = api_client
        self.request_timeout = request_timeout
        self.page_size = page_size
        self._retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, read_attempts)),
            wait=RetryAfterWait(retry_initial, retry_max),
            retry=tenacity.retry_if_exception(_retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )

    @staticmethod
    def _log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "kube_read_retry",
            attempt=state.attempt_number,
            sleep=round(state.next_action.sleep, 3) if state.next_action else None,
            error=str(exc),
        )

    # ------------------------------------------------------------------ transport
    def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            request = self.api_client.param_serialize(
                method=method,
                resource_path=path,
                query_params=query or None,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            return self.api_client.call_api(
                *request, _request_timeout=timeout or self.request_timeout
            )
        except ApiException as exc:
            raise ApiError(
                exc.status or 0, exc.reason or "connection", str(exc.body or exc.reason or exc)
            ) from exc
        except _CONNECTION_ERRORS as exc:
            raise ApiError(0, "connection", f"{method} {path}: {exc}") from exc

    @staticmethod
    def _raise_for_status(status: int, headers: Any, data: bytes) -> None:
        if 200 <= status <= 299:
            return
        try:
            body: Any = json.loads(data) if data else None
        except ValueError:
            body = data.decode("utf-8", "replace")
        raise from_status(status, body, retry_after=_retry_after(headers))

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._call(method, path, **kwargs)
        try:
            data = response.read()
        except _CONNECTION_ERRORS as exc:
            raise ApiError(0, "connection", f"{method} {path}: {exc}") from exc
        finally:
            response.response.release_conn()
        self._raise_for_status(response.status, response.headers, data)
        try:
            return json.loads(data) if data else {}
        except ValueError as exc:
            raise ApiError(500, "InternalError", f"invalid JSON from {path}: {exc}") from exc

    def _read(self, path: str, query: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        return self._retrying.copy()(self._json, "GET", path, query=query)

    # ------------------------------------------------------------------ reads
    def list(
        self,
        res: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """All matching objects (followed page by page) and the list resourceVersion.

        An expired continue token (410) restarts the list once from scratch.
        """
        base: list[tuple[str, str]] = [("limit", str(self.page_size))]
        if label_selector:
            base.append(("labelSelector", label_selector))
        if field_selector:
            base.append(("fieldSelector", field_selector))
        for _ in range(3):
            items: list[dict[str, Any]] = []
            resource_version: str | None = None
            token: str | None = None
            try:
                while True:
                    query = base + ([("continue", token)] if token else [])
                    body = self._read(res.path(namespace), query)
                    meta = body.get("metadata") or {}
                    if resource_version is None:
                        resource_version = str(meta.get("resourceVersion", ""))
                    for item in body.get("items") or []:
                        item.setdefault("apiVersion", res.api_version)
                        item.setdefault("kind", res.kind)
                        items.append(compact(item))  # interned: informer caches
                    token = meta.get("continue")
                    if not token:
                        return items, resource_version
            except Expired:
                if token is None:
                    raise
                log.info("kube_list_restart", resource=res.plural, reason="continue expired")
        raise Expired("list continue token kept expiring")

    def get(self, res: Resource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return self._read(res.path(namespace, name))
        except NotFound:
            return None

    def watch(
        self,
        res: Resource,
        resource_version: str | None,
        timeout_seconds: float,
        allow_bookmarks: bool = True,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> HttpWatch:
        query = [("watch", "true"), ("timeoutSeconds", str(max(1, int(timeout_seconds))))]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        if allow_bookmarks:
            query.append(("allowWatchBookmarks", "true"))
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        response = self._call(
            "GET", res.path(namespace), query=query,
            timeout=(min(10.0, self.request_timeout), timeout_seconds + 30.0),
        )
        if not 200 <= response.status <= 299:
            try:
                data = response.read()
            except _CONNECTION_ERRORS as exc:
                raise ApiError(0, "connection", f"watch {res.plural}: {exc}") from exc
            finally:
                response.response.release_conn()
            self._raise_for_status(response.status, response.headers, data)
        return HttpWatch(response.response, res)

    # ------------------------------------------------------------------ writes
    @staticmethod
    def _namespace(res: Resource, obj: dict[str, Any]) -> str | None:
        namespace = (obj.get("metadata") or {}).get("namespace")
        if res.namespaced and not namespace:
            raise ApiError(400, "BadRequest", f"{res.kind} needs metadata.namespace")
        return namespace

    def create(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", res.path(self._namespace(res, obj)), body=obj)

    def update(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        return self._json("PUT", res.path(self._namespace(res, obj), name), body=obj)

    def update_status(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        return self._json("PUT", res.path(self._namespace(res, obj), name, "status"), body=obj)

    def patch(
        self,
        res: Resource,
        name: str,
        namespace: str | None,
        patch: dict[str, Any],
        subresource: str | None = None,
        *,
        patch_type: str = MERGE,
    ) -> dict[str, Any]:
        return self._json(
            "PATCH", res.path(namespace, name, subresource), body=patch, content_type=patch_type
        )

    def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        missing_ok: bool = True,
        propagation: str = "Background",
        uid: str | None = None,
    ) -> None:
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1",
                                   "propagationPolicy": propagation}
        if uid:
            options["preconditions"] = {"uid": uid}
        try:
            self._json("DELETE", res.path(namespace, name), body=options)
        except NotFound:
            if not missing_ok:
                raise
