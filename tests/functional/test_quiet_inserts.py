"""Load_Balancer inserts are not echoed by the monitor (topology.nbsync.client QUIET_INSERTS): our
own inserts are in the index as soon as they are written, updates and deletes of our rows by
anyone are still seen at once, and a row with our tags inserted by someone else is found by a
reload of the monitor: on a refused insert, and before every periodic full sync of `run`. Also
here: a streamed full sync whose chunk is refused while later chunks, planned on top of it, are
already in flight."""

from __future__ import annotations

from typing import Any

from fakekube.server import FakeKube
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional.bad_input.support import create
from tests.functional.conftest import find
from tests.functional.ctlrun import controller
from tests.functional.test_foreign_rows import lb as service_lb
from tests.functional.test_foreign_rows import objects
from tests.functional.test_nb_rpc import VPC, base, lb, pod, subnet, vpc
from topology import naming
from topology.model import Owner, RowId
from topology.nbsync.applier import Applier
from topology.nbsync.chunks import Stream
from topology.nbsync.client import NbClient


def copy_of(sandbox: Sandbox, name: str) -> None:
    """A copy of our Load_Balancer `name`, tags, VIPs and all (as a second controller that
    should not be running would insert it)."""
    row = find(sandbox, "Load_Balancer", f"name={name}")[0]
    ids = ",".join(f'"{k}"="{v}"' for k, v in row["external_ids"].items())
    vips = ",".join(f'"{k}"="{v}"' for k, v in row["vips"].items())
    sandbox.nbctl("create", "Load_Balancer", f"name={name}", f"external_ids={{{ids}}}",
                  f"vips={{{vips}}}", f"protocol={row['protocol']}")


def lb_uuids(nb: NbClient, key: str) -> list[Any]:
    return nb.read(nb.index.lookup, RowId("Load_Balancer", key))


def test_our_inserts_are_indexed_without_an_echo(applier: Applier, nb: NbClient,
                                                 sandbox: Sandbox) -> None:
    desired = dict(lb(i) for i in range(5))
    assert applier.apply({VPC: vpc(), **desired}).transactions == 1
    session = nb.session
    assert session is not None and not session.echoes_inserts("Load_Balancer")
    for rows in desired.values():
        found = lb_uuids(nb, rows[0].key)
        assert len(found) == 1
        assert found[0] in session.rows["Load_Balancer"]  # confirmed, not a pending overlay
    assert applier.apply({VPC: vpc(), **desired}).transactions == 0


def test_updates_and_deletes_of_our_rows_are_still_seen(applier: Applier, nb: NbClient,
                                                        sandbox: Sandbox) -> None:
    desired = dict(lb(i) for i in range(3))
    applier.apply({VPC: vpc(), **desired})
    keys = [rows[0].key for rows in desired.values()]
    sandbox.nbctl("set", "Load_Balancer", keys[0], f'external_ids:"{naming.HASH}"="edited"')
    sandbox.nbctl("lb-del", keys[1])
    wait_for(lambda: not lb_uuids(nb, keys[1]), timeout=10, what="the delete is seen")
    wait_for(lambda: nb.read(lambda: nb.index.meta[lb_uuids(nb, keys[0])[0]].hash) == "edited",
             timeout=10, what="the update is seen")
    result = applier.apply({VPC: vpc(), **desired})
    assert result.plans[-1].summary()["update"] == 1
    assert result.plans[-1].summary()["insert"] == 1
    assert sorted(r["name"] for r in find(sandbox, "Load_Balancer")) == sorted(keys)


def test_a_copy_with_our_tags_is_found_by_a_reload(applier: Applier, nb: NbClient,
                                                   sandbox: Sandbox) -> None:
    owner, rows = lb(1)
    applier.apply({VPC: vpc(), owner: rows})
    copy_of(sandbox, rows[0].key)
    sandbox.nbctl("--wait=none", "sync")
    assert applier.apply({VPC: vpc(), owner: rows}).transactions == 0  # not reported
    applier.resync()
    assert len(lb_uuids(nb, rows[0].key)) == 2
    plan = applier.apply({VPC: vpc(), owner: rows}).plans[-1]
    assert plan.summary()["delete"] == 1  # one of the two goes (the other is kept)
    left = find(sandbox, "Load_Balancer", f"name={rows[0].key}")
    assert len(left) == 1 and left[0]["vips"]
    group = find(sandbox, "Load_Balancer_Group")[0]
    assert group["load_balancer"] == left[0]["_uuid"]
    assert applier.apply({VPC: vpc(), owner: rows}).transactions == 0


def test_run_removes_a_copy_at_its_periodic_resync(fake: FakeKube, sandbox: Sandbox) -> None:
    assert sandbox.state is not None
    create(fake, objects())
    name = service_lb("ns1", "web")
    with controller(fake, sandbox.state.nb_remote, resync=0.5):
        wait_for(lambda: find(sandbox, "Load_Balancer", f"name={name}"), timeout=30,
                 what="the service's load balancer")
        copy_of(sandbox, name)
        assert len(find(sandbox, "Load_Balancer", f"name={name}")) == 2
        wait_for(lambda: len(find(sandbox, "Load_Balancer", f"name={name}")) == 1,
                 timeout=30, what="the copy removed by a periodic resync")


def test_chunk_refused_under_chunks_planned_on_it(applier: Applier, nb: NbClient,
                                                  sandbox: Sandbox) -> None:
    """Chunk 1 (the VPC, the switch, and a pod whose port name an operator holds) is
    refused while chunks 2 and 3 (ports on that switch, load balancers in the VPC's group),
    planned as if it had landed, are already sent. Every good owner still lands."""
    sandbox.nbctl("ls-add", "other")
    sandbox.nbctl("lsp-add", "other", "p9.ns")  # the name pod 9 wants, not ours
    stream = Stream(applier)
    assert stream.IN_FLIGHT >= 3 and applier.can_run_ahead()
    stream.send({VPC: vpc(), Owner("Subnet", "s1"): subnet(), **dict([pod(9)])})
    stream.send(dict(pod(i) for i in range(4)))
    stream.send(dict(lb(i) for i in range(3)))
    result = stream.finish(gc=True)
    assert set(result.errors) == {Owner("Pod", "ns/p9")}
    names = {p["name"] for p in find(sandbox, "Logical_Switch_Port")}
    assert {"p0.ns", "p1.ns", "p2.ns", "p3.ns", "s1-v1"} <= names
    group = find(sandbox, "Load_Balancer_Group")[0]
    assert len(group["load_balancer"]) == 3
    desired = {**base(pods=4, lbs=3)}
    assert applier.apply(desired).transactions == 0
