"""A minimal protobuf (proto3) wire codec: just what the CRI client needs.

Encoding: `message(fields)` takes (field number, value) pairs; a value is a str (length-
delimited UTF-8), bytes (length-delimited, e.g. an already encoded sub-message), a bool or an
int (varint; negative ints as 64-bit two's complement, as proto3 int64/enum do), or None
(omitted, as proto3 omits defaults). Maps are repeated entry messages (key = 1, value = 2):
`map_entries(number, mapping)`.

Decoding: `decode(data)` returns {field number: [raw values]} (ints for varints, bytes for
length-delimited, ints for fixed32/64) and the `Fields` helper reads them as the schema says.
Unknown fields are kept and ignored, as protobuf does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

VARINT, I64, LEN, I32 = 0, 1, 2, 5
Value = str | bytes | bool | int | None


class WireError(ValueError):
    """Bytes that are not a valid protobuf message."""


def varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, value: Value) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bool | int):
        return varint(number << 3 | VARINT) + varint(int(value))
    raw = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | LEN) + varint(len(raw)) + raw


def message(fields: Iterable[tuple[int, Value]]) -> bytes:
    return b"".join(field(n, v) for n, v in fields)


def map_entries(number: int, mapping: Mapping[str, str] | None) -> bytes:
    return b"".join(field(number, message([(1, k), (2, v)]))
                    for k, v in sorted((mapping or {}).items()))


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def decode(data: bytes) -> dict[int, list[int | bytes]]:
    out: dict[int, list[int | bytes]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == VARINT:
            value, pos = _read_varint(data, pos)
        elif wire == LEN:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise WireError(f"field {number}: truncated")
            value, pos = data[pos:pos + size], pos + size
        elif wire in (I64, I32):
            width = 8 if wire == I64 else 4
            value, pos = int.from_bytes(data[pos:pos + width], "little"), pos + width
        else:
            raise WireError(f"field {number}: unsupported wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


class Fields:
    """Typed access to a decoded message: the last value wins for scalars, as in protobuf."""

    def __init__(self, data: bytes):
        self.raw = decode(data)

    def _last(self, number: int) -> int | bytes | None:
        values = self.raw.get(number)
        return values[-1] if values else None

    def str(self, number: int) -> str:
        value = self._last(number)
        return value.decode() if isinstance(value, bytes) else ""

    def int(self, number: int, *, signed: bool = True) -> int:
        value = self._last(number)
        if not isinstance(value, int):
            return 0
        return value - (1 << 64) if signed and value >= 1 << 63 else value

    def bool(self, number: int) -> bool:
        return bool(self.int(number))

    def msg(self, number: int) -> Fields:
        value = self._last(number)
        return Fields(value if isinstance(value, bytes) else b"")

    def msgs(self, number: int) -> list[Fields]:
        return [Fields(v) for v in self.raw.get(number, []) if isinstance(v, bytes)]

    def strs(self, number: int) -> list[str]:
        return [v.decode() for v in self.raw.get(number, []) if isinstance(v, bytes)]

    def map(self, number: int) -> dict[str, str]:
        return {e.str(1): e.str(2) for e in self.msgs(number)}
