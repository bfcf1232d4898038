"""Discovery documents (/version, /api, /apis, /api/v1, /apis/<g>/<v>) of the fake server."""

from __future__ import annotations

from typing import Any

from ycloud_controller.kube.resources import Resource
from ycloud_controller.memkube.store import MemoryStore

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
RETURNS_OBJECT_ON_DELETE = {("", "pods"), ("", "services"), ("", "namespaces")}


def version() -> dict[str, Any]:
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-fakekube",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in sorted(versions)]
    return {"name": name, "versions": entries, "preferredVersion": entries[-1]}


def api_group_list(store: MemoryStore) -> dict[str, Any]:
    groups = store.registry.groups()
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(g, v) for g, v in sorted(groups.items()) if g],
    }


def api_group(store: MemoryStore, name: str) -> dict[str, Any] | None:
    versions = store.registry.groups().get(name)
    if not versions or not name:
        return None
    return dict(_group(name, versions), kind="APIGroup", apiVersion="v1")


def _entries(res: Resource) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "name": res.plural,
        "singularName": res.singular,
        "namespaced": res.namespaced,
        "kind": res.kind,
        "verbs": VERBS,
    }
    if res.short_names:
        entry["shortNames"] = list(res.short_names)
    entries = [entry]
    if res.has_status:
        entries.append({
            "name": f"{res.plural}/status",
            "singularName": "",
            "namespaced": res.namespaced,
            "kind": res.kind,
            "verbs": ["get", "patch", "update"],
        })
    return entries


def api_resource_list(store: MemoryStore, group: str, version: str) -> dict[str, Any] | None:
    resources = [
        r for r in store.resources() if r.group == group and r.version == version
    ]
    if not resources:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [e for r in sorted(resources, key=lambda r: r.plural) for e in _entries(r)],
    }
