"""The set of resources a MemoryStore serves, including CRDs registered at runtime."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from ycloud_controller.kube import objects
from ycloud_controller.kube.errors import ApiError
from ycloud_controller.kube.resources import ALL, Resource


def resources_of_crd(crd: dict[str, Any]) -> list[Resource]:
    """The served resources a CustomResourceDefinition object defines (one per version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
    if not group or not plural or not kind:
        return []
    namespaced = spec.get("scope", "Namespaced") == "Namespaced"
    short = tuple(names.get("shortNames") or ())
    found = []
    for version in spec.get("versions") or []:
        if not version.get("served", True) or not version.get("name"):
            continue
        has_status = "status" in (version.get("subresources") or {})
        found.append(Resource(group, version["name"], plural, kind, namespaced, has_status, short))
    return found


def storage_key(res: Resource) -> tuple[str, str]:
    """Objects are stored per (group, plural): every version of a CRD shares them."""
    return (res.group, res.plural)


class ResourceRegistry:
    """Thread-safe lookup of resources by (group, version, plural) and by kind."""

    def __init__(self, resources: Iterable[Resource] = ALL) -> None:
        self._lock = threading.Lock()
        self._by_gvp: dict[tuple[str, str, str], Resource] = {}
        for res in resources:
            self.register(res)

    def register(self, res: Resource) -> None:
        with self._lock:
            self._by_gvp[(res.group, res.version, res.plural)] = res

    def unregister(self, group: str, plural: str) -> list[Resource]:
        with self._lock:
            gone = [r for k, r in self._by_gvp.items() if k[0] == group and k[2] == plural]
            for res in gone:
                del self._by_gvp[(res.group, res.version, res.plural)]
        return gone

    def all(self) -> list[Resource]:
        with self._lock:
            return list(self._by_gvp.values())

    def get(self, group: str, version: str, plural: str) -> Resource | None:
        with self._lock:
            return self._by_gvp.get((group, version, plural))

    def known(self, res: Resource) -> bool:
        with self._lock:
            return (res.group, res.version, res.plural) in self._by_gvp

    def by_kind(self, kind: str, api_version: str | None = None) -> Resource | None:
        """Resource for a kind (and apiVersion when given; ``v1`` means the core group)."""
        with self._lock:
            for res in self._by_gvp.values():
                if res.kind != kind:
                    continue
                if api_version is None or res.api_version == api_version:
                    return res
        return None

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions (core group is "")."""
        with self._lock:
            out: dict[str, list[str]] = {}
            for res in self._by_gvp.values():
                versions = out.setdefault(res.group, [])
                if res.version not in versions:
                    versions.append(res.version)
            return out


def prepare_crd(crd: dict[str, Any]) -> list[Resource]:
    """Validate a CRD object being created, fill its status as the API server does
    (names accepted, established) and return the resources it defines."""
    found = resources_of_crd(crd)
    if not found:
        raise ApiError(
            422, "Invalid", "CustomResourceDefinition needs spec.group, spec.names.plural, "
            "spec.names.kind and a served version",
        )
    expected = f"{found[0].plural}.{found[0].group}"
    if (crd.get("metadata") or {}).get("name") != expected:
        raise ApiError(422, "Invalid", f"metadata.name: Invalid value: must be {expected!r}")
    now = objects.now_rfc3339()
    crd["status"] = {
        "acceptedNames": dict(crd["spec"]["names"]),
        "storedVersions": [found[0].version],
        "conditions": [
            {"type": type_, "status": "True", "reason": reason, "message": "",
             "lastTransitionTime": now}
            for type_, reason in (
                ("NamesAccepted", "NoConflicts"), ("Established", "InitialNamesAccepted")
            )
        ],
    }
    return found
