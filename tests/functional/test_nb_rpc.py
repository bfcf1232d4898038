"""The lean NB session and the raw JSON-RPC write path against a real ovsdb-server.

What is checked here, beyond test_apply.py: a committed apply is visible to the next plan at
once (write-through), in either order of the server's reply and monitor update; a dropped
connection rebuilds the index and repeats nothing; an insert that meets a row already holding
its UUID is retried with fresh UUIDs instead of duplicating; servers without client-chosen
UUIDs get `wait`-guarded inserts; a RAFT cluster is served by its leader, also after the
leader dies; rows read back through the index have the columns `restore` needs.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional.conftest import find
from topology import naming
from topology.builders.port import PortSpec, build_port
from topology.builders.service import LbSpec, Vip, build_lb
from topology.builders.subnet import SubnetSpec, build_subnet
from topology.builders.vpc import VpcSpec, build_vpc
from topology.model import Owner, Row, RowId
from topology.nbsync.applier import Applier
from topology.nbsync.client import NbClient
from topology.nbsync.transact import Transaction
from topology.plan import compute_plan

VPC = Owner("Vpc", "v1")


def vpc() -> list[Row]:
    return build_vpc(VpcSpec(name="v1", owner=VPC))


def subnet(name: str = "s1", cidr: str = "10.7.1.0/24", gw: str = "10.7.1.1") -> list[Row]:
    return build_subnet(SubnetSpec(name=name, vpc="v1", owner=Owner("Subnet", name),
                                   cidrs=(cidr,), gateways=(gw,)))


def pod(i: int, switch: str = "s1") -> tuple[Owner, list[Row]]:
    owner = Owner("Pod", f"ns/p{i}")
    return owner, build_port(PortSpec(
        name=naming.pod_port("ns", f"p{i}"), switch=switch, owner=owner, vpc="v1",
        mac=f"0a:00:00:00:{i // 256:02x}:{i % 256:02x}", ips=(f"10.7.1.{10 + i}",),
        role=naming.ROLE_POD, node="n1", gateways=("10.7.1.1",), cidrs=("10.7.1.0/24",)))


def lb(i: int, version: int = 0) -> tuple[Owner, list[Row]]:
    owner = Owner("Service", f"ns/svc{i}")
    backends = tuple((f"10.7.1.{10 + (i + version + k) % 50}", 8080) for k in range(3))
    return owner, build_lb(LbSpec(
        name=naming.service_lb("ns", f"svc{i}", "TCP"), owner=owner, vpc="v1", protocol="TCP",
        vips=(Vip(f"10.96.7.{i + 1}", 80, backends),), groups=(naming.lb_group("v1"),)))


def base(pods: int = 3, lbs: int = 5) -> dict[Owner, list[Row]]:
    desired: dict[Owner, list[Row]] = {VPC: vpc(), Owner("Subnet", "s1"): subnet()}
    desired.update(dict(pod(i) for i in range(pods)))
    desired.update(dict(lb(i) for i in range(lbs)))
    return desired


def nb_transact(sandbox: Sandbox, ops: list[dict]) -> list[dict]:
    """One transaction over a plain socket of its own (another client, for the tests)."""
    assert sandbox.state is not None
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(sandbox.state.nb_sockets[0])
        sock.sendall(json.dumps({"id": 1, "method": "transact",
                                 "params": ["OVN_Northbound", *ops]}).encode())
        dec, buf = json.JSONDecoder(), ""
        while True:
            buf += sock.recv(1 << 16).decode()
            try:
                msg, _ = dec.raw_decode(buf)
            except ValueError:
                continue
            if msg.get("id") == 1:
                return msg["result"]


def db_size(sandbox: Sandbox) -> int:
    return (Path(sandbox.dir) / "nb.db").stat().st_size


def test_the_session_reads_on_while_a_planner_holds_its_lock(nb: NbClient) -> None:
    """ovsdb-server takes no more requests of a session whose output waits to be read, and a
    planner holds the session lock for as long as it plans a chunk (Applier.send): the
    session thread reads on meanwhile, and applies what it read, in order, once the lock is
    free."""
    session = nb.session
    assert session is not None
    answered: list = []
    with session.lock:
        for i in range(3):
            session.send("echo", [i], lambda result, error: answered.append(result))
        wait_for(lambda: len(session._received) == 3, timeout=10,  # noqa: SLF001
                 what="the three replies read")
        assert answered == []  # applied under the lock only
    wait_for(lambda: len(answered) == 3, timeout=10, what="replies applied")
    assert answered == [[0], [1], [2]]


def test_the_session_socket_buffers_hold_a_chunk(nb: NbClient) -> None:
    """A streamed chunk's request (about 1.3 MB) goes to the kernel in one write."""
    session = nb.session
    assert session is not None
    sock = session._session.rpc.stream.socket  # noqa: SLF001
    wmem_max = int(Path("/proc/sys/net/core/wmem_max").read_text())
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= min(wmem_max, 1 << 20)


# -- write-through --------------------------------------------------------------------------------
def test_each_apply_is_seen_by_the_next_plan_at_once(applier: Applier, nb: NbClient,
                                                    sandbox: Sandbox) -> None:
    assert applier.apply(base()).transactions == 1
    for version in range(1, 40):  # endpoint churn: one LB at a time, no pause in between
        owner, rows = lb(version % 5, version)
        result = applier.apply({owner: rows})
        assert result.transactions == 1 and result.changes == 1, result.plans[0].describe()
        again = nb.read(compute_plan, nb.index, {owner: rows})
        assert again.empty(), again.describe()
    lbs = find(sandbox, "Load_Balancer")
    assert len(lbs) == 5
    assert len({r["name"] for r in lbs}) == 5


def test_inserts_and_deletes_are_seen_at_once(applier: Applier, nb: NbClient,
                                             sandbox: Sandbox) -> None:
    applier.apply({VPC: vpc(), Owner("Subnet", "s1"): subnet()})
    for i in range(20):
        owner, rows = pod(i)
        assert applier.apply({owner: rows}).transactions == 1
        assert applier.apply({owner: []}).transactions == 1  # delete right away
        assert applier.apply({owner: []}).transactions == 0
    assert [p["name"] for p in find(sandbox, "Logical_Switch_Port")] == ["s1-v1"]
    assert nb.read(nb.index.count_by_table)["Logical_Switch_Port"] == 1


def test_fresh_client_on_converged_nb_writes_nothing(applier: Applier, sandbox: Sandbox) -> None:
    desired = base(pods=10, lbs=20)
    assert applier.apply(desired).transactions == 1
    sandbox.nbctl("--wait=sb", "sync")  # witness: northd has handled it (it writes NB too)
    size = db_size(sandbox)
    assert sandbox.state is not None
    with NbClient(sandbox.state.nb_remote, timeout=30) as fresh:
        again = Applier(fresh)
        result = again.apply(desired, gc=True)
        again.catch_up()  # witness: the server has answered everything the fresh client sent
    assert result.ok and result.transactions == 0 and result.changes == 0
    assert db_size(sandbox) == size


# -- reconnects, lost replies, duplicate UUIDs ----------------------------------------------------
def test_dropped_connection_rebuilds_the_index(applier: Applier, nb: NbClient,
                                               sandbox: Sandbox) -> None:
    desired = base()
    applier.apply(desired)
    assert nb.session is not None
    epoch = nb.session.epoch
    sandbox.appctl(Path(sandbox.dir) / "nb.ctl", "ovsdb-server/reconnect")
    deadline = time.monotonic() + 20
    while nb.session.epoch == epoch and time.monotonic() < deadline:
        time.sleep(0.05)
    assert nb.session.epoch > epoch, "the session did not re-sync"
    result = applier.apply(desired, gc=True)
    assert result.ok and result.transactions == 0
    owner, rows = lb(1, 7)
    assert applier.apply({owner: rows}).transactions == 1
    assert len(find(sandbox, "Load_Balancer")) == 5


def test_apply_waits_for_the_connection_to_come_back(applier: Applier, nb: NbClient,
                                                      sandbox: Sandbox) -> None:
    applier.apply(base())
    sandbox.appctl(Path(sandbox.dir) / "nb.ctl", "ovsdb-server/reconnect")
    owner, rows = lb(2, 9)
    result = applier.apply({owner: rows})  # right away: planned again once re-synced
    assert result.ok and result.transactions == 1
    assert len(find(sandbox, "Load_Balancer")) == 5


def test_resent_insert_is_refused_not_duplicated(applier: Applier, nb: NbClient,
                                                 sandbox: Sandbox) -> None:
    """The server refuses a second insert with the same client-chosen UUID: what protects a
    transaction sent again after its reply was lost."""
    applier.apply({VPC: vpc(), Owner("Subnet", "s1"): subnet()})
    assert nb.session is not None and nb.session.supports_insert_uuid
    owner, rows = pod(1)
    plan = nb.read(compute_plan, nb.index, {owner: rows})
    txn = nb.read(Transaction, plan, nb.session.schema, nb.session, applier.uuids, True)
    first = nb_transact(sandbox, txn.ops)
    assert not any("error" in r for r in first if isinstance(r, dict))
    second = nb_transact(sandbox, txn.ops)
    assert any(r.get("error") == "duplicate uuid" for r in second if isinstance(r, dict))
    assert len(find(sandbox, "Logical_Switch_Port", "name=p1.ns")) == 1
    assert applier.apply({owner: rows}).transactions == 0


def test_uuid_taken_by_a_row_that_is_not_ours(applier: Applier, nb: NbClient,
                                              sandbox: Sandbox) -> None:
    """A row holding the UUID our insert would get, but not ours (no managed-by): the insert
    is refused as a duplicate UUID, retried, then sent with fresh UUIDs; the other row stays."""
    applier.apply({VPC: vpc()})
    owner, rows = lb(3)
    taken = str(applier.uuids(RowId("Load_Balancer", rows[0].key)))
    res = nb_transact(sandbox, [{"op": "insert", "table": "Load_Balancer", "uuid": taken,
                                 "row": {"name": "not-ours"}}])
    assert "uuid" in res[0]
    result = applier.apply({owner: rows})
    assert result.ok and result.transactions == 1
    names = sorted(r["name"] for r in find(sandbox, "Load_Balancer"))
    assert names == [rows[0].key, "not-ours"]
    assert find(sandbox, "Load_Balancer", "name=not-ours")[0]["_uuid"] == taken


def test_without_client_uuids_inserts_are_guarded(applier: Applier, nb: NbClient,
                                                  sandbox: Sandbox) -> None:
    """Servers older than OVS 3.1: named-uuid inserts, each behind a `wait` that fails when a
    row of ours with that key already exists."""
    assert nb.session is not None
    nb.session.supports_insert_uuid = False
    desired = base()
    result = applier.apply(desired)
    assert result.ok and result.transactions == 1
    assert applier.apply(desired, gc=True).transactions == 0
    group = find(sandbox, "Load_Balancer_Group", "name=vpc-v1")[0]
    assert len(group["load_balancer"]) == 5
    owner = Owner("Pod", "ns/late")
    rows = build_port(PortSpec(name="late.ns", switch="s1", owner=owner, vpc="v1",
                               mac="0a:00:00:00:0f:01", ips=("10.7.1.99",),
                               role=naming.ROLE_POD))
    stale = nb.read(lambda: Transaction(compute_plan(nb.index, {owner: rows}),
                                        nb.session.schema, nb.session, applier.uuids, False))
    assert applier.apply({owner: rows}).transactions == 1  # lands first
    res = nb_transact(sandbox, stale.ops)  # the stale plan would insert it again
    assert any(r.get("error") == "timed out" for r in res if isinstance(r, dict))
    assert len(find(sandbox, "Logical_Switch_Port", "name=late.ns")) == 1


# -- reading back ---------------------------------------------------------------------------------
def test_index_rows_have_what_restore_reads(applier: Applier, nb: NbClient) -> None:
    applier.apply(base())

    def read() -> tuple:
        index = nb.index
        (lsp_uuid,) = index.lookup(RowId("Logical_Switch_Port", "p1.ns"))
        lsp = index.row("Logical_Switch_Port", lsp_uuid)
        (lrp_uuid,) = index.lookup(RowId("Logical_Router_Port", "v1-s1"))
        lrp = index.row("Logical_Router_Port", lrp_uuid)
        with pytest.raises(AttributeError, match="not monitored"):
            lsp.port_security  # noqa: B018
        return lsp.addresses, lsp.external_ids[naming.OWNER], lrp.name, lrp.networks
    addresses, owner, name, networks = nb.read(read)
    assert addresses == ["0a:00:00:00:00:01 10.7.1.11"]
    assert owner == "ns/p1"
    assert (name, networks) == ("v1-s1", ["10.7.1.1/24"])


def test_full_idl_for_tools_is_opened_on_demand(applier: Applier, nb: NbClient) -> None:
    applier.apply(base())

    def vips() -> dict:
        rows = nb.idl.tables["Load_Balancer"].rows.values()
        return {r.name: dict(r.vips) for r in rows}
    found = nb.read(vips)
    assert found[naming.service_lb("ns", "svc0", "TCP")] == {
        "10.96.7.1:80": "10.7.1.10:8080,10.7.1.11:8080,10.7.1.12:8080"}


# -- RAFT -----------------------------------------------------------------------------------------
@pytest.fixture
def raft(tmp_path: Path):  # noqa: ANN201
    box = Sandbox(tmp_path / "raft", cluster=3)
    box.start()
    yield box
    box.stop()


def _leader(box: Sandbox) -> int:
    for i in range(1, 4):
        out = box.appctl(box.dir / f"nb{i}.ctl", "cluster/status", "OVN_Northbound")
        if "Role: leader" in out:
            return i
    raise AssertionError("no leader")


def test_raft_cluster_is_written_through_its_leader(raft: Sandbox) -> None:
    assert raft.state is not None
    with NbClient(raft.state.nb_remote, timeout=30) as client:
        applier = Applier(client)
        desired = base()
        assert applier.apply(desired).transactions == 1
        leader = _leader(raft)
        raft.appctl(raft.dir / f"nb{leader}.ctl", "exit")
        owner, rows = lb(4, 3)
        result = applier.apply({owner: rows})  # reconnects to the new leader, plans again
        # 0 when the exiting leader committed it but its reply was lost: the re-plan on the
        # new leader finds the rows there; either way every row exists once (checked below)
        assert result.ok and result.transactions in (0, 1)
        assert applier.apply({**desired, owner: rows}, gc=True).transactions == 0
    others = [i for i in range(1, 4) if i != leader]
    out = subprocess.run(["ovn-nbctl", f"--db=unix:{raft.dir / f'nb{others[0]}.sock'}",
                          "--no-leader-only", "--format=json", "find", "Load_Balancer"],
                         capture_output=True, text=True, check=True).stdout
    assert len(json.loads(out)["data"]) == 5


def test_tcp_remote(sandbox: Sandbox) -> None:
    """A stream remote: the session runs its own inactivity probe (python-ovs' is off)."""
    assert sandbox.state is not None and sandbox.state.nb_tcp
    with NbClient(sandbox.state.nb_tcp, timeout=30) as client:
        assert client.session is not None and client.session._probe_interval > 0  # noqa: SLF001
        applier = Applier(client)
        assert applier.apply(base()).transactions == 1
        assert applier.apply(base(), gc=True).transactions == 0
