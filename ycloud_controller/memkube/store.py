"""An in-memory Kubernetes object store with the API server's semantics.

Used by the product in manifests mode (no cluster) and as the storage of the fake API
server in tests. Objects are plain JSON-like dicts. Every write is stamped with one
global, monotonically increasing resourceVersion and recorded in a bounded history
that watches replay (:mod:`memhistory`: it keeps a previous version only when selectors
could tell it apart); watching from a resourceVersion older than that history raises
:class:`Expired` (410 Gone), exactly like a compacted etcd.

Semantics kept from the API server: uid, creationTimestamp, generation (bumped when
anything but metadata/status changes), generateName, 409 AlreadyExists / Conflict
(stale metadata.resourceVersion), 404 NotFound, 422 Invalid names, the ``status``
subresource (main-resource writes keep .status, /status writes change only .status, and
for Pods also labels and annotations, as the API server's pod status strategy allows;
create drops .status like the API server does, except for Nodes),
writes that change nothing are not writes (no new resourceVersion, no event), label
selector transitions in watches (ADDED/DELETED), ownerReference garbage collection
(synchronous, dependents are deleted right after their last owner), namespace deletion
deleting its objects, and CustomResourceDefinition objects registering their resources.
Finalizers and graceful deletion are not modelled: delete is immediate.

Thread-safety: every public method may be called from any thread.
"""

from __future__ import annotations

import collections
import random
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from ycloud_controller.kube import objects
from ycloud_controller.kube.errors import AlreadyExists, ApiError, Conflict, Expired, NotFound
from ycloud_controller.kube.patch import MERGE, apply_patch
from ycloud_controller.kube.registry import ResourceRegistry, prepare_crd, storage_key
from ycloud_controller.kube.resources import (
    ALL,
    CUSTOMRESOURCEDEFINITIONS,
    NAMESPACES,
    NODES,
    Resource,
    status_takes_metadata,
)
from ycloud_controller.memkube.history import History
from ycloud_controller.memkube.labelsel import selector_matcher
from ycloud_controller.memkube.ownergc import CascadeMixin, ObjKey, StoreKey, same_resource
from ycloud_controller.memkube.watch import Subscription, WatchMixin

__all__ = ["MemoryStore", "ApiError", "Expired", "Subscription"]

_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def _not_found(res: Resource, name: str) -> NotFound:
    return NotFound(
        404, "NotFound", f'{res.group_resource} "{name}" not found',
        details={"name": name, "group": res.group, "kind": res.plural},
    )


class MemoryStore(WatchMixin, CascadeMixin):
    """Thread-safe in-memory Kubernetes object store (see the module docstring)."""

    def __init__(self, resources: Iterable[Resource] = ALL, *, history: int = 10000) -> None:
        self._lock = threading.RLock()
        self.registry = ResourceRegistry(resources)
        self._objects: dict[StoreKey, dict[ObjKey, dict[str, Any]]] = collections.defaultdict(dict)
        self._rv = 0
        self._history = History(history)  # what watches from a resourceVersion replay
        self._last_write: dict[StoreKey, int] = {}
        self._subs: dict[StoreKey, set[Subscription]] = collections.defaultdict(set)
        self._uids: dict[str, tuple[Resource, ObjKey]] = {}
        self._dependents: dict[str, set[tuple[StoreKey, ObjKey]]] = collections.defaultdict(set)

    # ----------------------------------------------------------------- registry
    def resources(self) -> list[Resource]:
        return self.registry.all()

    def register(self, res: Resource) -> None:
        self.registry.register(res)

    def resource_for(self, group: str, version: str, plural: str) -> Resource | None:
        return self.registry.get(group, version, plural)

    def resource_by_kind(self, kind: str, api_version: str | None = None) -> Resource | None:
        return self.registry.by_kind(kind, api_version)

    def _check(self, res: Resource) -> Resource:
        known = self.registry.get(res.group, res.version, res.plural)
        if known is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return known

    @property
    def resource_version(self) -> str:
        """The newest resourceVersion (of the last write)."""
        with self._lock:
            return str(self._rv)

    def latest_resource_version(self, res: Resource) -> str:
        """The resourceVersion of the last write to ``res``'s objects ("0": none yet)."""
        with self._lock:
            return str(self._last_write.get(storage_key(res), 0))

    # -------------------------------------------------------------------- reads
    def get(
        self, res: Resource, name: str, namespace: str | None = None, *, copy: bool = True
    ) -> dict[str, Any]:
        """The object, or raise NotFound. ``copy=False`` returns the stored (read-only) dict."""
        res = self._check(res)
        with self._lock:
            obj = self._objects[storage_key(res)].get((self._ns(res, namespace), name))
            if obj is None:
                raise _not_found(res, name)
            return self._out(res, obj, copy)

    def list(
        self,
        res: Resource,
        namespace: str | None = None,
        label_selector: str | dict[str, str] | None = None,
        field_selector: str | None = None,
        *,
        copy: bool = True,
    ) -> tuple[list[dict[str, Any]], str]:
        """Matching objects sorted by (namespace, name), and the list resourceVersion."""
        res = self._check(res)
        matches = selector_matcher(label_selector, field_selector)
        with self._lock:
            bucket = self._objects[storage_key(res)]
            items = [
                obj
                for key, obj in sorted(bucket.items())
                if (namespace is None or not res.namespaced or key[0] == namespace)
                and (matches is None or matches(obj))
            ]
            resource_version = str(self._rv)
        if copy:  # stored dicts are never modified in place: copy outside the lock
            items = objects.clone(items)
            for item in items:
                item["apiVersion"] = res.api_version
        return items, resource_version

    def _out(self, res: Resource, obj: dict[str, Any], copy: bool) -> dict[str, Any]:
        if not copy:
            return obj
        out = objects.clone(obj)
        out["apiVersion"] = res.api_version
        return out

    @staticmethod
    def _ns(res: Resource, namespace: str | None) -> str:
        return (namespace or "") if res.namespaced else ""

    # ------------------------------------------------------------------- writes
    def create(
        self, res: Resource, obj: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        """Create an object; raises AlreadyExists (409), Invalid (422), BadRequest (400)."""
        res = self._check(res)
        new = objects.normalize(obj)
        self._check_type(res, new)
        meta = new.setdefault("metadata", {})
        for field in ("resourceVersion", "uid", "deletionTimestamp", "generation"):
            meta.pop(field, None)
        if res.namespaced:
            if not meta.get("namespace"):
                raise ApiError(400, "BadRequest", "the object has no metadata.namespace")
        else:
            meta.pop("namespace", None)
        objects.validate_labels(new)
        if res.has_status and res.plural != NODES.plural:
            new.pop("status", None)  # like PrepareForCreate of CRDs, pods and services
        if same_resource(res, NAMESPACES):
            new["status"] = {"phase": "Active"}
        crd_resources: list[Resource] = []
        if same_resource(res, CUSTOMRESOURCEDEFINITIONS):
            crd_resources = prepare_crd(new)
        with self._lock:
            bucket = self._objects[storage_key(res)]
            if not meta.get("name"):
                meta["name"] = self._generate_name(res, meta, bucket)
            objects.validate_name(meta["name"])
            key = (meta.get("namespace", ""), meta["name"])
            if key in bucket:
                raise AlreadyExists(
                    409, "AlreadyExists", f'{res.group_resource} "{meta["name"]}" already exists',
                    details={"name": meta["name"], "group": res.group, "kind": res.plural},
                )
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = objects.now_rfc3339()
            meta["generation"] = 1
            if dry_run:
                return new
            self._commit(res, "ADDED", new, None)
            for crd_res in crd_resources:
                self.registry.register(crd_res)
            created = objects.clone(new)
            owners = objects.owner_uids(new)
            if owners and not owners & self._uids.keys():
                # what the garbage collector does to an object whose owners are all absent
                # (e.g. created by a writer that raced the owner's deletion)
                self._delete_obj(new)
            return created

    def update(
        self,
        res: Resource,
        obj: dict[str, Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Replace an object (PUT). A given metadata.resourceVersion must be current (409)."""
        res = self._check(res)
        new = objects.normalize(obj)
        self._check_type(res, new)
        name, namespace = objects.name_of(new), objects.namespace_of(new)
        with self._lock:
            old = self._current(res, name, namespace)
            given = objects.rv_of(new)
            if given and given != objects.rv_of(old):
                raise self._conflict(res, name)
            return self._replace(res, old, new, subresource, dry_run)

    replace = update

    def update_status(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        return self.update(res, obj, subresource="status")

    def patch(
        self,
        res: Resource,
        name: str,
        namespace: str | None,
        patch: Any,
        patch_type: str = MERGE,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        copy: bool = True,
    ) -> dict[str, Any]:
        """Patch an object; ``patch_type`` is a PATCH content type (merge by default).
        ``copy=False`` returns the stored (read-only) dict."""
        res = self._check(res)
        with self._lock:
            old = self._current(res, name, namespace)
            # the patch functions are pure and share what the patch leaves untouched with
            # ``old`` (stored dicts are never modified in place): no deep copy of the object;
            # the normalized body is ours, so a merge patch uses its values as they are
            new = apply_patch(old, objects.normalize_value(patch), patch_type, share=True)
            if not isinstance(new, dict):
                raise ApiError(422, "Invalid", "the patched object is not an object")
            if objects.rv_of(new) != objects.rv_of(old):
                raise self._conflict(res, name)
            return self._replace(res, old, new, subresource, dry_run, copy)

    # ----------------------------------------------------------------- internals
    def _check_type(self, res: Resource, obj: dict[str, Any]) -> None:
        kind = obj.get("kind")
        if kind and kind != res.kind:
            raise ApiError(400, "BadRequest", f"kind {kind!r} does not match {res.kind!r}")
        obj["kind"] = res.kind
        obj["apiVersion"] = res.api_version
        if not isinstance(obj.get("metadata", {}), dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")

    def _current(self, res: Resource, name: str, namespace: str | None) -> dict[str, Any]:
        obj = self._objects[storage_key(res)].get((self._ns(res, namespace), name))
        if obj is None:
            raise _not_found(res, name)
        return obj

    @staticmethod
    def _conflict(res: Resource, name: str) -> Conflict:
        return Conflict(
            409, "Conflict",
            f'Operation cannot be fulfilled on {res.group_resource} "{name}": the object has '
            "been modified; please apply your changes to the latest version and try again",
            details={"name": name, "group": res.group, "kind": res.plural},
        )

    def _replace(
        self,
        res: Resource,
        old: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
        dry_run: bool,
        copy: bool = True,
    ) -> dict[str, Any]:
        if subresource == "status":
            if not res.has_status:
                raise ApiError(404, "NotFound", f"{res.group_resource} has no status subresource")
            status, written = new.get("status"), new.get("metadata") or {}
            new = dict(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            if status_takes_metadata(res):
                meta = dict(old["metadata"])
                for field in ("labels", "annotations"):
                    if field in written:
                        meta[field] = written[field]
                    else:
                        meta.pop(field, None)
                new["metadata"] = meta
                objects.validate_labels(new)
        elif subresource:
            raise ApiError(404, "NotFound", f"unknown subresource {subresource!r}")
        else:
            objects.validate_labels(new)
            if res.has_status:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
        meta = dict(new.get("metadata") or {})
        for field in ("uid", "creationTimestamp", "generation", "name", "namespace",
                      "deletionTimestamp"):
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
            else:
                meta.pop(field, None)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        new["metadata"] = meta
        new["kind"], new["apiVersion"] = res.kind, res.api_version
        if subresource != "status" and objects.spec_changed(old, new):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if objects.same_object(old, new):
            return self._out(res, old, copy)
        if dry_run:
            return objects.clone(new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._finish_delete(res, dict(new, metadata=dict(
                meta, resourceVersion=old["metadata"]["resourceVersion"])))
        self._commit(res, "MODIFIED", new, old)
        return self._out(res, new, copy)

    def _commit(
        self, res: Resource, type_: str, new: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        """Stamp the next resourceVersion, store, record history and notify (lock held)."""
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        skey = storage_key(res)
        new_md = new["metadata"]
        key = (new_md.get("namespace", ""), new_md["name"])
        old_md = old["metadata"] if old is not None else None
        # most writes (every status write) keep the uid and the very ownerReferences list:
        # the dependents index stays as it is
        relinked = type_ == "DELETED" or old_md is None or \
            old_md.get("uid") != new_md["uid"] or \
            old_md.get("ownerReferences") is not new_md.get("ownerReferences")
        if relinked:
            self._unlink(skey, key, old)
        if type_ == "DELETED":
            self._objects[skey].pop(key, None)
        else:
            self._objects[skey][key] = new
            self._uids[new_md["uid"]] = (res, key)
            if relinked:
                for uid in objects.owner_uids(new):
                    self._dependents[uid].add((skey, key))
        self._history.record(self._rv, skey, type_, new, old)
        self._last_write[skey] = self._rv
        for sub in list(self._subs.get(skey, ())):
            sub.offer(type_, new, old)

    def _unlink(self, skey: tuple[str, str], key: ObjKey, old: dict[str, Any] | None) -> None:
        """Take the previous version of an object out of the uid and dependents indexes."""
        if old is None:
            return
        self._uids.pop(old["metadata"].get("uid", ""), None)
        for uid in objects.owner_uids(old):
            dependents = self._dependents.get(uid)
            if dependents is not None:
                dependents.discard((skey, key))

    @staticmethod
    def _generate_name(
        res: Resource, meta: dict[str, Any], bucket: dict[ObjKey, dict[str, Any]]
    ) -> str:
        prefix = meta.get("generateName")
        if not prefix:
            raise ApiError(422, "Invalid", "metadata.name: Required value: name or "
                           "generateName is required")
        for _ in range(100):
            name = prefix + "".join(random.choices(_SUFFIX_CHARS, k=5))
            if (meta.get("namespace", ""), name) not in bucket:
                return name
        raise AlreadyExists(409, "AlreadyExists", f"could not generate a unique name for {prefix}")
