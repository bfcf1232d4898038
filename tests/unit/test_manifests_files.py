"""Every file of manifests/ (cluster objects, CRDs, examples, the node agent): it parses, says
what it is for, names its objects validly and only once. Built-in objects are validated with
kubernetes-validate (strict, so unknown fields fail like `kubectl apply --validate=strict`);
the cluster manifests are all built-in and live in the system namespace.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.unit.manifests_support import (
    ALL_FILES,
    ALL_OBJECTS,
    CLUSTER_OBJECTS,
    CRD_DIR,
    EXAMPLES,
    MANIFESTS,
    ROOT,
    SYSTEM_NAMESPACE,
    _files,
    _id,
    _is_custom,
    _load,
)

# The oldest Kubernetes the manifests target (CEL validation rules on by default) and the
# newest kubernetes-validate knows.
K8S_VERSIONS = ("1.29", kubernetes_validate.latest_version())

BUILTIN_OBJECTS = [(p, o) for p, o in ALL_OBJECTS if not _is_custom(o)]


def test_manifest_files_exist() -> None:
    assert (MANIFESTS / "00-namespace.yaml").exists()
    for name in ("rbac.yaml", "configmap.yaml", "deployment.yaml", "service.yaml"):
        assert (MANIFESTS / name).exists(), name
    assert len(_files(CRD_DIR)) == 6
    # Examples are numbered so that they read (and apply) in order.
    numbers = [p.name[:3] for p in _files(EXAMPLES)]
    assert all(re.fullmatch(r"\d\d-", n) for n in numbers), numbers
    assert len(numbers) == len(set(numbers)), numbers


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_manifest_parses(path: Path) -> None:
    docs = _load(path)
    assert docs, "empty file"
    assert path.read_text(encoding="utf-8").lstrip().startswith("#"), "say what the file is for"
    for doc in docs:
        assert isinstance(doc, dict), "empty or non-mapping YAML document"
        assert {"apiVersion", "kind", "metadata"} <= doc.keys()
        name = doc["metadata"]["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
                            name), name
        assert len(name) <= 253


def test_no_duplicate_objects() -> None:
    seen: set[tuple[str, str, str | None, str]] = set()
    for _, obj in ALL_OBJECTS:
        key = (obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace"),
               obj["metadata"]["name"])
        assert key not in seen, key
        seen.add(key)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("item", BUILTIN_OBJECTS, ids=_id)
def test_builtin_objects_validate(item: tuple[Path, dict[str, Any]], version: str) -> None:
    _, obj = item
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:  # pragma: no cover - message only
        path = ".".join(str(p) for p in e.path)
        pytest.fail(f"{path}: {e.message}")


def test_cluster_manifests_are_all_builtin_and_namespaced_in_system() -> None:
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for _, obj in CLUSTER_OBJECTS:
        assert not _is_custom(obj)
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"].get("namespace") == SYSTEM_NAMESPACE, _id((MANIFESTS, obj))
