"""The byte level of the lean OVSDB session (topology.ovsdb.session.Session): socket buffers,
writing queued requests without copies, reading what the socket has and cutting it into JSON
messages. Mixed into Session, which owns the connection; runs in the session thread only."""

from __future__ import annotations

import codecs
import errno
import json
import re
import socket
import time
from typing import Any

import ovs.jsonrpc
import ovs.timeval
import structlog

from topology.ovsdb.values import gc_paused

log = structlog.get_logger(__name__)

# socket buffers of a connection: a streamed chunk's request (about 1.3 MB at 2000 rows) goes
# to the kernel in one write and the server reads it whole, instead of waiting for the session
# thread to get the GIL back between each 200 KB (the default); likewise for what the server
# sends back. The kernel caps it at net.core.wmem_max / rmem_max.
SOCKET_BUFFER = 4 << 20


class StreamMixin:
    """Output through our own buffer (`_out`), input through `_inbuf` (see Session)."""

    def _grow_buffers(self) -> None:
        sock = getattr(self._session.rpc.stream, "socket", None)
        if sock is None:
            return
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
            except OSError as exc:  # a stream without such buffers: the defaults stay
                log.debug("nb socket buffer not set", error=str(exc))

    def _flush(self) -> None:
        rpc = self._session.rpc
        if rpc is None or rpc.get_status():
            self._out.clear()
            self._out_offset = 0
            return
        while self._out:
            head = self._out[0]
            sent = rpc.stream.send(memoryview(head)[self._out_offset:])
            if sent < 0:
                if -sent != errno.EAGAIN:
                    rpc.error(-sent)
                return
            self._out_offset += sent
            if self._out_offset >= len(head):
                self._out.popleft()
                self._out_offset = 0
            else:
                return  # the socket is full: wait for POLLOUT

    def _receive(self, limit: int = 16 << 20) -> list[dict[str, Any]]:
        """Read what the socket has (1 MiB at a time, up to `limit`) and decode every complete
        message (python-ovs' own reader goes 4 KiB at a time and converts through its
        parser's tree), with the collector paused."""
        rpc = self._session.rpc
        got = 0
        while got < limit:
            err, data = rpc.stream.recv(1 << 20)
            if err:
                if err != errno.EAGAIN:
                    rpc.error(err)
                break
            if not data:
                rpc.error(ovs.jsonrpc.EOF)
                break
            self._inbuf += data
            got += len(data)
        now = ovs.timeval.msec()
        self._session.reconnect.receive_attempted(now)
        if not got:
            return []
        self._last_rx = time.monotonic()
        self._session.reconnect.activity(now)
        with gc_paused():
            return self._frames()

    def _frames(self) -> list[dict[str, Any]]:
        """The complete messages at the head of `_inbuf`, each parsed once; the rest stays.

        A message found cut short (`_cut`) is not parsed again until the buffer ends with
        "}", the only byte a message (a JSON object) can end with: a large message arriving
        over many reads is not parsed over and over."""
        buf = self._inbuf
        if not buf or (self._cut and buf[-1] != _CLOSE):
            return []
        try:  # up to a character cut short at the end, which waits for its other half
            text, _ = codecs.utf_8_decode(buf, "strict", False)
        except UnicodeDecodeError:
            return self._invalid()
        out: list[dict[str, Any]] = []
        pos, end = 0, len(text)
        self._cut = False
        while True:
            pos = _SPACE.match(text, pos).end()
            if pos >= end:
                break
            try:
                msg, pos_after = _DECODER.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                if _cut_short(text, exc):
                    self._cut = True  # the rest comes later
                    break
                return out + self._invalid()
            pos = pos_after
            if isinstance(msg, dict):
                out.append(msg)
        if pos >= end and not self._cut:
            buf.clear()
        elif pos:
            del buf[:len(text[:pos].encode("utf-8"))]
        return out

    def _invalid(self) -> list[dict[str, Any]]:
        log.warning("nb sent invalid JSON; reconnecting")
        self._inbuf.clear()
        self._cut = False
        self._session.rpc.error(errno.EPROTO)
        return []


def _cut_short(text: str, exc: json.JSONDecodeError) -> bool:
    """Whether a parse failed because the text ends before the message does (rather than
    on invalid JSON): at its very end, in a string, or in a number or literal."""
    return (exc.pos >= len(text) - 1 or exc.msg.startswith("Unterminated string")
            or _TOKEN.fullmatch(text, exc.pos) is not None)


_CLOSE = ord("}")
_TOKEN = re.compile(r"[-+.\w]*")
_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
