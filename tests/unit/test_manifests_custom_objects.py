"""Custom objects against their CRD, defaulted and validated as the API server would (admit):
every custom object of manifests/, the reference example of the design document, the
defaults, and objects the schemas must accept or reject. Every CEL rule of the CRDs has a
Python mirror.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.manifests_support import (
    ALL_OBJECTS,
    CEL_RULES,
    CRDS,
    DEFAULT_VPC,
    EXAMPLES,
    GROUP,
    Rejected,
    _id,
    _is_custom,
    _schema,
    admit,
)

CUSTOM_OBJECTS = [(p, o) for p, o in ALL_OBJECTS if _is_custom(o)]


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
