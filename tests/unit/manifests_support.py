"""What the static checks of manifests/ share (no cluster is involved): the files and their
objects, the CRDs, and admit(), which defaults a custom object and validates it against its
CRD's schema like the API server: with jsonschema, after mapping the Kubernetes extensions
(x-kubernetes-int-or-string, unknown-field pruning, CEL rules) to something jsonschema and
Python understand. Also the RBAC rules of a role and the controller's config.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
CRD_DIR = MANIFESTS / "crds"
EXAMPLES = MANIFESTS / "examples"
GROUP = "iaas.yusur.io"
DEFAULT_VPC = "ovn-cluster"
SYSTEM_NAMESPACE = "ycloud-system"


# -- loading ------------------------------------------------------------------------------
def _load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return list(yaml.safe_load_all(f))


def _files(directory: Path) -> list[Path]:
    """The object files of a directory (kustomization.yaml is kubectl's, not an object)."""
    return sorted(p for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")


NODE_DIR = MANIFESTS / "node"  # the node agent (more checks: test_manifests_node.py)
ALL_FILES = _files(MANIFESTS) + _files(CRD_DIR) + _files(EXAMPLES) + _files(NODE_DIR)


def _objects(files: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Every object of the files; a file that does not parse is left to
    test_every_manifest_parses, so that one bad file does not hide the other tests."""
    out = []
    for path in files:
        try:
            docs = _load(path)
        except yaml.YAMLError:
            continue
        out += [(path, doc) for doc in docs if isinstance(doc, dict)]
    return out


ALL_OBJECTS = _objects(ALL_FILES)
CLUSTER_OBJECTS = _objects(_files(MANIFESTS))
EXAMPLE_OBJECTS = [obj for _, obj in _objects(_files(EXAMPLES))]
CRDS = {doc["spec"]["names"]["kind"]: doc for _, doc in _objects(_files(CRD_DIR))}


def _is_custom(obj: dict[str, Any]) -> bool:
    return obj["apiVersion"].split("/")[0] == GROUP


def _id(item: tuple[Path, dict[str, Any]]) -> str:
    path, obj = item
    ns = obj["metadata"].get("namespace")
    name = f"{ns}/{obj['metadata']['name']}" if ns else obj["metadata"]["name"]
    return f"{path.relative_to(ROOT)}:{obj['kind']}/{name}"


def _one(kind: str, name: str, objects: list[tuple[Path, dict[str, Any]]] = CLUSTER_OBJECTS):
    found = [o for _, o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind} {name}, found {len(found)}"
    return found[0]


# -- a custom object against its CRD ------------------------------------------------------
# How a structural schema spells x-kubernetes-int-or-string (and jsonschema's form of it).
INT_OR_STRING_ANYOF = [{"type": "integer"}, {"type": "string"}]


def _schema(kind: str) -> dict[str, Any]:
    return CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _port_name_or_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 1 <= value <= 65535
    return isinstance(value, str) and 1 <= len(value) <= 15


# Python mirrors of the CEL rules (x-kubernetes-validations) in the CRDs: the API server
# evaluates CEL, these tests evaluate the mirror. A rule without a mirror fails the tests.
CEL_RULES: dict[str, Callable[[Any], bool]] = {
    "type(self) == int ? (self >= 1 && self <= 65535) : (self.size() >= 1 && self.size() <= 15)":
        _port_name_or_number,
}


def _to_jsonschema(node: dict[str, Any]) -> dict[str, Any]:
    """A CRD schema node as plain JSON Schema: int-or-string becomes anyOf, objects reject
    unknown fields (kubectl's strict field validation), CEL rules are dropped (see
    _cel_errors), annotations that mean nothing to validation are dropped."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _to_jsonschema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = _to_jsonschema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [_to_jsonschema(sub) for sub in value]
        elif key.startswith("x-kubernetes-") or key in ("description", "default", "example",
                                                           "nullable", "externalDocs"):
            continue
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node:
        out["anyOf"] = copy.deepcopy(INT_OR_STRING_ANYOF)
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
    if node.get("type") == "object" and "properties" in node and \
            not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


FORMAT_CHECKER = jsonschema.FormatChecker()


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """RFC 3339 date-time, as the API server checks it (jsonschema needs an extra package)."""
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)",
                        value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


def _validator(node: dict[str, Any]) -> jsonschema.Validator:
    return jsonschema.Draft202012Validator(_to_jsonschema(node), format_checker=FORMAT_CHECKER)


def _default(node: dict[str, Any], value: Any) -> None:
    """Apply schema defaults in place, like the API server does before validating."""
    if isinstance(value, dict) and node.get("type") == "object":
        for name, sub in node.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _default(sub, value[name])
        if isinstance(node.get("additionalProperties"), dict):
            for item in value.values():
                _default(node["additionalProperties"], item)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for item in value:
            _default(node["items"], item)


def _defaulted(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    _default(_schema(obj["kind"]), out)
    return out


def _cel_errors(node: dict[str, Any], value: Any, path: str = "") -> Iterator[str]:
    for rule in node.get("x-kubernetes-validations", []):
        assert rule["rule"] in CEL_RULES, f"no Python mirror for CEL rule {rule['rule']!r}"
        if not CEL_RULES[rule["rule"]](value):
            yield f"{path or '.'}: {rule.get('message', rule['rule'])}"
    if isinstance(value, dict):
        for name, item in value.items():
            sub = node.get("properties", {}).get(name) or node.get("additionalProperties")
            if isinstance(sub, dict):
                yield from _cel_errors(sub, item, f"{path}.{name}")
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            yield from _cel_errors(node["items"], item, f"{path}[{i}]")


class Rejected(Exception):
    """The API server would refuse the object."""


def admit(obj: dict[str, Any]) -> dict[str, Any]:
    """Default and validate a custom object like the API server; return the stored form."""
    assert obj["apiVersion"] == f"{GROUP}/v1", obj["apiVersion"]
    kind = obj["kind"]
    if kind not in CRDS:
        raise Rejected(f"no CRD for kind {kind}")
    schema = _schema(kind)
    stored = _defaulted(obj)
    errors = [f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
              for e in _validator(schema).iter_errors(stored)]
    errors += list(_cel_errors(schema, stored))
    namespaced = CRDS[kind]["spec"]["scope"] == "Namespaced"
    if not namespaced and "namespace" in obj["metadata"]:
        errors.append("metadata.namespace set on a cluster-scoped object")
    if errors:
        raise Rejected("; ".join(errors))
    return stored


# -- RBAC rules of a role -----------------------------------------------------------------
def _rules(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


# -- the controller's config --------------------------------------------------------------
CONFIGMAP = _one("ConfigMap", "ycloud-config")
CONFIG = yaml.safe_load(CONFIGMAP["data"]["config.yaml"])
