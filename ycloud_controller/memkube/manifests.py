"""Manifests mode: Kubernetes objects from YAML files, loaded into a MemoryStore.

:class:`ManifestSource` reads every ``*.yaml``/``*.yml`` file under a directory
(recursively; multi-document; ``kind: List`` items too) and keeps the store equal to
them, like ``kubectl apply`` would: new objects are created, changed ones are patched
with the difference between the previously applied file content and the new one (so
fields the controller wrote, such as its annotations and ``.status``, survive), and
objects that disappeared from the files are deleted (only objects that came from
files). A file ``.status`` is applied through the status subresource. Namespaces of
namespaced objects are created when missing; namespaced objects without a namespace go
to ``default``.

Bad YAML, non-mapping documents, objects without kind or metadata.name, unknown kinds
and objects the store rejects are logged with file and document index and skipped. A
file that stops parsing keeps its previously loaded objects until it is fixed.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import yaml

from ycloud_controller.kube.errors import AlreadyExists, ApiError, NotFound
from ycloud_controller.kube.objects import clone
from ycloud_controller.kube.patch import create_merge_patch
from ycloud_controller.kube.resources import CUSTOMRESOURCEDEFINITIONS, NAMESPACES, Resource
from ycloud_controller.memkube.store import MemoryStore

log = structlog.get_logger(__name__)

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FIRST_KINDS = (CUSTOMRESOURCEDEFINITIONS.kind, NAMESPACES.kind)
ObjectId = tuple[str, str, str, str]  # group, plural, namespace, name


@dataclass
class _Doc:
    file: str
    index: str
    obj: dict[str, Any]


@dataclass
class _FileState:
    fingerprint: tuple[int, int]
    digest: str
    docs: list[_Doc] = field(default_factory=list)


@dataclass
class _Applied:
    res: Resource
    content: dict[str, Any]
    status: dict[str, Any] | None


class ManifestSource:
    """Keeps a MemoryStore equal to the YAML files of a directory (see module doc)."""

    def __init__(self, directory: str | Path, store: MemoryStore) -> None:
        self.directory = Path(directory)
        self.store = store
        self._lock = threading.Lock()
        self._files: dict[Path, _FileState] = {}
        self._applied: dict[ObjectId, _Applied] = {}
        self._loaded = False

    # ------------------------------------------------------------------ public
    def load(self) -> int:
        """Read every file and apply it; returns the number of objects from files."""
        with self._lock:
            self._scan(force=True)
            self._loaded = True
            return self._apply()

    def reload(self) -> bool:
        """Re-read changed files and apply the difference; True when files changed."""
        with self._lock:
            if not self._scan(force=False):
                return False
            log.info("manifests reloaded", directory=str(self.directory), objects=self._apply())
            return True

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """``load()`` if not done yet, then ``reload()`` every ``interval`` until stop."""
        if not self._loaded:
            self.load()
        while not stop.wait(interval):
            self.reload()

    @property
    def object_ids(self) -> list[ObjectId]:
        with self._lock:
            return sorted(self._applied)

    # ------------------------------------------------------------------ reading
    def _paths(self) -> list[Path]:
        try:
            return sorted(
                p for p in self.directory.rglob("*")
                if p.suffix in (".yaml", ".yml") and p.is_file()
            )
        except OSError as exc:
            log.error("manifest_dir_unreadable", directory=str(self.directory), error=str(exc))
            return list(self._files)

    def _scan(self, force: bool) -> bool:
        changed = False
        seen: set[Path] = set()
        for path in self._paths():
            try:
                stat = path.stat()
                fingerprint = (stat.st_mtime_ns, stat.st_size)
                state = self._files.get(path)
                recent = time.time() - stat.st_mtime < 2.0  # same-tick rewrites
                seen.add(path)
                if state and state.fingerprint == fingerprint and not recent and not force:
                    continue
                data = path.read_bytes()
            except OSError as exc:
                log.warning("manifest_file_unreadable", file=str(path), error=str(exc))
                continue
            digest = hashlib.sha256(data).hexdigest()
            if state and state.digest == digest:
                state.fingerprint = fingerprint
                continue
            docs = self._parse(path, data, state.docs if state else None)
            self._files[path] = _FileState(fingerprint, digest, docs)
            changed = True
        for path in set(self._files) - seen:
            del self._files[path]
            changed = True
        return changed or force

    def _parse(self, path: Path, data: bytes, previous: list[_Doc] | None) -> list[_Doc]:
        docs: list[_Doc] = []
        index = 0
        try:
            for index, doc in enumerate(yaml.load_all(data.decode("utf-8"), Loader=_Loader)):
                if doc is None:
                    continue
                if isinstance(doc, dict) and doc.get("kind") == "List":
                    for pos, item in enumerate(doc.get("items") or []):
                        self._add_doc(docs, path, f"{index}.{pos}", item)
                else:
                    self._add_doc(docs, path, str(index), doc)
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            log.error("manifest_bad_yaml", file=str(path), document=index,
                      error=str(exc).replace("\n", " "), keeping_previous=previous is not None)
            if previous is not None:
                return previous
        return docs

    @staticmethod
    def _add_doc(docs: list[_Doc], path: Path, index: str, obj: Any) -> None:
        if not isinstance(obj, dict):
            log.error("manifest_not_an_object", file=str(path), document=index)
            return
        meta = obj.get("metadata")
        if not obj.get("kind") or not isinstance(meta, dict) or not meta.get("name"):
            log.error("manifest_missing_kind_or_name", file=str(path), document=index)
            return
        docs.append(_Doc(str(path), index, obj))

    # ------------------------------------------------------------------ applying
    def _resolve(self, doc: _Doc) -> Resource | None:
        obj = doc.obj
        res = self.store.resource_by_kind(obj["kind"], obj.get("apiVersion"))
        if res is None:
            log.warning("manifest_unknown_kind_skipped", file=doc.file, document=doc.index,
                      kind=obj["kind"], api_version=obj.get("apiVersion"))
        return res

    def _apply(self) -> int:
        docs = [d for state in self._files.values() for d in state.docs]
        first = [d for d in docs if d.obj["kind"] in _FIRST_KINDS]
        rest = [d for d in docs if d.obj["kind"] not in _FIRST_KINDS]
        desired: dict[ObjectId, _Doc] = {}
        for batch in (first, rest):
            for doc in batch:
                res = self._resolve(doc)
                if res is None:
                    continue
                obj = clone(doc.obj)
                meta = obj["metadata"]
                if res.namespaced:
                    meta["namespace"] = meta.get("namespace") or "default"
                else:
                    meta.pop("namespace", None)
                oid = (res.group, res.plural, meta.get("namespace", ""), meta["name"])
                if oid in desired:
                    log.warning("manifest_duplicate_object", file=doc.file, document=doc.index,
                                previous=desired[oid].file, object="/".join(oid[1:]))
                desired[oid] = doc
                self._apply_one(res, oid, obj, doc)
        stale = sorted(set(self._applied) - set(desired),
                       key=lambda oid: (oid[1] in ("customresourcedefinitions", "namespaces"), oid))
        for oid in stale:
            applied = self._applied.pop(oid)
            try:
                self.store.delete(applied.res, oid[3], oid[2] or None)
                log.info("manifest_object_deleted", object="/".join(oid[1:]))
            except NotFound:
                pass
        return len(desired)

    def _ensure_namespace(self, namespace: str) -> None:
        try:
            self.store.get(NAMESPACES, namespace, copy=False)
        except NotFound:
            try:
                self.store.create(NAMESPACES, {"metadata": {"name": namespace}})
                log.info("manifest_namespace_created", namespace=namespace)
            except AlreadyExists:
                pass

    def _apply_one(self, res: Resource, oid: ObjectId, obj: dict[str, Any], doc: _Doc) -> None:
        status = obj.pop("status", None) if res.has_status else None
        previous = self._applied.get(oid)
        name, namespace = oid[3], oid[2] or None
        try:
            if namespace:
                self._ensure_namespace(namespace)
            try:
                self.store.get(res, name, namespace, copy=False)
                patch = create_merge_patch(previous.content, obj) if previous else obj
                if patch:
                    self.store.patch(res, name, namespace, patch)
            except NotFound:
                self.store.create(res, obj)
                previous = None  # a re-created object needs its whole status again
            if status is not None and (previous is None or previous.status != status):
                base = previous.status if previous and previous.status else {}
                status_patch = create_merge_patch(base, status) if previous else status
                self.store.patch(res, name, namespace, {"status": status_patch},
                                 subresource="status")
        except ApiError as exc:
            log.error("manifest_object_rejected", file=doc.file, document=doc.index,
                      object="/".join(oid[1:]), code=exc.code, error=exc.message)
            return
        self._applied[oid] = _Applied(res, obj, status)
