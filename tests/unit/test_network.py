"""ycloud_controller.network.build_network: which VPCs, subnets and pools are valid together."""

from __future__ import annotations

from ipaddress import ip_network

from tests.unit import factories as f
from ycloud_controller.config import Config, SubnetConfig
from ycloud_controller.network import build_network

CFG = Config()


def net(vpcs=(), subnets=(), pools=(), cfg: Config = CFG):
    return build_network(list(vpcs), list(subnets), list(pools), cfg)


def reason(model, kind: str, name: str) -> str | None:
    err = model.error(kind, name)
    return err.reason if err else None


# -- always there ----------------------------------------------------------------------------------
def test_empty_cluster_has_default_vpc_and_config_subnets():
    m = net()
    assert set(m.vpcs) == {"ovn-cluster"}
    assert set(m.subnets) == {"subnet0", "ovn-default"}
    assert m.config_subnets == frozenset({"subnet0", "ovn-default"})
    assert m.subnets["subnet0"].cidrs == (ip_network("100.64.0.0/16"),)
    assert m.subnets["ovn-default"].cidrs == (ip_network("10.16.0.0/16"),)
    assert {s.name for s in m.subnets_of("ovn-cluster")} == {"subnet0", "ovn-default"}
    assert m.default_subnet == "ovn-default" and m.join_subnet == "subnet0"
    assert m.vpc_of_namespace("anything") == "ovn-cluster"
    assert m.errors == {} and m.pools == {} and m.default_pool() is None


def test_config_names_and_cidrs_are_used():
    cfg = Config(default_vpc="main", join_subnet=SubnetConfig("join", "100.65.0.0/16"),
                 default_subnet=SubnetConfig("pods", "10.200.0.0/16,fd20::/64"))
    m = net(cfg=cfg)
    assert set(m.vpcs) == {"main"}
    assert set(m.subnets) == {"join", "pods"}
    assert m.subnets["pods"].cidrs == (ip_network("10.200.0.0/16"), ip_network("fd20::/64"))
    assert m.subnets["pods"].vpc == "main"


def test_default_vpc_object_cannot_bind_namespaces():
    m = net([f.vpc("ovn-cluster", namespaces=["ns1"],
                   staticRoutes=[{"cidr": "0.0.0.0/0", "nextHop": "100.64.0.254"}])])
    assert m.vpcs["ovn-cluster"].namespaces == ()
    assert len(m.vpcs["ovn-cluster"].routes) == 1
    assert m.vpc_of_namespace("ns1") == "ovn-cluster"


# -- VPCs ------------------------------------------------------------------------------------------
def test_vpc_binds_namespaces():
    m = net([f.vpc("v1", namespaces=["a", "b"])])
    assert m.vpc_of_namespace("a") == "v1" and m.vpc_of_namespace("b") == "v1"
    assert m.vpc_of_namespace("c") == "ovn-cluster"


def test_namespace_bound_to_two_vpcs_older_wins():
    m = net([f.vpc("zz-old", age=1, namespaces=["a"]), f.vpc("aa-new", age=2, namespaces=["a"])])
    assert "zz-old" in m.vpcs and "aa-new" not in m.vpcs
    assert reason(m, "Vpc", "aa-new") == "NamespaceConflict"
    assert "zz-old" in m.error("Vpc", "aa-new").message
    assert m.vpc_of_namespace("a") == "zz-old"


def test_same_age_conflict_broken_by_name():
    m = net([f.vpc("b", age=1, namespaces=["x"]), f.vpc("a", age=1, namespaces=["x"])])
    assert m.vpc_of_namespace("x") == "a"
    assert reason(m, "Vpc", "b") == "NamespaceConflict"


def test_invalid_vpc_is_reported_and_absent():
    m = net([f.vpc("v1", staticRoutes=[{"cidr": "bad", "nextHop": "1.1.1.1"}])])
    assert "v1" not in m.vpcs
    assert reason(m, "Vpc", "v1") == "InvalidCIDR"


# -- subnets ---------------------------------------------------------------------------------------
def test_subnet_in_vpc():
    m = net([f.vpc("v1")], [f.subnet("s1", "10.1.0.0/24", vpc="v1")])
    assert m.subnets["s1"].vpc == "v1"
    assert [s.name for s in m.subnets_of("v1")] == ["s1"]
    assert m.errors == {}


def test_subnet_of_unknown_vpc():
    m = net([], [f.subnet("s1", "10.1.0.0/24", vpc="nope")])
    assert "s1" not in m.subnets
    assert reason(m, "Subnet", "s1") == "UnknownVPC"


def test_subnet_of_invalid_vpc_is_unknown():
    m = net([f.vpc("v1", staticRoutes="x")], [f.subnet("s1", "10.1.0.0/24", vpc="v1")])
    assert reason(m, "Subnet", "s1") == "UnknownVPC"


def test_overlap_in_one_vpc_newer_loses():
    m = net([f.vpc("v1")], [f.subnet("new", "10.1.0.0/16", vpc="v1", age=5),
                            f.subnet("old", "10.1.2.0/24", vpc="v1", age=1)])
    assert "old" in m.subnets and "new" not in m.subnets
    err = m.error("Subnet", "new")
    assert err.reason == "CIDRConflict" and "old" in err.message
    assert m.error("Subnet", "old") is None


def test_overlap_same_timestamp_broken_by_name():
    m = net([f.vpc("v1")], [f.subnet("b", "10.1.0.0/24", vpc="v1", age=1),
                            f.subnet("a", "10.1.0.0/24", vpc="v1", age=1)])
    assert "a" in m.subnets and reason(m, "Subnet", "b") == "CIDRConflict"


def test_overlap_with_config_subnet():
    m = net([], [f.subnet("s1", "10.16.5.0/24")])
    assert reason(m, "Subnet", "s1") == "CIDRConflict"
    assert "ovn-default" in m.error("Subnet", "s1").message


def test_v6_overlap_in_dual_stack():
    m = net([f.vpc("v1")], [f.subnet("a", "10.1.0.0/24,fd00::/64", vpc="v1", age=1),
                            f.subnet("b", "10.2.0.0/24,fd00::/120", vpc="v1", age=2)])
    assert reason(m, "Subnet", "b") == "CIDRConflict"


def test_same_cidr_in_two_vpcs_is_fine():
    m = net([f.vpc("v1"), f.vpc("v2")], [f.subnet("a", "10.1.0.0/24", vpc="v1"),
                                         f.subnet("b", "10.1.0.0/24", vpc="v2")])
    assert m.errors == {}
    assert m.subnets["a"].cidrs == m.subnets["b"].cidrs


def test_subnet_may_reuse_config_cidr_in_another_vpc():
    m = net([f.vpc("v1")], [f.subnet("s1", "10.16.0.0/16", vpc="v1")])
    assert m.errors == {}


def test_config_subnet_names_are_reserved():
    m = net([], [f.subnet("subnet0", "10.9.0.0/24"), f.subnet("ovn-default", "10.8.0.0/24")])
    assert reason(m, "Subnet", "subnet0") == "ReservedName"
    assert reason(m, "Subnet", "ovn-default") == "ReservedName"
    assert m.subnets["subnet0"].cidrs == (ip_network("100.64.0.0/16"),)


def test_invalid_subnet_spec():
    m = net([], [f.subnet("s1", "10.1.0.0/24", gateway="10.2.0.1")])
    assert reason(m, "Subnet", "s1") == "GatewayOutsideCIDR"


# -- namespaces and subnets ------------------------------------------------------------------------
def test_subnet_binds_namespace_and_its_vpc():
    m = net([f.vpc("v1")], [f.subnet("s1", "10.1.0.0/24", vpc="v1", namespaces=["a"]),
                            f.subnet("s2", "10.2.0.0/24", namespaces=["b"])])
    assert m.namespace_subnet == {"a": "s1", "b": "s2"}
    assert m.vpc_of_namespace("a") == "v1"
    assert m.vpc_of_namespace("b") == "ovn-cluster"


def test_namespace_bound_to_two_subnets_newer_loses():
    m = net([], [f.subnet("s2", "10.2.0.0/24", namespaces=["a"], age=2),
                 f.subnet("s1", "10.1.0.0/24", namespaces=["a"], age=1)])
    assert m.namespace_subnet == {"a": "s1"}
    assert reason(m, "Subnet", "s2") == "NamespaceConflict"
    assert "s2" not in m.subnets


def test_subnet_listing_a_namespace_of_another_vpc_only_lets_it_in():
    """The namespace stays in its VPC; the subnet is a grant (pods may ask for it)."""
    m = net([f.vpc("v1", namespaces=["a"]), f.vpc("v2")],
            [f.subnet("s2", "10.2.0.0/24", vpc="v2", namespaces=["a"]),
             f.subnet("s0", "10.3.0.0/24", namespaces=["a"])])
    assert not m.errors
    assert {"s2", "s0"} <= set(m.subnets) and "a" in m.subnets["s2"].namespaces
    assert m.vpc_of_namespace("a") == "v1"
    assert "a" not in m.namespace_subnet


def test_subnet_namespace_of_its_own_vpc():
    m = net([f.vpc("v1", namespaces=["a"])],
            [f.subnet("s1", "10.1.0.0/24", vpc="v1", namespaces=["a"])])
    assert m.errors == {}
    assert m.namespace_subnet == {"a": "s1"}


# -- default subnet --------------------------------------------------------------------------------
def test_default_subnet_override():
    m = net([], [f.subnet("mine", "10.30.0.0/16", default=True)])
    assert m.default_subnet == "mine"
    assert "ovn-default" in m.subnets  # the config subnet stays


def test_default_subnet_must_be_in_default_vpc():
    m = net([f.vpc("v1")], [f.subnet("s1", "10.30.0.0/16", vpc="v1", default=True)])
    assert reason(m, "Subnet", "s1") == "InvalidDefault"
    assert m.default_subnet == "ovn-default"


def test_two_default_subnets_older_wins():
    m = net([], [f.subnet("new", "10.31.0.0/16", default=True, age=2),
                 f.subnet("old", "10.30.0.0/16", default=True, age=1)])
    assert m.default_subnet == "old"
    assert reason(m, "Subnet", "new") == "DefaultConflict"
    assert "old" in m.error("Subnet", "new").message


# -- EIP pools -------------------------------------------------------------------------------------
def test_pools_and_overlap():
    m = net(pools=[f.eippool("p2", "192.168.100.128/25", "192.168.100.129", age=2),
                   f.eippool("p1", "192.168.100.0/24", "192.168.100.1", age=1),
                   f.eippool("p3", "192.168.200.0/24", "192.168.200.1", age=3)])
    assert set(m.pools) == {"p1", "p3"}
    assert reason(m, "EipPool", "p2") == "CIDRConflict"
    assert "p1" in m.error("EipPool", "p2").message


def test_invalid_pool():
    m = net(pools=[f.eippool("p1", "192.168.100.0/24", "10.0.0.1")])
    assert reason(m, "EipPool", "p1") == "GatewayOutsideCIDR"


def test_default_pool_single():
    m = net(pools=[f.eippool("only", "192.168.100.0/24", "192.168.100.1")])
    assert m.default_pool().name == "only"
    assert m.pool_for(None).name == "only"
    assert m.pool_for("only").name == "only"
    assert m.pool_for("other") is None


def test_default_pool_several_unmarked_is_none():
    m = net(pools=[f.eippool("a", "192.168.100.0/24", "192.168.100.1"),
                   f.eippool("b", "192.168.200.0/24", "192.168.200.1")])
    assert m.default_pool() is None
    assert m.pool_for("b").name == "b"


def test_default_pool_marked():
    m = net(pools=[f.eippool("a", "192.168.100.0/24", "192.168.100.1"),
                   f.eippool("c", "192.168.200.0/24", "192.168.200.1", default=True),
                   f.eippool("b", "192.168.250.0/24", "192.168.250.1",
                             default=True)])
    assert m.default_pool().name == "b"  # several marked: the first by name


def test_build_is_deterministic_regardless_of_input_order():
    vpcs = [f.vpc("v1", age=1, namespaces=["a"]), f.vpc("v2", age=2, namespaces=["a"])]
    subs = [f.subnet("s1", "10.1.0.0/24", vpc="v1", age=1),
            f.subnet("s2", "10.1.0.0/25", vpc="v1", age=2)]
    one, two = net(vpcs, subs), net(reversed(vpcs), reversed(subs))
    assert one.vpcs == two.vpcs and one.subnets == two.subnets
    assert {k: e.reason for k, e in one.errors.items()} == \
        {k: e.reason for k, e in two.errors.items()}
