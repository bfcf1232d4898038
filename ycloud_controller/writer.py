"""Performs reconcilers' Kubernetes writes (effects) off the NB path, on its own thread.

Effects for one object coalesce while queued (the newest status wins, in the place of the
first one queued; of an upsert and a delete of one object the newer stays), so a burst of
reconciles of one object ends in one status write, and objects are created in the order
reconciles first asked for them. A write that fails is logged with the
object and retried a bounded number of times with jittered backoff; Kubernetes errors never
reach the reconcile loop. `flush()` waits until everything queued has been written (used by
`sync --once` and tests).
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import structlog

from ycloud_controller.api.common import key_of
from ycloud_controller.kube import resources
from ycloud_controller.kube.backend import Backend
from ycloud_controller.kube.errors import ApiError
from ycloud_controller.kube.events import EventRecorder
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
MAX_ATTEMPTS = 5


def _target(effect: Effect) -> tuple:
    if isinstance(effect, EventEffect):
        return ("event", effect.obj.get("kind"), key_of(effect.obj), effect.reason,
                effect.message)
    if isinstance(effect, StatusEffect):
        return ("status", effect.resource.kind, key_of(effect.obj))
    if isinstance(effect, PatchEffect):
        return ("patch", effect.resource.kind, effect.namespace, effect.name,
                repr(sorted(effect.patch)))
    if isinstance(effect, UpsertEffect):
        return ("upsert", effect.resource.kind, key_of(effect.obj))
    return ("delete", effect.resource.kind, effect.namespace, effect.name)


def _opposite(effect: Effect) -> tuple | None:
    """The target of a delete of the object an upsert writes, or of an upsert of the object
    a delete removes."""
    if isinstance(effect, UpsertEffect):
        md = effect.obj.get("metadata") or {}
        return ("delete", effect.resource.kind, md.get("namespace"), md.get("name"))
    if isinstance(effect, DeleteEffect):
        key = f"{effect.namespace}/{effect.name}" if effect.namespace else effect.name
        return ("upsert", effect.resource.kind, key)
    return None


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


class KubeWriter:
    def __init__(self, backend: Backend, recorder: EventRecorder, status: StatusWriter,
                 enabled: bool = True):
        self.backend = backend
        self.recorder = recorder
        self.status = status
        self.enabled = enabled
        self._pending: OrderedDict[tuple, tuple[Effect, int]] = OrderedDict()
        self._cond = threading.Condition()
        self._busy = 0
        self.written = 0
        self.failed = 0
        # upserts of objects that exist and are not ours, deletes of objects replaced since
        self.refused = 0
        # told of each patch just before it is written (Triggers.expect_patch)
        self.before_patch: Callable[[PatchEffect], None] | None = None

    def submit(self, effects: list[Effect]) -> None:
        if not effects or not self.enabled:
            return
        with self._cond:
            for effect in effects:
                # a newer effect for a target still queued takes the older one's place:
                # objects are created in the order reconciles first asked for them (the
                # precedence order of a batch), however often their owners were reconciled
                # since (a YusurService reconciled again must not let a younger one's
                # Service be created first and take an EIP both ask for). Of an upsert and
                # a delete of one object, only the newer is kept: it is what was last wanted
                opposite = _opposite(effect)
                if opposite is not None:
                    self._pending.pop(opposite, None)
                self._pending[_target(effect)] = (effect, 0)
            self._cond.notify_all()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._cond:
                while not self._pending and not stop.is_set():
                    self._cond.wait(0.5)
                if stop.is_set():
                    return
                # one at a time, in the order reconciles made them: each write is visible
                # (its watch event on its way) before the next is taken. Rounds of 32 saved a
                # lock round per effect but changed which of two YusurServices contending for
                # one EIP had its Service seen first on a cold start
                # (test_bad_input.py::test_cold_start_gives_a_requested_address_to_...)
                target, (effect, attempts) = self._pending.popitem(last=False)
                self._busy += 1
            try:
                self._write(effect)
                self.written += 1
            except ApiError as exc:
                self._failed(target, effect, attempts, exc)
            finally:
                with self._cond:
                    self._busy -= 1
                    if not self._pending and not self._busy:
                        self._cond.notify_all()  # wake flush() once, not once per write

    def _failed(self, target: tuple, effect: Effect, attempts: int, exc: ApiError) -> None:
        if exc.code == 404 and not isinstance(effect, UpsertEffect):
            return  # the object is gone: nothing to report on it
        if attempts + 1 >= MAX_ATTEMPTS or exc.code in (400, 403, 422):
            self.failed += 1
            log.warning("kubernetes write failed", target=str(target[:3]), code=exc.code,
                        error=str(exc))
            return
        time.sleep(min(2.0, 0.05 * 2 ** attempts) * random.uniform(0.5, 1.5))
        with self._cond:
            self._pending.setdefault(target, (effect, attempts + 1))

    def flush(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def wake(self) -> None:
        """Make `run` look at its stop event now."""
        with self._cond:
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return not self._pending and not self._busy

    def backlog(self) -> int:
        """Writes not made yet: queued, or being made."""
        with self._cond:
            return len(self._pending) + self._busy

    # -- one write ------------------------------------------------------------------------
    def _write(self, effect: Effect) -> None:
        if isinstance(effect, EventEffect):
            self.recorder.event(effect.obj, effect.type, effect.reason, effect.message)
        elif isinstance(effect, StatusEffect):
            cond = None
            if effect.ready is not None:
                cond = Condition(type=effect.condition,
                                 status="True" if effect.ready else "False",
                                 reason=effect.reason, message=effect.message)
            self.status.set_status(effect.resource, effect.obj, effect.fields, cond)
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
        self.backend.patch(effect.resource, md["name"], md.get("namespace"), body)
