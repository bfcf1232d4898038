"""ycloud_controller.api: the Vpc, Subnet, EipPool and Vnic views (with their defaults) and
the reason each bad input is refused.
"""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from tests.unit.api_objects import DEFAULT_VPC, obj, reason
from ycloud_controller.api.eippool import parse_eippool
from ycloud_controller.api.subnet import config_subnet, parse_subnet
from ycloud_controller.api.vnic import parse_vnic
from ycloud_controller.api.vpc import StaticRoute, parse_vpc


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
