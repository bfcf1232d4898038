"""A minimal OVSDB JSON-RPC client over a plain unix socket, for measuring and observing NB.

Nothing here goes through python-ovs' IDL or ovsdbapp: it is the yardstick (the raw limit)
and the independent witness (what NB holds, and when) the controller is measured against.
JSON is parsed with python-ovs' C parser when present (ovs._json), else the stdlib.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

try:
    from ovs import _json as _cjson  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - the bench still runs, only slower
    _cjson = None

from topology import naming  # noqa: E402 - after the optional C parser

DB = "OVN_Northbound"


class RpcError(RuntimeError):
    pass


class JsonStream:
    """Framing of concatenated JSON values on a byte stream."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._buf = b""
        self._dec = json.JSONDecoder()
        self._text = ""

    def send(self, msg: Any) -> None:
        self.sock.sendall(json.dumps(msg, separators=(",", ":")).encode())

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> Any:
        if _cjson is not None:
            return self._recv_c()
        return self._recv_py()

    def _recv_c(self) -> Any:
        parser = _cjson.Parser(check_trailer=False)
        while True:
            if self._buf:
                used = parser.feed(self._buf.decode())  # bytes consumed (ASCII here)
                self._buf = self._buf[used:]
                if parser.is_done():
                    return parser.finish()
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("ovsdb-server closed the connection")
            self._buf += chunk

    def _recv_py(self) -> Any:
        while True:
            text = self._text.lstrip()
            if text:
                try:
                    value, end = self._dec.raw_decode(text)
                    self._text = text[end:]
                    return value
                except json.JSONDecodeError:
                    pass
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("ovsdb-server closed the connection")
            self._text = text + chunk.decode()


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


class Client:
    """Synchronous request/response client (no monitors on this connection)."""

    def __init__(self, path: str):
        self.stream = JsonStream(connect(path))
        self._id = 0

    def close(self) -> None:
        self.stream.sock.close()

    def hang_up(self) -> None:
        """Close, also waking a thread blocked reading this connection (a monitor's)."""
        try:
            self.stream.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close()

    def call(self, method: str, params: list[Any]) -> Any:
        return self.call_raw(self.encode(method, params))

    def encode(self, method: str, params: list[Any]) -> bytes:
        self._id += 1
        return json.dumps({"id": self._id, "method": method, "params": params},
                          separators=(",", ":")).encode()

    def call_raw(self, data: bytes) -> Any:
        self.stream.send_raw(data)
        while True:
            msg = self.stream.recv()
            if msg.get("method") == "echo":
                self.stream.send({"id": msg["id"], "result": msg["params"], "error": None})
                continue
            if msg.get("id") is None:
                continue
            if msg.get("error"):
                raise RpcError(str(msg["error"]))
            return msg["result"]

    def transact(self, ops: list[dict[str, Any]]) -> list[Any]:
        result = self.call("transact", [DB, *ops])
        check(result)
        return result


def check(result: list[Any]) -> None:
    for r in result:
        if isinstance(r, dict) and r.get("error"):
            raise RpcError(f"{r.get('error')}: {r.get('details', '')}")


def ovs_map(d: dict[str, str]) -> list[Any]:
    return ["map", [[k, v] for k, v in sorted(d.items())]]


def ovs_set(values: list[Any]) -> Any:
    return ["set", values]


def wipe_ops() -> list[list[dict[str, Any]]]:
    """Delete every row of the root tables we (or the raw insert) write: an empty NB. Two
    transactions: HA_Chassis_Group rows are referenced by router ports, which go (as
    non-root rows) only once the first transaction deleted their routers."""
    return [[{"op": "delete", "table": t, "where": []} for t in tables] for tables in (
        ("Logical_Router", "Logical_Switch", "Load_Balancer", "Load_Balancer_Group",
         "Load_Balancer_Health_Check", "Chassis_Template_Var"), ("HA_Chassis_Group",))]


def follow(client: Client, on_update: Callable[[float, dict[str, Any]], None],
           stopped: Callable[[], bool]) -> None:
    """Read a monitor's update notifications until the connection closes or `stopped()`:
    `on_update(time of receipt, table updates)`; echo requests are answered."""
    stream = client.stream
    while not stopped():
        try:
            msg = stream.recv()
        except (ConnectionError, OSError):
            return
        now = time.monotonic()
        method = msg.get("method")
        if method == "update":
            on_update(now, msg["params"][1])
        elif method == "echo":
            stream.send({"id": msg["id"], "result": msg["params"], "error": None})


class Observer(threading.Thread):
    """A separate NB connection monitoring every table the controller writes.

    Records, with time.monotonic() at receipt, every update notification (one per committed
    transaction that touched a monitored table, or fewer when the server merges them while
    this client lags) and, for Load_Balancer rows, the `vips` of each row by its owner. The
    clock is CLOCK_MONOTONIC, shared with other processes on the host.
    """

    def __init__(self, path: str, tables: dict[str, list[str] | None],
                 on_lb: Callable[[float, str, str | None], None] | None = None,
                 on_port: Callable[[float, str, str | None], None] | None = None):
        super().__init__(name="nb-observer", daemon=True)
        self.client = Client(path)
        self.tables = tables
        self.on_lb = on_lb
        self.on_port = on_port  # (time, port name, "present" or None) on insert / delete
        self.lock = threading.Lock()
        self.updates = 0  # update notifications that touched our tables
        self.update_times: list[float] = []
        self.rows: dict[str, dict[str, Any]] = {t: {} for t in tables}
        self.lb_owner: dict[str, str] = {}
        self.lb_vips: dict[str, str | None] = {}  # owner -> vips value (single VIP)
        self.lb_hash: dict[str, str] = {}
        self._ready = threading.Event()
        self._stop = False

    def start_monitor(self) -> None:
        requests = {}
        for table, cols in self.tables.items():
            requests[table] = {"columns": cols} if cols else {}
        result = self.client.call("monitor", [DB, "bench-observer", requests])
        self._apply(time.monotonic(), result, initial=True)
        self._ready.set()
        self.start()

    def run(self) -> None:
        follow(self.client, lambda now, updates: self._apply(now, updates, initial=False),
               lambda: self._stop)

    def stop(self) -> None:
        self._stop = True
        self.client.hang_up()

    def _apply(self, now: float, updates: dict[str, Any], initial: bool) -> None:
        with self.lock:
            if not initial and any(t in self.tables for t in updates):
                self.updates += 1
                self.update_times.append(now)
            for table, rows in updates.items():
                store = self.rows.setdefault(table, {})
                for uuid, change in rows.items():
                    new = change.get("new")
                    if table == "Logical_Switch_Port" and self.on_port and not initial:
                        old = store.get(uuid)
                        if new is None and old is not None:
                            self.on_port(now, old.get("name", ""), None)
                        elif new is not None and old is None:
                            self.on_port(now, new.get("name", ""), "present")
                    if new is None:
                        store.pop(uuid, None)
                        if table == "Load_Balancer":
                            owner = self.lb_owner.pop(uuid, None)
                            if owner is not None:
                                self.lb_vips.pop(owner, None)
                                self.lb_hash.pop(owner, None)
                                if self.on_lb and not initial:
                                    self.on_lb(now, owner, None)
                        continue
                    store[uuid] = new
                    if table == "Load_Balancer":
                        self._lb(now, uuid, new, initial)

    def _lb(self, now: float, uuid: str, new: dict[str, Any], initial: bool) -> None:
        ids = dict(new.get("external_ids", ["map", []])[1])
        owner = ids.get(naming.OWNER)
        if owner is None:
            return
        self.lb_owner[uuid] = owner
        vips = new.get("vips", ["map", []])[1]
        value = vips[0][1] if len(vips) == 1 else None
        self.lb_vips[owner] = value
        self.lb_hash[owner] = ids.get(naming.HASH, "")
        if self.on_lb and not initial:
            self.on_lb(now, owner, value)

    def count(self, table: str) -> int:
        with self.lock:
            return len(self.rows.get(table, {}))

    def snapshot_updates(self) -> int:
        with self.lock:
            return self.updates
