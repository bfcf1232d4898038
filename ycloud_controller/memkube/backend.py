"""`MemoryBackend`: the Backend interface (ycloud_controller.kube.backend) over a MemoryStore,
for manifests mode and tests, with `MemoryWatch`, a store subscription as a watch iterator."""

from __future__ import annotations

import time
from typing import Any

from ycloud_controller.kube.errors import ApiError, NotFound
from ycloud_controller.kube.objects import clone
from ycloud_controller.kube.patch import MERGE
from ycloud_controller.kube.resources import Resource
from ycloud_controller.memkube.store import MemoryStore
from ycloud_controller.memkube.watch import Subscription


class MemoryWatch:
    """A MemoryStore subscription as a backend watch iterator.

    With ``share`` the event objects are the store's own (read-only) dicts, as
    :meth:`MemoryBackend.list` returns them; otherwise deep copies.
    """

    def __init__(
        self,
        sub: Subscription,
        timeout_seconds: float,
        allow_bookmarks: bool,
        bookmark_interval: float,
        share: bool = False,
    ) -> None:
        self._sub = sub
        self._deadline = time.monotonic() + timeout_seconds
        self._bookmarks = allow_bookmarks
        self._interval = bookmark_interval
        self._next_bookmark = time.monotonic() + bookmark_interval
        self._share = share

    def __iter__(self) -> MemoryWatch:
        return self

    def __next__(self) -> dict[str, Any]:
        while True:
            now = time.monotonic()
            if now >= self._deadline:
                self._sub.stop()
                raise StopIteration
            wait = self._deadline - now
            if self._bookmarks:
                if now >= self._next_bookmark:
                    self._sub.bookmark()
                    self._next_bookmark = now + self._interval
                wait = min(wait, max(0.0, self._next_bookmark - now))
            event = self._sub.next_event(timeout=wait)
            if event is not None:
                if not self._share:
                    return clone(event)
                return {"type": event["type"],
                        "object": _as_version(self._sub.resource, event["object"])}
            if self._sub.closed:
                if self._sub.dropped:
                    raise ApiError(0, "connection", "watch closed by the store")
                raise StopIteration

    def close(self) -> None:
        self._sub.stop()


def _as_version(res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as seen through ``res``'s version (a shallow copy only when it differs)."""
    if obj.get("apiVersion") == res.api_version:
        return obj
    return dict(obj, apiVersion=res.api_version)


class MemoryBackend:
    """Backend over a MemoryStore (manifests mode and tests). Thread-safe.

    ``share`` (the default): ``list`` and ``watch`` return the store's own object dicts
    instead of deep copies, so informer caches and the store hold one copy of each object
    (in manifests mode both live in this process). The store never modifies a stored dict
    in place (every write builds a new one, sharing unchanged parts), so they are stable
    snapshots; callers must treat them as read-only, which the informer contract already
    requires. So does ``patch``'s result (the controller's writes only read it); ``get``
    and the other write methods return copies (read-modify-write).
    """

    def __init__(self, store: MemoryStore, *, bookmark_interval: float = 60.0,
                 share: bool = True) -> None:
        self.store = store
        self.bookmark_interval = bookmark_interval
        self.share = share

    def list(
        self,
        res: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        if not self.share:
            return self.store.list(res, namespace, label_selector, field_selector)
        items, resource_version = self.store.list(res, namespace, label_selector,
                                                  field_selector, copy=False)
        return [_as_version(res, obj) for obj in items], resource_version

    def watch(
        self,
        res: Resource,
        resource_version: str | None,
        timeout_seconds: float,
        allow_bookmarks: bool = True,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> MemoryWatch:
        sub = self.store.watch(res, namespace, resource_version, label_selector, field_selector)
        return MemoryWatch(sub, timeout_seconds, allow_bookmarks, self.bookmark_interval,
                           self.share)

    def latest_resource_version(self, res: Resource) -> str:
        """The resourceVersion of the store's last write to ``res`` (see Informer.caught_up)."""
        return self.store.latest_resource_version(res)

    def get(self, res: Resource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return self.store.get(res, name, namespace)
        except NotFound:
            return None

    def create(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        return self.store.create(res, obj)

    def update(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        return self.store.update(res, obj)

    def patch(
        self,
        res: Resource,
        name: str,
        namespace: str | None,
        patch: dict[str, Any],
        subresource: str | None = None,
        *,
        patch_type: str = MERGE,
    ) -> dict[str, Any]:
        if not self.share:
            return self.store.patch(res, name, namespace, patch, patch_type,
                                    subresource=subresource)
        return _as_version(res, self.store.patch(res, name, namespace, patch, patch_type,
                                                 subresource=subresource, copy=False))

    def update_status(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        return self.store.update(res, obj, subresource="status")

    def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        missing_ok: bool = True,
        propagation: str = "Background",
        uid: str | None = None,
    ) -> None:
        try:
            self.store.delete(res, name, namespace, propagation=propagation,
                              precondition_uid=uid)
        except NotFound:
            if not missing_ok:
                raise
