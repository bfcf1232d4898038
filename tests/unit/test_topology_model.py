"""topology.model: desired rows, their columns, external_ids, links and content hash."""

from __future__ import annotations

import dataclasses

import pytest

from topology import model, naming
from topology.model import (
    HAChassis,
    HealthCheck,
    Link,
    LoadBalancer,
    LoadBalancerGroup,
    LogicalRouter,
    LogicalRouterPort,
    LogicalSwitch,
    LogicalSwitchPort,
    Nat,
    Owner,
    RowId,
    StaticRoute,
    fmap,
)

OWNER = Owner("Subnet", "s1")


def lsp(**kw) -> LogicalSwitchPort:
    base = dict(name="p1.ns", switch="s1", addresses=("0a:58:0a:00:00:02 10.0.0.2",),
                port_security=("0a:58:0a:00:00:02 10.0.0.2",), options=fmap(a="1"),
                owner=Owner("Pod", "ns/p1"), vpc="v1", ids=fmap({naming.NODE: "n1"}))
    base.update(kw)
    return LogicalSwitchPort(**base)


# -- fmap ---------------------------------------------------------------------------------------
def test_fmap_sorts_stringifies_and_drops_none():
    assert fmap({"b": 2, "a": "x", "c": None}) == (("a", "x"), ("b", "2"))
    assert fmap(z=1, y=True) == (("y", "True"), ("z", "1"))
    assert fmap({"a": 1}, b=2) == (("a", "1"), ("b", "2"))
    assert fmap() == ()


def test_fmap_is_order_independent_and_hashable():
    assert fmap({"x": 1, "y": 2}) == fmap({"y": 2, "x": 1})
    assert hash(fmap({"x": 1})) == hash(fmap(x="1"))


# -- identity -------------------------------------------------------------------------------------
def test_named_rows_are_keyed_by_name():
    sw = LogicalSwitch(name="s1", owner=OWNER)
    assert sw.key == "s1"
    assert sw.rid == RowId("Logical_Switch", "s1")
    assert str(sw.rid) == "Logical_Switch:s1"
    assert str(OWNER) == "Subnet/s1"


def test_unnamed_rows_are_keyed_through_naming():
    route = StaticRoute(router="vpc-v", ip_prefix="0.0.0.0/0", nexthop="10.0.0.1", owner=OWNER)
    assert route.key == naming.route_key("vpc-v", "0.0.0.0/0", "10.0.0.1", "dst-ip")
    nat = Nat(router="vpc-v", type="snat", external_ip="1.1.1.1", logical_ip="10.0.0.0/24",
              owner=OWNER)
    assert nat.key == naming.nat_key("vpc-v", "snat", "1.1.1.1", "10.0.0.0/24")
    hc = HealthCheck(lb="lb1", vip="10.96.0.1:80", owner=OWNER)
    assert hc.key == naming.health_check_key("lb1", "10.96.0.1:80")
    hac = HAChassis(group="g", chassis_name="ch1", priority=10, owner=OWNER)
    assert hac.key == naming.ha_chassis_key("g", "ch1")


def test_rows_are_frozen():
    sw = LogicalSwitch(name="s1", owner=OWNER)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sw.name = "s2"  # type: ignore[misc]


# -- columns --------------------------------------------------------------------------------------
def test_columns_exclude_identity_and_reference_fields():
    cols = lsp().columns()
    assert "owner" not in cols and "vpc" not in cols and "ids" not in cols
    assert "switch" not in cols  # a reference, written as a membership
    assert cols["name"] == "p1.ns"
    assert cols["addresses"] == ["0a:58:0a:00:00:02 10.0.0.2"]  # tuple -> list
    assert cols["options"] == {"a": "1"}  # Map -> dict
    assert cols["type"] == ""


def test_columns_none_becomes_empty_set():
    lrp = LogicalRouterPort(name="r-s", router="r", mac="0a:00:00:00:00:01",
                            networks=("10.0.0.1/24",), owner=OWNER)
    cols = lrp.columns()
    assert cols["peer"] == []
    assert "router" not in cols and "ha_chassis_group" not in cols
    assert cols["networks"] == ["10.0.0.1/24"]


def test_lb_columns():
    lb = LoadBalancer(name="lb", protocol="tcp", vips=fmap({"10.96.0.1:80": "10.0.0.2:8080"}),
                      groups=("vpc-v",), routers=("vpc-v",), owner=OWNER)
    cols = lb.columns()
    assert cols["vips"] == {"10.96.0.1:80": "10.0.0.2:8080"}
    assert cols["ip_port_mappings"] == {}
    assert "groups" not in cols and "routers" not in cols


@pytest.mark.parametrize("row_type", model.ROW_TYPES)
def test_written_columns_cover_columns(row_type):
    cols = set(model.written_columns(row_type.TABLE))
    assert ("external_ids" in cols) == (row_type.TABLE not in model.OWNED_BY_NAME)
    refs = set(model.ref_columns(row_type.TABLE))
    assert not cols & {"owner", "vpc", "ids"}
    # every (table, column) of REF_COLUMNS names real tables
    for (parent, _), (child, side, _) in model.REF_COLUMNS.items():
        assert parent in model.TABLES and child in model.TABLES
        assert side in ("parent", "child")
    assert all((row_type.TABLE, c) in model.REF_COLUMNS for c in refs)


# -- external_ids ---------------------------------------------------------------------------------
def test_external_ids_carry_ownership_key_and_hash():
    row = lsp()
    ids = row.external_ids()
    assert ids[naming.MANAGED_BY] == naming.MANAGED_BY_VALUE
    assert ids[naming.KIND] == "Pod"
    assert ids[naming.OWNER] == "ns/p1"
    assert ids[naming.VPC] == "v1"
    assert ids[naming.KEY] == "p1.ns"
    assert ids[naming.HASH] == row.content_hash
    assert ids[naming.NODE] == "n1"


def test_external_ids_without_vpc():
    ids = LogicalSwitch(name="s", owner=OWNER).external_ids()
    assert naming.VPC not in ids
    assert set(naming.OWNERSHIP_KEYS) - {naming.VPC} <= set(ids)


def test_extra_ids_cannot_hide_key_and_hash():
    row = LogicalSwitch(name="s", owner=OWNER, ids=fmap({naming.KEY: "evil", naming.HASH: "x"}))
    ids = row.external_ids()
    assert ids[naming.KEY] == "s"
    assert ids[naming.HASH] == row.content_hash


# -- links ----------------------------------------------------------------------------------------
def test_links_child_side():
    assert lsp().links() == (Link(RowId("Logical_Switch", "s1"), "ports",
                                  RowId("Logical_Switch_Port", "p1.ns")),)
    lb = LoadBalancer(name="lb", protocol="tcp", groups=("g1", "g2"), routers=("r1",),
                      owner=OWNER)
    assert set(lb.links()) == {
        Link(RowId("Load_Balancer_Group", "g1"), "load_balancer", lb.rid),
        Link(RowId("Load_Balancer_Group", "g2"), "load_balancer", lb.rid),
        Link(RowId("Logical_Router", "r1"), "load_balancer", lb.rid)}
    hc = HealthCheck(lb="lb", vip="1.1.1.1:80", owner=OWNER)
    assert hc.links() == (Link(lb.rid, "health_check", hc.rid),)


def test_links_parent_side():
    sw = LogicalSwitch(name="s1", lb_groups=("vpc-a",), owner=OWNER)
    assert sw.links() == (Link(sw.rid, "load_balancer_group",
                               RowId("Load_Balancer_Group", "vpc-a")),)
    lr = LogicalRouter(name="r", lb_groups=("vpc-a",), owner=OWNER)
    assert lr.links()[0].parent == lr.rid
    assert LogicalSwitch(name="s2", owner=OWNER).links() == ()
    assert LoadBalancerGroup(name="vpc-a", owner=OWNER).links() == ()


def test_router_port_links_to_router_and_ha_group():
    lrp = LogicalRouterPort(name="p", router="r", mac="0a:00:00:00:00:01", networks=(),
                            ha_chassis_group="hag", owner=OWNER)
    assert set(lrp.links()) == {
        Link(RowId("Logical_Router", "r"), "ports", lrp.rid),
        Link(lrp.rid, "ha_chassis_group", RowId("HA_Chassis_Group", "hag"))}


@pytest.mark.parametrize("row", [
    lsp(),
    LogicalSwitch(name="s1", lb_groups=("vpc-a",), owner=OWNER),
    LoadBalancer(name="lb", protocol="tcp", groups=("g",), routers=("r",), owner=OWNER),
    StaticRoute(router="r", ip_prefix="0.0.0.0/0", nexthop="1.1.1.1", owner=OWNER),
    Nat(router="r", type="snat", external_ip="1.1.1.1", logical_ip="10.0.0.0/24", owner=OWNER),
    HealthCheck(lb="lb", vip="1.1.1.1:80", owner=OWNER),
    HAChassis(group="g", chassis_name="c", priority=1, owner=OWNER),
], ids=lambda r: r.TABLE)
def test_links_follow_ref_columns(row):
    """Every link a row declares is in a REF_COLUMNS column declared by the row's side."""
    for link in row.links():
        child_table, side, _ = model.REF_COLUMNS[(link.parent.table, link.column)]
        assert link.child.table == child_table
        assert (link.parent if side == "parent" else link.child) == row.rid


# -- content hash ---------------------------------------------------------------------------------
def test_hash_is_stable_for_equal_content():
    a, b = lsp(), lsp()
    assert a is not b
    assert a.content_hash == b.content_hash
    assert len(a.content_hash) == 20 and int(a.content_hash, 16) >= 0


def test_hash_ignores_map_construction_order():
    a = lsp(options=fmap({"x": "1", "y": "2"}), ids=fmap({naming.NODE: "n1", naming.MTU: 1400}))
    b = lsp(options=fmap({"y": "2", "x": "1"}), ids=fmap({naming.MTU: "1400", naming.NODE: "n1"}))
    assert a.content_hash == b.content_hash


def test_hash_is_a_pure_function_of_content():
    """Pinned value: a changed hash function would rewrite every row after an upgrade."""
    row = LogicalSwitch(name="s1", owner=OWNER)
    payload = ('["Logical_Switch", "s1", {"name": "s1", "other_config": {}}, '
               '{"ycloud.io/kind": "Subnet", "ycloud.io/managed-by": "ycloud-controller", '
               '"ycloud.io/owner": "s1"}]')
    assert row.content_hash == naming.content_hash(payload)


@pytest.mark.parametrize("change", [
    {"addresses": ("0a:58:0a:00:00:03 10.0.0.3",)},
    {"port_security": ()},
    {"options": fmap(a="2")},
    {"options": ()},
    {"type": "router"},
    {"name": "p2.ns"},
    {"owner": Owner("Pod", "ns/p2")},
    {"owner": Owner("Vnic", "ns/p1")},
    {"vpc": "v2"},
    {"vpc": None},
    {"ids": fmap({naming.NODE: "n2"})},
    {"ids": ()},
], ids=lambda c: next(iter(c)))
def test_hash_changes_with_any_column_owner_or_ids(change):
    assert lsp(**change).content_hash != lsp().content_hash


def test_hash_differs_between_tables_with_same_columns():
    sw = LogicalSwitch(name="x", owner=OWNER)
    grp = LoadBalancerGroup(name="x", owner=OWNER)
    assert sw.content_hash != grp.content_hash


def test_hash_of_map_values():
    a = LoadBalancer(name="lb", protocol="tcp", vips=fmap({"1.1.1.1:80": "10.0.0.2:80"}),
                     owner=OWNER)
    b = LoadBalancer(name="lb", protocol="tcp", vips=fmap({"1.1.1.1:80": "10.0.0.3:80"}),
                     owner=OWNER)
    c = LoadBalancer(name="lb", protocol="tcp", vips=fmap({"1.1.1.1:81": "10.0.0.2:80"}),
                     owner=OWNER)
    assert len({a.content_hash, b.content_hash, c.content_hash}) == 3


def test_reference_change_is_a_membership_not_a_hash_change():
    """Moving a port to another switch changes its link, not its columns."""
    a, b = lsp(switch="s1"), lsp(switch="s2")
    assert a.content_hash == b.content_hash
    assert a.links() != b.links()
