"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection.

The leader renews the Lease every ``retry_period``; when it cannot renew within
``renew_deadline`` it steps down. A follower takes over when it has seen the same Lease
record unchanged for ``leaseDurationSeconds`` (measured with its own monotonic clock
from when it observed the record, so clock skew between nodes does not matter), or at
once when the holder released it (empty holderIdentity). Writes use the Lease's
resourceVersion: a 409 means another candidate won that round.

Callbacks run in the elector's thread and must return quickly (set an event, start a
thread): ``on_started_leading()`` after acquiring, ``on_stopped_leading()`` after losing
or releasing the lease.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from ycloud_controller.kube.backend import Backend
from ycloud_controller.kube.errors import ApiError
from ycloud_controller.kube.objects import now_micro
from ycloud_controller.kube.resources import LEASES

log = structlog.get_logger(__name__)

JITTER = 1.2


class LeaderElector:
    """Elects one leader among candidates sharing ``namespace/name`` (see module doc)."""

    def __init__(
        self,
        backend: Backend,
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        release_on_cancel: bool = True,
    ) -> None:
        if not lease_duration > renew_deadline > retry_period * JITTER:
            raise ValueError("need lease_duration > renew_deadline > retry_period * 1.2")
        self.backend = backend
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.release_on_cancel = release_on_cancel
        self._lock = threading.Lock()
        self._leader = False
        self._observed_spec: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._lease: dict[str, Any] | None = None
        self._log = log.bind(lease=f"{namespace}/{name}", identity=identity)

    @property
    def is_leader(self) -> bool:
        with self._lock:
            return self._leader

    @property
    def holder(self) -> str | None:
        """The holderIdentity last observed (None before the first observation)."""
        with self._lock:
            return (self._observed_spec or {}).get("holderIdentity")

    def run(self, stop: threading.Event) -> None:
        """Campaign, lead while renewing, step down on failure; until ``stop`` is set.

        On stop, a leader releases the lease when ``release_on_cancel`` (the default).
        """
        while not stop.is_set():
            if not self._acquire(stop):
                break
            self._set_leader(True)
            self._renew_until_lost(stop)
            if stop.is_set() and self.release_on_cancel:
                self.release()
            self._set_leader(False)

    def _acquire(self, stop: threading.Event) -> bool:
        while not stop.is_set():
            if self.try_acquire_or_renew():
                self._log.info("leader_acquired")
                return True
            stop.wait(self.retry_period * random.uniform(1.0, JITTER))
        return False

    def _renew_until_lost(self, stop: threading.Event) -> None:
        last_renew = time.monotonic()
        while not stop.wait(self.retry_period):
            if self.try_acquire_or_renew():
                last_renew = time.monotonic()
            elif time.monotonic() - last_renew > self.renew_deadline or (
                self.holder not in (None, self.identity)
            ):
                self._log.warning("leader_lost", holder=self.holder)
                return

    def _set_leader(self, leader: bool) -> None:
        with self._lock:
            changed = self._leader != leader
            self._leader = leader
        callback = self.on_started_leading if leader else self.on_stopped_leading
        if changed and callback is not None:
            try:
                callback()
            except Exception:  # noqa: BLE001 - a callback must not break the election
                self._log.exception("leader_callback_failed", leader=leader)

    def _observe(self, spec: dict[str, Any]) -> None:
        with self._lock:
            if spec != self._observed_spec:
                self._observed_spec = dict(spec)
                self._observed_at = time.monotonic()

    def _new_spec(self, old: dict[str, Any] | None) -> dict[str, Any]:
        now = now_micro()
        old = old or {}
        ours = old.get("holderIdentity") == self.identity
        transitions = int(old.get("leaseTransitions") or 0)
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.lease_duration)),
            "acquireTime": old.get("acquireTime", now) if ours else now,
            "renewTime": now,
            "leaseTransitions": transitions if ours or not old else transitions + 1,
        }

    def try_acquire_or_renew(self) -> bool:
        """One election round; True when this candidate holds the lease afterwards."""
        try:
            lease = self.backend.get(LEASES, self.name, self.namespace)
            if lease is None:
                spec = self._new_spec(None)
                body = {
                    "apiVersion": LEASES.api_version, "kind": LEASES.kind,
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": spec,
                }
                self._lease = self.backend.create(LEASES, body)
                self._observe(spec)
                return True
            spec = lease.get("spec") or {}
            self._observe(spec)
            holder = spec.get("holderIdentity")
            if holder and holder != self.identity:
                duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
                with self._lock:
                    valid = self._observed_at + duration > time.monotonic()
                if valid:
                    return False
                self._log.info("lease_expired_taking_over", previous=holder)
            new_spec = self._new_spec(spec)
            lease = dict(lease, spec=new_spec)
            self._lease = self.backend.update(LEASES, lease)
            self._observe(new_spec)
            return True
        except ApiError as exc:
            if exc.code == 409:
                self._log.debug("lease_conflict", error=exc.message)
            else:
                self._log.warning("lease_error", code=exc.code, error=exc.message)
            return False

    def release(self) -> bool:
        """Give the lease up now (clear holderIdentity) if this candidate holds it."""
        try:
            lease = self.backend.get(LEASES, self.name, self.namespace)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return False
            spec = dict(lease["spec"])
            now = now_micro()
            spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=now, acquireTime=now)
            self.backend.update(LEASES, dict(lease, spec=spec))
            self._observe(spec)
            self._log.info("leader_released")
        except ApiError as exc:
            self._log.warning("lease_release_failed", code=exc.code, error=exc.message)
            return False
        self._set_leader(False)
        return True
