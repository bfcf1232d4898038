"""The node agent's unix socket: one JSON request per connection (newline terminated), one
JSON answer, `{"result": ...}` or `{"error": {"code", "msg", "details"}}` (the CNI spec's
error fields, printed as they are by the plugin). One thread per connection: ADDs of
different containers run in parallel; the handler serialises requests of one container."""

from __future__ import annotations

import json
import os
import socketserver
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from ycloud_controller.node import metrics
from ycloud_controller.node.cni import CniError, Request
from ycloud_controller.node.plugin import DECODING, IO_FAILURE

log = structlog.get_logger(__name__)
MAX_REQUEST = 1 << 20

Handle = Callable[[Request], dict[str, Any] | None]


def answer(handle: Handle, line: bytes) -> dict[str, Any]:
    started = time.monotonic()
    command = "unknown"
    try:
        try:
            raw = json.loads(line)
        except ValueError as exc:
            raise CniError(DECODING, "the request is not JSON", str(exc)) from None
        if not isinstance(raw, dict):
            raise CniError(DECODING, "the request is not a JSON object")
        req = Request.of(raw)
        command = req.command if req.command in ("ADD", "DEL", "CHECK") else "unknown"
        result = handle(req)
        metrics.REQUESTS.labels(command=command, result="ok").inc()
        return {"result": result}
    except CniError as exc:
        metrics.REQUESTS.labels(command=command, result="error").inc()
        metrics.ERRORS.labels(command=command, code=str(exc.code)).inc()
        log.warning("cni_error", command=command, code=exc.code, msg=exc.msg,
                    details=exc.details)
        return {"error": {"code": exc.code, "msg": exc.msg, "details": exc.details}}
    except Exception as exc:  # noqa: BLE001 - the plugin must get an answer, never a hang
        metrics.REQUESTS.labels(command=command, result="error").inc()
        metrics.ERRORS.labels(command=command, code=str(IO_FAILURE)).inc()
        log.exception("cni_request_failed", command=command)
        return {"error": {"code": IO_FAILURE, "msg": f"node agent failed: {exc}",
                          "details": type(exc).__name__}}
    finally:
        metrics.SECONDS.labels(command=command).observe(time.monotonic() - started)


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    request_queue_size = 1024  # a node's batch of pods connects at once (the default is 5)
    handle_request_fn: Handle


class _Conn(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST)
        if not line.strip():
            return  # a connect-and-close (a liveness probe of the socket): nothing asked
        reply = answer(self.server.handle_request_fn, line)  # type: ignore[attr-defined]
        try:
            self.wfile.write(json.dumps(reply).encode() + b"\n")
        except OSError as exc:
            log.warning("cni_reply_lost", error=str(exc))  # the plugin gave up (timeout)


class SocketServer:
    def __init__(self, path: str, handle: Handle):
        self.path = Path(path)
        self.handle = handle
        self._server: _Server | None = None

    def start(self) -> SocketServer:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)  # a previous agent's socket (the agent restarted)
        old_umask = os.umask(0o177)  # the socket is root's only (0600)
        try:
            server = _Server(str(self.path), _Conn)
        finally:
            os.umask(old_umask)
        server.handle_request_fn = self.handle
        self._server = server
        threading.Thread(target=server.serve_forever, name="cni-socket", daemon=True).start()
        log.info("cni_socket_listening", path=str(self.path))
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self.path.unlink(missing_ok=True)

    def serving(self) -> bool:
        return self._server is not None and self.path.exists()
