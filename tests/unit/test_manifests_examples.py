"""manifests/examples, checked for consistency with each other and with the controller's
config: the lab's nodes, namespaces, VPCs, subnets and pools, the scenarios, selectors that
match backends with their target ports, addresses inside their subnets and EIPs from their
pool.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from tests.unit.manifests_support import (
    CONFIG,
    DEFAULT_VPC,
    EXAMPLE_OBJECTS,
    _defaulted,
    admit,
)


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
