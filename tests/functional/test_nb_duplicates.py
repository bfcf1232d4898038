"""Inserts cannot land twice, whoever sends them: a row's client-chosen UUID is derived from
its (table, key) alone, so the same insert from another client (a restarted controller, a
second replica, a transaction re-sent after a RAFT leader change) is refused by ovsdb-server
as a duplicate UUID, and the writer then plans again from what NB holds instead of giving up
or inserting a second row. (Load_Balancer names are not unique in the NB schema: without this,
a second insert would simply create a second LB.)"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional.conftest import find
from tests.functional.test_nb_rpc import VPC, lb, vpc
from topology.model import RowId
from topology.nbsync.applier import Applier
from topology.nbsync.client import NbClient
from topology.nbsync.transact import OURS, Transaction, UuidSource, first_error, holder
from topology.plan import compute_plan


def remote(sandbox: Sandbox) -> str:
    assert sandbox.state is not None
    return sandbox.state.nb_remote


def test_every_client_gives_a_row_the_same_uuid(applier: Applier, nb: NbClient,
                                                sandbox: Sandbox) -> None:
    """Another client planned the same insert before ours landed; its transaction, sent
    after, is refused ("duplicate uuid"), and the row that holds the UUID is ours."""
    applier.apply({VPC: vpc()})
    owner, rows = lb(1)
    with NbClient(remote(sandbox), timeout=30) as other:
        session = other.session
        assert session is not None and session.supports_insert_uuid
        stale = other.read(lambda: Transaction(compute_plan(other.index, {owner: rows}),
                                               session.schema, session, UuidSource(), True))
        assert applier.apply({owner: rows}).transactions == 1  # ours lands first
        result = session.call("transact", [session.database, *stale.ops], timeout=10)
        found = first_error(result)
        assert found is not None and found[1].startswith("duplicate uuid"), result
        inserted = stale.insert_of(found[0])
        assert inserted is not None
        rid, row_uuid = inserted
        assert rid == RowId("Load_Balancer", rows[0].key)
        assert holder(session, rid, row_uuid) == OURS
    lbs = find(sandbox, "Load_Balancer")
    assert [r["name"] for r in lbs] == [rows[0].key]
    assert lbs[0]["_uuid"] == row_uuid


def test_an_insert_that_landed_meanwhile_is_seen_not_repeated(
        applier: Applier, nb: NbClient, sandbox: Sandbox,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The race of a lost reply, made deterministic: between our plan and our send, the same
    rows land through another connection (as a transaction re-sent to a new RAFT leader, or
    a killed controller's last one, may land). Our transaction is refused; apply() finds the
    UUID held by our row, waits for the monitor to show it, plans again: nothing left."""
    applier.apply({VPC: vpc()})
    desired = dict(lb(i) for i in range(20))
    session = nb.session
    assert session is not None
    real_send = session.send_encoded
    raced = []

    def send_after_the_other_lands(*args: Any, **kwargs: Any) -> None:
        if not raced:
            with NbClient(remote(sandbox), timeout=30) as other:
                raced.append(Applier(other).apply(desired))
        real_send(*args, **kwargs)

    monkeypatch.setattr(session, "send_encoded", send_after_the_other_lands)
    result = applier.apply(desired)
    assert raced and raced[0].transactions == 1
    assert result.ok and result.transactions == 0, result.plans[-1].describe()
    lbs = find(sandbox, "Load_Balancer")
    assert sorted(r["name"] for r in lbs) == sorted(rows[0].key for rows in desired.values())
    assert applier.apply({VPC: vpc(), **desired}, gc=True).changes == 0


def test_two_writers_at_once_leave_one_row_each(nb: NbClient, sandbox: Sandbox) -> None:
    """Two clients (an old and a new controller replica during a handover) apply the same
    rows at the same moment, five times over; every row exists once, and both succeed."""
    with NbClient(remote(sandbox), timeout=30) as one, \
            NbClient(remote(sandbox), timeout=30) as two:
        writers = [Applier(one), Applier(two)]
        writers[0].apply({VPC: vpc()})
        wait_for(lambda: writers[1].plan({VPC: vpc()}).empty(), timeout=10,
                 what="the second writer sees the VPC")
        for round_ in range(5):
            desired = dict(lb(round_ * 40 + i) for i in range(40))
            start = threading.Barrier(2)
            results: list[Any] = [None, None]

            def write(i: int, d: dict = desired, b: threading.Barrier = start,
                      out: list = results) -> None:
                b.wait()
                out[i] = writers[i].apply(d)
            threads = [threading.Thread(target=write, args=(i,)) for i in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert all(r is not None and r.ok for r in results), results
            names = [r["name"] for r in find(sandbox, "Load_Balancer")]
            assert len(names) == len(set(names)) == 40 * (round_ + 1)


def test_a_foreign_row_on_the_derived_uuid_gets_the_row_another_one(
        applier: Applier, nb: NbClient, sandbox: Sandbox) -> None:
    """The derived UUID is not a secret: a row that is not ours may hold it. Our row is then
    inserted with a random UUID, kept for later inserts of that row in this process."""
    applier.apply({VPC: vpc()})
    owner, rows = lb(5)
    rid = RowId("Load_Balancer", rows[0].key)
    derived = str(UuidSource()(rid))
    session = nb.session
    assert session is not None
    session.call("transact", [session.database, {
        "op": "insert", "table": "Load_Balancer", "uuid": derived,
        "row": {"name": "hand-made"}}], timeout=10)
    assert applier.apply({owner: rows}).ok
    ours = find(sandbox, "Load_Balancer", f"name={rows[0].key}")
    assert len(ours) == 1 and ours[0]["_uuid"] != derived
    assert applier.uuids(rid) == ours[0]["_uuid"]
    assert uuid.UUID(applier.uuids(rid)) != uuid.UUID(derived)
    assert find(sandbox, "Load_Balancer", "name=hand-made")[0]["_uuid"] == derived
