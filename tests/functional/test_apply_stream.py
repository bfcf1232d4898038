"""A full sync streamed to a real ovsdb-server in chunks (topology.nbsync.chunks.Stream): each chunk
is sent while the caller computes the next, later chunks reference rows of earlier ones, and
the result is the NB a single transaction would have made."""

from __future__ import annotations

import os
import signal

from ovn_sandbox import Sandbox
from prometheus_client import REGISTRY

from tests.functional.conftest import find
from tests.functional.test_nb_rpc import VPC, base, lb, pod, subnet, vpc
from topology.model import Owner, Row
from topology.nbsync.applier import Applier
from topology.nbsync.chunks import Stream
from topology.nbsync.client import NbClient

SUBNET = Owner("Subnet", "s1")


def chunked(desired: dict[Owner, list[Row]], size: int) -> list[dict[Owner, list[Row]]]:
    owners = list(desired)
    return [{o: desired[o] for o in owners[i:i + size]} for i in range(0, len(owners), size)]


def retries() -> float:
    return REGISTRY.get_sample_value("ycloud_nb_transactions_total", {"result": "retry"}) or 0.0


def test_chunks_land_as_one_apply_would(applier: Applier, sandbox: Sandbox) -> None:
    desired = base(pods=6, lbs=9)
    stream = Stream(applier)
    for chunk in chunked(desired, 4):  # the VPC and subnet first, pods and LBs after
        stream.send(chunk)
    result = stream.finish(gc=True)
    assert result.ok and result.transactions == 5
    assert len(find(sandbox, "Load_Balancer")) == 9
    assert len(find(sandbox, "Logical_Switch_Port")) == 7  # 6 pods and the router port
    group = find(sandbox, "Load_Balancer_Group")[0]
    assert len(group["load_balancer"]) == 9
    again = applier.apply(desired, gc=True)  # the very rows a single apply wants
    assert again.ok and again.transactions == 0


def pod_ahead_of_its_switch(applier: Applier) -> tuple[Owner, Stream]:
    """A stream whose first chunk is a pod whose switch comes in the next chunk."""
    owner, rows = pod(1)
    stream = Stream(applier)
    stream.send({owner: rows})
    stream.send({VPC: vpc(), SUBNET: subnet()})
    return owner, stream


def test_owner_ahead_of_the_rows_it_references_lands_in_the_last_go(
        applier: Applier, sandbox: Sandbox) -> None:
    _owner, stream = pod_ahead_of_its_switch(applier)
    result = stream.finish()
    assert result.ok, result.errors
    assert find(sandbox, "Logical_Switch_Port", "name=p1.ns")


def test_without_a_last_go_an_owner_ahead_of_its_references_is_left_out(
        applier: Applier, sandbox: Sandbox) -> None:
    owner, stream = pod_ahead_of_its_switch(applier)
    result = stream.finish(last_go=False)
    assert set(result.errors) == {owner}  # for the caller to plan again
    assert not find(sandbox, "Logical_Switch_Port", "name=p1.ns")
    assert find(sandbox, "Logical_Switch", "name=s1")


def test_a_bad_owner_is_reported_alone(applier: Applier, sandbox: Sandbox) -> None:
    applier.apply({VPC: vpc(), SUBNET: subnet()})
    sandbox.nbctl("ls-add", "other")
    sandbox.nbctl("lsp-add", "other", "p2.ns")  # the name pod 2 wants, not ours
    stream = Stream(applier)
    stream.send(dict(pod(i) for i in range(4)))
    stream.send(dict(lb(i) for i in range(3)))
    result = stream.finish()
    assert set(result.errors) == {Owner("Pod", "ns/p2")}
    assert "p2.ns" in result.errors[Owner("Pod", "ns/p2")]
    names = {p["name"] for p in find(sandbox, "Logical_Switch_Port")}
    assert {"p0.ns", "p1.ns", "p3.ns"} <= names
    assert len(find(sandbox, "Load_Balancer")) == 3


def test_finish_collects_garbage_and_spares_kept_owners(applier: Applier,
                                                        sandbox: Sandbox) -> None:
    applier.apply(base(pods=3, lbs=2))
    stream = Stream(applier)
    stream.send({VPC: vpc(), SUBNET: subnet()})
    stream.send(dict([pod(0)]))
    result = stream.finish(gc=True, keep={Owner("Pod", "ns/p2")})
    assert result.ok
    names = {p["name"] for p in find(sandbox, "Logical_Switch_Port")}
    assert names == {"s1-v1", "p0.ns", "p2.ns"}
    assert not find(sandbox, "Load_Balancer")


def test_chunk_whose_reply_is_lost_is_committed_again(applier: Applier, nb: NbClient,
                                                       sandbox: Sandbox) -> None:
    """The server is frozen when the chunk is sent and the connection drops before any
    reply: whether or not the server ran it, the chunk ends up in NB exactly once."""
    applier.apply({VPC: vpc(), SUBNET: subnet()})
    assert nb.session is not None
    server = sandbox.process("nb").pid()
    assert server is not None
    before = retries()
    stream = Stream(applier)
    os.kill(server, signal.SIGSTOP)
    try:
        stream.send(dict(pod(i) for i in range(5)))
        nb.session.force_reconnect()
    finally:
        os.kill(server, signal.SIGCONT)
    result = stream.finish()
    assert result.ok
    assert retries() > before
    names = sorted(p["name"] for p in find(sandbox, "Logical_Switch_Port"))
    assert names == sorted(["s1-v1", *(f"p{i}.ns" for i in range(5))])
