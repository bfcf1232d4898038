"""A lean OVSDB client for the controller's hot path: monitor little, write raw JSON-RPC.

Unlike python-ovs' IDL, which replicates every column it may write (docs/architecture.md,
"The NB client"), this client

- monitors with `monitor_cond` (update2: diffs of sets and maps) only the columns the
  controller reads back (identity and ownership in external_ids, reference columns for
  memberships, and a few columns `restore` needs), and only our own rows (condition on
  external_ids:ycloud.io/managed-by; Load_Balancer_Group, which has no external_ids, whole);
- decodes JSON into plain Python values (C JSON parser of python-ovs when present);
- sends `transact` requests built as plain JSON (see topology/nbsync/transact.py), and reflects a
  committed transaction into its row store at once when the reply arrives (write-through),
  so the next plan sees it without waiting for the server's echo of our own change; the
  monitor update that follows carries the same values.

Connection handling is python-ovs' `jsonrpc.Session`: unix/tcp/ssl, several remotes (tried in
turn, starting at a random one), reconnect with backoff (1 s, then 2 s), inactivity probes.
For a RAFT cluster with `leader_only`, the `_Server` database is checked (and monitored) and
a member that is not the connected leader is left for the next remote; a leader that loses
leadership while we use it is left at once. After every (re)connection the monitor's initial
reply (`monitor_cond`, not `monitor_cond_since`: a full resync) replaces the whole row store:
nothing from before a reconnect is trusted. A request whose reply was lost with the
connection fails with Disconnected: its outcome is unknown, and the writer plans again from
the new contents (topology.nbsync.applier; inserts carry client-chosen UUIDs,
topology.nbsync.transact).

Threading: one thread owns the session: all socket I/O and JSON decoding happen there, without
holding `lock`. Everything that reads or changes the row store holds `lock` (the session
thread only while it applies decoded messages). Other threads queue requests (`send`,
serialised in their own thread) and the session thread writes them in order. Callbacks of
replies run in the session thread, holding `lock`.
"""

from __future__ import annotations

import collections
import errno
import itertools
import json
import os
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ovs.json
import ovs.jsonrpc
import ovs.poller
import ovs.timeval
import structlog

from topology.ovsdb.monitor import HUNT_SECONDS, MonitorMixin
from topology.ovsdb.values import Disconnected, OvsdbError, Schema, gc_paused
from topology.ovsdb.wire import StreamMixin

log = structlog.get_logger(__name__)

UUID = uuidlib.UUID

# Reconnect backoff: 1 s, then 2 s between tries (python-ovs: up to 8 s). A RAFT election takes
# about a second; the new leader is then found within about 2 s, without a busy loop.
MAX_BACKOFF_MS = 2000


# -- the session ------------------------------------------------------------------------------
@dataclass
class TableMonitor:
    columns: tuple[str, ...]
    where: list[Any] | None = None  # monitor_cond condition; None: every row
    # False: the server does not report new rows (select insert=false) once the monitor is
    # synced; our own inserts go into the store as confirmed rows (write-through), and rows
    # inserted by others are seen at the next `reload` (or reconnection)
    echo_inserts: bool = True


RowListener = Callable[[str, UUID, "dict[str, Any] | None", "dict[str, Any] | None",
                        "frozenset[str] | None"], None]


class Session(StreamMixin, MonitorMixin):
    """One OVSDB session with a lean conditional monitor (see the module docstring)."""

    MONITOR_ID = "ycloud"
    SERVER_MONITOR_ID = "ycloud-server"

    def __init__(self, remote: str, database: str, monitors: dict[str, TableMonitor], *,
                 leader_only: bool = True, probe_interval: int | None = None,
                 on_row: RowListener | None = None,
                 on_reset: Callable[[], None] | None = None,
                 probe_table: str = "Load_Balancer_Group"):
        self.remotes = [r.strip() for r in remote.split(",") if r.strip()]
        self.database = database
        self.monitors = monitors
        self.leader_only = leader_only
        self.on_row = on_row
        self.on_reset = on_reset
        self.probe_table = probe_table
        self.lock = threading.RLock()
        self.rows: dict[str, dict[UUID, dict[str, Any]]] = {t: {} for t in monitors}
        self.overlay: dict[str, dict[UUID, dict[str, Any] | None]] = {}
        self._default_rows: dict[str, dict[str, Any]] = {}
        self.schema: Schema | None = None
        self.synced = threading.Event()  # monitor's initial contents are in `rows`
        self.supports_insert_uuid = False
        self.synced_remote: str | None = None  # the remote the monitor last synced from
        self._hunt_until = time.monotonic() + HUNT_SECONDS  # see MonitorMixin._server_check
        self._leave_at: float | None = None  # when to leave a member that is not usable
        self._leaving = False  # this connection's member is not usable: nothing is installed
        self._handshake_started = False  # on this connection (get_schema sent)
        self._session = ovs.jsonrpc.Session.open_multiple(self.remotes, probe_interval=0)
        self._session.reconnect.set_backoff(1000, MAX_BACKOFF_MS)
        stream_remote = any(r.startswith(("tcp:", "ssl:")) for r in self.remotes)
        self._probe_interval = ((probe_interval if probe_interval is not None else 5000)
                                / 1000.0 if stream_remote else 0.0)
        self._last_rx = time.monotonic()
        self._probe_sent = 0.0
        self._out: collections.deque[bytes] = collections.deque()
        self._out_offset = 0
        self._seqno = -1
        self._inbuf = bytearray()
        self._cut = False  # the message at the head of _inbuf is not all here
        self._received: list[dict[str, Any]] = []  # read, to apply once `lock` is free
        self._pending: dict[Any, Callable[[Any, Any], None]] = {}
        self._ids = itertools.count(1)
        self._out_lock = threading.Lock()
        self._outbox: list[tuple[int, bytes, Callable[[Any, Any], None] | None,
                                 int | None]] = []
        self.epoch = 0  # bumped each time the monitor's initial contents replace the store
        self._stop = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._thread = threading.Thread(target=self._run, name="nb-session", daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, timeout: float) -> Session:
        self._thread.start()
        if not self.synced.wait(timeout):
            raise TimeoutError(f"no NB connection within {timeout}s ({','.join(self.remotes)})")
        return self

    def stop(self) -> None:
        self._stop = True
        self._wake()
        self._thread.join(timeout=5)
        with self.lock:
            self._session.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def force_reconnect(self) -> None:
        """Drop the connection at the session thread's next turn and connect again at once;
        requests waiting for a reply fail with Disconnected (callable from any thread)."""
        self._leave_at = time.monotonic()
        self._wake()

    def reload(self, timeout: float) -> None:
        """Load the monitor again on this connection (monitor_cancel, monitor_cond): its
        initial contents replace the store, dropping every local change, and show rows a
        monitor that does not echo inserts has not reported. Returns once they are in, or
        raises TimeoutError after `timeout` (callable from any thread but the session's).
        The server answers requests in order: what was sent before is in the new contents.
        A caller must not have a transaction in flight whose changes went into the store
        before its reply (`Applier.send` with `ahead`): the reload would drop them."""
        epoch = self.epoch
        try:
            self.send("monitor_cancel", [self.MONITOR_ID], None)
            self.send("monitor_cond", self.monitor_params(), self._got_monitor)
        except Disconnected:
            pass  # the reconnection loads the monitor anyway
        deadline = time.monotonic() + timeout
        while self.epoch == epoch or not self.synced.is_set():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"NB monitor not synced again within {timeout:.0f}s")
            time.sleep(0.01)

    def echoes_inserts(self, table: str) -> bool:
        """Whether the monitor reports rows others insert into `table` (TableMonitor)."""
        mon = self.monitors.get(table)
        return mon is None or mon.echo_inserts

    def is_connected(self) -> bool:
        return self._session.is_connected() and self.synced.is_set()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    # -- requests ------------------------------------------------------------------------------
    def encode_request(self, method: str, params: list[Any]) -> tuple[int, bytes]:
        """A request as bytes with a fresh id (callable from any thread)."""
        rid = next(self._ids)
        data = json.dumps({"id": rid, "method": method, "params": params},
                          separators=(",", ":")).encode()
        return rid, data

    def send(self, method: str, params: list[Any],
             callback: Callable[[Any, Any], None] | None, epoch: int | None = None) -> None:
        """Queue a request for the session thread; `callback(result, error)` runs there, under
        `lock`, with the reply, or with error Disconnected when the session drops first.
        Callable from any thread; the JSON is serialised in the caller's thread."""
        rid, data = self.encode_request(method, params)
        self.send_encoded(rid, data, callback, epoch)

    def send_encoded(self, rid: int, data: bytes,
                     callback: Callable[[Any, Any], None] | None,
                     epoch: int | None = None) -> None:
        """Queue a request made by `encode_request`. With `epoch` (the `epoch` seen while it
        was planned) it is dropped, as Disconnected, if the monitor was re-synced since: it
        was planned against contents that are no longer current."""
        if not self._session.is_connected():
            raise Disconnected("NB session not connected")
        with self._out_lock:
            self._outbox.append((rid, data, callback, epoch))
        self._wake()

    def call(self, method: str, params: list[Any], timeout: float) -> Any:
        """A request and its result, synchronously (any thread but the session's). Raises
        OvsdbError for an error reply, Disconnected when the session drops first or no
        reply comes within `timeout`."""
        done = threading.Event()
        reply: list[Any] = []

        def on_reply(result: Any, error: Any) -> None:
            reply.append((result, error))
            done.set()
        self.send(method, params, on_reply)
        if not done.wait(timeout):
            raise Disconnected(f"no reply to {method} within {timeout:.0f}s")
        result, error = reply[0]
        if isinstance(error, Exception):
            raise error
        if error is not None:
            raise OvsdbError(str(error))
        return result

    def _write(self, rid: Any, data: bytes,
               callback: Callable[[Any, Any], None] | None) -> None:
        """Session thread: register the callback and queue the bytes. Output goes through our
        own buffer, sent without copies (python-ovs' Connection re-encodes and re-slices its
        whole pending output string on every partial send, which for a multi-megabyte
        transaction costs many copies of it); python-ovs' output stays unused (its probes are
        off: `_probe` does that job)."""
        if self._session.rpc is None or self._session.rpc.get_status():
            if callback is not None:
                callback(None, Disconnected("NB session not connected"))
            return
        if callback is not None:
            self._pending[rid] = callback
        self._out.append(data)

    def _request(self, method: str, params: list[Any],
                 callback: Callable[[Any, Any], None] | None) -> None:
        """Session thread: send a request now (handshake)."""
        rid, data = self.encode_request(method, params)
        self._write(rid, data, callback)

    def _probe(self, now: float) -> None:
        """Inactivity probe on stream remotes (tcp, ssl): an echo after `probe_interval` of
        silence, a reconnect after as long again without anything received."""
        if not self._probe_interval or not self.synced.is_set():
            return
        idle = now - self._last_rx
        if idle < self._probe_interval:
            self._probe_sent = 0.0
            return
        if not self._probe_sent:
            self._probe_sent = now
            self._write("probe", json.dumps({"id": "probe", "method": "echo",
                                             "params": []}).encode(), None)
        elif now - self._probe_sent >= self._probe_interval:
            log.warning("nb connection inactive; reconnecting", idle=round(idle, 1))
            self._session.force_reconnect()

    def wait_synced(self, timeout: float) -> bool:
        return self.synced.wait(timeout)

    # -- the session thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop:
            try:
                self._step()
            except Exception:  # noqa: BLE001 - the session thread must survive
                log.exception("nb session error; reconnecting")
                self._session.force_reconnect()
            poller = ovs.poller.Poller()
            self._session.wait(poller)
            rpc = self._session.rpc
            if rpc is not None and rpc.get_status():
                poller.immediate_wake()  # the connection failed: let Session.run() notice
            elif rpc is not None:
                rpc.stream.recv_wait(poller)
                if self._received:
                    poller.timer_wait(1)  # try the lock again soon
                if self._out:
                    rpc.stream.send_wait(poller)
                if self._probe_interval and self.synced.is_set():
                    poller.timer_wait(int(self._probe_interval * 1000))
                if self._leave_at is not None:
                    poller.timer_wait(max(0, int((self._leave_at - time.monotonic()) * 1000)))
            poller.fd_wait(self._wake_r, ovs.poller.POLLIN)
            poller.block()
            try:
                os.read(self._wake_r, 4096)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EBADF):
                    raise

    def _step(self) -> None:
        """One turn: flush requests, read, then apply messages holding `lock` (the store is
        locked only while it changes, never during I/O or JSON parsing; while another thread
        holds it, reading goes on and the messages wait)."""
        self._session.run()
        if not self._session.is_connected():
            if self.synced.is_set() or self._pending or self._outbox:
                log.warning("nb connection lost; reconnecting", remote=self.synced_remote,
                            pending=len(self._pending), next=self._session.get_name())
                self._hunt_until = time.monotonic() + HUNT_SECONDS
                with self.lock:
                    self._apply_received()  # what came before the drop
                    self._reset()
            self._received = []
            return
        seqno = self._session.get_seqno()
        if seqno != self._seqno:  # a new connection
            self._seqno = seqno
            self._leave_at = None
            self._leaving = False
            self._handshake_started = False
            self._inbuf.clear()
            self._cut = False
            self._received = []
            self._grow_buffers()
            with self.lock:
                self._reset()
                self._handshake()
        if self._leave_at is not None and time.monotonic() >= self._leave_at:
            self._leave_at = None
            self._session.reset_backoff()  # to the next member at once
            self._session.force_reconnect()
            return
        if self._outbox:
            with self._out_lock:
                queued, self._outbox = self._outbox, []
            for rid, data, callback, epoch in queued:
                if epoch is not None and (epoch != self.epoch or not self.synced.is_set()):
                    if callback is not None:
                        with self.lock:
                            callback(None, Disconnected("NB re-synced since this was planned"))
                    continue
                self._write(rid, data, callback)
        self._flush()
        self._received += self._receive()
        # a planner holds the lock for as long as it plans a chunk (Applier.send): reading
        # goes on meanwhile, since ovsdb-server processes no more requests of a session
        # whose replies and updates wait to be read; what was read is applied, in order,
        # at the first turn the lock is free
        if self._received and self.lock.acquire(blocking=False):
            try:
                self._apply_received()
            finally:
                self.lock.release()
        self._probe(time.monotonic())
        self._flush()  # replies/requests queued while handling

    def _apply_received(self) -> None:
        """Handle the messages read so far, in order (caller holds `lock`)."""
        received, self._received = self._received, []
        with gc_paused():
            for msg in received:
                self._dispatch(msg)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        method = msg.get("method")
        if method is not None:
            params = msg.get("params") or []
            if msg.get("id") is not None:  # a request: only echo is expected
                if method == "echo":
                    self._write(None, json.dumps({"id": msg["id"], "result": params,
                                                  "error": None}).encode(), None)
                return
            if method == "update2" and params and params[0] == self.MONITOR_ID:
                self._update2(params[1], initial=False)
            elif method == "update" and params and params[0] == self.SERVER_MONITOR_ID:
                self._server_update(params[1])
            return
        callback = self._pending.pop(msg.get("id"), None)
        if callback is not None:
            callback(msg.get("result"), msg.get("error"))

    def _reset(self) -> None:
        # the store keeps the last known contents (reads still work) until the next
        # monitor reply replaces it; nothing may be written meanwhile (`synced` is clear)
        self.synced.clear()
        pending, self._pending = self._pending, {}
        with self._out_lock:
            queued, self._outbox = self._outbox, []
        lost = Disconnected("NB session dropped before the reply")
        self._out.clear()
        self._out_offset = 0
        for callback in [*pending.values(), *(cb for _, _, cb, _ in queued)]:
            if callback is not None:
                callback(None, lost)

    # -- handshake: _Server check, schema, insert-uuid probe, monitor --------------------------
