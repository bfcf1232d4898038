"""topology.plan.compute_plan on plain data (an OwnedIndex fed as NB's monitor feeds it, no
NB): memberships, the links between rows and their parents' sets: added when missing, removed
when stale, never for members that are not ours or that a child declares.
"""

from __future__ import annotations

from tests.unit.plan_nb import POD, SUB1, VPC, FakeNb, link_set, port, switch
from topology.model import (
    LoadBalancer,
    LoadBalancerGroup,
    LogicalRouter,
    LogicalRouterPort,
    Owner,
    RowId,
)
from topology.plan import LinkOp


def test_link_added_when_missing():
    nb = FakeNb()
    su = nb.has(switch("s1"))
    pu = nb.record("Logical_Switch_Port", "p.ns", owner=POD, hash=port().content_hash)
    plan = nb.plan({POD: [port()]})
    assert plan.link_adds == [LinkOp(RowId("Logical_Switch", "s1"), "ports",
                                     RowId("Logical_Switch_Port", "p.ns"), su, pu)]
    assert len(plan) == 1


def test_link_not_readded_when_present():
    nb = FakeNb()
    nb.has(switch("s1"))
    nb.has(port())
    plan = nb.plan({POD: [port()]})
    assert plan.link_adds == []


def test_port_moved_to_another_switch_is_unlinked_from_the_old_one():
    nb = FakeNb()
    s1 = nb.has(switch("s1"))
    s2 = nb.has(switch("s2"))
    pu = nb.has(port(sw="s1"))
    plan = nb.plan({POD: [port(sw="s2")]})
    assert plan.link_adds == [LinkOp(RowId("Logical_Switch", "s2"), "ports",
                                     RowId("Logical_Switch_Port", "p.ns"), s2, pu)]
    assert plan.link_removes == [LinkOp(RowId("Logical_Switch", "s1"), "ports",
                                        RowId("Logical_Switch_Port", "p.ns"), s1, pu)]
    assert plan.updates == [] and plan.deletes == []


def test_parent_reconcile_does_not_unlink_child_declared_members():
    """A switch does not list its ports: reconciling the switch never removes them."""
    nb = FakeNb()
    sw = switch("s1")
    nb.has(sw)
    nb.has(port())
    plan = nb.plan({SUB1: [sw]})
    assert plan.empty()


def test_switch_that_stops_listing_a_group_unlinks_it():
    nb = FakeNb()
    grp = LoadBalancerGroup(name="vpc-v1", owner=VPC)
    gu = nb.has(grp)
    su = nb.has(switch("s1", lb_groups=("vpc-v1",)))
    plan = nb.plan({SUB1: [switch("s1", lb_groups=())]})
    assert plan.link_removes == [LinkOp(RowId("Logical_Switch", "s1"), "load_balancer_group",
                                        grp.rid, su, gu)]
    assert plan.deletes == []  # the group stays: the VPC still wants it


def test_switch_listing_a_new_group():
    nb = FakeNb()
    nb.has(LoadBalancerGroup(name="vpc-v1", owner=VPC))
    nb.has(LoadBalancerGroup(name="vpc-v2", owner=Owner("Vpc", "v2")))
    nb.has(switch("s1", lb_groups=("vpc-v1",)))
    plan = nb.plan({SUB1: [switch("s1", lb_groups=("vpc-v2",))]})
    assert link_set(plan.link_adds) == {("Logical_Switch:s1", "load_balancer_group",
                                         "Load_Balancer_Group:vpc-v2")}
    assert link_set(plan.link_removes) == {("Logical_Switch:s1", "load_balancer_group",
                                            "Load_Balancer_Group:vpc-v1")}


def test_foreign_members_are_never_unlinked():
    nb = FakeNb()
    su = nb.has(switch("s1", lb_groups=()))
    nb.member(su, "load_balancer_group", nb.foreign())
    nb.member(su, "ports", nb.foreign())
    assert nb.plan({SUB1: [switch("s1")]}).empty()
    assert nb.plan({SUB1: []}).link_removes == []


def test_lb_moved_between_groups():
    nb = FakeNb()
    owner = Owner("Service", "ns/web")
    g1 = nb.has(LoadBalancerGroup(name="vpc-v1", owner=VPC))
    nb.has(LoadBalancerGroup(name="vpc-v2", owner=Owner("Vpc", "v2")))
    lb1 = LoadBalancer(name="lb", protocol="tcp", groups=("vpc-v1",), owner=owner)
    lbu = nb.has(lb1)
    plan = nb.plan({owner: [LoadBalancer(name="lb", protocol="tcp", groups=("vpc-v2",),
                                         owner=owner)]})
    assert link_set(plan.link_adds) == {("Load_Balancer_Group:vpc-v2", "load_balancer",
                                         "Load_Balancer:lb")}
    assert plan.link_removes == [LinkOp(RowId("Load_Balancer_Group", "vpc-v1"),
                                        "load_balancer", lb1.rid, g1, lbu)]


def test_an_unchanged_row_left_in_a_stale_group_is_unlinked_from_it():
    """Rows, hashes and declared links all in NB, plus one membership of ours the row no
    longer declares: the owner is planned (not taken as in place) and the stale link goes."""
    nb = FakeNb()
    owner = Owner("Service", "ns/web")
    nb.has(LoadBalancerGroup(name="vpc-v1", owner=VPC))
    g2 = nb.has(LoadBalancerGroup(name="vpc-v2", owner=Owner("Vpc", "v2")))
    lb = LoadBalancer(name="lb", protocol="tcp", groups=("vpc-v1",), owner=owner)
    lbu = nb.has(lb)
    assert nb.plan({owner: [lb]}).empty()  # in place: nothing planned
    nb.member(g2, "load_balancer", lbu)
    plan = nb.plan({owner: [lb]})
    assert plan.link_removes == [LinkOp(RowId("Load_Balancer_Group", "vpc-v2"),
                                        "load_balancer", lb.rid, g2, lbu)]
    assert plan.inserts == plan.updates == plan.link_adds == []


def test_an_owner_in_place_keeps_its_rows_against_a_younger_claimant():
    nb = FakeNb()
    younger = Owner("Pod", "ns/q")
    nb.has(switch("s1"))
    nb.has(port("p.ns"))
    plan = nb.plan({POD: [port("p.ns")], younger: [port("p.ns", owner=younger)]})
    assert plan.empty() and str(POD) in plan.errors[younger]
    assert list(plan.errors) == [younger]


def test_inserted_child_of_existing_parent():
    nb = FakeNb()
    ru = nb.has(LogicalRouter(name="vpc-v1", owner=VPC))
    lrp = LogicalRouterPort(name="v1-s1", router="vpc-v1", mac="0a:00:00:00:00:01",
                            networks=("10.0.0.1/24",), owner=SUB1)
    plan = nb.plan({SUB1: [lrp]})
    assert plan.inserts == [lrp]
    assert plan.link_adds == [LinkOp(RowId("Logical_Router", "vpc-v1"), "ports", lrp.rid,
                                     ru, None)]
