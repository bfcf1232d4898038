"""The NB session's failover rules and the duplicate-insert guard, on plain data: derived row
UUIDs, locating a refused insert in a transact result, telling our row from another's, and
which _Server states make the session leave a member (see tests/functional/test_raft.py and
test_nb_duplicates.py for the same against real ovsdb-servers)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from ovn_sandbox import Process, SandboxState

from topology import naming
from topology.index import OwnedIndex
from topology.model import Owner, RowId
from topology.nbsync.client import _monitors
from topology.nbsync.transact import (
    GONE,
    NOT_OURS,
    OURS,
    Transaction,
    UuidSource,
    first_error,
    holder,
)
from topology.ovsdb.session import Session
from topology.ovsdb.values import Schema
from topology.plan import compute_plan

NB_SCHEMA = Path("/usr/share/ovn/ovn-nb.ovsschema")
needs_schema = pytest.mark.skipif(not NB_SCHEMA.exists(), reason="OVN NB schema not installed")


@pytest.fixture
def session():  # noqa: ANN201
    index = OwnedIndex()
    s = Session("tcp:127.0.0.1:1,tcp:127.0.0.1:2,tcp:127.0.0.1:3", "OVN_Northbound",
                _monitors(), on_row=index.on_row)
    index.bind(s)
    s.index = index  # type: ignore[attr-defined]
    yield s
    s._session.close()  # noqa: SLF001


# -- row UUIDs ---------------------------------------------------------------------------------
def test_a_row_gets_the_same_uuid_in_every_process():
    lb = RowId("Load_Balancer", "Service_ns/a_TCP_cluster")
    one, two = UuidSource(), UuidSource()
    assert one(lb) == two(lb)  # a restarted controller, a second replica
    assert uuid.UUID(one(lb)).version == 5
    assert one(lb) != one(RowId("Load_Balancer", "Service_ns/b_TCP_cluster"))
    assert one(lb) != one(RowId("Logical_Switch", lb.key))


def test_the_derived_uuid_is_uuid5_of_table_and_key():
    """The UUIDs of rows inserted by earlier versions (uuid.uuid5) stay the same."""
    ns = uuid.UUID("6d1f3f0e-6a59-4f5b-9b8e-0c7f2a9b5e11")
    for i in range(2000):
        rid = RowId("Load_Balancer", f"Service_ns-{i}/svc-é{i}_TCP_cluster")
        assert UuidSource()(rid) == str(uuid.uuid5(ns, f"{rid.table}\0{rid.key}"))


def test_a_replaced_uuid_is_kept_for_that_row_only():
    lb, other = RowId("Load_Balancer", "x"), RowId("Load_Balancer", "y")
    source = UuidSource()
    derived = source(lb)
    source.replace(lb)
    assert source(lb) != derived and source(lb) == source(lb)  # stable for re-sends
    assert source(other) == UuidSource()(other)


@needs_schema
def test_a_refused_insert_is_found_in_the_result(session: Session):
    session.schema = Schema.from_json(json.loads(NB_SCHEMA.read_text()))
    from topology.builders.service import LbSpec, Vip, build_lb
    owners = {}
    for i in range(3):
        owner = Owner("Service", f"ns/s{i}")
        owners[owner] = build_lb(LbSpec(
            name=naming.service_lb("ns", f"s{i}", "TCP"), owner=owner, vpc="v", protocol="TCP",
            vips=(Vip(f"10.96.0.{i + 1}", 80, (("10.0.0.1", 80),)),), groups=()))
    plan = compute_plan(session.index, owners)  # type: ignore[attr-defined]
    txn = Transaction(plan, session.schema, session, UuidSource(), True)
    assert [op["op"] for op in txn.ops] == ["insert"] * 3
    second = txn.ops[1]
    result: list[Any] = [{"uuid": ["uuid", txn.ops[0]["uuid"]]},
                         {"error": "duplicate uuid", "details": "This UUID would duplicate",
                          "syntax": json.dumps(second["uuid"])}, None]
    found = first_error(result)
    assert found is not None and found[0] == 1 and found[1].startswith("duplicate uuid")
    rid, row_uuid = txn.insert_of(1)  # type: ignore[misc]
    assert rid == RowId("Load_Balancer", second["row"]["name"]) and row_uuid == second["uuid"]
    assert txn.insert_of(7) is None
    assert first_error([{"uuid": ["uuid", "x"]}, {}]) is None


class _Answers:
    """Stands in for Session.call with the select result the server would give."""

    database = "OVN_Northbound"

    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows
        self.asked: list[Any] = []

    def call(self, method: str, params: list[Any], timeout: float) -> list[Any]:
        self.asked.append(params[1])
        return [{"rows": self.rows}]


def test_the_holder_of_a_refused_uuid_is_told_apart():
    rid = RowId("Load_Balancer", "Service_ns/a_TCP_cluster")
    ours = ["map", [[naming.MANAGED_BY, naming.MANAGED_BY_VALUE], [naming.KEY, rid.key]]]
    theirs = ["map", [["owner", "someone"]]]
    other_key = ["map", [[naming.MANAGED_BY, naming.MANAGED_BY_VALUE], [naming.KEY, "b"]]]
    assert holder(_Answers([{"external_ids": ours}]), rid, "u") == OURS  # type: ignore[arg-type]
    assert holder(_Answers([{"external_ids": theirs}]), rid, "u") == NOT_OURS  # type: ignore[arg-type]
    assert holder(_Answers([{"external_ids": other_key}]), rid, "u") == NOT_OURS  # type: ignore[arg-type]
    asked = _Answers([])
    assert holder(asked, rid, "u") == GONE  # type: ignore[arg-type]
    assert asked.asked[0]["where"] == [["_uuid", "==", ["uuid", "u"]]]
    group = RowId("Load_Balancer_Group", "vpc-v1")
    assert holder(_Answers([{"name": "vpc-v1"}]), group, "u") == OURS  # type: ignore[arg-type]


# -- which member serves us ----------------------------------------------------------------------
def db_row(**columns: Any) -> dict[str, Any]:
    row = {"name": "OVN_Northbound", "model": "clustered", "connected": True, "leader": True,
           "schema": "{...}"}
    row.update(columns)
    return {"Database": {str(uuid.uuid4()): {"new": row}}}


def test_only_a_joined_connected_leader_serves(session: Session):
    assert session._server_check(db_row()) is True  # noqa: SLF001
    for bad in (db_row(leader=False), db_row(connected=False), db_row(schema=["set", []]),
                db_row(model="relay")):
        session._leave_at = None  # noqa: SLF001
        assert session._server_check(bad) is False  # noqa: SLF001
    standalone = db_row(model="standalone", leader=False)
    assert session._server_check(standalone) is True  # noqa: SLF001
    other_db = {"Database": {"u": {"new": {"name": "_Server", "model": "standalone"}}}}
    assert session._server_check(other_db) is None  # noqa: SLF001


def test_while_hunting_a_follower_is_kept_a_moment(session: Session):
    """Right after losing a leader, a member that is not the leader yet is kept for a
    moment (it may win the election) instead of being left into python-ovs' backoff."""
    session._hunt_until = time.monotonic() + 10  # noqa: SLF001
    assert session._server_check(db_row(leader=False)) is False  # noqa: SLF001
    assert session._leave_at is not None  # noqa: SLF001
    assert not session.synced.is_set()
    session._server_update(db_row())  # noqa: SLF001 - it won: the handshake goes on
    assert session._leave_at is None  # noqa: SLF001


def test_a_leader_that_steps_down_is_left_at_once(session: Session):
    session._handshake_started = True  # noqa: SLF001
    session.synced.set()
    session._hunt_until = 0.0  # noqa: SLF001
    assert session._server_check(db_row(leader=False)) is False  # noqa: SLF001
    assert not session.synced.is_set()  # nothing more is sent to it
    assert session._leave_at is None  # noqa: SLF001 - left now, not later
    assert session._hunt_until > time.monotonic()  # noqa: SLF001


def test_a_member_that_steps_down_during_the_handshake_is_not_used(session: Session):
    """It was the leader when we asked, lost leadership before the monitor's reply: the
    reply is not installed (nothing would be written to it) and the session moves on."""
    session.schema = Schema.from_json(json.loads(NB_SCHEMA.read_text())) \
        if NB_SCHEMA.exists() else None
    session._hunt_until = time.monotonic() + 10  # noqa: SLF001
    session._handshake_started = True  # noqa: SLF001
    assert session._server_check(db_row(leader=False)) is False  # noqa: SLF001
    assert session._leave_at is None  # noqa: SLF001 - no waiting on it
    session._got_monitor({}, None)  # noqa: SLF001
    assert not session.synced.is_set() and session.epoch == 0


def test_a_sandbox_keeps_how_to_relaunch_each_member(tmp_path: Path):
    """Sandbox.relaunch runs a killed member's own command line again (same database file,
    sockets and ports); it survives in sandbox.json, and old files without it still load."""
    cmd = ["ovsdb-server", str(tmp_path / "nb1.db"), "--remote=ptcp:6641:127.0.0.1"]
    state = SandboxState(directory=str(tmp_path), nb_remote="unix:a,unix:b,unix:c",
                         sb_remote="unix:s", nb_sockets=["a", "b", "c"], sb_socket="s",
                         nb_tcp="tcp:127.0.0.1:1,tcp:127.0.0.1:2,tcp:127.0.0.1:3", cluster=3,
                         processes=[Process("nb1", str(tmp_path / "nb1.pid"), "nb1.db", cmd)])
    state.save()
    assert SandboxState.load(tmp_path).processes[0].cmd == cmd
    data = json.loads((tmp_path / "sandbox.json").read_text())
    del data["processes"][0]["cmd"]
    (tmp_path / "sandbox.json").write_text(json.dumps(data))
    assert SandboxState.load(tmp_path).processes[0].cmd == []
