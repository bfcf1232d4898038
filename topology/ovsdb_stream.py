"""The byte level of the lean OVSDB session (topology.ovsdb.Session): writing queued
requests without copies, reading what the socket has and cutting it into JSON messages.
Mixed into Session, which owns the connection; runs in the session thread only."""

from __future__ import annotations

import codecs
import errno
import json
import time
from collections.abc import Iterable
from typing import Any

import ovs.jsonrpc
import ovs.timeval
import structlog

from topology.ovsdb_types import _new_parser, gc_paused

log = structlog.get_logger(__name__)


class StreamMixin:
    """Output through our own buffer (`_out`), input through `_inbuf` (see Session)."""

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
        message. python-ovs' own reader goes 4 KiB at a time and converts through its C
        parser's tree; here that parser only finds where a message ends, and the message is
        decoded by the standard library, with the collector paused."""
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
            return list(self._frames())

    def _frames(self) -> Iterable[dict[str, Any]]:
        buf = self._inbuf
        while len(buf) > self._scanned:
            text, nbytes = codecs.utf_8_decode(bytes(buf[self._scanned:]), "strict", False)
            if not text:
                return
            used = self._parser.feed(text)  # bytes consumed
            if not self._parser.is_done():
                self._scanned += nbytes
                return
            end = self._scanned + used
            raw = bytes(buf[:end])
            del buf[:end]
            self._scanned = 0
            self._parser = _new_parser()
            try:
                msg = json.loads(raw)
            except ValueError:
                log.warning("nb sent invalid JSON; reconnecting")
                self._session.rpc.error(errno.EPROTO)
                return
            if isinstance(msg, dict):
                yield msg

