"""ycloud_controller.api: CRD and Service views, and the reason each bad input is refused."""

from __future__ import annotations

import json
from ipaddress import ip_address, ip_network
from typing import Any

import pytest

from ycloud_controller import keys
from ycloud_controller.api import common
from ycloud_controller.api.common import Invalid
from ycloud_controller.api.eippool import parse_eippool
from ycloud_controller.api.service import (
    DEFAULT_AFFINITY_TIMEOUT,
    HealthCheck,
    ServicePort,
    parse_health,
    parse_ports,
    parse_service,
)
from ycloud_controller.api.subnet import config_subnet, parse_subnet
from ycloud_controller.api.vnic import parse_vnic
from ycloud_controller.api.vpc import StaticRoute, parse_vpc
from ycloud_controller.api.yusurservice import parse_yusurservice

DEFAULT_VPC = "ovn-cluster"


def obj(name: str, spec: Any, namespace: str | None = None, **md: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, **md}
    if namespace:
        metadata["namespace"] = namespace
    return {"metadata": metadata, "spec": spec}


def reason(fn, *args) -> str:
    with pytest.raises(Invalid) as info:
        fn(*args)
    assert info.value.message == str(info.value)
    return info.value.reason


# -- common ----------------------------------------------------------------------------------------
def test_object_helpers():
    o = obj("a", {}, namespace="ns")
    assert common.name_of(o) == "a" and common.namespace_of(o) == "ns"
    assert common.key_of(o) == "ns/a"
    assert common.key_of(obj("c", {})) == "c"
    assert common.spec({"metadata": {}}) == {}
    assert reason(common.spec, {"spec": "x"}) == "InvalidSpec"


def test_parse_cidrs():
    assert common.parse_cidrs("10.0.0.0/24", "f") == (ip_network("10.0.0.0/24"),)
    assert common.parse_cidrs(" 10.0.0.0/24 , fd00::/64", "f") == (
        ip_network("10.0.0.0/24"), ip_network("fd00::/64"))
    for bad in ("", None, 5, "10.0.0.1/24", "10.0.0.0/33", "banana", "10.0.0.0/24,10.1.0.0/24",
                "fd00::/64,fd01::/64", "10.0.0.0/31"):
        assert reason(common.parse_cidrs, bad, "f") == "InvalidCIDR", bad
    assert common.parse_cidrs("10.0.0.1/32", "f", 1) == (ip_network("10.0.0.1/32"),)


def test_parse_ip_and_ranges():
    assert common.parse_ip(" 10.0.0.1 ", "f") == ip_address("10.0.0.1")
    for text in ("0.0.0.0", "255.255.255.255", "10.96.0.10", "fd00::10", "::ffff:10.0.0.1"):
        parsed = common.parse_ip(text, "f")
        assert (type(parsed), parsed, str(parsed)) == (type(ip_address(text)), ip_address(text),
                                                       str(ip_address(text)))
    for bad in ("10.0.0.01", "1.2.3.4/32", "1.2.3", "", None):
        assert reason(common.parse_ip, bad, "f") == "InvalidIP", bad
    assert reason(common.parse_ip, "10.0.0.256", "f") == "InvalidIP"
    assert common.parse_ranges(["10.0.0.1", "10.0.0.5..10.0.0.9"], "f") == [
        (ip_address("10.0.0.1"), ip_address("10.0.0.1")),
        (ip_address("10.0.0.5"), ip_address("10.0.0.9"))]
    assert reason(common.parse_ranges, ["10.0.0.9..10.0.0.5"], "f") == "InvalidRange"
    assert reason(common.parse_ranges, ["10.0.0.1..fd00::1"], "f") == "InvalidRange"
    assert reason(common.parse_ranges, ["x..10.0.0.1"], "f") == "InvalidIP"


def test_str_list_and_scalar_fields():
    assert common.str_list("a, b,,c", "f") == ("a", "b", "c")
    assert common.str_list(["a", "b"], "f") == ("a", "b")
    assert common.str_list(None, "f") == ()
    assert reason(common.str_list, [1], "f") == "InvalidSpec"
    assert common.bool_field(None, "f", True) is True
    assert reason(common.bool_field, "yes", "f") == "InvalidSpec"
    assert common.int_field(5, "f", 1, 10) == 5
    assert common.int_field(None, "f", 1, 10, 7) == 7
    for bad in (0, 11, True, "5", 5.0):
        assert reason(common.int_field, bad, "f", 1, 10) == "InvalidSpec", bad


def test_overlaps_and_net_of():
    a, b = ip_network("10.0.0.0/16"), ip_network("10.0.1.0/24")
    assert common.overlaps([a], [b])
    assert not common.overlaps([a], [ip_network("10.1.0.0/24")])
    assert not common.overlaps([a], [ip_network("fd00::/64")])  # families never overlap
    assert common.net_of(ip_address("10.0.1.5"), [ip_network("fd00::/64"), b]) == b
    assert common.net_of(ip_address("10.9.0.1"), [a, b]) is None


def test_selector_matches():
    assert common.selector_matches({"app": "web"}, {"app": "web", "tier": "x"})
    assert not common.selector_matches({"app": "web"}, {"app": "db"})
    assert not common.selector_matches({"app": "web"}, None)
    assert common.selector_matches((("app", "web"),), {"app": "web"})
    assert common.selector_matches({}, {})


# -- Vpc -------------------------------------------------------------------------------------------
def test_vpc_view():
    view = parse_vpc(obj("vpc1", {
        "namespaces": ["ns1", "ns2"], "natOutgoing": True, "eipPool": "p1",
        "staticRoutes": [{"cidr": "0.0.0.0/0", "nextHop": "10.0.0.254"},
                         {"cidr": "10.5.0.0/16", "nextHop": "10.0.0.253", "policy": "src"},
                         {"cidr": "fd00::/64", "nextHop": "fd01::1", "policy": "dst-ip"}]}))
    assert view.name == "vpc1"
    assert view.namespaces == ("ns1", "ns2")
    assert view.nat_outgoing is True and view.eip_pool == "p1"
    assert view.routes == (StaticRoute("0.0.0.0/0", "10.0.0.254", "dst-ip"),
                           StaticRoute("10.5.0.0/16", "10.0.0.253", "src-ip"),
                           StaticRoute("fd00::/64", "fd01::1", "dst-ip"))


def test_vpc_minimal():
    view = parse_vpc(obj("v", None))
    assert view.namespaces == () and view.routes == () and view.eip_pool is None


@pytest.mark.parametrize("spec,why", [
    ({"staticRoutes": {"cidr": "0.0.0.0/0"}}, "InvalidRoute"),
    ({"staticRoutes": ["x"]}, "InvalidRoute"),
    ({"staticRoutes": [{"cidr": "10.0.0.1/24", "nextHop": "10.0.0.1"}]}, "InvalidCIDR"),
    ({"staticRoutes": [{"cidr": "10.0.0.0/24", "nextHop": "nope"}]}, "InvalidIP"),
    ({"staticRoutes": [{"cidr": "10.0.0.0/24", "nextHop": "fd00::1"}]}, "InvalidRoute"),
    ({"staticRoutes": [{"cidr": "10.0.0.0/24", "nextHop": "10.0.0.1", "policy": "x"}]},
     "InvalidRoute"),
    ({"namespaces": [1]}, "InvalidSpec"),
    ({"natOutgoing": "yes"}, "InvalidSpec"),
])
def test_vpc_invalid(spec, why):
    assert reason(parse_vpc, obj("v", spec)) == why


# -- Subnet ----------------------------------------------------------------------------------------
def test_subnet_view():
    view = parse_subnet(obj("s1", {
        "cidrBlock": "10.1.0.0/24", "gateway": "10.1.0.254", "vpc": "vpc1",
        "excludeIps": ["10.1.0.2..10.1.0.9", "10.1.0.100"], "namespaces": "a,b",
        "natOutgoing": False, "mtu": 1300}), DEFAULT_VPC)
    assert view.name == "s1" and view.vpc == "vpc1"
    assert view.cidrs == (ip_network("10.1.0.0/24"),)
    assert view.gateways == (ip_address("10.1.0.254"),)
    assert view.cidr_strs == ("10.1.0.0/24",) and view.gateway_strs == ("10.1.0.254",)
    assert view.excludes == ((ip_address("10.1.0.2"), ip_address("10.1.0.9")),
                             (ip_address("10.1.0.100"), ip_address("10.1.0.100")))
    assert view.namespaces == ("a", "b")
    assert view.nat_outgoing is False and view.mtu == 1300 and view.default is False


def test_subnet_defaults():
    view = parse_subnet(obj("s1", {"cidrBlock": "10.1.0.0/24"}), DEFAULT_VPC)
    assert view.vpc == DEFAULT_VPC
    assert view.gateways == (ip_address("10.1.0.1"),)
    assert view.mtu is None and view.nat_outgoing is None


def test_subnet_dual_stack_gateways_by_family():
    view = parse_subnet(obj("s1", {"cidrBlock": "fd00::/64,10.1.0.0/24",
                                   "gateway": "10.1.0.254"}), DEFAULT_VPC)
    assert view.gateways == (ip_address("fd00::1"), ip_address("10.1.0.254"))
    view = parse_subnet(obj("s1", {"cidrBlock": "10.1.0.0/24,fd00::/64",
                                   "gateway": ["fd00::ff", "10.1.0.1"]}), DEFAULT_VPC)
    assert view.gateways == (ip_address("10.1.0.1"), ip_address("fd00::ff"))


def test_subnet_probe_sources():
    view = parse_subnet(obj("s", {"cidrBlock": "10.1.0.0/24,fd00::/120"}), DEFAULT_VPC)
    assert view.probe_sources() == (ip_address("10.1.0.254"), ip_address("fd00::ff"))
    # skips the gateway and excluded addresses
    view = parse_subnet(obj("s", {"cidrBlock": "10.1.0.0/24", "gateway": "10.1.0.254",
                                  "excludeIps": ["10.1.0.250..10.1.0.253"]}), DEFAULT_VPC)
    assert view.probe_sources() == (ip_address("10.1.0.249"),)


@pytest.mark.parametrize("spec,why", [
    ({}, "InvalidCIDR"),
    ({"cidrBlock": "10.1.0.0/33"}, "InvalidCIDR"),
    ({"cidrBlock": "10.1.0.5/24"}, "InvalidCIDR"),
    ({"cidrBlock": "10.1.0.0/24,10.2.0.0/24"}, "InvalidCIDR"),  # two v4
    ({"cidrBlock": "10.1.0.0/24", "gateway": "10.2.0.1"}, "GatewayOutsideCIDR"),
    ({"cidrBlock": "10.1.0.0/24", "gateway": "10.1.0.0"}, "GatewayOutsideCIDR"),
    ({"cidrBlock": "10.1.0.0/24", "gateway": "10.1.0.255"}, "GatewayOutsideCIDR"),
    ({"cidrBlock": "10.1.0.0/24", "gateway": "fd00::1"}, "GatewayOutsideCIDR"),  # v4/v6 mix
    ({"cidrBlock": "fd00::/64", "gateway": "10.1.0.1"}, "GatewayOutsideCIDR"),
    ({"cidrBlock": "10.1.0.0/24", "gateway": "x"}, "InvalidIP"),
    ({"cidrBlock": "10.1.0.0/24", "excludeIps": ["10.1.0.9..10.1.0.1"]}, "InvalidRange"),
    ({"cidrBlock": "10.1.0.0/24", "mtu": 100}, "InvalidSpec"),
    ({"cidrBlock": "10.1.0.0/24", "default": "yes"}, "InvalidSpec"),
])
def test_subnet_invalid(spec, why):
    assert reason(parse_subnet, obj("s1", spec), DEFAULT_VPC) == why


@pytest.mark.parametrize("name", ["ext-p1", "eipts-p1", "svcgw-p1"])
def test_subnet_reserved_names(name):
    assert reason(parse_subnet, obj(name, {"cidrBlock": "10.1.0.0/24"}),
                  DEFAULT_VPC) == "ReservedName"


def test_config_subnet():
    join = config_subnet("subnet0", "100.64.0.0/16", DEFAULT_VPC)
    assert join.gateways == (ip_address("100.64.0.1"),) and not join.default
    dflt = config_subnet("ovn-default", "10.16.0.0/16,fd16::/64", DEFAULT_VPC)
    assert dflt.default and dflt.vpc == DEFAULT_VPC
    assert dflt.gateways == (ip_address("10.16.0.1"), ip_address("fd16::1"))


# -- EipPool ---------------------------------------------------------------------------------------
POOL = {"cidr": "192.168.100.0/24", "gateway": "192.168.100.1", "providerNetwork": "physnet1",
        "gatewayNodes": ["n1", "n2"]}


def test_eippool_view():
    view = parse_eippool(obj("p1", {**POOL, "uplinkIP": "192.168.100.2", "vlan": 100,
                                    "excludeIps": ["192.168.100.200..192.168.100.210"],
                                    "default": True}))
    assert view.name == "p1" and view.cidr == ip_network("192.168.100.0/24")
    assert view.gateway == ip_address("192.168.100.1")
    assert view.uplink_ip == ip_address("192.168.100.2")
    assert view.provider == "physnet1" and view.gateway_nodes == ("n1", "n2")
    assert view.vlan == 100 and view.default
    assert view.contains(ip_address("192.168.100.50"))
    assert not view.contains(ip_address("192.168.101.1"))
    assert not view.contains(ip_address("fd00::1"))


def test_eippool_defaults():
    view = parse_eippool(obj("p1", POOL))
    assert view.uplink_ip is None and view.vlan is None and not view.default
    assert view.excludes == ()


@pytest.mark.parametrize("change,why", [
    ({"cidr": "192.168.100.0/24,fd00::/64"}, "InvalidCIDR"),
    ({"cidr": "192.168.100.1/24"}, "InvalidCIDR"),
    ({"gateway": "192.168.200.1"}, "GatewayOutsideCIDR"),
    ({"uplinkIP": "192.168.100.1"}, "InvalidUplink"),
    ({"uplinkIP": "10.0.0.1"}, "InvalidUplink"),
    ({"providerNetwork": ""}, "InvalidSpec"),
    ({"gatewayNodes": []}, "InvalidSpec"),
    ({"gatewayNodes": ["n1", "n1"]}, "InvalidSpec"),
    ({"vlan": 4095}, "InvalidSpec"),
])
def test_eippool_invalid(change, why):
    assert reason(parse_eippool, obj("p1", {**POOL, **change})) == why


# -- Vnic ------------------------------------------------------------------------------------------
def test_vnic_view():
    view = parse_vnic(obj("vm1", {"subnet": "s1", "node": "n1", "type": "baremetal",
                                  "ip": "10.1.0.5", "mac": "0A:00:00:00:00:01",
                                  "extraIPs": ["10.1.0.6"], "extraIPCount": 2},
                          namespace="ns", labels={"app": "db"}))
    assert (view.name, view.namespace, view.subnet, view.node) == ("vm1", "ns", "s1", "n1")
    assert view.type == "baremetal"
    assert view.ip == ip_address("10.1.0.5")
    assert view.mac == "0a:00:00:00:00:01"
    assert view.extra_ips == (ip_address("10.1.0.6"),) and view.extra_count == 2
    assert view.labels == (("app", "db"),)
    assert view.host_interface is None


def test_vnic_host_interface():
    view = parse_vnic(obj("vm1", {"subnet": "s1", "node": "n1", "hostInterface": "tap-vm1"}))
    assert view.host_interface == "tap-vm1"


def test_vnic_defaults():
    view = parse_vnic(obj("vm1", {"subnet": "s1", "node": "n1"}))
    assert view.type == "vm" and view.ip is None and view.mac is None
    assert view.namespace == "default" and view.extra_count == 0


@pytest.mark.parametrize("change,why", [
    ({"subnet": None}, "InvalidSpec"),
    ({"node": ""}, "InvalidSpec"),
    ({"type": "container"}, "InvalidSpec"),
    ({"ip": "10.1.0.300"}, "InvalidIP"),
    ({"mac": "0a:00:00:00:00"}, "InvalidMAC"),
    ({"mac": "01:00:5e:00:00:01"}, "InvalidMAC"),  # multicast
    ({"extraIPCount": 65}, "InvalidSpec"),
    ({"hostInterface": "a-name-of-16-chr"}, "InvalidSpec"),
    ({"hostInterface": "eth0/1"}, "InvalidSpec"),
    ({"hostInterface": ".."}, "InvalidSpec"),
    ({"hostInterface": 7}, "InvalidSpec"),
])
def test_vnic_invalid(change, why):
    assert reason(parse_vnic, obj("vm1", {"subnet": "s1", "node": "n1", **change})) == why


# -- Service ---------------------------------------------------------------------------------------
def svc(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    o = obj("web", spec, namespace="ns")
    if annotations:
        o["metadata"]["annotations"] = annotations
    return o


def test_service_view():
    view = parse_service(svc({
        "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::10"],
        "externalIPs": ["1.2.3.4"],
        "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                  {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "5353"}],
        "publishNotReadyAddresses": True}))
    assert view.key == "ns/web" and view.type == "ClusterIP"
    assert view.cluster_ips == (ip_address("10.96.0.10"), ip_address("fd00::10"))
    assert view.external_ips == (ip_address("1.2.3.4"),)
    assert view.ports == (ServicePort("http", 80, "TCP", "http"),
                          ServicePort("dns", 53, "UDP", 5353))
    assert view.publish_not_ready and view.has_lb and not view.headless
    assert view.affinity_timeout is None and view.health is None and view.vpcs == ()


def test_service_cluster_ip_only():
    view = parse_service(svc({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}))
    assert view.cluster_ips == (ip_address("10.96.0.10",),)
    assert view.ports == (ServicePort("", 80, "TCP", 80),)


def test_service_headless_and_external_name_have_no_lb():
    headless = parse_service(svc({"clusterIP": "None", "ports": [{"port": 80}]}))
    assert headless.headless and not headless.has_lb and headless.cluster_ips == ()
    ext = parse_service(svc({"type": "ExternalName", "externalName": "example.com"}))
    assert not ext.has_lb and ext.ports == ()
    no_ip = parse_service(svc({"ports": [{"port": 80}]}))
    assert not no_ip.has_lb


def test_service_client_ip_affinity():
    view = parse_service(svc({"clusterIP": "10.96.0.10", "ports": [{"port": 80}],
                              "sessionAffinity": "ClientIP"}))
    assert view.affinity_timeout == DEFAULT_AFFINITY_TIMEOUT == 10800
    view = parse_service(svc({"clusterIP": "10.96.0.10", "ports": [{"port": 80}],
                              "sessionAffinity": "ClientIP",
                              "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}))
    assert view.affinity_timeout == 60
    view = parse_service(svc({"clusterIP": "10.96.0.10", "ports": [{"port": 80}],
                              "sessionAffinity": "None"}))
    assert view.affinity_timeout is None
    assert reason(parse_service, svc({
        "clusterIP": "10.96.0.10", "ports": [{"port": 80}], "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}})) == "InvalidSpec"


def test_service_annotations():
    view = parse_service(svc({"type": "LoadBalancer", "clusterIP": "10.96.0.10",
                              "ports": [{"port": 80}], "loadBalancerIP": "192.168.100.9"},
                             {"ycloud.io/eip-pool": "p1", keys.ANN_VPC: "v1,v2",
                              keys.ANN_HEALTH_CHECK: json.dumps({"interval": 2})}))
    assert view.load_balancer_ip == ip_address("192.168.100.9")
    assert view.eip_pool == "p1"
    assert view.vpcs == ("v1", "v2")
    assert view.health == HealthCheck(interval=2, timeout=3, success=1, failure=3)
    # the EIP annotation wins over spec.loadBalancerIP
    view = parse_service(svc({"type": "LoadBalancer", "clusterIP": "10.96.0.10",
                              "ports": [{"port": 80}], "loadBalancerIP": "192.168.100.9"},
                             {"ycloud.io/eip": "192.168.100.7"}))
    assert view.load_balancer_ip == ip_address("192.168.100.7")


@pytest.mark.parametrize("ports", [
    [{"port": 0}], [{"port": 70000}], [{"port": "80"}], [{"port": True}],
    [{"port": 80, "targetPort": 0}], [{"port": 80, "targetPort": 70000}],
    [{"port": 80, "targetPort": ""}], [{"port": 80, "targetPort": 1.5}],
    [{"port": 80, "protocol": "ICMP"}],
    [{"port": 80}, {"port": 80, "protocol": "tcp"}],
    [], "80", ["x"],
])
def test_bad_ports(ports):
    assert reason(parse_ports, ports) == "InvalidPort"


def test_ports_same_number_different_protocols():
    got = parse_ports([{"port": 53, "protocol": "udp"}, {"port": 53}, {"port": 53,
                                                                      "protocol": "SCTP"}])
    assert [p.protocol for p in got] == ["UDP", "TCP", "SCTP"]


def test_ports_named_and_numeric_targets():
    got = parse_ports([{"port": 80, "targetPort": "web"}, {"port": 81, "targetPort": "8081"},
                       {"port": 82, "targetPort": 8082}, {"port": 83}])
    assert [p.target_port for p in got] == ["web", 8081, 8082, 83]


def test_parse_health():
    assert parse_health({}) == HealthCheck(5, 3, 1, 3)
    assert parse_health('{"interval": 2, "timeout": 1, "successCount": 2, "failureCount": 4}') \
        == HealthCheck(2, 1, 2, 4)
    assert reason(parse_health, "not json") == "InvalidHealthCheck"
    assert reason(parse_health, [1]) == "InvalidHealthCheck"
    assert reason(parse_health, {"interval": 0}) == "InvalidSpec"
    assert reason(parse_health, {"failureCount": 101}) == "InvalidSpec"
    # round trip through the annotation the YusurService writes
    hc = HealthCheck(2, 1, 2, 4)
    assert parse_health(hc.to_json()) == hc


def test_service_bad_health_annotation():
    assert reason(parse_service, svc({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]},
                                     {keys.ANN_HEALTH_CHECK: "{"})) == "InvalidHealthCheck"


def test_service_bad_ips():
    assert reason(parse_service, svc({"clusterIP": "10.96.0.300",
                                      "ports": [{"port": 80}]})) == "InvalidIP"
    assert reason(parse_service, svc({"clusterIP": "10.96.0.1", "externalIPs": ["x"],
                                      "ports": [{"port": 80}]})) == "InvalidIP"


# -- YusurService ----------------------------------------------------------------------------------
def ysvc(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": "ClusterIP", "ports": [{"port": 80, "targetPort": 8080}],
                            "selector": {"app": "web"}}
    base.update(spec)
    return obj("ys", {k: v for k, v in base.items() if v is not None}, namespace="ns")


def test_yusurservice_scope_vpc():
    view = parse_yusurservice(ysvc(scope="vpc", vpc="vpc1", clusterIP="10.96.0.20"),
                              DEFAULT_VPC)
    assert view.key == "ns/ys" and view.scope == "vpc" and view.vpcs == ("vpc1",)
    assert view.ports == (ServicePort("", 80, "TCP", 8080),)
    assert view.selector == (("app", "web"),)
    assert view.cluster_ip == ip_address("10.96.0.20")
    assert view.eip is None and view.eip_pool is None
    assert view.health == HealthCheck()  # probes are on by default


def test_yusurservice_scope_inferred():
    assert parse_yusurservice(ysvc(vpc="vpc1"), DEFAULT_VPC).scope == "vpc"
    view = parse_yusurservice(ysvc(), DEFAULT_VPC)
    assert view.scope == "cluster" and view.vpcs == (DEFAULT_VPC,)
    view = parse_yusurservice(ysvc(type="LoadBalancer", vpcs=["a", "b"]), DEFAULT_VPC)
    assert view.scope == "multi-vpc" and view.vpcs == ("a", "b")


def test_yusurservice_cluster_scope_ignores_vpc_list():
    view = parse_yusurservice(ysvc(scope="cluster", vpcs=["a"]), DEFAULT_VPC)
    assert view.vpcs == (DEFAULT_VPC,)


def test_yusurservice_load_balancer():
    view = parse_yusurservice(ysvc(type="LoadBalancer", scope="multi-vpc", vpcs="a,b",
                                   eip="192.168.100.10", eipPool="p1",
                                   sessionAffinity="ClientIP",
                                   healthCheck={"interval": 2, "failureCount": 2}),
                              DEFAULT_VPC)
    assert view.type == "LoadBalancer" and view.vpcs == ("a", "b")
    assert view.eip == ip_address("192.168.100.10") and view.eip_pool == "p1"
    assert view.affinity_timeout == 10800
    assert view.health == HealthCheck(interval=2, timeout=3, success=1, failure=2)


def test_yusurservice_affinity_timeout():
    view = parse_yusurservice(ysvc(sessionAffinity="ClientIP",
                                   sessionAffinityTimeoutSeconds=30), DEFAULT_VPC)
    assert view.affinity_timeout == 30


def test_yusurservice_health_check_disabled():
    assert parse_yusurservice(ysvc(healthCheck={"enabled": False}), DEFAULT_VPC).health is None
    assert parse_yusurservice(ysvc(healthCheck={"enabled": True, "interval": 9}),
                              DEFAULT_VPC).health == HealthCheck(interval=9)


@pytest.mark.parametrize("spec,why", [
    ({"type": "NodePort"}, "InvalidType"),
    ({"type": None}, "InvalidType"),
    ({"scope": "galaxy"}, "InvalidScope"),
    ({"scope": "vpc"}, "InvalidScope"),  # no spec.vpc
    ({"scope": "multi-vpc", "type": "LoadBalancer"}, "InvalidScope"),  # no vpcs
    ({"scope": "multi-vpc", "type": "LoadBalancer", "vpcs": ["a", "a"]}, "InvalidScope"),
    ({"scope": "multi-vpc", "vpcs": ["a", "b"]}, "InvalidScope"),  # ClusterIP
    ({"selector": None}, "InvalidSelector"),
    ({"selector": {}}, "InvalidSelector"),
    ({"selector": ["app=web"]}, "InvalidSelector"),
    ({"eip": "192.168.100.10"}, "InvalidEIP"),  # ClusterIP with an EIP
    ({"ports": []}, "InvalidPort"),
    ({"ports": [{"port": 0}]}, "InvalidPort"),
    ({"healthCheck": {"interval": 0}}, "InvalidSpec"),
    ({"healthCheck": "x"}, "InvalidHealthCheck"),
    ({"clusterIP": "nope"}, "InvalidIP"),
    ({"sessionAffinity": "ClientIP", "sessionAffinityTimeoutSeconds": 0}, "InvalidSpec"),
])
def test_yusurservice_invalid(spec, why):
    assert reason(parse_yusurservice, ysvc(**spec), DEFAULT_VPC) == why
