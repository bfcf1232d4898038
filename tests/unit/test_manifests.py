"""Static checks of manifests/: CRDs, cluster objects and the examples.

No cluster is involved. Built-in objects are validated with kubernetes-validate (strict, so
unknown fields fail like `kubectl apply --validate=strict`); CRDs are validated as
apiextensions.k8s.io/v1 objects and their openAPIV3Schema is checked against the rules the API
server applies to structural schemas; custom objects are validated against their CRD's schema
with jsonschema, after defaulting and after mapping the Kubernetes extensions
(x-kubernetes-int-or-string, unknown-field pruning, CEL rules) to something jsonschema and
Python understand. The examples are checked for consistency with each other and with the
controller's config (nodes, VPCs, subnets, pools, selectors, addresses).
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
CRD_DIR = MANIFESTS / "crds"
EXAMPLES = MANIFESTS / "examples"
GROUP = "iaas.yusur.io"
DEFAULT_VPC = "ovn-cluster"
SYSTEM_NAMESPACE = "ycloud-system"
# The oldest Kubernetes the manifests target (CEL validation rules on by default) and the
# newest kubernetes-validate knows.
K8S_VERSIONS = ("1.29", kubernetes_validate.latest_version())

# The reference example of the original design document (section 3.1, ysvc1.yaml), verbatim;
# the document lost its line breaks, the indentation is restored as it was there.
YSVC1_REFERENCE = """\
apiVersion: iaas.yusur.io/v1
kind: YusurService
metadata:
  name: ysvc1
spec:
  type: ClusterIP
  scope: vpc
  vpc: vpc1
  ports:
   - port: 5001
     name: iperf
     protocol: TCP
     targetPort: 5001
  selector:
   svc: svc1-ep
"""


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


BUILTIN_OBJECTS = [(p, o) for p, o in ALL_OBJECTS if not _is_custom(o)]
CUSTOM_OBJECTS = [(p, o) for p, o in ALL_OBJECTS if _is_custom(o)]


def _id(item: tuple[Path, dict[str, Any]]) -> str:
    path, obj = item
    ns = obj["metadata"].get("namespace")
    name = f"{ns}/{obj['metadata']['name']}" if ns else obj["metadata"]["name"]
    return f"{path.relative_to(ROOT)}:{obj['kind']}/{name}"


def _one(kind: str, name: str, objects: list[tuple[Path, dict[str, Any]]] = CLUSTER_OBJECTS):
    found = [o for _, o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind} {name}, found {len(found)}"
    return found[0]


# -- every file ---------------------------------------------------------------------------
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
INT_OR_STRING_ANYOF = [{"type": "integer"}, {"type": "string"}]
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


def _schema(kind: str) -> dict[str, Any]:
    return CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


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


# -- custom objects against their CRD -----------------------------------------------------
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


@pytest.mark.parametrize("item", CUSTOM_OBJECTS, ids=_id)
def test_custom_objects_validate_against_their_crd(item: tuple[Path, dict[str, Any]]) -> None:
    _, obj = item
    admit(obj)


def test_every_cel_rule_has_a_mirror() -> None:
    def rules(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for rule in node.get("x-kubernetes-validations", []):
                yield rule["rule"]
            for value in node.values():
                yield from rules(value)
        elif isinstance(node, list):
            for value in node:
                yield from rules(value)

    found = {rule for kind in CRDS for rule in rules(_schema(kind))}
    assert found <= CEL_RULES.keys()


def test_reference_ysvc1_validates_and_is_the_example() -> None:
    ysvc1 = yaml.safe_load(YSVC1_REFERENCE)
    stored = admit(ysvc1)
    assert stored["spec"]["ports"] == [
        {"port": 5001, "name": "iperf", "protocol": "TCP", "targetPort": 5001}]
    assert stored["spec"]["healthCheck"] == {
        "enabled": True, "interval": 5, "timeout": 3, "successCount": 1, "failureCount": 3}
    assert YSVC1_REFERENCE in (EXAMPLES / "80-reference-ysvc1.yaml").read_text(encoding="utf-8")
    assert "namespace" not in ysvc1["metadata"]


def test_defaults() -> None:
    subnet = admit({"apiVersion": f"{GROUP}/v1", "kind": "Subnet", "metadata": {"name": "s"},
                    "spec": {"cidrBlock": "10.9.0.0/24"}})
    assert subnet["spec"]["vpc"] == DEFAULT_VPC
    vnic = admit({"apiVersion": f"{GROUP}/v1", "kind": "Vnic",
                  "metadata": {"name": "v", "namespace": "n"},
                  "spec": {"subnet": "s", "node": "node1"}})
    assert vnic["spec"]["type"] == "vm"
    vpc = admit({"apiVersion": f"{GROUP}/v1", "kind": "Vpc", "metadata": {"name": "v"},
                 "spec": {"staticRoutes": [{"cidr": "0.0.0.0/0", "nextHop": "10.0.0.1"}]}})
    assert vpc["spec"]["staticRoutes"][0]["policy"] == "dst"
    ysvc = admit(_ysvc(ports=[{"port": 80}], healthCheck={"interval": 2}))
    assert ysvc["spec"]["ports"] == [{"port": 80, "protocol": "TCP"}]
    assert ysvc["spec"]["healthCheck"] == {
        "enabled": True, "interval": 2, "timeout": 3, "successCount": 1, "failureCount": 3}


def _ysvc(**spec: Any) -> dict[str, Any]:
    base = {"type": "ClusterIP", "scope": "vpc", "vpc": "vpc1",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"app": "web"}}
    base.update(spec)
    return {"apiVersion": f"{GROUP}/v1", "kind": "YusurService",
            "metadata": {"name": "t", "namespace": "demo"}, "spec": base}


def _obj(kind: str, spec: dict[str, Any], status: dict[str, Any] | None = None,
         namespaced: bool = False) -> dict[str, Any]:
    meta = {"name": "t", "namespace": "demo"} if namespaced else {"name": "t"}
    obj = {"apiVersion": f"{GROUP}/v1", "kind": kind, "metadata": meta, "spec": spec}
    if status is not None:
        obj["status"] = status
    return obj


READY = {"type": "Ready", "status": "True", "reason": "Synced", "message": "",
         "lastTransitionTime": "2024-05-01T10:00:00Z", "observedGeneration": 3}

ACCEPTED = {
    "dual-stack subnet": _obj("Subnet", {
        "cidrBlock": "10.1.1.0/24,fd00:10:1:1::/64", "gateway": "10.1.1.1,fd00:10:1:1::1",
        "excludeIps": ["10.1.1.2..10.1.1.9", "fd00:10:1:1::10..fd00:10:1:1::20", "10.1.1.100"],
        "mtu": 1400, "natOutgoing": True, "default": False, "namespaces": ["a", "b-2"]},
        {"switch": "t", "v4AvailableIPs": 250, "v4UsingIPs": 3,
         "v6AvailableIPs": 1.8446744073709552e19, "v6UsingIPs": 3, "conditions": [READY]}),
    "ipv6 subnet": _obj("Subnet", {"vpc": "vpc1", "cidrBlock": "fd00::/64"}),
    "vpc with routes": _obj("Vpc", {
        "namespaces": ["ns-vpc1"], "natOutgoing": True, "eipPool": "pool1",
        "staticRoutes": [{"cidr": "0.0.0.0/0", "nextHop": "10.1.1.254"},
                         {"cidr": "fd00::/64", "nextHop": "fd00::1", "policy": "src"},
                         {"cidr": "192.168.0.10", "nextHop": "10.1.1.254", "policy": "dst"}]},
        {"router": "vpc-t", "lbGroup": "vpc-t", "subnets": ["subnet1"],
         "transitIPs": {"pool1": "100.88.0.2"}, "conditions": [READY]}),
    "eip pool": _obj("EipPool", {
        "cidr": "172.18.0.0/24", "gateway": "172.18.0.1", "providerNetwork": "physnet",
        "gatewayNodes": ["gw1"], "vlan": 0},
        {"uplinkIP": "172.18.0.2", "usedIPs": 2, "availableIPs": 200,
         "eips": {"172.18.0.50": "Service/ns-vpc1/web-eip"}, "conditions": [READY]}),
    "bare-metal vnic": _obj("Vnic", {
        "subnet": "subnet1", "node": "node1", "type": "baremetal", "ip": "10.1.1.7,fd00::7",
        "mac": "0a:58:0a:01:01:07", "extraIPs": ["10.1.1.8"], "extraIPCount": 64},
        {"ip": "10.1.1.7", "mac": "0a:58:0a:01:01:07", "extraIPs": ["10.1.1.8"],
         "port": "t.demo", "logicalSwitch": "subnet1", "conditions": [READY]}, namespaced=True),
    "ysvc named target port": _ysvc(ports=[{"name": "http", "port": 80, "targetPort": "http"},
                                           {"name": "sctp", "port": 9, "protocol": "SCTP"}]),
    "ysvc full": _ysvc(type="LoadBalancer", scope="multi-vpc", vpcs=["vpc1", "vpc2"],
                       clusterIP="10.96.0.5", eip="172.18.0.61", eipPool="pool1",
                       sessionAffinity="ClientIP", sessionAffinityTimeoutSeconds=86400,
                       healthCheck={"enabled": False, "interval": 1, "timeout": 1,
                                    "successCount": 2, "failureCount": 5}),
    "ysvc status": {**_ysvc(), "status": {"clusterIP": "10.96.0.5", "eip": "172.18.0.61",
                                          "backends": "1/2", "healthyBackends": 1,
                                          "totalBackends": 2, "conditions": [READY]}},
    "network probe": _obj("NetworkProbe", {
        "service": "multi", "target": {"kind": "Pod", "name": "multi-1", "namespace": "ns-vpc1"},
        "ip": "10.1.1.5", "port": 8080, "protocol": "TCP", "vpc": "vpc1", "subnet": "subnet1",
        "interval": 2, "timeout": 1, "successThreshold": 1, "failureThreshold": 2},
        {"healthy": True, "state": "Online", "since": "2024-05-01T10:00:00Z",
         "reason": "", "conditions": [READY]}, namespaced=True),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_schema_accepts(name: str) -> None:
    admit(ACCEPTED[name])


def _with(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of obj with the dotted path set (digits index lists); value DELETE removes."""
    out = copy.deepcopy(obj)
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    node = out
    for key in keys[:-1]:
        node = node[key]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return out


DELETE = object()
YSVC = _ysvc()
SUBNET = ACCEPTED["dual-stack subnet"]
POOL = ACCEPTED["eip pool"]
VNIC = ACCEPTED["bare-metal vnic"]
VPC = ACCEPTED["vpc with routes"]
PROBE = ACCEPTED["network probe"]

REJECTED = {
    "ysvc port 70000": _with(YSVC, "spec.ports.0.port", 70000),
    "ysvc port 0": _with(YSVC, "spec.ports.0.port", 0),
    "ysvc type Foo": _with(YSVC, "spec.type", "Foo"),
    "ysvc without type": _with(YSVC, "spec.type", DELETE),
    "ysvc without ports": _with(YSVC, "spec.ports", DELETE),
    "ysvc empty ports": _with(YSVC, "spec.ports", []),
    "ysvc port without number": _with(YSVC, "spec.ports.0", {"name": "http"}),
    "ysvc port as string": _with(YSVC, "spec.ports.0.port", "80"),
    "ysvc protocol ICMP": _with(YSVC, "spec.ports.0.protocol", "ICMP"),
    "ysvc targetPort 70000": _with(YSVC, "spec.ports.0.targetPort", 70000),
    "ysvc targetPort 0": _with(YSVC, "spec.ports.0.targetPort", 0),
    "ysvc targetPort empty name": _with(YSVC, "spec.ports.0.targetPort", ""),
    "ysvc targetPort bool": _with(YSVC, "spec.ports.0.targetPort", True),
    "ysvc scope galaxy": _with(YSVC, "spec.scope", "galaxy"),
    "ysvc affinity Sticky": _with(YSVC, "spec.sessionAffinity", "Sticky"),
    "ysvc affinity timeout 0": _with(YSVC, "spec.sessionAffinityTimeoutSeconds", 0),
    "ysvc affinity timeout 86401": _with(YSVC, "spec.sessionAffinityTimeoutSeconds", 86401),
    "ysvc interval 0": _with(YSVC, "spec.healthCheck", {"interval": 0}),
    "ysvc eip not an ip": _with(YSVC, "spec.eip", "pool1"),
    "ysvc selector value not a string": _with(YSVC, "spec.selector", {"app": 1}),
    "ysvc unknown field": _with(YSVC, "spec.loadBalancerIP", "172.18.0.50"),
    "ysvc vpcs not a list": _with(YSVC, "spec.vpcs", "vpc1,vpc2"),
    "ysvc condition status Yes": {**YSVC, "status": {"conditions": [{**READY, "status": "Yes"}]}},
    "ysvc condition without reason": {
        **YSVC, "status": {"conditions": [{k: v for k, v in READY.items() if k != "reason"}]}},
    "subnet without cidrBlock": _with(SUBNET, "spec.cidrBlock", DELETE),
    "subnet cidr without prefix": _with(SUBNET, "spec.cidrBlock", "10.1.1.0"),
    "subnet cidr garbage": _with(SUBNET, "spec.cidrBlock", "ten.one/24"),
    "subnet three cidrs": _with(SUBNET, "spec.cidrBlock", "10.1.0.0/24,fd00::/64,10.2.0.0/24"),
    "subnet mtu 575": _with(SUBNET, "spec.mtu", 575),
    "subnet mtu 9001": _with(SUBNET, "spec.mtu", 9001),
    "subnet exclude range garbage": _with(SUBNET, "spec.excludeIps", ["10.1.1.1-10.1.1.9"]),
    "subnet bad namespace": _with(SUBNET, "spec.namespaces", ["Not_A_Namespace"]),
    "subnet with namespace": _with(SUBNET, "metadata.namespace", "default"),
    "subnet status ips as string": _with(SUBNET, "status.v4UsingIPs", "3"),
    "pool vlan 4095": _with(POOL, "spec.vlan", 4095),
    "pool vlan -1": _with(POOL, "spec.vlan", -1),
    "pool without gateway nodes": _with(POOL, "spec.gatewayNodes", []),
    "pool without provider network": _with(POOL, "spec.providerNetwork", DELETE),
    "pool provider network with colon": _with(POOL, "spec.providerNetwork", "physnet:br-ex"),
    "pool without gateway": _with(POOL, "spec.gateway", DELETE),
    "pool cidr without prefix": _with(POOL, "spec.cidr", "172.18.0.0"),
    "pool eips not a map": _with(POOL, "status.eips", ["172.18.0.50"]),
    "vnic type container": _with(VNIC, "spec.type", "container"),
    "vnic without node": _with(VNIC, "spec.node", DELETE),
    "vnic without subnet": _with(VNIC, "spec.subnet", DELETE),
    "vnic extraIPCount 65": _with(VNIC, "spec.extraIPCount", 65),
    "vnic bad mac": _with(VNIC, "spec.mac", "0a:58:0a:01:01"),
    "vnic extra ip range": _with(VNIC, "spec.extraIPs", ["10.1.1.8..10.1.1.9"]),
    "vpc route policy any": _with(VPC, "spec.staticRoutes.0.policy", "any"),
    "vpc route without nextHop": _with(VPC, "spec.staticRoutes.0.nextHop", DELETE),
    "vpc natOutgoing as string": _with(VPC, "spec.natOutgoing", "yes"),
    "probe port 65536": _with(PROBE, "spec.port", 65536),
    "probe without ip": _with(PROBE, "spec.ip", DELETE),
    "probe protocol SCTP": _with(PROBE, "spec.protocol", "SCTP"),
    "probe target kind Service": _with(PROBE, "spec.target.kind", "Service"),
    "probe state Maybe": _with(PROBE, "status.state", "Maybe"),
    "probe since not a time": _with(PROBE, "status.since", "yesterday"),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_schema_rejects(name: str) -> None:
    with pytest.raises(Rejected):
        admit(REJECTED[name])


def test_ysvc_port_70000_and_type_foo_are_rejected_by_the_schema() -> None:
    with pytest.raises(Rejected, match="70000 is greater than the maximum of 65535"):
        admit(_with(YSVC, "spec.ports.0.port", 70000))
    with pytest.raises(Rejected, match="'Foo' is not one of"):
        admit(_with(YSVC, "spec.type", "Foo"))


# -- RBAC ---------------------------------------------------------------------------------
READ = {"get", "list", "watch"}
OWN = READ | {"create", "update", "patch", "delete"}
STATUS = {"get", "update", "patch"}
EVENTS = {"create", "patch", "update"}
EXPECTED_CLUSTER_RULES = {
    ("", "namespaces"): READ,
    ("", "nodes"): READ | {"patch"},  # the node port's annotations (the node agent reads them)
    ("", "pods"): READ | {"patch"},
    ("", "services"): OWN,
    ("", "services/status"): STATUS,
    ("", "pods/status"): STATUS,
    ("discovery.k8s.io", "endpointslices"): OWN,
    ("", "events"): EVENTS,
    ("events.k8s.io", "events"): EVENTS,
    **{(GROUP, r): READ for r in ("vpcs", "subnets", "eippools", "vnics", "yusurservices")},
    **{(GROUP, f"{r}/status"): STATUS
       for r in ("vpcs", "subnets", "eippools", "vnics", "yusurservices", "networkprobes")},
    (GROUP, "networkprobes"): OWN,
}
EXPECTED_LEASE_RULES = {("coordination.k8s.io", "leases"): {"get", "create", "update"}}


def _rules(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def test_rbac_has_no_wildcards_and_no_cluster_admin() -> None:
    for _, obj in CLUSTER_OBJECTS:
        if obj["kind"] in ("ClusterRole", "Role"):
            for rule in obj["rules"]:
                for field in ("apiGroups", "resources", "verbs", "resourceNames",
                              "nonResourceURLs"):
                    assert not any("*" in v for v in rule.get(field, [])), (field, rule)
            assert "aggregationRule" not in obj
        if obj["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            assert obj["roleRef"]["name"] not in ("cluster-admin", "admin", "edit"), obj


def test_rbac_is_exactly_what_the_controller_uses() -> None:
    assert _rules(_one("ClusterRole", "ycloud-controller")) == EXPECTED_CLUSTER_RULES
    role = _one("Role", "ycloud-controller-leader-election")
    assert role["metadata"]["namespace"] == SYSTEM_NAMESPACE
    assert _rules(role) == EXPECTED_LEASE_RULES


def test_rbac_bindings_point_at_the_service_account() -> None:
    account = _one("ServiceAccount", "ycloud-controller")
    subject = {"kind": "ServiceAccount", "name": account["metadata"]["name"],
               "namespace": account["metadata"]["namespace"]}
    binding = _one("ClusterRoleBinding", "ycloud-controller")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": "ycloud-controller"}
    assert binding["subjects"] == [subject]
    binding = _one("RoleBinding", "ycloud-controller-leader-election")
    assert binding["metadata"]["namespace"] == SYSTEM_NAMESPACE
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "ycloud-controller-leader-election"}
    assert binding["subjects"] == [subject]


# -- Deployment, Service, ConfigMap -------------------------------------------------------
DEPLOYMENT = _one("Deployment", "ycloud-controller")
POD_SPEC = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = POD_SPEC["containers"][0]
CONFIGMAP = _one("ConfigMap", "ycloud-config")
CONFIG = yaml.safe_load(CONFIGMAP["data"]["config.yaml"])


def test_deployment_replicas_image_and_account() -> None:
    assert DEPLOYMENT["spec"]["replicas"] == 2
    assert len(POD_SPEC["containers"]) == 1
    assert CONTAINER["image"] == "ycloud-controller:0.1.0"
    assert POD_SPEC["serviceAccountName"] == "ycloud-controller"
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert DEPLOYMENT["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_deployment_command() -> None:
    assert CONTAINER["command"] + CONTAINER["args"] == [
        "ycloud-controller", "run", "--config", "/etc/ycloud/config.yaml",
        "--log-format", "json", "--http-port", "8080", "--leader-elect",
        "--lease-namespace", SYSTEM_NAMESPACE,
        "--ovn-nb-db", "$(OVN_NB_DB)", "--ovn-sb-db", "$(OVN_SB_DB)",
        "--ovn-ssl-key", "/etc/ycloud/ssl/tls.key", "--ovn-ssl-cert", "/etc/ycloud/ssl/tls.crt",
        "--ovn-ssl-ca", "/etc/ycloud/ssl/ca.crt"]
    env = {e["name"]: e for e in CONTAINER["env"]}
    for arg in CONTAINER["args"]:
        for var in re.findall(r"\$\((\w+)\)", arg):
            assert var in env, f"$({var}) is not an env var: Kubernetes would not expand it"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    for var, key in (("OVN_NB_DB", "ovn-nb-db"), ("OVN_SB_DB", "ovn-sb-db")):
        assert env[var]["valueFrom"] == {"configMapKeyRef": {"name": "ycloud-config", "key": key}}
        assert re.fullmatch(r"(ssl|tcp):[^:]+:\d+|unix:/\S+", CONFIGMAP["data"][key])


def test_deployment_probes_and_resources() -> None:
    ports = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = CONTAINER[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == 8080
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= CONTAINER["resources"][part].keys()


def test_deployment_security() -> None:
    """Non-root, read-only and within the `restricted` Pod Security Standard."""
    pod, ctr = POD_SPEC["securityContext"], CONTAINER["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 65532
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert ctr["runAsNonRoot"] is True and ctr["runAsUser"] == 65532
    assert ctr["readOnlyRootFilesystem"] is True
    assert ctr["allowPrivilegeEscalation"] is False
    assert ctr.get("privileged", False) is False
    assert ctr["capabilities"] == {"drop": ["ALL"]}
    assert ctr["seccompProfile"] == {"type": "RuntimeDefault"}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not POD_SPEC.get(host)
    allowed = {"configMap", "secret", "emptyDir", "projected", "downwardAPI"}
    for volume in POD_SPEC["volumes"]:
        assert set(volume) - {"name"} <= allowed, volume
    namespace = _one("Namespace", SYSTEM_NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_deployment_volumes() -> None:
    volumes = {v["name"]: v for v in POD_SPEC["volumes"]}
    mounts = {m["mountPath"]: m for m in CONTAINER["volumeMounts"]}
    config = mounts["/etc/ycloud/config.yaml"]
    assert volumes[config["name"]]["configMap"]["name"] == "ycloud-config"
    assert config["subPath"] == "config.yaml" and config["readOnly"] is True
    ssl = volumes[mounts["/etc/ycloud/ssl"]["name"]]["secret"]
    assert ssl["secretName"] == "ycloud-ovn-ssl" and ssl["optional"] is True
    assert ssl["defaultMode"] == 0o440  # group-readable: fsGroup 65532
    assert POD_SPEC["securityContext"]["fsGroup"] == 65532
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    for mount in CONTAINER["volumeMounts"]:
        assert mount["name"] in volumes


def test_deployment_replicas_spread() -> None:
    anti = POD_SPEC["affinity"]["podAntiAffinity"]
    terms = anti.get("requiredDuringSchedulingIgnoredDuringExecution", []) + [
        t["podAffinityTerm"] for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution",
                                               [])]
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert any(t["topologyKey"] == "kubernetes.io/hostname"
               and t["labelSelector"]["matchLabels"].items() <= labels.items() for t in terms)


def test_metrics_service() -> None:
    services = [o for _, o in CLUSTER_OBJECTS if o["kind"] == "Service"]
    assert len(services) == 1
    service = services[0]
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["name"] == "metrics" and port["port"] == 8080
    container_ports = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    assert container_ports.get(port["targetPort"], port["targetPort"]) == 8080


def test_config_keys() -> None:
    assert CONFIG == {
        "defaultVpc": DEFAULT_VPC,
        "joinSubnet": {"name": "subnet0", "cidr": "100.64.0.0/16"},
        "defaultSubnet": {"name": "ovn-default", "cidr": "10.16.0.0/16"},
        "serviceCidr": "10.96.0.0/12",
        "internalCidr": "100.88.0.0/16",
        "mtu": 1400,
    }
    assert set(CONFIGMAP["data"]) == {"config.yaml", "ovn-nb-db", "ovn-sb-db"}


# -- examples: consistency ------------------------------------------------------------------
def _net(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=True)


def _nets(cidr_block: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [_net(c) for c in cidr_block.split(",")]


def _ip_ranges(exclude: list[str]) -> list[tuple[Any, Any]]:
    out = []
    for item in exclude:
        first, _, last = item.partition("..")
        out.append((ipaddress.ip_address(first), ipaddress.ip_address(last or first)))
    return out


def _examples(kind: str) -> dict[tuple[str | None, str], dict[str, Any]]:
    namespaced = kind in ("Pod", "Service", "Vnic", "YusurService", "NetworkProbe")
    return {(o["metadata"].get("namespace", "default") if namespaced else None,
             o["metadata"]["name"]): o for o in EXAMPLE_OBJECTS if o["kind"] == kind}


NODES = {name for _, name in _examples("Node")}
NAMESPACES = {name for _, name in _examples("Namespace")} | {"default"}
VPCS = {name: o for (_, name), o in _examples("Vpc").items()}
SUBNETS = {name: o for (_, name), o in _examples("Subnet").items()}
POOLS = {name: o for (_, name), o in _examples("EipPool").items()}
PODS = _examples("Pod")
VNICS = _examples("Vnic")
SERVICES = _examples("Service")
YSVCS = _examples("YusurService")
# Subnets the controller makes from its config, as Subnet-like specs.
CONFIG_SUBNETS = {
    CONFIG[key]["name"]: {"vpc": DEFAULT_VPC, "cidrBlock": CONFIG[key]["cidr"]}
    for key in ("defaultSubnet", "joinSubnet")
}
SUBNET_SPECS = {**CONFIG_SUBNETS, **{n: _defaulted(o)["spec"] for n, o in SUBNETS.items()}}


def test_examples_match_the_lab() -> None:
    assert NODES == {"node1", "node2", "gw1", "gw2"}
    assert NAMESPACES == {"ns-vpc1", "ns-vpc2", "demo", "default"}
    assert set(VPCS) == {"vpc1", "vpc2"}
    assert {n: (s["vpc"], s["cidrBlock"]) for n, s in SUBNET_SPECS.items() if n in SUBNETS} == {
        "subnet1": ("vpc1", "10.1.1.0/24"), "subnet2": ("vpc1", "10.1.2.0/24"),
        "subnet3": ("vpc2", "10.2.1.0/24")}
    pool = POOLS["pool1"]["spec"]
    assert pool == {"cidr": "172.18.0.0/24", "gateway": "172.18.0.1", "uplinkIP": "172.18.0.2",
                    "excludeIps": ["172.18.0.1..172.18.0.20", "172.18.0.100..172.18.0.120"],
                    "providerNetwork": "physnet", "gatewayNodes": ["gw1", "gw2"],
                    "default": True}
    external_host = ipaddress.ip_address("172.18.0.100")
    assert any(a <= external_host <= b for a, b in _ip_ranges(pool["excludeIps"]))


def test_examples_scenarios() -> None:
    def pod(ns: str, name: str) -> tuple[str, dict[str, str]]:
        obj = PODS[(ns, name)]
        return obj["spec"]["nodeName"], obj["metadata"].get("labels", {})

    assert pod("ns-vpc1", "web-1") == ("node1", {"app": "web"})
    assert pod("ns-vpc1", "web-2") == ("node2", {"app": "web"})
    assert pod("ns-vpc1", "client-1")[0] == "node1"
    assert PODS[("ns-vpc1", "client-1")]["metadata"]["annotations"] == {
        "ycloud.io/subnet": "subnet2"}
    assert pod("ns-vpc2", "client-2")[0] == "node2"
    assert pod("default", "nginx-1") == ("node1", {"app": "nginx"})
    assert pod("default", "nginx-2") == ("node2", {"app": "nginx"})
    assert pod("ns-vpc1", "multi-1") == ("node1", {"app": "multi"})
    assert pod("ns-vpc2", "multi-2") == ("node2", {"app": "multi"})
    assert pod("ns-vpc1", "iperf-1") == ("node1", {"svc": "svc1-ep"})

    web = SERVICES[("ns-vpc1", "web")]["spec"]
    assert web["clusterIP"] == "10.96.10.10" and web["selector"] == {"app": "web"}
    assert {(p["protocol"], p["port"], p["targetPort"]) for p in web["ports"]} == {
        ("TCP", 80, 8080), ("UDP", 53, 5353)}
    nginx = SERVICES[("default", "nginx")]["spec"]
    assert nginx["clusterIP"] == "10.96.20.20" and nginx["selector"] == {"app": "nginx"}
    assert [(p["protocol"], p["port"], p["targetPort"]) for p in nginx["ports"]] == [
        ("TCP", 80, 8080)]
    eip = SERVICES[("ns-vpc1", "web-eip")]
    assert eip["metadata"]["annotations"]["ycloud.io/eip-pool"] == "pool1"
    assert eip["spec"]["type"] == "LoadBalancer" and eip["spec"]["loadBalancerIP"] == "172.18.0.50"
    assert eip["spec"]["clusterIP"] == "10.96.10.11" and eip["spec"]["selector"] == {"app": "web"}
    assert [(p["protocol"], p["port"], p["targetPort"]) for p in eip["spec"]["ports"]] == [
        ("TCP", 80, 8080)]
    multi = admit(YSVCS[("demo", "multi")])["spec"]
    assert (multi["type"], multi["scope"], multi["vpcs"]) == ("LoadBalancer", "multi-vpc",
                                                              ["vpc1", "vpc2"])
    assert (multi["eip"], multi["eipPool"], multi["selector"]) == ("172.18.0.60", "pool1",
                                                                   {"app": "multi"})
    assert multi["ports"] == [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]
    assert multi["healthCheck"]["interval"] == 2 and multi["healthCheck"]["failureCount"] == 2
    vm = VNICS[("ns-vpc1", "vm-1")]
    assert vm["spec"] == {"subnet": "subnet1", "node": "node2", "type": "vm",
                          "extraIPs": ["10.1.1.200"]}
    assert vm["metadata"]["labels"] == {"svc": "svc1-ep"}
    assert ("default", "ysvc1") in YSVCS


def test_examples_reference_existing_nodes_and_namespaces() -> None:
    for obj in EXAMPLE_OBJECTS:
        if "namespace" in obj["metadata"]:
            assert obj["metadata"]["namespace"] in NAMESPACES, obj["metadata"]
    for (ns, name), pod in PODS.items():
        assert pod["spec"].get("nodeName") in NODES, f"pod {ns}/{name}"
    for (ns, name), vnic in VNICS.items():
        assert vnic["spec"]["node"] in NODES, f"vnic {ns}/{name}"
        assert vnic["spec"]["subnet"] in SUBNETS, f"vnic {ns}/{name}"
    for name, pool in POOLS.items():
        assert set(pool["spec"]["gatewayNodes"]) <= NODES, name
    for name, vpc in VPCS.items():
        assert set(vpc["spec"].get("namespaces", [])) <= NAMESPACES, name
    for name, subnet in SUBNETS.items():
        assert set(subnet["spec"].get("namespaces", [])) <= NAMESPACES, name


def test_example_services_are_plain_objects() -> None:
    """No cluster allocates anything for `ycloud-controller sync`: addresses are explicit."""
    service_net = _net(CONFIG["serviceCidr"])
    ips = [s["spec"]["clusterIP"] for s in SERVICES.values()]
    assert len(ips) == len(set(ips))
    for ip in ips:
        assert ipaddress.ip_address(ip) in service_net


def test_example_subnets_belong_to_known_vpcs_and_do_not_overlap() -> None:
    for name, spec in SUBNET_SPECS.items():
        assert spec["vpc"] in VPCS or spec["vpc"] == DEFAULT_VPC, name
        nets = _nets(spec["cidrBlock"])
        if spec.get("gateway"):
            for gateway, net in zip(spec["gateway"].split(","), nets, strict=True):
                assert ipaddress.ip_address(gateway) in net, name
        for first, last in _ip_ranges(spec.get("excludeIps", [])):
            assert any(first in net and last in net for net in nets), name
    by_vpc: dict[str, list[tuple[str, Any]]] = {}
    for name, spec in SUBNET_SPECS.items():
        by_vpc.setdefault(spec["vpc"], []).extend((name, n) for n in _nets(spec["cidrBlock"]))
    for vpc, nets in by_vpc.items():
        _assert_disjoint(nets, f"subnets of {vpc}")
    # Backends of one multi-VPC service must be told apart by address (bare-IP LB backends).
    for key, ysvc in YSVCS.items():
        if ysvc["spec"].get("scope") == "multi-vpc":
            _assert_disjoint([n for v in ysvc["spec"]["vpcs"] for n in by_vpc.get(v, [])],
                             f"subnets of the VPCs of {key}")
    # And nothing may overlap the controller's own ranges or the external network.
    reserved = [("serviceCidr", _net(CONFIG["serviceCidr"])),
                ("internalCidr", _net(CONFIG["internalCidr"]))]
    reserved += [(f"EipPool {n}", _net(p["spec"]["cidr"])) for n, p in POOLS.items()]
    for name, spec in SUBNET_SPECS.items():
        _assert_disjoint(reserved + [(name, n) for n in _nets(spec["cidrBlock"])], name)


def _assert_disjoint(nets: list[tuple[str, Any]], what: str) -> None:
    for i, (name_a, a) in enumerate(nets):
        for name_b, b in nets[i + 1:]:
            assert a.version != b.version or not a.overlaps(b), \
                f"{what}: {name_a} {a} overlaps {name_b} {b}"


def _subnet_of_pod(namespace: str, pod: dict[str, Any]) -> str:
    annotated = pod["metadata"].get("annotations", {}).get("ycloud.io/subnet")
    if annotated:
        return annotated
    bound = [n for n, s in SUBNET_SPECS.items() if namespace in s.get("namespaces", [])]
    assert len(bound) <= 1, f"namespace {namespace} is bound to several subnets: {bound}"
    return bound[0] if bound else CONFIG["defaultSubnet"]["name"]


def _vpc_of_namespace(namespace: str) -> str:
    bound = [n for n, v in VPCS.items() if namespace in v["spec"].get("namespaces", [])]
    assert len(bound) <= 1, f"namespace {namespace} is bound to several VPCs: {bound}"
    return bound[0] if bound else DEFAULT_VPC


def test_example_pods_land_in_their_namespace_vpc() -> None:
    for (ns, name), pod in PODS.items():
        subnet = _subnet_of_pod(ns, pod)
        assert subnet in SUBNET_SPECS, f"pod {ns}/{name}: unknown subnet {subnet}"
        assert SUBNET_SPECS[subnet]["vpc"] == _vpc_of_namespace(ns), f"pod {ns}/{name}"
    for (ns, name), vnic in VNICS.items():
        spec = vnic["spec"]
        assert SUBNET_SPECS[spec["subnet"]]["vpc"] == _vpc_of_namespace(ns), f"vnic {ns}/{name}"
        nets = _nets(SUBNET_SPECS[spec["subnet"]]["cidrBlock"])
        for ip in spec.get("extraIPs", []) + ([spec["ip"]] if spec.get("ip") else []):
            assert any(ipaddress.ip_address(ip) in net for net in nets), f"vnic {ns}/{name} {ip}"


def _backends(selector: dict[str, str], namespaces: set[str] | None,
              vpcs: set[str] | None) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(kind, namespace, name, object) of the pods and vnics a selector picks."""
    out = []
    for kind, objects in (("Pod", PODS), ("Vnic", VNICS)):
        for (ns, name), obj in objects.items():
            if namespaces is not None and ns not in namespaces:
                continue
            if kind == "Pod":
                vpc = SUBNET_SPECS[_subnet_of_pod(ns, obj)]["vpc"]
            else:
                vpc = SUBNET_SPECS[obj["spec"]["subnet"]]["vpc"]
            if vpcs is not None and vpc not in vpcs:
                continue
            if selector.items() <= obj["metadata"].get("labels", {}).items():
                out.append((kind, ns, name, obj))
    return out


def _ysvc_vpcs(spec: dict[str, Any]) -> set[str]:
    scope = spec.get("scope", "vpc")
    if scope == "multi-vpc":
        return set(spec["vpcs"])
    if scope == "cluster":
        return {DEFAULT_VPC}
    return {spec["vpc"]}


def test_example_selectors_match_backends() -> None:
    """Services pick pods (and vnics) of their namespace; a YusurService picks pods and vnics
    of every namespace whose VPC is in its scope."""
    for (ns, name), service in SERVICES.items():
        backends = _backends(service["spec"]["selector"], {ns}, None)
        assert backends, f"Service {ns}/{name} selects nothing"
        _assert_target_ports(service["spec"]["ports"], backends, f"Service {ns}/{name}")
    for (ns, name), ysvc in YSVCS.items():
        spec = admit(ysvc)["spec"]
        vpcs = _ysvc_vpcs(spec)
        assert vpcs <= set(VPCS) | {DEFAULT_VPC}, f"YusurService {ns}/{name}: unknown VPC"
        backends = _backends(spec["selector"], None, vpcs)
        assert backends, f"YusurService {ns}/{name} selects nothing"
        assert {SUBNET_SPECS[_subnet_of_pod(b_ns, obj) if kind == "Pod"
                             else obj["spec"]["subnet"]]["vpc"]
                for kind, b_ns, _, obj in backends} == vpcs, f"YusurService {ns}/{name}"
        _assert_target_ports(spec["ports"], backends, f"YusurService {ns}/{name}")


def _assert_target_ports(ports: list[dict[str, Any]], backends: list[Any], what: str) -> None:
    """Every numeric targetPort is a declared container port of every selected pod."""
    for port in ports:
        target = port.get("targetPort", port["port"])
        protocol = port.get("protocol", "TCP")
        for kind, ns, name, obj in backends:
            declared = {(p["containerPort"], p.get("protocol", "TCP"))
                        for c in obj["spec"].get("containers", []) for p in c.get("ports", [])}
            if kind == "Pod" and declared and isinstance(target, int):
                assert (target, protocol) in declared, f"{what}: {ns}/{name} lacks {target}"


def test_example_eips_come_from_their_pool() -> None:
    wanted: list[tuple[str, str, str]] = []  # (what, pool, eip)
    for (ns, name), service in SERVICES.items():
        if service["spec"]["type"] == "LoadBalancer":
            pool = service["metadata"].get("annotations", {}).get("ycloud.io/eip-pool")
            wanted.append((f"Service {ns}/{name}", pool, service["spec"]["loadBalancerIP"]))
    for (ns, name), ysvc in YSVCS.items():
        if ysvc["spec"]["type"] == "LoadBalancer":
            wanted.append((f"YusurService {ns}/{name}", ysvc["spec"].get("eipPool"),
                           ysvc["spec"]["eip"]))
    assert len(wanted) == 2
    defaults = [n for n, p in POOLS.items() if p["spec"].get("default")]
    assert len(defaults) == 1
    eips = [eip for _, _, eip in wanted]
    assert len(eips) == len(set(eips)), "an EIP is used twice"
    for what, pool_name, eip in wanted:
        pool = POOLS[pool_name or defaults[0]]["spec"]
        ip = ipaddress.ip_address(eip)
        assert ip in _net(pool["cidr"]), what
        assert not any(a <= ip <= b for a, b in _ip_ranges(pool["excludeIps"])), what
        assert eip not in (pool["gateway"], pool["uplinkIP"]), what
    for pool in POOLS.values():
        spec = pool["spec"]
        for ip in (spec["gateway"], spec["uplinkIP"]):
            assert ipaddress.ip_address(ip) in _net(spec["cidr"])
