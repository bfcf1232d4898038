"""topology.builders: the rows produced for VPC, subnet, port and service specs."""

from __future__ import annotations

import ipaddress
import random
import re

import pytest

from topology import naming
from topology.builders.common import (
    default_prefix,
    host_prefix,
    is_ipv4,
    join,
    stable_mac,
    with_prefix,
)
from topology.builders.port import PortSpec, build_port
from topology.builders.service import Health, LbSpec, Vip, build_lb, endpoint
from topology.builders.subnet import SubnetSpec, build_subnet
from topology.builders.vpc import Route, VpcSpec, build_vpc
from topology.model import (
    HealthCheck,
    Link,
    LoadBalancer,
    LoadBalancerGroup,
    LogicalRouter,
    LogicalRouterPort,
    LogicalSwitch,
    LogicalSwitchPort,
    Owner,
    Row,
    RowId,
    StaticRoute,
)

MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def by_table(rows: list[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for r in rows:
        out.setdefault(r.TABLE, []).append(r)
    return out


# -- common ----------------------------------------------------------------------------------------
def test_stable_mac_is_stable_local_unicast_and_distinct():
    a = stable_mac("vpc1-s1")
    assert a == stable_mac("vpc1-s1")
    assert a != stable_mac("vpc1-s2")
    assert MAC_RE.match(a)
    first = int(a[:2], 16)
    assert first & 0x02 and not first & 0x01  # locally administered, unicast


def test_address_helpers():
    assert with_prefix("10.1.1.1", "10.1.1.0/24") == "10.1.1.1/24"
    assert with_prefix("fd00::1", "fd00::/64") == "fd00::1/64"
    assert host_prefix("10.1.1.5") == "10.1.1.5/32"
    assert host_prefix("fd00::5") == "fd00::5/128"
    assert default_prefix("10.0.0.1") == "0.0.0.0/0"
    assert default_prefix("fd00::1") == "::/0"
    assert join(("a", "b")) == "a,b"
    assert join([]) == ""


# -- vpc -------------------------------------------------------------------------------------------
def test_vpc_rows():
    owner = Owner("Vpc", "vpc1")
    rows = build_vpc(VpcSpec("vpc1", owner, routes=(Route("0.0.0.0/0", "10.0.0.254"),
                                                     Route("10.9.0.0/16", "10.0.0.253",
                                                           "src-ip"))))
    t = by_table(rows)
    (router,) = t["Logical_Router"]
    (group,) = t["Load_Balancer_Group"]
    assert isinstance(router, LogicalRouter) and router.name == "vpc-vpc1"
    assert isinstance(group, LoadBalancerGroup) and group.name == "vpc-vpc1"
    routes = t["Logical_Router_Static_Route"]
    assert {(r.ip_prefix, r.nexthop, r.policy) for r in routes} == {
        ("0.0.0.0/0", "10.0.0.254", "dst-ip"), ("10.9.0.0/16", "10.0.0.253", "src-ip")}
    for r in routes:
        assert isinstance(r, StaticRoute)
        assert r.links() == (Link(router.rid, "static_routes", r.rid),)
    assert all(r.owner == owner and r.vpc == "vpc1" for r in rows)
    assert len({r.rid for r in rows}) == len(rows)


def test_default_vpc_router_name():
    rows = build_vpc(VpcSpec(naming.DEFAULT_VPC, Owner("Vpc", naming.DEFAULT_VPC)))
    assert {r.rid for r in rows} == {RowId("Logical_Router", "ovn-cluster"),
                                     RowId("Load_Balancer_Group", "vpc-ovn-cluster")}


# -- subnet ----------------------------------------------------------------------------------------
def test_subnet_rows_join_switch_to_vpc_router():
    owner = Owner("Subnet", "s1")
    rows = build_subnet(SubnetSpec("s1", "vpc1", owner, cidrs=("10.1.0.0/24", "fd01::/64"),
                                   gateways=("10.1.0.1", "fd01::1"), mtu=1300))
    t = by_table(rows)
    (sw,) = t["Logical_Switch"]
    (lrp,) = t["Logical_Router_Port"]
    (lsp,) = t["Logical_Switch_Port"]
    assert isinstance(sw, LogicalSwitch) and sw.name == "s1"
    assert sw.lb_groups == ("vpc-vpc1",)  # ClusterIP LBs of the VPC reach this switch
    assert isinstance(lrp, LogicalRouterPort)
    assert lrp.name == "vpc1-s1" and lrp.router == "vpc-vpc1"
    assert lrp.networks == ("10.1.0.1/24", "fd01::1/64")
    assert lrp.mac == stable_mac("vpc1-s1")
    assert isinstance(lsp, LogicalSwitchPort)
    assert lsp.name == "s1-vpc1" and lsp.switch == "s1" and lsp.type == "router"
    assert lsp.addresses == ("router",)
    assert dict(lsp.options) == {"router-port": "vpc1-s1"}
    links = {link for r in rows for link in r.links()}
    assert Link(RowId("Logical_Router", "vpc-vpc1"), "ports", lrp.rid) in links
    assert Link(sw.rid, "ports", lsp.rid) in links
    assert Link(sw.rid, "load_balancer_group", RowId("Load_Balancer_Group", "vpc-vpc1")) in links
    for r in rows:
        ids = dict(r.ids)
        assert ids[naming.CIDR] == "10.1.0.0/24,fd01::/64"
        assert ids[naming.MTU] == "1300"
        assert ids[naming.SUBNET] == "s1"
        assert r.owner == owner and r.vpc == "vpc1"


def test_subnet_in_default_vpc_uses_cluster_router():
    rows = build_subnet(SubnetSpec("ovn-default", naming.DEFAULT_VPC,
                                   Owner("Subnet", "ovn-default"), ("10.16.0.0/16",),
                                   ("10.16.0.1",)))
    lrp = next(r for r in rows if isinstance(r, LogicalRouterPort))
    assert lrp.router == "ovn-cluster"
    assert lrp.name == "ovn-cluster-ovn-default"


def test_subnet_gateways_must_match_cidrs():
    with pytest.raises(ValueError):
        build_subnet(SubnetSpec("s", "v", Owner("Subnet", "s"), ("10.0.0.0/24", "fd00::/64"),
                                ("10.0.0.1",)))


# -- port ------------------------------------------------------------------------------------------
def test_port_row():
    spec = PortSpec(name="web.ns", switch="s1", owner=Owner("Pod", "ns/web"), vpc="vpc1",
                    mac="0a:58:0a:01:00:05", ips=("10.1.0.5", "fd01::5", "10.1.0.9"),
                    role=naming.ROLE_POD, node="n1", gateways=("10.1.0.1", "fd01::1"),
                    cidrs=("10.1.0.0/24", "fd01::/64"), mtu=1400)
    (row,) = build_port(spec)
    assert isinstance(row, LogicalSwitchPort)
    assert row.name == "web.ns" and row.switch == "s1" and row.type == ""
    assert row.addresses == ("0a:58:0a:01:00:05 10.1.0.5 fd01::5 10.1.0.9",)
    assert row.port_security == row.addresses
    assert row.links() == (Link(RowId("Logical_Switch", "s1"), "ports", row.rid),)
    ids = row.external_ids()
    assert ids[naming.ROLE] == "pod"
    assert ids[naming.NODE] == "n1"
    assert ids[naming.SUBNET] == "s1"
    assert ids[naming.GATEWAY] == "10.1.0.1,fd01::1"
    assert ids[naming.CIDR] == "10.1.0.0/24,fd01::/64"
    assert ids[naming.MTU] == "1400"
    assert naming.ROUTES not in ids
    assert ids[naming.OWNER] == "ns/web" and ids[naming.KIND] == "Pod"


def test_port_without_optional_ids():
    (row,) = build_port(PortSpec(name="p", switch="s", owner=Owner("Pod", "ns/p"), vpc="v",
                                 mac="0a:00:00:00:00:01", ips=("10.0.0.2",),
                                 role=naming.ROLE_POD))
    ids = row.external_ids()
    for key in (naming.NODE, naming.GATEWAY, naming.CIDR, naming.MTU, naming.ROUTES):
        assert key not in ids


def test_node_port_routes():
    (row,) = build_port(PortSpec(name="node-n1", switch="subnet0", owner=Owner("Node", "n1"),
                                 vpc="ovn-cluster", mac="0a:58:64:40:00:02",
                                 ips=("100.64.0.2",), role=naming.ROLE_NODE, node="n1",
                                 routes=("10.96.0.0/12", "10.16.0.0/16")))
    assert row.external_ids()[naming.ROUTES] == "10.96.0.0/12,10.16.0.0/16"


def test_port_hash_follows_node_binding():
    def port(node):
        return build_port(PortSpec(name="p", switch="s", owner=Owner("Pod", "ns/p"), vpc="v",
                                   mac="0a:00:00:00:00:01", ips=("10.0.0.2",),
                                   role=naming.ROLE_POD, node=node))[0]
    assert port("n1").content_hash == port("n1").content_hash
    assert port("n1").content_hash != port("n2").content_hash


# -- service ---------------------------------------------------------------------------------------
OWNER = Owner("Service", "ns/web")


def lb_spec(**kw) -> LbSpec:
    base = dict(name="Service_ns/web_TCP_cluster", owner=OWNER, vpc="vpc1", protocol="TCP",
                vips=(Vip("10.96.0.10", 80, (("10.1.0.6", 8080), ("10.1.0.5", 8080))),),
                groups=("vpc-vpc1",))
    base.update(kw)
    return LbSpec(**base)


def the_lb(rows: list[Row]) -> LoadBalancer:
    (lb,) = [r for r in rows if isinstance(r, LoadBalancer)]
    return lb


# strings around the edges of what ipaddress accepts as IPv4
IP_CORNERS = [
    "0.0.0.0", "255.255.255.255", "10.0.0.1", "1.2.3.4", "199.249.250.251", "100.64.0.1",
    "256.0.0.1", "1.2.3.256", "1.2.3.300", "01.2.3.4", "1.2.3.04", "1.2.3.00", "1.2.3.0",
    "1.2.3", "1.2.3.4.5", "1..3.4", ".1.2.3", "1.2.3.4.", "", " 1.2.3.4", "1.2.3.4 ",
    "1.2.3.4\n", "1.2.3.4/32", "1.2.3.4%eth0", "+1.2.3.4", "-1.2.3.4", "1.2.3.0x4", "1.2.3.1e2",
    "١.٢.٣.٤", "1.2.3.\u0664", "１.2.3.4", "1234.2.3.4", "::", "fd00::1", "::ffff:1.2.3.4",
    "fe80::1%eth0", "banana", "1.2.3.4:80",
]


def test_is_ipv4_is_exactly_ipaddress_ipv4():
    rng = random.Random(7)
    alphabet = "0123456789.:x "
    fuzz = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
            for _ in range(5000)]
    quads = [".".join(str(rng.randint(0, 300)).zfill(rng.choice((1, 1, 1, 2, 3)))
                      for _ in range(4)) for _ in range(5000)]
    for text in IP_CORNERS + fuzz + quads:
        try:
            expected = isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
        except ValueError:
            expected = False
        assert is_ipv4(text) is expected, text
    assert not is_ipv4(167772161)  # an int is an address to ipaddress, but not a string
    assert not is_ipv4(None)


def test_endpoint_format():
    assert endpoint("10.0.0.1", 80) == "10.0.0.1:80"
    assert endpoint("fd00::1", 80) == "[fd00::1]:80"
    assert endpoint("::ffff:1.2.3.4", 80) == "[::ffff:1.2.3.4]:80"
    for bad in ("10.0.0.01", "10.0.0.256", "banana", "", " 10.0.0.1"):
        with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
            endpoint(bad, 80)
    assert Vip("fd00::a", 443, (("fd01::5", 8443), ("fd01::4", 8443))).key == "[fd00::a]:443"
    assert Vip("fd00::a", 443, (("fd01::5", 8443), ("fd01::4", 8443))).value() == \
        "[fd01::4]:8443,[fd01::5]:8443"


def test_vip_backends_sorted_and_deduplicated():
    vip = Vip("10.96.0.1", 80, (("10.0.0.3", 80), ("10.0.0.2", 80), ("10.0.0.3", 80)))
    assert vip.value() == "10.0.0.2:80,10.0.0.3:80"
    assert Vip("10.96.0.1", 80, ()).value() == ""


def test_lb_row():
    rows = build_lb(lb_spec())
    assert len(rows) == 1
    lb = the_lb(rows)
    assert lb.name == "Service_ns/web_TCP_cluster"
    assert lb.protocol == "tcp"
    assert dict(lb.vips) == {"10.96.0.10:80": "10.1.0.5:8080,10.1.0.6:8080"}
    assert dict(lb.options) == {"reject": "true"}
    assert lb.ip_port_mappings == ()
    assert lb.links() == (Link(RowId("Load_Balancer_Group", "vpc-vpc1"), "load_balancer",
                               lb.rid),)
    assert lb.owner == OWNER and lb.vpc == "vpc1"


def test_lb_options():
    lb = the_lb(build_lb(lb_spec(affinity_timeout=10800,
                                 hairpin_snat_ip="10.96.0.10 fd00::10")))
    assert dict(lb.options) == {"reject": "true", "affinity_timeout": "10800",
                                "hairpin_snat_ip": "10.96.0.10 fd00::10"}


def test_lb_without_backends_rejects():
    lb = the_lb(build_lb(lb_spec(vips=(Vip("10.96.0.10", 80, ()),))))
    assert dict(lb.vips) == {"10.96.0.10:80": ""}
    assert dict(lb.options)["reject"] == "true"


def test_lb_ipv6_and_multiple_vips():
    lb = the_lb(build_lb(lb_spec(vips=(
        Vip("10.96.0.10", 80, (("10.1.0.5", 8080),)),
        Vip("fd00::10", 80, (("fd01::5", 8080),)),
        Vip("10.96.0.10", 443, (("10.1.0.5", 8443),)),
    ))))
    assert dict(lb.vips) == {"10.96.0.10:80": "10.1.0.5:8080",
                             "[fd00::10]:80": "[fd01::5]:8080",
                             "10.96.0.10:443": "10.1.0.5:8443"}


def test_lb_on_routers():
    lb = the_lb(build_lb(lb_spec(groups=(), routers=("vpc-vpc1",), name="Service_ns/web_TCP_eip",
                                 extra_ids=((naming.SERVICE, "ns/web"),))))
    assert lb.links() == (Link(RowId("Logical_Router", "vpc-vpc1"), "load_balancer", lb.rid),)
    assert lb.external_ids()[naming.SERVICE] == "ns/web"


HEALTH = Health(interval=2, timeout=1, success=1, failure=2)


@pytest.mark.parametrize("proto", ["TCP", "UDP", "tcp"])
def test_health_checks_per_vip_with_backends(proto):
    rows = build_lb(lb_spec(
        protocol=proto, health=HEALTH,
        vips=(Vip("10.96.0.10", 80, (("10.1.0.5", 8080),)),
              Vip("10.96.0.10", 81, ()),
              Vip("fd00::10", 80, (("fd01::5", 8080),))),
        ip_port_mappings=(("10.1.0.5", "web-0.ns:10.1.0.254"),
                          ("fd01::5", "web-0.ns:fd01::ffff"))))
    lb = the_lb(rows)
    hcs = [r for r in rows if isinstance(r, HealthCheck)]
    assert {h.vip for h in hcs} == {"10.96.0.10:80", "[fd00::10]:80"}  # not the empty VIP
    for h in hcs:
        assert h.lb == lb.name
        assert dict(h.options) == {"interval": "2", "timeout": "1", "success_count": "1",
                                   "failure_count": "2"}
        assert h.links() == (Link(lb.rid, "health_check", h.rid),)
        assert h.owner == OWNER
    assert dict(lb.ip_port_mappings) == {"10.1.0.5": "web-0.ns:10.1.0.254",
                                         "fd01::5": "web-0.ns:fd01::ffff"}


def test_no_health_checks_for_sctp():
    rows = build_lb(lb_spec(protocol="SCTP", health=HEALTH))
    assert [r.TABLE for r in rows] == ["Load_Balancer"]
    assert the_lb(rows).protocol == "sctp"


def test_ip_port_mappings_only_with_health():
    mappings = (("10.1.0.5", "web-0.ns:10.1.0.254"),)
    assert the_lb(build_lb(lb_spec(ip_port_mappings=mappings))).ip_port_mappings == ()
    assert the_lb(build_lb(lb_spec(ip_port_mappings=mappings, health=HEALTH))) \
        .ip_port_mappings == mappings


def test_lb_hash_independent_of_backend_order():
    a = the_lb(build_lb(lb_spec(vips=(Vip("10.96.0.10", 80, (("10.1.0.5", 80),
                                                            ("10.1.0.6", 80))),))))
    b = the_lb(build_lb(lb_spec(vips=(Vip("10.96.0.10", 80, (("10.1.0.6", 80),
                                                            ("10.1.0.5", 80))),))))
    assert a.content_hash == b.content_hash
