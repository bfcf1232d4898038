"""topology.plan.compute_plan on plain data: an OwnedIndex fed rows as NB's monitor feeds it
(`OwnedIndex.on_row`), no NB."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from topology import model, naming
from topology.index import OwnedIndex
from topology.model import (
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
from topology.plan import LinkOp, Plan, compute_plan


class FakeNb:
    """An OwnedIndex holding the rows we say NB has, each given to it as the session gives
    a monitored row: its name, its ownership external_ids and its reference columns."""

    def __init__(self) -> None:
        self.index = OwnedIndex()
        self.uuids: dict[RowId, uuid.UUID] = {}
        self.rows: dict[uuid.UUID, tuple[str, dict[str, Any]]] = {}

    def record(self, table: str, key: str, *, owner: Owner | None, hash: str | None,
               row_uuid: uuid.UUID | None = None,
               members: dict[str, Iterable[uuid.UUID]] | None = None) -> uuid.UUID:
        u = row_uuid or uuid.uuid4()
        row: dict[str, Any] = {"name": key}
        if table not in model.OWNED_BY_NAME:
            assert owner is not None, "a row of ours names its owner"
            ids = {**naming.owner_ids(owner.kind, owner.name), naming.KEY: key}
            if hash is not None:
                ids[naming.HASH] = hash
            row["external_ids"] = ids
        row.update({column: set() for column in model.ref_columns(table)})
        self.rows[u] = (table, row)
        self.index.on_row(table, u, None, row, None)
        for column, children in (members or {}).items():
            self.member(u, column, *children)
        self.uuids.setdefault(RowId(table, key), u)
        return u

    def member(self, parent: uuid.UUID, column: str, *children: uuid.UUID) -> None:
        """Add `children` to the parent's `column`, as a monitor update of that column."""
        table, old = self.rows[parent]
        new = dict(old, **{column: old.get(column, set()) | set(children)})
        self.rows[parent] = (table, new)
        self.index.on_row(table, parent, old, new, frozenset({column}))

    def has(self, row: Row, *, hash: str | None = None, owner: Owner | None = None) -> uuid.UUID:
        """Record `row` as NB holds it, linked into every recorded row it declares a link with."""
        by_name = row.TABLE in model.OWNED_BY_NAME
        u = self.record(row.TABLE, row.key,
                        owner=None if by_name else (owner or row.owner),
                        hash=None if by_name else (hash or row.content_hash))
        for link in row.links():
            parent, child = self.uuids.get(link.parent), self.uuids.get(link.child)
            if parent is not None and child is not None:
                self.member(parent, link.column, child)
        return u

    def foreign(self, table: str = "Logical_Switch") -> uuid.UUID:
        """A row that is not ours (no managed-by external_id): the index ignores it."""
        u = uuid.uuid4()
        row = {"name": f"foreign-{u}", "external_ids": {},
               **{column: set() for column in model.ref_columns(table)}}
        self.rows[u] = (table, row)
        self.index.on_row(table, u, None, row, None)
        return u

    def plan(self, desired: dict[Owner, list[Row]], **kw) -> Plan:
        return compute_plan(self.index, desired, **kw)


VPC = Owner("Vpc", "v1")
SUB1, SUB2 = Owner("Subnet", "s1"), Owner("Subnet", "s2")
POD = Owner("Pod", "ns/p")


def switch(name: str, owner: Owner | None = None, **kw) -> LogicalSwitch:
    return LogicalSwitch(name=name, owner=owner or Owner("Subnet", name), **kw)


def port(name: str = "p.ns", sw: str = "s1", owner: Owner = POD, **kw) -> LogicalSwitchPort:
    return LogicalSwitchPort(name=name, switch=sw, owner=owner, **kw)


def keys(rows: Iterable) -> set[str]:
    return {r.key for r in rows}


def link_set(ops: list[LinkOp]) -> set[tuple[str, str, str]]:
    return {(str(op.parent), op.column, str(op.child)) for op in ops}


# -- inserts, updates, deletes ------------------------------------------------------------------
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


# -- memberships ----------------------------------------------------------------------------------
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


# -- errors ---------------------------------------------------------------------------------------
def test_dangling_reference_drops_only_that_owner():
    nb = FakeNb()
    good = switch("s2", owner=SUB2)
    plan = nb.plan({POD: [port(sw="missing")], SUB2: [good]})
    assert plan.errors == {POD: "Logical_Switch_Port:p.ns references missing "
                                "Logical_Switch:missing"}
    assert plan.inserts == [good]
    assert plan.link_adds == []


def test_owner_depending_on_a_dropped_insert_is_dropped_too():
    """Fixpoint: the pod needs switch s1, which its subnet would insert, but the subnet is
    dropped for a dangling router reference; an unrelated owner still lands."""
    nb = FakeNb()
    sub = [switch("s1"), LogicalRouterPort(name="v1-s1", router="vpc-v1",
                                           mac="0a:00:00:00:00:01", networks=(), owner=SUB1)]
    other = switch("s2", owner=SUB2)
    plan = nb.plan({POD: [port(sw="s1")], SUB1: sub, SUB2: [other]})
    assert set(plan.errors) == {POD, SUB1}
    assert "Logical_Router:vpc-v1" in plan.errors[SUB1]
    assert plan.errors[POD] == ("Logical_Switch_Port:p.ns references missing "
                                "Logical_Switch:s1")
    assert plan.inserts == [other]
    assert plan.link_adds == [] and plan.deletes == []


def test_reference_to_existing_row_of_a_dropped_owner_is_fine():
    nb = FakeNb()
    nb.has(switch("s1"))
    bad = [switch("s1"), port("x", sw="nowhere", owner=SUB1)]
    plan = nb.plan({SUB1: bad, POD: [port(sw="s1")]})
    assert set(plan.errors) == {SUB1}
    assert plan.inserts == [port(sw="s1")]


def test_reference_to_a_row_being_deleted_is_dangling():
    nb = FakeNb()
    nb.has(switch("s1"))
    plan = nb.plan({SUB1: [], POD: [port(sw="s1")]})
    assert set(plan.errors) == {POD}
    assert "Logical_Switch:s1" in plan.errors[POD]
    assert [rid.key for rid, _, _ in plan.deletes] == ["s1"]


def test_dropped_owner_keeps_its_existing_rows():
    nb = FakeNb()
    nb.has(switch("s1"))
    pu = nb.has(port(sw="s1"))
    plan = nb.plan({POD: [port(sw="gone")]})
    assert set(plan.errors) == {POD}
    assert plan.empty()
    assert nb.index.lookup(port(sw="s1").rid) == [pu]  # still indexed: nothing deleted


def test_two_owners_wanting_a_new_row_the_first_listed_gets_it():
    """Callers list older objects first: the older wins, whatever the names."""
    nb = FakeNb()
    first, second = Owner("Pod", "ns/b"), Owner("Pod", "ns/a")
    nb.has(switch("s1"))
    plan = nb.plan({first: [port("same", owner=first)],
                    second: [port("same", owner=second)]})
    assert plan.errors == {second: "NB row Logical_Switch_Port:same is wanted by Pod/ns/b "
                                   "as well, which keeps it"}
    assert [r.owner for r in plan.inserts] == [first]


def test_conflicting_owner_keeps_its_existing_rows():
    """An owner left out of the plan for a conflict must not lose the rows it already has."""
    nb = FakeNb()
    first, second = Owner("Pod", "ns/a"), Owner("Pod", "ns/b")
    nb.has(switch("s1"))
    mine = port("mine", owner=second)
    nb.has(mine)
    plan = nb.plan({first: [port("same", owner=first)],
                    second: [mine, port("same", owner=second)]})
    assert set(plan.errors) == {second}
    assert plan.deletes == []
    assert plan.link_removes == []


def test_row_claiming_another_owner_is_an_error():
    nb = FakeNb()
    nb.has(switch("s1"))
    nb.has(port("existing"))
    plan = nb.plan({POD: [port(owner=Owner("Pod", "ns/other"))]})
    assert plan.errors == {POD: "row Logical_Switch_Port:p.ns claims owner Pod/ns/other"}
    assert plan.empty()  # nothing inserted, and the owner's existing row is kept


def test_two_different_rows_with_one_key_are_an_error():
    nb = FakeNb()
    nb.has(switch("s1"))
    nb.has(port("existing"))
    plan = nb.plan({POD: [port(type=""), port(type="router")]})
    assert "two different desired rows" in plan.errors[POD]
    assert plan.empty()
    # the same row twice is fine
    assert nb.plan({POD: [port(), port()]}).inserts == [port()]


def test_describe_lists_every_change():
    nb = FakeNb()
    nb.has(switch("s1"))
    nb.has(switch("old", owner=SUB2))
    plan = nb.plan({POD: [port()], SUB2: [], Owner("Pod", "ns/bad"):
                    [port("bad", sw="x", owner=Owner("Pod", "ns/bad"))]})
    ops = {(d["op"], d.get("key") or d.get("owner")) for d in plan.describe()}
    assert ops == {("insert", "p.ns"), ("delete", "old"), ("link", "s1"),
                   ("error", "Pod/ns/bad")}
