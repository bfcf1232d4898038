"""Deletion in the MemoryStore: delete (graceful with finalizers), delete_collection, and
the cascades: ownerReference garbage collection, namespace deletion and
CustomResourceDefinition deletion.

Mixed into :class:`~ycloud_controller.memkube.store.MemoryStore`; the cascade methods run
with the store lock held and write through the store's ``_commit``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ycloud_controller.kube import objects
from ycloud_controller.kube.errors import Conflict
from ycloud_controller.kube.registry import ResourceRegistry, resources_of_crd, storage_key
from ycloud_controller.kube.resources import CUSTOMRESOURCEDEFINITIONS, NAMESPACES, Resource

StoreKey = tuple[str, str]  # (group, plural)
ObjKey = tuple[str, str]  # (namespace or "", name)


def same_resource(res: Resource, other: Resource) -> bool:
    return storage_key(res) == storage_key(other)


class CascadeMixin:
    """Deletion; background-style cascades are done synchronously after the owner's."""

    if TYPE_CHECKING:
        _lock: threading.RLock
        registry: ResourceRegistry
        _objects: dict[StoreKey, dict[ObjKey, dict[str, Any]]]
        _uids: dict[str, tuple[Resource, ObjKey]]
        _dependents: dict[str, set[tuple[StoreKey, ObjKey]]]

        def _commit(
            self, res: Resource, type_: str, new: dict[str, Any], old: dict[str, Any] | None
        ) -> None: ...

        def _check(self, res: Resource) -> Resource: ...

        def _current(self, res: Resource, name: str, namespace: str | None
                     ) -> dict[str, Any]: ...

        def _conflict(self, res: Resource, name: str) -> Conflict: ...

        def list(self, res: Resource, namespace: str | None = None,
                 label_selector: str | dict[str, str] | None = None,
                 field_selector: str | None = None, *, copy: bool = True
                 ) -> tuple[list[dict[str, Any]], str]: ...

    def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation: str = "Background",
        precondition_rv: str | None = None,
        precondition_uid: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Delete an object (returning its final state) and garbage-collect dependents.

        ``propagation`` "Orphan" removes the owner reference from dependents instead.
        A precondition that does not hold is a Conflict (409), as in Kubernetes.
        """
        res = self._check(res)
        with self._lock:
            old = self._current(res, name, namespace)
            if precondition_rv and precondition_rv != objects.rv_of(old):
                raise self._conflict(res, name)
            uid = old["metadata"].get("uid")
            if precondition_uid and precondition_uid != uid:
                raise Conflict(409, "Conflict", f"Precondition failed: UID in precondition: "
                                                f"{precondition_uid}, UID in object meta: {uid}",
                               details={"name": name, "group": res.group, "kind": res.plural})
            if dry_run:
                return objects.clone(old)
            if old["metadata"].get("finalizers"):
                # graceful: the object stays, marked, until its finalizers are removed
                if old["metadata"].get("deletionTimestamp"):
                    return objects.clone(old)
                marked = dict(old, metadata=dict(old["metadata"],
                                                 deletionTimestamp=objects.now_rfc3339()))
                self._commit(res, "MODIFIED", marked, old)
                return objects.clone(marked)
            return self._finish_delete(res, old, propagation)

    def _finish_delete(self, res: Resource, old: dict[str, Any],
                       propagation: str = "Background") -> dict[str, Any]:
        final = dict(old, metadata=dict(old["metadata"]))
        self._commit(res, "DELETED", final, old)
        self._cascade(res, old, propagation)
        return objects.clone(final)

    def delete_collection(
        self,
        res: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        with self._lock:
            items, _ = self.list(res, namespace, label_selector, field_selector, copy=False)
            return [
                self.delete(res, objects.name_of(o), objects.namespace_of(o)) for o in items
            ]

    def _cascade(self, res: Resource, old: dict[str, Any], propagation: str) -> None:
        """Delete (or orphan) what depended on the deleted object ``old``."""
        name = old["metadata"]["name"]
        if same_resource(res, NAMESPACES):
            for bucket in list(self._objects.values()):
                for key in [k for k in bucket if k[0] == name]:
                    obj = bucket.get(key)
                    if obj is not None:
                        self._delete_obj(obj)
        if same_resource(res, CUSTOMRESOURCEDEFINITIONS):
            for crd_res in resources_of_crd(old)[:1]:
                for obj in list(self._objects[storage_key(crd_res)].values()):
                    self._delete_obj(obj)
                self.registry.unregister(crd_res.group, crd_res.plural)
        owner_uid = old["metadata"].get("uid", "")
        for skey, key in sorted(self._dependents.pop(owner_uid, set())):
            obj = self._objects[skey].get(key)
            if obj is None:
                continue
            refs = obj["metadata"].get("ownerReferences") or []
            remaining = [r for r in refs if r.get("uid") != owner_uid]
            alive = [r for r in remaining if r.get("uid") in self._uids]
            if propagation == "Orphan" or alive:
                self._set_owner_refs(obj, remaining)
            else:
                self._delete_obj(obj)

    def _resource_of(self, obj: dict[str, Any]) -> Resource:
        return self._uids[obj["metadata"].get("uid", "")][0]

    def _delete_obj(self, obj: dict[str, Any]) -> None:
        res = self._resource_of(obj)
        self._commit(res, "DELETED", dict(obj, metadata=dict(obj["metadata"])), obj)
        self._cascade(res, obj, "Background")

    def _set_owner_refs(self, obj: dict[str, Any], refs: list[dict[str, Any]]) -> None:
        res = self._resource_of(obj)
        meta = dict(obj["metadata"])
        if refs:
            meta["ownerReferences"] = refs
        else:
            meta.pop("ownerReferences", None)
        self._commit(res, "MODIFIED", dict(obj, metadata=meta), obj)
