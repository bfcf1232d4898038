"""Shared read-only subtrees for the in-memory store (hash-consing of JSON containers).

Objects stored by the MemoryStore repeat whole subtrees: every EndpointSlice endpoint of a
pod (addresses, conditions, nodeName, targetRef) is the same in each slice that lists the
pod, most Services have the same ``ports``, most status conditions are equal. A write's body
goes through :func:`share`: a JSON copy whose dicts and lists equal to one already stored
are that stored container, so the store keeps each distinct subtree once.

Safe because the store never modifies a stored container in place (every write builds new
dicts along the path it changes; stored objects are read-only for everyone else too, see
``MemoryBackend``). The two containers a write does modify before storing, the object
itself and its ``metadata``, are never shared: ``share(obj, top=True)``.

Containers are equal only when they have the same type, keys in the same order, and values
that are identical (``is``: shared children, interned strings, None, True, False) or ints
and strings of the same type that are equal; floats are never unified (0.0 and -0.0). Two
equal containers that are not unified cost memory, never correctness.

The table holds canonical containers keyed by a structural hash. :meth:`_Table.sweep`
drops those nothing else references any more; it runs when the table has doubled since the
last sweep (amortised O(1) per write). Thread-safe: lookups are single dict operations;
a sweep racing a lookup can only lose a chance to share.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

INTERN_MAX = 64  # strings up to this length are interned (names, labels, addresses, ...)
_intern = sys.intern
_getrefcount = sys.getrefcount
MIN_SWEEP = 1 << 15


_EQ_TYPES = (str, int)


def _same(a: Any, b: Any) -> bool:
    """Strict shallow equality of two containers whose children are already canonical
    (and whose keys are interned)."""
    if type(a) is not type(b) or len(a) != len(b):
        return False
    if type(a) is dict:
        for (ka, x), (kb, y) in zip(a.items(), b.items(), strict=True):
            if ka is not kb or (x is not y and (type(x) is not type(y)
                                                or type(x) not in _EQ_TYPES or x != y)):
                return False
        return True
    for x, y in zip(a, b, strict=True):
        if x is not y and (type(x) is not type(y) or type(x) not in _EQ_TYPES or x != y):
            return False
    return True


class _Table:
    def __init__(self) -> None:
        self.items: dict[int, Any] = {}
        self.keys: dict[int, int] = {}  # id of a pinned canonical container -> its key
        self.sweep_at = MIN_SWEEP
        self._sweeping = threading.Lock()

    def known(self, value: Any) -> int | None:
        """The key of `value` if it is a pinned canonical container (see `pinned`; held by
        the table, so its id is its own), else None."""
        key = self.keys.get(id(value))
        if key is not None and self.items.get(key) is value:
            return key
        return None

    def canonical(self, value: Any, key: int) -> Any:
        items = self.items
        found = items.get(key)
        if found is not None:
            if found is value or _same(found, value):
                return found
            return value  # a hash collision: keep both, unshared
        items[key] = value
        if len(items) >= self.sweep_at:
            self.sweep()
        return value

    def sweep(self) -> int:
        """Drop entries only the table references; returns how many were dropped."""
        if not self._sweeping.acquire(blocking=False):
            return 0
        try:
            items = self.items
            dropped = 0
            for key in list(items):
                value = items.get(key)
                # references: the table, ``value`` here, getrefcount's argument
                if value is not None and _getrefcount(value) <= 3:
                    items.pop(key, None)
                    self.keys.pop(id(value), None)
                    dropped += 1
            self.sweep_at = max(MIN_SWEEP, 2 * len(items))
            return dropped
        finally:
            self._sweeping.release()


TABLE = _Table()


class _Unusual(Exception):
    """Not a plain JSON value (tuple, dict subclass, non-str key, ...): copy through JSON."""


_TRUE, _FALSE = object(), object()  # hash parts of True/False (not those of 1 and 0)


def _leaf(v: Any) -> tuple[Any, Any]:
    """(the copy of a scalar, its part of the parent's hash); raises _Unusual."""
    kind = type(v)
    if kind is str:
        return (_intern(v) if len(v) <= INTERN_MAX else v), v
    if kind is int or v is None:
        return v, v
    if kind is bool:
        return v, _TRUE if v else _FALSE
    if kind is float:
        return v, repr(v)
    raise _Unusual(kind.__name__)


def _walk(value: Any) -> tuple[Any, int]:
    """(a compacted, shared copy of the container ``value``, its structural hash); a pinned
    canonical container is its own copy."""
    if TABLE.keys:
        known = TABLE.known(value)
        if known is not None:
            return value, known
    if type(value) is dict:
        out: dict[str, Any] = {}
        parts: list[Any] = ["d"]
        for k, v in value.items():
            if type(k) is not str:
                raise _Unusual("key")
            k = _intern(k)
            kind = type(v)
            if kind is dict or kind is list:
                v, h = _walk(v)
            elif kind is str:
                h = v
                if len(v) <= INTERN_MAX:
                    v = _intern(v)
            else:
                v, h = _leaf(v)
            out[k] = v
            parts.append(k)
            parts.append(h)
        key = hash(tuple(parts))
        return TABLE.canonical(out, key), key
    if type(value) is list:
        items: list[Any] = []
        parts = ["l"]
        for v in value:
            kind = type(v)
            if kind is dict or kind is list:
                v, h = _walk(v)
            else:
                v, h = _leaf(v)
            items.append(v)
            parts.append(h)
        key = hash(tuple(parts))
        return TABLE.canonical(items, key), key
    raise _Unusual(type(value).__name__)


def _copy(value: Any) -> Any:
    kind = type(value)
    if kind is dict or kind is list:
        return _walk(value)[0]
    return _leaf(value)[0]


def share(value: Any, *, top: bool = False) -> Any:
    """A deep copy of a JSON value with dict keys and short strings interned and containers
    shared with equal stored ones. Anything but plain dict/list/str/int/float/bool/None
    (tuples, dict subclasses, non-string keys) is first converted like ``json.dumps`` does;
    raises TypeError or ValueError when it cannot be.

    ``top``: ``value`` is an object body: the body and its ``metadata`` are new dicts
    (the store stamps them), only what is below them is shared.
    """
    try:
        return _share(value, top)
    except (_Unusual, RecursionError):  # json.dumps raises what it raises (e.g. cycles)
        return _share(json.loads(json.dumps(value)), top)


def pinned(value: Any) -> Any:
    """``share(value)``, recognised by identity from then on: handed to the store again as it
    is (the same object), it is not walked again. For a value a writer hands over for many
    objects (a status condition that thousands of objects get); the caller keeps it (the
    table forgets it once nothing else holds it)."""
    try:
        copy, key = _walk(value) if type(value) in (dict, list) else (share(value), None)
    except (_Unusual, RecursionError):
        return share(value)
    if key is not None and TABLE.items.get(key) is copy:
        TABLE.keys[id(copy)] = key
    return copy


def _share(value: Any, top: bool) -> Any:
    if not top or type(value) is not dict:
        return _copy(value)
    out = {}
    for k, v in value.items():
        if type(k) is not str:
            raise _Unusual("key")
        k = _intern(k)
        if k == "metadata" and type(v) is dict:
            meta = {}
            for mk, mv in v.items():
                if type(mk) is not str:
                    raise _Unusual("key")
                meta[_intern(mk)] = _copy(mv)
            out[k] = meta
        else:
            out[k] = _copy(v)
    return out
