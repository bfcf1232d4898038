"""The one interface the product uses for every Kubernetes call.

:class:`Backend` is implemented by :class:`ApiBackend` (a real API server through the
official client's ApiClient, raw JSON) and ``MemoryBackend`` (ycloud_controller.memkube:
the in-memory API of manifests mode and tests).
Both return plain dicts, raise :class:`ApiError` (code, reason, message) for every
failure, and raise :class:`Expired` when a watch's resourceVersion is too old (410).

Watch iterators also have ``close()``, which may be called from another thread to make
a blocked iteration end (the informer uses it on stop).

``ApiBackend`` is imported lazily (module ``__getattr__``): it needs the ``kubernetes``
package, about 33 MB of resident memory that manifests mode never uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ycloud_controller.kube.errors import ApiError, Expired
from ycloud_controller.kube.patch import MERGE
from ycloud_controller.kube.resources import Resource

if TYPE_CHECKING:
    from ycloud_controller.kube.apibackend import ApiBackend

__all__ = ["ApiBackend", "ApiError", "Backend", "Expired", "WatchIterator"]


def __getattr__(name: str) -> Any:
    if name == "ApiBackend":
        from ycloud_controller.kube.apibackend import ApiBackend
        return ApiBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@runtime_checkable
class WatchIterator(Protocol):
    """Iterator of watch events ``{"type": ..., "object": {...}}`` that can be closed."""

    def __iter__(self) -> Iterator[dict[str, Any]]: ...

    def __next__(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class Backend(Protocol):
    """Kubernetes calls used by the product (see the module docstring)."""

    def list(
        self,
        res: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """All matching objects and the list's resourceVersion."""
        ...

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
    ) -> WatchIterator:
        """Events after ``resource_version`` until ``timeout_seconds``; raises Expired."""
        ...

    def get(self, res: Resource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        ...

    def create(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]: ...

    def update(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]: ...

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
        """Merge patch (RFC 7386) by default, optionally of a subresource ("status")."""
        ...

    def update_status(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]: ...

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
        """Delete; a missing object is fine unless ``missing_ok`` is False (NotFound).
        ``uid``: only that object, not another of the same name (else Conflict, 409)."""
        ...
