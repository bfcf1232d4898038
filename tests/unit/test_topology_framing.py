"""The OVSDB session's framing (topology.ovsdb.wire): bytes in, whole JSON-RPC messages out,
each parsed once, however the stream is cut."""

from __future__ import annotations

import errno
import json
import random
from typing import Any

from topology.ovsdb.wire import StreamMixin


class _Rpc:
    def __init__(self) -> None:
        self.errors: list[int] = []

    def error(self, code: int) -> None:
        self.errors.append(code)


class _Session:
    def __init__(self) -> None:
        self.rpc = _Rpc()


class Framer(StreamMixin):
    def __init__(self) -> None:
        self._inbuf = bytearray()
        self._cut = False
        self._session = _Session()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._inbuf += data
        return self._frames()


MESSAGES = [
    {"id": 1, "result": [{"rows": [{"name": "lb-}{", "vips": {"10.0.0.1:80": "10.1.0.5:80"}}]}],
     "error": None},
    {"method": "update2", "params": [None, {"Load_Balancer": {"u": {
        "insert": {"name": "é中 \"quoted\" \\ }", "external_ids": ["map", [["k", "v}"]]]}}}}],
     "id": None},
    {"id": "echo", "result": [], "error": None},
]


def _stream(sep: str = "") -> bytes:
    return sep.join(json.dumps(m, ensure_ascii=False) for m in MESSAGES).encode("utf-8")


def test_every_cut_of_the_stream_gives_each_message_once_in_order() -> None:
    data = _stream()
    for cut in range(len(data) + 1):
        framer = Framer()
        got = framer.feed(data[:cut]) + framer.feed(data[cut:])
        assert got == MESSAGES, cut
        assert not framer._inbuf and not framer._session.rpc.errors


def test_random_pieces_and_whitespace_between_messages() -> None:
    data = _stream(" \n")
    rng = random.Random(7)
    for _ in range(200):
        framer, got, pos = Framer(), [], 0
        while pos < len(data):
            step = rng.randint(1, 40)
            got += framer.feed(data[pos:pos + step])
            pos += step
        assert got == MESSAGES
        assert not framer._session.rpc.errors


def test_a_message_still_coming_is_kept_whole_and_parsed_once_it_is_in() -> None:
    """The messages before it come out at once; the one cut short is parsed again only when
    the buffer ends where a message can end (a "}"), not at every read."""
    framer = Framer()
    first, second = (json.dumps(m).encode() for m in MESSAGES[:2])
    assert framer.feed(first + second[:10]) == [MESSAGES[0]]
    assert framer._inbuf == second[:10] and framer._cut
    assert framer.feed(second[10:-1]) == []
    assert framer._inbuf == second[:-1]
    assert framer.feed(second[-1:]) == [MESSAGES[1]]
    assert not framer._inbuf and not framer._cut


def test_a_character_cut_in_half_waits_for_its_other_half() -> None:
    framer = Framer()
    data = json.dumps(MESSAGES[1], ensure_ascii=False).encode("utf-8")
    half = data.index("中".encode()) + 1
    assert framer.feed(data[:half]) == []
    assert framer.feed(data[half:]) == [MESSAGES[1]]
    assert not framer._session.rpc.errors


def test_invalid_utf8_drops_the_connection_even_before_the_message_ends() -> None:
    framer = Framer()
    first = json.dumps(MESSAGES[0]).encode()
    framer.feed(first + b'{"id": "\xff\xfe", "res')  # the connection goes: no more reads
    assert framer._session.rpc.errors == [errno.EPROTO]
    assert not framer._inbuf


def test_invalid_json_drops_the_connection() -> None:
    framer = Framer()
    assert framer.feed(b'{"id": 1, "result": tru}') == []
    assert framer._session.rpc.errors == [errno.EPROTO]
    assert not framer._inbuf
