"""Small helpers over plain Kubernetes object dicts."""

from __future__ import annotations

import datetime
import json
import re
import sys
import time
from typing import Any

from ycloud_controller.kube import canon
from ycloud_controller.kube.errors import ApiError

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_SKIP_FOR_GENERATION = frozenset({"metadata", "status", "apiVersion", "kind"})


def clone(obj: Any) -> Any:
    """Deep copy of a JSON-like value (faster than copy.deepcopy for plain dicts)."""
    return json.loads(json.dumps(obj))


# strings up to this length are interned by compact(): names, namespaces, labels, protocols,
# addresses, timestamps, uids repeat across objects (and between store keys and bodies)
INTERN_MAX = canon.INTERN_MAX
_intern = sys.intern


def compact(value: Any) -> Any:
    """A copy of a JSON value (as ``json.loads`` returns it) whose dict keys and short
    strings are interned, so that the many objects of a cache share them.

    Only for plain JSON values (dict with str keys, list, str, int, float, bool, None).
    """
    kind = type(value)
    if kind is dict:
        return {_intern(k): compact(v) for k, v in value.items()}
    if kind is list:
        return [compact(v) for v in value]
    if kind is str and len(value) <= INTERN_MAX:
        return _intern(value)
    return value


def normalize(obj: Any) -> dict[str, Any]:
    """A JSON-clean deep copy of an object body for the MemoryStore: short strings interned
    and read-only subtrees shared with equal stored ones (:func:`canon.share`; the body and
    its metadata are its own). Raises ApiError 400 if it is not one."""
    if not isinstance(obj, dict):
        raise ApiError(400, "BadRequest", "the request body must be a JSON object")
    try:
        return canon.share(obj, top=True)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "BadRequest", f"object is not JSON serializable: {exc}") from exc


def normalize_value(value: Any) -> Any:
    """Like :func:`normalize` for any JSON value (a patch body: read only, all shared)."""
    try:
        return canon.share(value)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "BadRequest", f"body is not JSON serializable: {exc}") from exc


# what no reconciler reads and a cache need not keep (client-go's TransformFunc idiom):
# server-side apply bookkeeping and kubectl's copy of the whole applied object
_DROP_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})


def trim_for_cache(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without metadata.managedFields and the last-applied annotation.

    Returns ``obj`` itself when there is nothing to drop (no copy); otherwise a copy that
    shares everything else with ``obj``. Never modifies ``obj``.
    """
    md = obj.get("metadata")
    if not isinstance(md, dict):
        return obj
    annotations = md.get("annotations")
    drop_ann = isinstance(annotations, dict) and not _DROP_ANNOTATIONS.isdisjoint(annotations)
    if "managedFields" not in md and not drop_ann:
        return obj
    md = {k: v for k, v in md.items() if k != "managedFields"}
    if drop_ann:
        md["annotations"] = {k: v for k, v in annotations.items()
                             if k not in _DROP_ANNOTATIONS}
    return dict(obj, metadata=md)


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def name_of(obj: dict[str, Any]) -> str:
    return meta(obj).get("name", "")


def namespace_of(obj: dict[str, Any]) -> str | None:
    return meta(obj).get("namespace")


def rv_of(obj: dict[str, Any] | None) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion", "") if obj else ""


_now_cache: tuple[int, str] = (-1, "")


def now_rfc3339() -> str:
    """Kubernetes ``Time``: RFC 3339 UTC with second precision (formatted once a second)."""
    global _now_cache
    second = int(time.time())
    cached = _now_cache
    if cached[0] != second:
        cached = _now_cache = (second, _intern(time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                             time.gmtime(second))))
    return cached[1]


def now_micro() -> str:
    """Kubernetes ``MicroTime``: RFC 3339 UTC with microseconds."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> datetime.datetime | None:
    """Parse a Kubernetes Time or MicroTime; None if missing or malformed."""
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def validate_name(name: str, what: str = "metadata.name") -> None:
    """DNS-1123 subdomain check, as the API server does for most kinds (422 Invalid)."""
    if len(name) > 253 or not _NAME_RE.match(name):
        raise ApiError(
            422,
            "Invalid",
            f"{what}: Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist "
            "of lower case alphanumeric characters, '-' or '.', and must start and end "
            "with an alphanumeric character",
        )


def validate_labels(obj: dict[str, Any]) -> None:
    for field in ("labels", "annotations"):
        values = meta(obj).get(field)
        if values is None:
            continue
        if not isinstance(values, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in values.items()
        ):
            raise ApiError(
                422, "Invalid", f"metadata.{field}: Invalid value: must be a map of strings"
            )


def spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when anything but metadata/status changed (what bumps metadata.generation)."""
    keys = (set(old) | set(new)) - _SKIP_FOR_GENERATION
    return any(old.get(k) != new.get(k) for k in keys)


def equal_except(a: dict[str, Any], b: dict[str, Any], skip: frozenset[str]) -> bool:
    """``a`` and ``b`` equal but for the keys in ``skip``. Values that are one shared subtree
    (what a store write leaves untouched) are not compared."""
    a, b = a.copy(), b.copy()  # shallow, in C: the comparison below is C's too
    for k in skip:
        a.pop(k, None)
        b.pop(k, None)
    return a == b  # compares values by identity first


_METADATA = frozenset({"metadata"})
_RESOURCE_VERSION = frozenset({"resourceVersion"})
VOLATILE = frozenset({"resourceVersion", "managedFields"})  # metadata every write changes
_STATUS_AND_METADATA = frozenset({"status", "metadata"})


# the last answer of only_status_changed, by identity of the two versions (which it holds,
# so neither can be freed and its address reused while it is kept)
_last_status_only: tuple[Any, Any, bool] = (None, None, False)


def only_status_changed(obj: dict[str, Any], old: dict[str, Any]) -> bool:
    """True when two versions of an object differ at most in status and in metadata that
    every write changes (resourceVersion, managedFields).

    The informer's store and then its handlers ask this of one event in turn (the store to
    keep its indexes, the triggers to skip our own status coming back): the second asking of
    the same two dicts is answered from the first. One tuple, swapped whole: safe across the
    informer threads."""
    global _last_status_only
    last = _last_status_only
    if last[0] is obj and last[1] is old:
        return last[2]
    answer = equal_except(obj, old, _STATUS_AND_METADATA) and \
        equal_except(meta(obj), meta(old), VOLATILE)
    _last_status_only = (obj, old, answer)
    return answer


def same_object(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Equal apart from metadata.resourceVersion (a write that changes nothing)."""
    return ("metadata" in old) == ("metadata" in new) and \
        equal_except(old, new, _METADATA) and \
        equal_except(old.get("metadata") or {}, new.get("metadata") or {}, _RESOURCE_VERSION)


def owner_uids(obj: dict[str, Any]) -> set[str]:
    return {ref.get("uid", "") for ref in meta(obj).get("ownerReferences") or [] if ref}
