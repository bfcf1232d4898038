"""topology.plan.compute_plan on plain data (an OwnedIndex fed as NB's monitor feeds it, no
NB): errors drop only their owner (dangling references, conflicts between owners, rows that
claim another owner, two rows with one key), which keeps its existing rows; describe().
"""

from __future__ import annotations

from tests.unit.plan_nb import POD, SUB1, SUB2, FakeNb, port, switch
from topology.model import LogicalRouterPort, Owner


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
