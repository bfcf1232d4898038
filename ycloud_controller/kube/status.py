"""Status writing through the status subresource, with Kubernetes-style conditions.

:meth:`StatusWriter.set_status` merges fields and one condition into the object's
``.status`` and writes only when something changed, as a JSON merge patch of the
``status`` subresource. ``lastTransitionTime`` moves only when a condition's status
flips; ``observedGeneration`` is the object's ``metadata.generation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from ycloud_controller.kube import canon
from ycloud_controller.kube.backend import Backend
from ycloud_controller.kube.errors import NotFound
from ycloud_controller.kube.objects import now_rfc3339
from ycloud_controller.kube.patch import create_merge_patch
from ycloud_controller.kube.resources import Resource

log = structlog.get_logger(__name__)

CONDITION_STATUSES = ("True", "False", "Unknown")


@dataclass(frozen=True)
class Condition:
    """One ``status.conditions`` entry (type is e.g. "Ready"; status "True"/"False"/"Unknown")."""

    type: str
    status: str
    reason: str = ""
    message: str = ""

    def __post_init__(self) -> None:
        if self.status not in CONDITION_STATUSES:
            raise ValueError(f"condition status must be one of {CONDITION_STATUSES}")


def merge_condition(
    conditions: list[dict[str, Any]], condition: Condition, generation: int | None
) -> list[dict[str, Any]]:
    """Conditions with ``condition`` set (replacing the entry of the same type).

    A new list; the entries of other types are ``conditions``' own (not copied), the new
    entry is shared and read-only (`_entry`).
    """
    result = list(conditions)
    for pos, current in enumerate(result):
        if current.get("type") != condition.type:
            continue
        same_status = current.get("status") == condition.status
        previous = current.get("lastTransitionTime") if same_status else None
        result[pos] = _entry(condition, generation, previous or now_rfc3339())
        return result
    result.append(_entry(condition, generation, now_rfc3339()))
    return result


_ENTRIES: dict[tuple[Any, ...], dict[str, Any]] = {}
_MAX_ENTRIES = 4096


def _entry(condition: Condition, generation: int | None, since: str) -> dict[str, Any]:
    """The conditions entry, one shared read-only dict per content: thousands of objects get
    the same one at once (a cold start), and the in-memory store then takes it as it is
    instead of copying it for every object (``canon.pinned``)."""
    key = (condition.type, condition.status, condition.reason, condition.message, generation,
           since)
    found = _ENTRIES.get(key)
    if found is None:
        entry: dict[str, Any] = {"type": condition.type, "status": condition.status,
                                 "reason": condition.reason, "message": condition.message}
        if generation is not None:
            entry["observedGeneration"] = generation
        entry["lastTransitionTime"] = since
        if len(_ENTRIES) >= _MAX_ENTRIES:
            _ENTRIES.clear()
        found = _ENTRIES[key] = canon.pinned(entry)
    return found


def desired_status(
    obj: dict[str, Any], status_fields: dict[str, Any], condition: Condition | None
) -> dict[str, Any]:
    """The object's status with ``status_fields`` (None deletes a field) and ``condition``.

    A new dict that shares unchanged values with ``obj`` and ``status_fields`` (nothing is
    deep-copied: the result is only compared and diffed, and the diff copies what changed).
    """
    status = dict(obj.get("status") or {})
    for key, value in status_fields.items():
        if value is None:
            status.pop(key, None)
        else:
            status[key] = value
    if condition is not None:
        generation = (obj.get("metadata") or {}).get("generation")
        status["conditions"] = merge_condition(
            status.get("conditions") or [], condition, generation
        )
    return status


def status_patch(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The merge patch turning status ``current`` into ``desired``, sharing values with
    ``desired`` instead of copying them (a backend serializes or copies a patch body; here
    the whole conditions list would be deep-copied twice per write otherwise)."""
    return create_merge_patch(current, desired, share=True)


class StatusWriter:
    """Writes ``.status`` through the backend (see the module docstring). Thread-safe."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def set_status(
        self,
        res: Resource,
        obj: dict[str, Any],
        status_fields: dict[str, Any],
        condition: Condition | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Write the merged status if it differs from ``obj``'s.

        ``metadata``: a merge patch of labels and annotations written in the same request
        (only for a resource whose status subresource takes them,
        ``resources.STATUS_WRITES_METADATA``). Returns the updated object, ``obj`` itself
        when nothing changed, or None when the object no longer exists. Other ApiErrors
        propagate (the caller retries).
        """
        current = obj.get("status") or {}
        desired = desired_status(obj, status_fields, condition)
        body: dict[str, Any] = {"metadata": metadata} if metadata else {}
        if desired != current:  # most reconciles: no write, no watch event
            body["status"] = status_patch(current, desired)
        if not body:
            return obj
        meta = obj.get("metadata") or {}
        try:
            return self.backend.patch(
                res, meta["name"], meta.get("namespace"), body,
                "status" if res.has_status else None,
            )
        except NotFound:
            log.info("status_target_gone", kind=res.kind, name=meta.get("name"),
                     namespace=meta.get("namespace"))
            return None
