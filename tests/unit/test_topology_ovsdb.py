"""topology.ovsdb.session on plain data: value decoding, update2 diffs, and the write-through
overlay, which must give the same rows whichever comes first, a transaction's reply or its monitor
update (ovsdb-server sends either first, depending on timing)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from topology import naming
from topology.index import OwnedIndex
from topology.model import RowId
from topology.nbsync.client import _monitors
from topology.ovsdb.session import Session
from topology.ovsdb.values import ColumnType, Schema, apply_diff, decode, encode, uuid_of

NB_SCHEMA = Path("/usr/share/ovn/ovn-nb.ovsschema")
pytestmark = pytest.mark.skipif(not NB_SCHEMA.exists(), reason="OVN NB schema not installed")


@pytest.fixture
def session():  # noqa: ANN201
    index = OwnedIndex()
    s = Session("unix:/nonexistent", "OVN_Northbound", _monitors(), on_row=index.on_row)
    s.schema = Schema.from_json(json.loads(NB_SCHEMA.read_text()))
    index.bind(s)
    s.index = index  # type: ignore[attr-defined]
    yield s
    s._session.close()  # noqa: SLF001


def ids(key: str, h: str) -> dict[str, str]:
    return {naming.MANAGED_BY: naming.MANAGED_BY_VALUE, naming.KIND: "Service",
            naming.OWNER: "ns/a", naming.KEY: key, naming.HASH: h}


def js_map(d: dict[str, str]) -> list:
    return ["map", [[k, v] for k, v in d.items()]]


# -- values ----------------------------------------------------------------------------------------
def test_uuid_of_gives_the_uuid_that_uuid_uuid_gives() -> None:
    for _ in range(200):
        made = uuid.uuid4()
        for text in (str(made), str(made).upper()):
            got = uuid_of(text)
            assert type(got) is uuid.UUID
            assert (got, hash(got), str(got), got.is_safe) == \
                (made, hash(made), str(made), made.is_safe)
            assert {got: 1}[made] == 1
    made = uuid.uuid4()
    for other in (made.hex, f"{{{made}}}", f"urn:uuid:{made}"):  # not OVSDB's form
        assert uuid_of(other) == made
    for bad in ("", "not-a-uuid", str(made)[:-1] + "g"):
        with pytest.raises(ValueError):
            uuid_of(bad)


def test_decode_and_encode_follow_the_column_type():
    set_t, map_t = ColumnType("string", None, 0, float("inf")), ColumnType("string", "string",
                                                                            0, float("inf"))
    opt_t, ref_t = ColumnType("integer", None, 0, 1), ColumnType("uuid", None, 0, float("inf"))
    u = uuid.uuid4()
    assert decode(set_t, "a") == {"a"}  # a one-element set comes bare
    assert decode(set_t, ["set", ["a", "b"]]) == {"a", "b"}
    assert decode(map_t, ["map", [["k", "v"]]]) == {"k": "v"}
    assert decode(opt_t, ["set", []]) == set()
    assert decode(ref_t, ["uuid", str(u)]) == {u}
    assert encode(map_t, {"k": "v"}) == ["map", [["k", "v"]]]
    assert encode(opt_t, None) == ["set", []]
    assert encode(opt_t, 5) == ["set", [5]]
    assert encode(ref_t, [u]) == ["set", [["uuid", str(u)]]]


def test_update2_diffs_toggle_sets_and_maps():
    set_t = ColumnType("string", None, 0, float("inf"))
    map_t = ColumnType("string", "string", 0, float("inf"))
    opt_t = ColumnType("string", None, 0, 1)
    assert apply_diff(set_t, {"a", "b"}, {"b", "c"}) == {"a", "c"}
    # same pair: removed; other value: replaced; new key: added
    assert apply_diff(map_t, {"x": "1", "y": "2"}, {"x": "1", "y": "3", "z": "4"}) == {
        "y": "3", "z": "4"}
    assert apply_diff(opt_t, {"old"}, {"new"}) == {"new"}  # max 1, not empty: replaced
    assert apply_diff(opt_t, set(), {"new"}) == {"new"}


# -- the overlay ---------------------------------------------------------------------------------
def _insert(session: Session, u: uuid.UUID, key: str, h: str) -> None:
    session._update2({"Load_Balancer": {str(u): {"insert": {  # noqa: SLF001
        "name": key, "external_ids": js_map(ids(key, h))}}}}, initial=False)


def _modify_hash(session: Session, u: uuid.UUID, key: str, old: str, new: str) -> None:
    # what the server sends when external_ids:hash changes from `old` to `new`
    session._update2({"Load_Balancer": {str(u): {"modify": {  # noqa: SLF001
        "external_ids": js_map({naming.HASH: new})}}}}, initial=False)


@pytest.mark.parametrize("echo_first", [True, False])
def test_an_update_reads_the_same_whichever_comes_first(session: Session, echo_first: bool):
    u = uuid.uuid4()
    _insert(session, u, "lb1", "h1")
    index: OwnedIndex = session.index  # type: ignore[attr-defined]
    assert index.meta[u].hash == "h1"
    if echo_first:
        _modify_hash(session, u, "lb1", "h1", "h2")
        session.local_change("Load_Balancer", u, {"external_ids": ids("lb1", "h2")})
        assert u not in session.overlay.get("Load_Balancer", {})  # nothing left to hold
    else:
        session.local_change("Load_Balancer", u, {"external_ids": ids("lb1", "h2")})
        assert index.meta[u].hash == "h2"  # visible before the server's update
        _modify_hash(session, u, "lb1", "h1", "h2")
    assert index.meta[u].hash == "h2"
    assert session.effective("Load_Balancer", u)["external_ids"] == ids("lb1", "h2")
    assert u not in session.overlay.get("Load_Balancer", {})


@pytest.mark.parametrize("echo_first", [True, False])
def test_an_insert_and_a_delete_read_the_same_whichever_comes_first(session: Session,
                                                                   echo_first: bool):
    u = uuid.uuid4()
    index: OwnedIndex = session.index  # type: ignore[attr-defined]
    values = {"name": "lb1", "external_ids": ids("lb1", "h1")}
    if echo_first:
        _insert(session, u, "lb1", "h1")
        session.local_change("Load_Balancer", u, values, replace=True)
    else:
        session.local_change("Load_Balancer", u, values, replace=True)
        assert index.lookup(RowId("Load_Balancer", "lb1")) == [u]
        _insert(session, u, "lb1", "h1")
    assert index.lookup(RowId("Load_Balancer", "lb1")) == [u]
    assert index.count_by_table()["Load_Balancer"] == 1
    delete = {"Load_Balancer": {str(u): {"delete": None}}}
    if echo_first:
        session._update2(delete, initial=False)  # noqa: SLF001
        session.local_change("Load_Balancer", u, None)
    else:
        session.local_change("Load_Balancer", u, None)
        assert index.lookup(RowId("Load_Balancer", "lb1")) == []
        session._update2(delete, initial=False)  # noqa: SLF001
    assert index.lookup(RowId("Load_Balancer", "lb1")) == []
    assert session.effective("Load_Balancer", u) is None
    assert index.count_by_table()["Load_Balancer"] == 0


@pytest.mark.parametrize("echo_first", [True, False])
def test_memberships_read_the_same_whichever_comes_first(session: Session, echo_first: bool):
    group, lb1, lb2 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    session._update2({"Load_Balancer_Group": {str(group): {"insert": {  # noqa: SLF001
        "name": "vpc-v1", "load_balancer": ["set", [["uuid", str(lb1)]]]}}}}, initial=False)
    index: OwnedIndex = session.index  # type: ignore[attr-defined]
    assert index.members[(group, "load_balancer")] == {lb1}
    added = {"Load_Balancer_Group": {str(group): {"modify": {
        "load_balancer": ["uuid", str(lb2)]}}}}  # a one-element set diff comes bare
    if echo_first:
        session._update2(added, initial=False)  # noqa: SLF001
        session.local_change("Load_Balancer_Group", group, {"load_balancer": {lb1, lb2}})
    else:
        session.local_change("Load_Balancer_Group", group, {"load_balancer": {lb1, lb2}})
        assert index.members[(group, "load_balancer")] == {lb1, lb2}
        session._update2(added, initial=False)  # noqa: SLF001
    assert index.members[(group, "load_balancer")] == {lb1, lb2}
    assert index.parents_of[lb2] == {(group, "load_balancer")}


def test_a_later_change_by_someone_else_wins_over_our_write(session: Session):
    u = uuid.uuid4()
    _insert(session, u, "lb1", "h1")
    session.local_change("Load_Balancer", u, {"external_ids": ids("lb1", "h2")})
    _modify_hash(session, u, "lb1", "h1", "h2")  # our echo
    _modify_hash(session, u, "lb1", "h2", "hx")  # then someone edits the hash by hand
    index: OwnedIndex = session.index  # type: ignore[attr-defined]
    assert index.meta[u].hash == "hx"


def test_rows_that_are_not_ours_stay_out_of_the_index(session: Session):
    u = uuid.uuid4()
    session._update2({"Load_Balancer": {str(u): {"insert": {  # noqa: SLF001
        "name": "manual", "external_ids": js_map({"owner": "someone"})}}}}, initial=False)
    index: OwnedIndex = session.index  # type: ignore[attr-defined]
    assert u not in index.meta and index.count_by_table().get("Load_Balancer", 0) == 0
