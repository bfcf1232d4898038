"""topology.plan.compute_plan on plain data (an OwnedIndex fed as NB's monitor feeds it, no
NB): inserts, updates and deletes; a row's owner, gone or still there; rows held against
newcomers; garbage collection; duplicates of a key.
"""

from __future__ import annotations

from tests.unit.plan_nb import POD, SUB1, SUB2, VPC, FakeNb, link_set, port, switch
from topology.model import LoadBalancerGroup, LogicalRouter, Owner, RowId, StaticRoute
from topology.plan import LinkOp


def test_empty_index_inserts_everything_and_links():
    nb = FakeNb()
    sw, p = switch("s1"), port()
    plan = nb.plan({SUB1: [sw], POD: [p]})
    assert set(plan.inserts) == {sw, p}
    assert plan.updates == [] and plan.deletes == [] and plan.errors == {}
    (op,) = plan.link_adds
    assert (op.parent, op.column, op.child) == (sw.rid, "ports", p.rid)
    assert op.parent_uuid is None and op.child_uuid is None  # both inserted by this plan
    assert plan.owners == [POD, SUB1]
    assert plan.summary() == {"insert": 2, "update": 0, "delete": 0, "link": 1, "unlink": 0,
                              "errors": 0}


def test_nothing_to_do_when_hashes_and_links_match():
    nb = FakeNb()
    sw, p = switch("s1"), port()
    nb.has(sw)
    nb.has(p)
    plan = nb.plan({SUB1: [sw], POD: [p]})
    assert plan.empty(), plan.describe()
    assert plan.errors == {}


def test_insert_only_what_is_absent():
    nb = FakeNb()
    sw, p = switch("s1"), port()
    su = nb.has(sw)
    plan = nb.plan({SUB1: [sw], POD: [p]})
    assert plan.inserts == [p]
    (op,) = plan.link_adds
    assert op.parent_uuid == su and op.child_uuid is None


def test_update_when_hash_differs():
    nb = FakeNb()
    old = port(addresses=("0a:00:00:00:00:01 10.0.0.2",))
    new = port(addresses=("0a:00:00:00:00:01 10.0.0.3",))
    nb.has(switch("s1"))
    u = nb.has(old)
    plan = nb.plan({POD: [new]})
    assert plan.updates == [(new, u)]
    assert plan.inserts == [] and plan.deletes == [] and plan.link_adds == []


def test_row_of_a_gone_owner_moves_even_with_equal_hash():
    nb = FakeNb()
    p = port()
    nb.has(switch("s1"))
    old = Owner("Pod", "ns/old")
    u = nb.has(p, owner=old)
    plan = nb.plan({POD: [p], old: []})
    assert plan.updates == [(p, u)]
    assert plan.deletes == []  # the row is wanted: owned by someone else does not delete it


def test_row_of_an_owner_outside_the_plan_is_never_taken():
    """An owner that is not in the plan still exists (unchanged): its row stays its own."""
    nb = FakeNb()
    p = port()
    nb.has(switch("s1"))
    nb.has(p, owner=Owner("Pod", "ns/old"))
    plan = nb.plan({POD: [p]})
    assert plan.errors == {POD: "NB row Logical_Switch_Port:p.ns belongs to Pod/ns/old"}
    assert plan.empty()


def test_holder_in_nb_keeps_a_row_two_owners_want():
    nb = FakeNb()
    holder, newcomer = Owner("Pod", "ns/b"), Owner("Pod", "ns/a")
    nb.has(switch("s1"))
    nb.has(port("same", owner=holder), owner=holder)
    plan = nb.plan({newcomer: [port("same", owner=newcomer)],
                    holder: [port("same", owner=holder)]})
    assert set(plan.errors) == {newcomer}
    assert plan.empty()


def test_lb_group_is_never_updated():
    """Load_Balancer_Group has no external_ids: no hash to compare, owned by name."""
    nb = FakeNb()
    grp = LoadBalancerGroup(name="vpc-v1", owner=VPC)
    nb.has(grp)
    assert nb.plan({VPC: [grp]}).empty()


def test_delete_rows_the_owner_no_longer_wants():
    nb = FakeNb()
    r = LogicalRouter(name="vpc-v1", owner=VPC)
    route1 = StaticRoute(router="vpc-v1", ip_prefix="0.0.0.0/0", nexthop="1.1.1.1", owner=VPC)
    route2 = StaticRoute(router="vpc-v1", ip_prefix="10.0.0.0/8", nexthop="1.1.1.2", owner=VPC)
    ru = nb.has(r)
    nb.has(route1)
    u2 = nb.has(route2)
    plan = nb.plan({VPC: [r, route1]})
    assert plan.deletes == [(route2.rid, u2, VPC)]
    # a non-root row being deleted leaves its router's set
    assert plan.link_removes == [LinkOp(r.rid, "static_routes", route2.rid, ru, u2)]
    assert plan.inserts == [] and plan.updates == []


def test_empty_desired_deletes_all_rows_of_owner():
    nb = FakeNb()
    sw = nb.has(switch("s1"))
    pu = nb.has(port())
    plan = nb.plan({POD: []})
    assert plan.deletes == [(RowId("Logical_Switch_Port", "p.ns"), pu, POD)]
    assert link_set(plan.link_removes) == {("Logical_Switch:s1", "ports",
                                            "Logical_Switch_Port:p.ns")}
    assert plan.link_removes[0].parent_uuid == sw


def test_delete_of_parent_and_child_together_needs_no_unlink():
    nb = FakeNb()
    nb.has(switch("s1", owner=SUB1))
    nb.has(port("s1-v1", owner=SUB1))
    plan = nb.plan({SUB1: []})
    assert len(plan.deletes) == 2
    assert plan.link_removes == []


def test_owners_not_in_desired_are_left_alone_without_gc():
    nb = FakeNb()
    nb.has(switch("s1"))
    nb.has(port())
    assert nb.plan({}).empty()
    assert nb.plan({SUB2: []}).empty()  # nothing owned: nothing to delete


def test_gc_deletes_owners_absent_from_desired_except_kept():
    nb = FakeNb()
    nb.has(switch("s1", owner=SUB1))
    s2 = nb.has(switch("s2", owner=SUB2))
    nb.has(port(sw="s1"))
    plan = nb.plan({SUB1: [switch("s1", owner=SUB1)]}, gc=True, keep=[POD])
    assert plan.deletes == [(RowId("Logical_Switch", "s2"), s2, SUB2)]
    assert SUB2 in plan.owners and POD not in plan.owners
    plan = nb.plan({SUB1: [switch("s1", owner=SUB1)]}, gc=True)
    assert {owner for _, _, owner in plan.deletes} == {SUB2, POD}


def test_duplicates_of_a_key_are_deleted():
    nb = FakeNb()
    sw = switch("s1")
    first = nb.has(sw)
    dup = nb.record(sw.TABLE, sw.key, owner=sw.owner, hash="stale")
    plan = nb.plan({SUB1: [sw]})
    assert plan.deletes == [(sw.rid, dup, SUB1)]
    assert plan.updates == []  # the first one is up to date
    assert first not in {u for _, u, _ in plan.deletes}


def test_duplicate_in_a_parent_set_is_unlinked_when_deleted():
    nb = FakeNb()
    su = nb.has(switch("s1"))
    p = port()
    nb.has(p)
    dup = nb.record(p.TABLE, p.key, owner=POD, hash=p.content_hash)
    nb.member(su, "ports", dup)
    plan = nb.plan({POD: [p]})
    assert plan.deletes == [(p.rid, dup, POD)]
    assert plan.link_removes == [LinkOp(RowId("Logical_Switch", "s1"), "ports", p.rid, su, dup)]


def test_deleting_a_row_does_not_touch_sets_of_foreign_parents():
    nb = FakeNb()
    pu = nb.has(port())
    nb.member(nb.foreign(), "ports", pu)  # a parent that is not ours
    plan = nb.plan({POD: []})
    assert len(plan.deletes) == 1
    assert plan.link_removes == []
