"""The CRDs of manifests/crds, as apiextensions.k8s.io/v1 objects: each openAPIV3Schema
passes the rules the API server applies to structural schemas (plus a few project rules), and
each CRD is the contract the controller's code relies on: names, scope, printer columns, spec
and status fields, metav1 conditions.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

from tests.unit.manifests_support import (
    CRD_DIR,
    CRDS,
    GROUP,
    INT_OR_STRING_ANYOF,
    _files,
    _schema,
    _validator,
)

# -- structural schemas -------------------------------------------------------------------
TYPES = {"object", "array", "string", "integer", "number", "boolean"}
# Keywords apiextensions.k8s.io/v1 refuses in a CRD schema.
FORBIDDEN_KEYWORDS = {"$ref", "$schema", "definitions", "dependencies", "id", "additionalItems",
                      "patternProperties"}
# Keywords forbidden inside anyOf/allOf/oneOf/not of a structural schema.
FORBIDDEN_NESTED = {"type", "default", "description", "additionalProperties", "nullable",
                    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
                    "x-kubernetes-int-or-string"}
FORMATS = {"bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "uuid",
           "uuid3", "uuid4", "uuid5", "isbn", "isbn10", "isbn13", "creditcard", "ssn",
           "hexcolor", "rgbcolor", "byte", "password", "date", "duration", "datetime",
           "date-time", "int32", "int64", "float", "double"}
STRING_ONLY = {"pattern", "minLength", "maxLength"}
NUMBER_ONLY = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
ARRAY_ONLY = {"items", "minItems", "maxItems", "x-kubernetes-list-type",
              "x-kubernetes-list-map-keys"}
OBJECT_ONLY = {"properties", "required", "additionalProperties", "minProperties",
               "maxProperties"}
PY = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
      "object": dict, "array": list}


def _structural_errors(node: Any, path: str, nested: bool = False) -> list[str]:
    """What the API server would refuse in a CRD's openAPIV3Schema (the rules for structural
    schemas, plus a few project rules: typed keywords only where they mean something, RE2
    patterns, no object that silently prunes all its content)."""
    if not isinstance(node, dict):
        return [f"{path}: a schema must be a mapping"]
    errors = [f"{path}: {k} is not allowed" for k in FORBIDDEN_KEYWORDS & node.keys()]
    if node.get("uniqueItems"):
        errors.append(f"{path}: uniqueItems: true is not allowed")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    typ = node.get("type")
    if nested:
        errors += [f"{path}: {k} inside anyOf/allOf/oneOf/not" for k in FORBIDDEN_NESTED
                   & node.keys()]
    elif int_or_string:
        if typ is not None:
            errors.append(f"{path}: x-kubernetes-int-or-string needs an empty type")
        if "anyOf" in node and node["anyOf"] != INT_OR_STRING_ANYOF:
            errors.append(f"{path}: int-or-string anyOf must be [integer, string]")
    elif typ not in TYPES and not (preserve and typ is None):
        errors.append(f"{path}: type must be one of {sorted(TYPES)}, not {typ!r}")
    for keywords, wanted in ((STRING_ONLY, {"string"}), (NUMBER_ONLY, {"integer", "number"}),
                             (ARRAY_ONLY, {"array"}), (OBJECT_ONLY, {"object"})):
        if typ is not None and typ not in wanted and keywords & node.keys():
            errors.append(f"{path}: {sorted(keywords & node.keys())} on type {typ}")
    if typ == "array" and not isinstance(node.get("items"), dict):
        errors.append(f"{path}: an array needs an items schema")
    if typ == "object":
        if "properties" in node and "additionalProperties" in node:
            errors.append(f"{path}: properties and additionalProperties are exclusive")
        if "additionalProperties" in node and not isinstance(node["additionalProperties"], dict):
            errors.append(f"{path}: additionalProperties must be a schema")
        if not ({"properties", "additionalProperties"} & node.keys()) and not preserve \
                and not path.endswith(".properties.metadata"):
            errors.append(f"{path}: an object without properties prunes all its content")
        for req in node.get("required", []):
            if req not in node.get("properties", {}):
                errors.append(f"{path}: required {req!r} is not a property")
    if "format" in node and node["format"] not in FORMATS:
        errors.append(f"{path}: unknown format {node['format']!r}")
    if "pattern" in node:
        pattern = node["pattern"]
        re.compile(pattern)
        if re.search(r"\(\?[=!<]|\\[1-9]", pattern):
            errors.append(f"{path}: pattern uses lookaround or backreferences (not RE2)")
    if "enum" in node and typ in PY:
        for value in node["enum"]:
            if not isinstance(value, PY[typ]) or (typ != "boolean" and isinstance(value, bool)):
                errors.append(f"{path}: enum value {value!r} is not a {typ}")
    if "default" in node and not nested:
        if "metadata" in path.split("."):
            errors.append(f"{path}: no defaults in metadata")
        try:
            _validator(node).validate(node["default"])
        except jsonschema.ValidationError as e:
            errors.append(f"{path}: default {node['default']!r} is invalid: {e.message}")
    if node.get("x-kubernetes-list-type") == "map":
        items = node.get("items", {})
        keys = node.get("x-kubernetes-list-map-keys") or []
        if not keys:
            errors.append(f"{path}: list-type map needs x-kubernetes-list-map-keys")
        for key in keys:
            prop = items.get("properties", {}).get(key)
            if prop is None or prop.get("type") not in {"string", "integer", "boolean"}:
                errors.append(f"{path}: map key {key!r} must be a scalar property")
            elif key not in items.get("required", []) and "default" not in prop:
                errors.append(f"{path}: map key {key!r} must be required or defaulted")
    for rule in node.get("x-kubernetes-validations", []):
        if not isinstance(rule, dict) or not isinstance(rule.get("rule"), str):
            errors.append(f"{path}: x-kubernetes-validations entries need a rule")
    if path.endswith(".properties.metadata"):
        extra = set(node) - {"type", "description", "properties"}
        if extra or node.get("properties", {}).keys() - {"name", "generateName"}:
            errors.append(f"{path}: metadata may only restrict name and generateName")

    for name, sub in node.get("properties", {}).items():
        errors += _structural_errors(sub, f"{path}.properties.{name}", nested)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            errors += _structural_errors(node[key], f"{path}.{key}", nested or key == "not")
    for key in ("anyOf", "allOf", "oneOf"):
        if key == "anyOf" and int_or_string and node["anyOf"] == INT_OR_STRING_ANYOF:
            continue  # the one allowed form of int-or-string
        for i, sub in enumerate(node.get(key, [])):
            errors += _structural_errors(sub, f"{path}.{key}[{i}]", True)
    return errors


def test_structural_check_catches_bad_schemas() -> None:
    bad = {
        "type": "object",
        "properties": {
            "untyped": {"description": "no type"},
            "list": {"type": "array"},
            "both": {"type": "object", "properties": {"a": {"type": "string"}},
                     "additionalProperties": {"type": "string"}},
            "nested": {"type": "string", "anyOf": [{"type": "string", "pattern": "x"}]},
            "ref": {"$ref": "#/definitions/x"},
            "port": {"type": "string", "minimum": 1},
            "bad_default": {"type": "integer", "default": "x"},
            "bad_enum": {"type": "string", "enum": [1]},
            "lookahead": {"type": "string", "pattern": "^(?!a)"},
        },
    }
    errors = "\n".join(_structural_errors(bad, "s"))
    for field in ("untyped", "list", "both", "nested", "ref", "port", "bad_default",
                  "bad_enum", "lookahead"):
        assert f".{field}" in errors, field


# -- CRD contract -------------------------------------------------------------------------
# kind -> (scope, plural, short names, printer columns, spec fields, required spec fields,
#          status fields). The controller's code reads and writes exactly these names.
CONTRACT: dict[str, dict[str, Any]] = {
    "Vpc": {
        "scope": "Cluster", "plural": "vpcs", "short": ["vpc"],
        "columns": ["Router", "Subnets", "Ready", "Age"],
        "spec": {"namespaces", "staticRoutes", "natOutgoing", "eipPool"}, "required": set(),
        "status": {"router", "lbGroup", "subnets", "transitIPs", "conditions"},
    },
    "Subnet": {
        "scope": "Cluster", "plural": "subnets", "short": ["subnet"],
        "columns": ["VPC", "CIDR", "Gateway", "Used", "Available", "Ready", "Age"],
        "spec": {"vpc", "cidrBlock", "gateway", "excludeIps", "namespaces", "natOutgoing",
                 "default", "mtu"},
        "required": {"cidrBlock"},
        "status": {"switch", "v4AvailableIPs", "v4UsingIPs", "v6AvailableIPs", "v6UsingIPs",
                   "conditions"},
    },
    "EipPool": {
        "scope": "Cluster", "plural": "eippools", "short": ["eip", "eippool"],
        "columns": ["CIDR", "Gateway", "Uplink", "Used", "Available", "Ready", "Age"],
        "spec": {"cidr", "gateway", "uplinkIP", "excludeIps", "providerNetwork", "gatewayNodes",
                 "vlan", "default"},
        "required": {"cidr", "gateway", "providerNetwork", "gatewayNodes"},
        "status": {"uplinkIP", "usedIPs", "availableIPs", "eips", "conditions"},
    },
    "Vnic": {
        "scope": "Namespaced", "plural": "vnics", "short": ["vnic"],
        "columns": ["Subnet", "Node", "IP", "MAC", "Type", "Ready", "Age"],
        "spec": {"subnet", "node", "type", "ip", "mac", "extraIPs", "extraIPCount",
                 "hostInterface"},
        "required": {"subnet", "node"},
        "status": {"ip", "mac", "extraIPs", "port", "logicalSwitch", "conditions"},
    },
    "YusurService": {
        "scope": "Namespaced", "plural": "yusurservices", "short": ["ysvc"],
        # Scope and Ready have priority 1 (kubectl get -o wide only).
        "columns": ["Type", "VPC", "VIP", "EIP", "Backends", "Scope", "Ready", "Age"],
        "spec": {"type", "scope", "vpc", "vpcs", "ports", "selector", "clusterIP", "eip",
                 "eipPool", "sessionAffinity", "sessionAffinityTimeoutSeconds", "healthCheck"},
        "required": {"type", "ports"},
        "status": {"clusterIP", "eip", "backends", "healthyBackends", "totalBackends",
                   "conditions"},
    },
    "NetworkProbe": {
        "scope": "Namespaced", "plural": "networkprobes", "short": ["np"],
        "columns": ["Service", "IP", "Port", "Protocol", "State", "Since", "Age"],
        "spec": {"service", "target", "ip", "port", "protocol", "vpc", "subnet", "interval",
                 "timeout", "successThreshold", "failureThreshold"},
        "required": {"ip"},
        "status": {"healthy", "state", "since", "reason", "conditions"},
    },
}


def test_every_contract_kind_has_one_crd() -> None:
    assert set(CRDS) == set(CONTRACT)
    assert {p.name for p in _files(CRD_DIR)} == {
        f"{GROUP}_{c['plural']}.yaml" for c in CONTRACT.values()}


@pytest.mark.parametrize("kind", sorted(CONTRACT))
def test_crd_shape(kind: str) -> None:
    crd, want = CRDS[kind], CONTRACT[kind]
    spec = crd["spec"]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{want['plural']}.{GROUP}"
    assert spec["group"] == GROUP
    assert spec["scope"] == want["scope"]
    names = spec["names"]
    assert names["kind"] == kind and names["listKind"] == f"{kind}List"
    assert names["plural"] == want["plural"] and names["singular"] == kind.lower()
    assert names["shortNames"] == want["short"]
    assert names["categories"] == ["ycloud"]
    assert [v["name"] for v in spec["versions"]] == ["v1"]
    version = spec["versions"][0]
    assert version["served"] is True and version["storage"] is True
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == want["columns"]


@pytest.mark.parametrize("kind", sorted(CONTRACT))
def test_crd_field_contract(kind: str) -> None:
    schema, want = _schema(kind), CONTRACT[kind]
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    spec = schema["properties"]["spec"]
    assert set(spec["properties"]) == want["spec"]
    assert set(spec.get("required", [])) == want["required"]
    assert set(schema["properties"]["status"]["properties"]) == want["status"]


@pytest.mark.parametrize("kind", sorted(CONTRACT))
def test_crd_schema_is_structural(kind: str) -> None:
    schema = _schema(kind)
    assert schema["type"] == "object"
    assert _structural_errors(schema, "openAPIV3Schema") == []


CONDITION_FIELDS = {"type", "status", "reason", "message", "lastTransitionTime",
                    "observedGeneration"}


@pytest.mark.parametrize("kind", sorted(CONTRACT))
def test_conditions_are_metav1_conditions(kind: str) -> None:
    conditions = _schema(kind)["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["properties"]) == CONDITION_FIELDS
    assert set(item["required"]) == CONDITION_FIELDS - {"observedGeneration"}
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"


def _walk_json_path(schema: dict[str, Any], json_path: str) -> dict[str, Any] | None:
    """Schema node a printer-column JSONPath ends on (filters step into array items)."""
    node = schema
    for token in re.findall(r"\.([A-Za-z0-9_]+)|\[[^\]]*\]", json_path):
        if token:
            node = node.get("properties", {}).get(token)
        else:
            node = node.get("items") if node.get("type") == "array" else None
        if node is None:
            return None
    return node


@pytest.mark.parametrize("kind", sorted(CONTRACT))
def test_printer_columns_point_at_schema_fields(kind: str) -> None:
    schema = _schema(kind)
    for column in CRDS[kind]["spec"]["versions"][0]["additionalPrinterColumns"]:
        path, typ = column["jsonPath"], column["type"]
        assert path.startswith("."), path
        if path == ".metadata.creationTimestamp":
            assert typ == "date"
            continue
        node = _walk_json_path(schema, path)
        assert node is not None, f"{column['name']}: {path} is not in the schema"
        want = {"string": {"string"}, "integer": {"integer"}, "number": {"number", "integer"},
                "boolean": {"boolean"}, "date": {"string"}}[typ]
        assert node.get("type") in want, f"{column['name']}: {path} is {node.get('type')}"
        if typ == "date":
            assert node.get("format") == "date-time"


def test_ysvc_printer_columns() -> None:
    columns = {c["name"]: c for c in
               CRDS["YusurService"]["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["VPC"]["jsonPath"] == ".spec.vpc"
    assert columns["VIP"]["jsonPath"] == ".status.clusterIP"
    assert columns["EIP"]["jsonPath"] == ".status.eip"
    assert columns["Backends"]["jsonPath"] == ".status.backends"
    assert all(columns[n].get("priority", 0) == 0
               for n in ("Type", "VPC", "VIP", "EIP", "Backends", "Age"))
