"""Performs reconcilers' Kubernetes writes (effects) off the NB path, on its own threads.

Effects for one object coalesce while queued (the newest status wins, in the place of the
first one queued; of an upsert and a delete of one object the newer stays), so a burst of
reconciles of one object ends in one status write, and objects are created in the order
reconciles first asked for them. A pod's annotation patch and its status, queued together,
go out as one patch of its status subresource (the API server's pod status strategy takes
labels and annotations there; a custom resource's status subresource takes only .status).

Writes go out concurrently, `workers` at a time, within the client-side rate limit of the
backend they are given (kube/throttle.py): at most one write per object at a time, in the
order they were queued, and creates and deletes of owned objects (upserts, deletes) one at
a time in queue order, each visible (its watch event on its way) before the next: which of
two YusurServices contending for one EIP has its Service seen first must not depend on
thread timing (bad_input/test_conflicts.py::test_cold_start_gives_a_requested_address_...).

A write that fails is logged with the object and retried a bounded number of times with
jittered backoff (a newer effect queued for the same target meanwhile replaces it);
Kubernetes errors never reach the reconcile loop. `flush()` waits until everything queued
has been written (used by `sync --once` and tests).
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
from ycloud_controller.effect_writer import EffectWriter
from ycloud_controller.kube.backend import Backend
from ycloud_controller.kube.errors import ApiError
from ycloud_controller.kube.events import EventRecorder
from ycloud_controller.kube.resources import status_takes_metadata
from ycloud_controller.kube.status import StatusWriter
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
WORKERS = 4  # writes in flight at once: 200/s at up to 20 ms a write (see README)
SCAN = 256  # queued effects looked at for one that may go now (the rest wait their turn)
MAX_DEFER = 30.0  # seconds a counting status may wait for the controller to be idle
COUNTING_KINDS = frozenset({"Subnet", "EipPool"})  # statuses with address counts
METADATA_ONLY = repr(["metadata"])  # the last part of the target of a metadata-only patch


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


def _object(effect: Effect) -> tuple:
    """The object an effect writes: one write at a time per object (an Event is a new
    object of its own)."""
    if isinstance(effect, EventEffect):
        return ("event", id(effect))
    if isinstance(effect, (StatusEffect, UpsertEffect)):
        md = effect.obj.get("metadata") or {}
        return (effect.resource.kind, md.get("namespace"), md.get("name"))
    return (effect.resource.kind, effect.namespace, effect.name)


def _counts_others(effect: Effect) -> bool:
    """A status that counts what other objects hold (deferred: see KubeWriter._deferred)."""
    return isinstance(effect, StatusEffect) and effect.resource.kind in COUNTING_KINDS


def _ordered(effect: Effect) -> bool:
    """Creates and deletes of owned objects go one at a time, in queue order."""
    return isinstance(effect, (UpsertEffect, DeleteEffect))


# a queued write: (effect, attempts so far, the object it writes, whether it is ordered),
# the last two computed once when it is queued
Queued = tuple[Effect, int, tuple, bool]


def _queued(effect: Effect, attempts: int) -> Queued:
    return effect, attempts, _object(effect), _ordered(effect)


def _annotations_only(patch: dict[str, Any]) -> bool:
    return set(patch) == {"metadata"} and set(patch["metadata"]) == {"annotations"}


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


class KubeWriter:
    def __init__(self, backend: Backend, recorder: EventRecorder, status: StatusWriter,
                 enabled: bool = True, workers: int = WORKERS):
        self.workers = max(1, workers)
        self.in_flight: set[tuple] = set()  # objects being written
        self._ordered_busy = 0  # upserts and deletes being written (0 or 1)
        self.max_concurrency = 0  # most writes in flight at once (for tests and bench)
        self.effects = EffectWriter(backend, recorder, status)  # one write of one effect
        self.enabled = enabled
        self._pending: OrderedDict[tuple, Queued] = OrderedDict()
        # statuses that count what other objects hold (a subnet's addresses): they wait while
        # `defer()` (the controller has keys to reconcile, which may change the counts
        # again), at most MAX_DEFER seconds from when they were first queued
        self._deferred: OrderedDict[tuple, Queued] = OrderedDict()
        self._deferred_since: dict[tuple, float] = {}
        self.defer: Callable[[], bool] = lambda: False
        self._cond = threading.Condition()
        self._busy = 0
        self.written = 0
        self.failed = 0

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
                target = _target(effect)
                if _counts_others(effect):
                    self._deferred_since.setdefault(target, time.monotonic())
                    self._deferred[target] = _queued(effect, 0)
                else:
                    self._pending[target] = _queued(effect, 0)
            self._cond.notify_all()

    def run(self, stop: threading.Event) -> None:
        """Write until `stop` is set: this thread and `workers` - 1 helpers. A write that
        crashes (a bug, not an ApiError) ends this call with its exception, whichever
        thread it crashed in (what is queued stays queued for the next `run`)."""
        halt = threading.Event()
        crashed: list[Exception] = []

        def helper() -> None:
            try:
                self._work(stop, halt)
            except Exception as exc:  # noqa: BLE001 - re-raised in the calling thread
                crashed.append(exc)
                halt.set()
                self.wake()

        helpers = [threading.Thread(target=helper, daemon=True, name=f"kube-writer-{i}")
                   for i in range(1, self.workers)]
        for thread in helpers:
            thread.start()
        try:
            self._work(stop, halt)
            if crashed:
                raise crashed[0]
        finally:
            halt.set()
            self.wake()
            for thread in helpers:
                thread.join(timeout=5)

    def _work(self, stop: threading.Event, halt: threading.Event) -> None:
        while True:
            with self._cond:
                taken = None if halt.is_set() else self._take()
                while taken is None and not stop.is_set() and not halt.is_set():
                    self._cond.wait(0.5)
                    taken = self._take()
                if taken is None:
                    return
                target, (effect, attempts, obj, ordered), partner = taken
                self._busy += 1
                self.in_flight.add(obj)
                self._ordered_busy += ordered
                self.max_concurrency = max(self.max_concurrency, self._busy)
            written = False
            try:
                self.effects.write(effect, partner)
                written = True
            except ApiError as exc:
                if not self._failed(target, effect, attempts, exc) and partner is not None:
                    self._requeue(partner[0], partner[1], attempts)
            finally:
                with self._cond:
                    self.written += written
                    self._busy -= 1
                    self.in_flight.discard(obj)
                    self._ordered_busy -= ordered
                    self._cond.notify_all()  # an object or the ordered lane is free again

    def _take(self) -> tuple[tuple, Queued, tuple[tuple, Effect] | None] | None:
        """The first queued effect that may go now (lock held): its object has no write in
        flight and no effect queued before it that has to wait (a patch of a Service never
        overtakes its create), and an upsert or delete only when no other one is in flight
        or queued before it. None when none of the first SCAN may."""
        ordered_seen = False
        waiting: set[tuple] = set()  # objects with an effect that has to wait
        for n, (target, queued) in enumerate(self._pending.items()):
            if n >= SCAN:
                return None
            effect, _, obj, ordered = queued
            if obj in self.in_flight or obj in waiting:
                waiting.add(obj)
                ordered_seen = ordered_seen or ordered
                continue
            if ordered:
                if self._ordered_busy or ordered_seen:
                    waiting.add(obj)
                    continue
                ordered_seen = True
            del self._pending[target]
            return target, queued, self._take_partner(effect)
        return self._take_deferred()

    def _take_deferred(self) -> tuple[tuple, Queued, None] | None:
        """The first deferred status that may go now (lock held; see `_deferred`)."""
        if not self._deferred:
            return None
        oldest = next(iter(self._deferred))
        if self.defer() and time.monotonic() - self._deferred_since[oldest] < MAX_DEFER:
            return None
        for target, queued in self._deferred.items():
            if queued[2] not in self.in_flight:
                del self._deferred[target]
                self._deferred_since.pop(target, None)
                return target, queued, None
        return None

    def _take_partner(self, effect: Effect) -> tuple[tuple, Effect] | None:
        """A pod's queued annotation patch for its status effect, or the other way round:
        both go out as one write (lock held)."""
        if isinstance(effect, StatusEffect) and status_takes_metadata(effect.resource):
            md = effect.obj.get("metadata") or {}
            partner = ("patch", effect.resource.kind, md.get("namespace"), md.get("name"),
                       METADATA_ONLY)
        elif isinstance(effect, PatchEffect) and status_takes_metadata(effect.resource) \
                and _annotations_only(effect.patch):
            key = f"{effect.namespace}/{effect.name}" if effect.namespace else effect.name
            partner = ("status", effect.resource.kind, key)
        else:
            return None
        found = self._pending.pop(partner, None)
        if found is None:
            return None
        other = found[0]
        if isinstance(other, PatchEffect) and not _annotations_only(other.patch):
            self._pending[partner] = found  # put back (its place in the order is lost)
            return None
        return partner, other

    def _requeue(self, target: tuple, effect: Effect, attempts: int) -> None:
        with self._cond:
            if _counts_others(effect):
                self._deferred_since.setdefault(target, time.monotonic())
                self._deferred.setdefault(target, _queued(effect, attempts))
            else:
                self._pending.setdefault(target, _queued(effect, attempts))

    def _failed(self, target: tuple, effect: Effect, attempts: int, exc: ApiError) -> bool:
        """Log or retry a failed write; True when it is done with (not queued again)."""
        if exc.code == 404 and not isinstance(effect, UpsertEffect):
            return True  # the object is gone: nothing to report on it
        if attempts + 1 >= MAX_ATTEMPTS or exc.code in (400, 403, 422):
            self.failed += 1
            log.warning("kubernetes write failed", target=str(target[:3]), code=exc.code,
                        error=str(exc))
            return True
        # its object stays in flight while it waits: a newer effect for it, queued
        # meanwhile, is neither overtaken nor overwritten (it replaces this one)
        time.sleep(min(2.0, 0.05 * 2 ** attempts) * random.uniform(0.5, 1.5))
        self._requeue(target, effect, attempts + 1)
        return False

    def flush(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            # the statuses deferred while the controller was busy may go now (a flush waits
            # for them): the writers look again at once, not at their next poll
            self._cond.notify_all()
            while self._pending or self._deferred or self._busy:
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
            return not self._pending and not self._deferred and not self._busy

    @property
    def refused(self) -> int:
        """Upserts of objects that exist and are not ours, deletes of objects replaced since."""
        return self.effects.refused

    @property
    def before_patch(self) -> Callable[[PatchEffect], None] | None:
        return self.effects.before_patch

    @before_patch.setter
    def before_patch(self, hook: Callable[[PatchEffect], None] | None) -> None:
        """Told of each patch just before it is written (Triggers.expect_patch)."""
        self.effects.before_patch = hook

    def backlog(self) -> int:
        """Writes not made yet: queued, or being made."""
        with self._cond:
            return len(self._pending) + len(self._deferred) + self._busy
