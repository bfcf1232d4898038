"""One Kubernetes write of one reconciler effect: an Event, a status (a pod's annotation
patch in the same write), a patch, a create-or-patch of an owned object, a delete.

The queueing, coalescing, ordering and concurrency of those writes are ycloud_controller.writer's;
this module only turns one effect into backend calls, refusing what would take over or
resurrect an object that is not ours (`refused` counts those).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from ycloud_controller.api.common import key_of
from ycloud_controller.kube import resources
from ycloud_controller.kube.backend import Backend
from ycloud_controller.kube.errors import ApiError
from ycloud_controller.kube.events import EventRecorder
from ycloud_controller.kube.patch import merge_patch
from ycloud_controller.kube.status import Condition, StatusWriter
from ycloud_controller.reconcilers.base import (
    DeleteEffect,
    Effect,
    EventEffect,
    PatchEffect,
    StatusEffect,
    UpsertEffect,
)

log = structlog.get_logger(__name__)


def _controller_ref(obj: dict[str, Any]) -> dict[str, Any] | None:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), None)


def _controlled_elsewhere(obj: dict[str, Any], current: dict[str, Any]) -> bool:
    """True when `current` is not controlled by an object of the kind and name that is to
    control `obj` (an earlier incarnation of the same owner, another uid, is adopted)."""
    ours, theirs = _controller_ref(obj), _controller_ref(current)
    if ours is None:
        return False
    return theirs is None or (theirs.get("kind"), theirs.get("name")) != (ours.get("kind"),
                                                                          ours.get("name"))


class EffectWriter:
    def __init__(self, backend: Backend, recorder: EventRecorder, status: StatusWriter):
        self.backend = backend
        self.recorder = recorder
        self.status = status
        self.refused = 0
        self.before_patch: Callable[[PatchEffect], None] | None = None

    def write(self, effect: Effect, partner: tuple[tuple, Effect] | None = None) -> None:
        """Write `effect` (with `partner`, a pod's annotation patch or status, as one write).
        Raises ApiError for the caller to retry or report."""
        if partner is not None:
            status, patch = (effect, partner[1]) if isinstance(effect, StatusEffect) \
                else (partner[1], effect)
            assert isinstance(status, StatusEffect) and isinstance(patch, PatchEffect)
            self._status(status, patch)
        elif isinstance(effect, EventEffect):
            self.recorder.event(effect.obj, effect.type, effect.reason, effect.message)
        elif isinstance(effect, StatusEffect):
            self._status(effect)
        elif isinstance(effect, PatchEffect):
            if self.before_patch is not None:
                self.before_patch(effect)
            self.backend.patch(effect.resource, effect.name, effect.namespace, effect.patch)
        elif isinstance(effect, UpsertEffect):
            self._upsert(effect)
        elif isinstance(effect, DeleteEffect):
            try:
                self.backend.delete(effect.resource, effect.name, effect.namespace,
                                    uid=effect.uid)
            except ApiError as exc:
                if exc.code == 409 and effect.uid:
                    # another object of that name since the reconcile: not the one to delete
                    self.refused += 1
                    log.warning("not deleting an object made since under the same name",
                                kind=effect.resource.kind, object=f"{effect.namespace}/"
                                f"{effect.name}", error=str(exc))
                    return
                if exc.code != 404:
                    raise

    def _status(self, effect: StatusEffect, patch: PatchEffect | None = None) -> None:
        """The status effect, with a pod's annotation patch in the same write."""
        cond = None
        if effect.ready is not None:
            cond = Condition(type=effect.condition, status="True" if effect.ready else "False",
                             reason=effect.reason, message=effect.message)
        if patch is not None and self.before_patch is not None:
            self.before_patch(patch)
        self.status.set_status(effect.resource, effect.obj, effect.fields, cond,
                               metadata=patch.patch["metadata"] if patch is not None else None)

    def _owner_gone(self, obj: dict[str, Any]) -> bool:
        """True when the object's controller owner no longer exists (or is another object of
        the same name): a write queued before the owner's deletion must not resurrect it."""
        md = obj["metadata"]
        ref = _controller_ref(obj)
        if ref is None:
            return False
        try:
            res = resources.by_kind(ref.get("kind", ""), ref.get("apiVersion"))
        except KeyError:
            return False
        owner = self.backend.get(res, ref["name"], md.get("namespace") if res.namespaced
                                 else None)
        return owner is None or (owner.get("metadata") or {}).get("uid") != ref.get("uid")

    def _upsert(self, effect: UpsertEffect) -> None:
        obj: dict[str, Any] = effect.obj
        md = obj["metadata"]
        current = self.backend.get(effect.resource, md["name"], md.get("namespace"))
        if current is None:
            if self._owner_gone(obj):
                log.info("owner gone, not creating", kind=effect.resource.kind,
                         object=key_of(obj))
                return
            try:
                self.backend.create(effect.resource, obj)
                return
            except ApiError as exc:
                if exc.code != 409:
                    raise
                current = self.backend.get(effect.resource, md["name"], md.get("namespace"))
                if current is None:
                    raise
        if _controlled_elsewhere(obj, current):
            # e.g. a user's own Service of the name a YusurService wants, not yet in the
            # reconciler's cache: never take it over. Its watch event queues the owner again,
            # which then reports the conflict on itself.
            self.refused += 1
            log.warning("not taking over an object another controls", kind=effect.resource.kind,
                        object=key_of(obj), controller=str(_controller_ref(current)))
            return
        body = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
        body["metadata"] = {k: v for k, v in md.items() if k in ("labels", "annotations",
                                                                   "ownerReferences")}
        if merge_patch(current, body) == current:
            return  # as wanted already: a restart or another reconcile writes nothing
        self.backend.patch(effect.resource, md["name"], md.get("namespace"), body)
