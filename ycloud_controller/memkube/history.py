"""The watch history of the MemoryStore: what a watch resuming from a resourceVersion replays.

The history keeps the last ``size`` writes as ``(resourceVersion, storage key, event type,
object, prior)``; a watch from a resourceVersion older than the oldest kept write gets 410
Expired (a compacted etcd), and the client relists.

Replaying a write needs the object as written (``object``) and, for MODIFIED, only whether
the *previous* version matched the watch's selectors: a selector transition is replayed as
ADDED or DELETED, as the API server does. So the previous version is not kept when the
selectors cannot tell it from the new one (``prior`` is None): same labels, and the same
values at the resource's selectable field paths (the fields the API server accepts in field
selectors, :data:`SELECTABLE`; metadata.name and metadata.namespace never change). Only
writes that change labels or such a field keep their whole previous version. During
EndpointSlice churn that is the difference between a history holding one full old copy of
every object written in its window (about 30 MB for 10,000 slices) and holding none.

The store accepts field selectors on any path (more than the API server does). A watch whose
field selector reads a path outside :data:`SELECTABLE` cannot be replayed across a write
whose previous version was not kept: it gets 410 Expired and relists, which every watch
client must handle anyway; nothing is missed. DELETED and ADDED need no previous version.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Callable
from typing import Any

from ycloud_controller.kube.errors import Expired

StoreKey = tuple[str, str]
Entry = tuple[int, StoreKey, str, dict[str, Any], "dict[str, Any] | None"]

# field selector paths the API server supports, per (group, plural), beyond metadata.name
# and metadata.namespace (kube's fieldSelector conversion functions, e.g. pod's
# ToSelectableFields)
SELECTABLE: dict[StoreKey, tuple[str, ...]] = {
    ("", "pods"): ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                   "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                   "status.podIP", "status.podIPs", "status.nominatedNodeName"),
    ("", "nodes"): ("spec.unschedulable",),
    ("", "namespaces"): ("status.phase",),
    ("", "secrets"): ("type",),
    ("", "events"): ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                     "involvedObject.uid", "involvedObject.apiVersion",
                     "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                     "reportingComponent", "source", "type"),
    ("events.k8s.io", "events"): ("regarding.kind", "regarding.namespace", "regarding.name",
                                  "regarding.uid", "reason", "type"),
    ("", "replicationcontrollers"): ("status.replicas",),
    ("apps", "replicasets"): ("status.replicas",),
    ("batch", "jobs"): ("status.successful",),
    ("certificates.k8s.io", "certificatesigningrequests"): ("spec.signerName",),
}
_ALWAYS = ("metadata.name", "metadata.namespace")
_SPLIT = {skey: [p.split(".") for p in paths] for skey, paths in SELECTABLE.items()}
_PATH_RE = re.compile(r"^\s*([^=!\s]+)\s*(?:==|!=|=)")


def field_paths(selector: str | None) -> tuple[str, ...]:
    """The field paths a field selector reads (its syntax is checked by field_matcher)."""
    if not selector:
        return ()
    return tuple(m.group(1) for term in selector.split(",") if (m := _PATH_RE.match(term)))


def covered(skey: StoreKey, paths: tuple[str, ...]) -> bool:
    """True when every field path is one a replay can evaluate on a dropped prior."""
    known = SELECTABLE.get(skey, ())
    return all(p in _ALWAYS or p in known for p in paths)


def _at(obj: Any, parts: list[str]) -> Any:
    for part in parts:
        if type(obj) is not dict:
            return None
        obj = obj.get(part)
    return obj


def _selectors_see_same(skey: StoreKey, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when no selector can match one and not the other (unsure: False)."""
    old_md, new_md = old.get("metadata") or {}, new.get("metadata") or {}
    if (old_md.get("labels") or {}) != (new_md.get("labels") or {}):
        return False
    for parts in _SPLIT.get(skey, ()):
        top_old, top_new = old.get(parts[0]), new.get(parts[0])
        if top_old is not top_new and _at(top_old, parts[1:]) != _at(top_new, parts[1:]):
            return False
    return True


class History:
    """Bounded write history (not thread-safe: the store calls it under its lock)."""

    def __init__(self, size: int) -> None:
        self._entries: collections.deque[Entry] = collections.deque(maxlen=max(1, size))
        self.floor = 0  # the oldest resourceVersion a watch may start from

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, rv: int, skey: StoreKey, type_: str, new: dict[str, Any],
               old: dict[str, Any] | None) -> None:
        prior = old if type_ == "MODIFIED" and old is not None \
            and not _selectors_see_same(skey, old, new) else None
        entries = self._entries
        if len(entries) == entries.maxlen:
            self.floor = entries[0][0]
        entries.append((rv, skey, type_, new, prior))

    def replay(self, skey: StoreKey, start: int, field_paths: tuple[str, ...],
               offer: Callable[[str, dict[str, Any], dict[str, Any] | None], None]) -> None:
        """Offer every write of ``skey`` after ``start``; raises Expired (410) when ``start``
        is older than the history, or when a dropped prior would be needed."""
        if start < self.floor:
            raise Expired(f"too old resource version: {start} ({self.floor})")
        exact = covered(skey, field_paths)
        todo: list[Entry] = []
        # newest first, down to `start` (entries are in resourceVersion order): a watch
        # resuming from a recent list reads the few writes after it, not the whole history
        for entry in reversed(self._entries):  # check before offering: a 410 offers nothing
            rv, key, type_, _obj, prior = entry
            if rv <= start:
                break
            if key != skey:
                continue
            if type_ == "MODIFIED" and prior is None and not exact:
                raise Expired(f"resource version {start}: the history kept no prior version "
                              f"for field selector paths {', '.join(field_paths)}")
            todo.append(entry)
        for _rv, _key, type_, obj, prior in reversed(todo):
            # a dropped prior matched the selectors exactly as ``obj`` does
            offer(type_, obj, obj if type_ == "MODIFIED" and prior is None else prior)

    def clear(self, rv: int) -> None:
        self._entries.clear()
        self.floor = rv
