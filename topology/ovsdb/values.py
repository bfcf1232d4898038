"""OVSDB wire values for the lean client (topology.ovsdb.session): the schema's column types,
decoding JSON to plain Python (sets, dicts, UUIDs), update2 diffs, encoding for transact, and
the errors and GC pause the session shares with its users."""

from __future__ import annotations

import gc
import threading
import uuid as uuidlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_UUID = uuidlib.UUID
_new = object.__new__
_set = object.__setattr__
_UNKNOWN = uuidlib.SafeUUID.unknown


def uuid_of(text: str) -> uuidlib.UUID:
    """``uuid.UUID(text)`` for the canonical form OVSDB uses (36 characters, 8-4-4-4-12 hex
    digits), built without UUID.__init__'s parsing of every other form: row UUIDs are made
    for every row the monitor reads and every row we write, and that parsing (three
    ``str.replace`` and checks) cost more than the rest of making one. Only the length and
    the dashes are checked here (the text comes from the server or from
    topology.nbsync.transact.derived_uuid); any other text goes through ``uuid.UUID``."""
    if len(text) != 36 or text[8] != "-" or text[13] != "-" or text[18] != "-" \
            or text[23] != "-":
        return _UUID(text)
    value = _new(_UUID)
    _set(value, "int", int(text.replace("-", ""), 16))
    _set(value, "is_safe", _UNKNOWN)
    return value


_gc_lock = threading.Lock()
_gc_paused = 0
_gc_was_enabled = True


class gc_paused:  # noqa: N801 - a context manager
    """Pause the cyclic garbage collector (process-wide, counted across threads) while large
    JSON messages are parsed or large plans built: they allocate many containers and no
    garbage cycles, and with a large heap (informer caches) each full collection they would
    trigger scans everything. Collection resumes when the last user leaves."""

    def __enter__(self) -> None:
        global _gc_paused, _gc_was_enabled
        with _gc_lock:
            if _gc_paused == 0:
                _gc_was_enabled = gc.isenabled()
                gc.disable()
            _gc_paused += 1

    def __exit__(self, *exc: object) -> None:
        global _gc_paused
        with _gc_lock:
            _gc_paused -= 1
            if _gc_paused == 0 and _gc_was_enabled:
                gc.enable()


class OvsdbError(RuntimeError):
    """The server refused a transaction (constraint violation, syntax error, ...)."""


class Disconnected(ConnectionError):
    """The session dropped before the reply came: the outcome of the request is unknown."""


# -- schema and values -----------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnType:
    key: str  # atomic type of keys: string, integer, real, boolean, uuid
    value: str | None  # atomic type of values (maps only)
    min: int
    max: int | float  # inf for "unlimited"

    @property
    def is_map(self) -> bool:
        return self.value is not None

    @property
    def is_scalar(self) -> bool:
        return self.min == 1 and self.max == 1 and self.value is None

    @property
    def is_ref(self) -> bool:
        return self.key == "uuid"


def _atomic(t: Any) -> str:
    return t if isinstance(t, str) else t["type"]


def _column_type(t: Any) -> ColumnType:
    if isinstance(t, str):
        return ColumnType(t, None, 1, 1)
    key = _atomic(t["key"])
    value = _atomic(t["value"]) if "value" in t else None
    mx = t.get("max", 1)
    return ColumnType(key, value, t.get("min", 1), float("inf") if mx == "unlimited" else mx)


@dataclass
class Schema:
    name: str
    tables: dict[str, dict[str, ColumnType]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, js: dict[str, Any]) -> Schema:
        s = cls(js["name"])
        for tname, tdef in js["tables"].items():
            s.tables[tname] = {c: _column_type(cdef["type"]) for c, cdef in
                               tdef["columns"].items()}
        return s


def _atom_in(kind: str, js: Any) -> Any:
    if kind == "uuid":
        return uuid_of(js[1])
    return js


def decode(ct: ColumnType, js: Any) -> Any:
    """OVSDB JSON -> python: scalar atom; set -> set (of atoms); map -> dict."""
    if ct.is_map:
        pairs = js[1]
        if ct.key == "uuid" or ct.value == "uuid":
            return {_atom_in(ct.key, k): _atom_in(ct.value, v) for k, v in pairs}
        return dict(pairs)
    if ct.is_scalar:
        return _atom_in(ct.key, js)
    if isinstance(js, list) and js and js[0] == "set":
        if ct.key == "uuid":
            return {uuid_of(a[1]) for a in js[1]}
        return set(js[1])
    return {_atom_in(ct.key, js)}


def apply_diff(ct: ColumnType, old: Any, diff: Any) -> Any:
    """update2 "modify" semantics, as python-ovs' Datum.diff: sets and maps are toggled
    (a map pair equal to the old one is removed, any other pair is set); a column of at most
    one element that is not empty is replaced."""
    if ct.is_scalar:
        return diff
    if ct.max == 1 and old:
        return diff
    if ct.is_map:
        out = dict(old)
        for k, v in diff.items():
            if k in out and out[k] == v:
                del out[k]
            else:
                out[k] = v
        return out
    return old ^ diff


def empty(ct: ColumnType) -> Any:
    if ct.is_scalar:
        return {"string": "", "integer": 0, "real": 0.0, "boolean": False}.get(ct.key)
    return {} if ct.is_map else set()


def encode_atom(kind: str, value: Any) -> Any:
    if kind == "uuid":
        return ["uuid", str(value)]
    return value


def encode(ct: ColumnType, value: Any) -> Any:
    """python (python-ovs forms: atom, list/tuple/set, dict; None for an empty optional) ->
    OVSDB JSON."""
    if ct.is_map:
        items = sorted((value or {}).items())
        return ["map", [[encode_atom(ct.key, k), encode_atom(ct.value, v)] for k, v in items]]
    if ct.is_scalar:
        return encode_atom(ct.key, value)
    if value is None:
        values: Iterable[Any] = ()
    elif isinstance(value, (list, tuple, set, frozenset)):
        values = value
    else:
        values = (value,)
    return ["set", [encode_atom(ct.key, v) for v in values]]

