"""Which rows the settle pass of manifests mode sends to NB as it goes (sync.early), and that
the conditions of objects whose rows landed are handed on then. The stream here is a
stand-in that lands every chunk at once; tests/functional/test_sync_once_steps.py runs the
real one against NB."""

from __future__ import annotations

from typing import Any

import pytest

from topology.model import LoadBalancer, LoadBalancerGroup, Owner, RowId
from topology.nbsync.applier import ApplyResult
from ycloud_controller.api.common import Invalid
from ycloud_controller.keys import YSVC_LABEL
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import EventEffect, Outcome, PatchEffect, StatusEffect
from ycloud_controller.sync.chunks import without_conditions
from ycloud_controller.sync.early import EarlyRows, settled_by_itself


class Applier:
    def __init__(self) -> None:
        self.resyncs = 0
        self.fail = False

    def resync(self) -> None:
        self.resyncs += 1
        if self.fail:
            raise TimeoutError("NB not connected")


class LandingStream:
    """Lands each chunk as it is sent."""

    def __init__(self, on_landed: Any = None):
        self.on_landed = on_landed
        self.sent: list[list[Owner]] = []
        self.applier = Applier()

    def send(self, desired: dict) -> None:
        self.sent.append(list(desired))
        self.on_landed(list(desired))

    def finish(self, gc: bool = False, keep: Any = (), last_go: bool = True) -> ApplyResult:
        assert not last_go  # refused owners are left to the full sync
        return ApplyResult()


def svc(name: str, stype: str = "ClusterIP", labels: dict | None = None) -> dict:
    return {"kind": "Service", "metadata": {"name": name, "namespace": "ns",
                                            "labels": labels or {}},
            "spec": {"type": stype}}


def outcome(name: str, *, invalid: bool = False, retry: str | None = None,
            groups: tuple[str, ...] = ()) -> Outcome:
    owner = Owner("Service", f"ns/{name}")
    obj = svc(name)
    return Outcome(
        rows={owner: [LoadBalancer(name=f"lb-{name}", protocol="tcp", owner=owner,
                                   groups=groups)]},
        effects=[StatusEffect(res.SERVICES, obj, {}, True, "Programmed", "in NB"),
                 EventEffect(obj, "Normal", "Programmed", "in NB")],
        invalid=Invalid("Bad", "bad") if invalid else None, retry=retry)


@pytest.fixture
def early() -> tuple[EarlyRows, list, set]:
    handed: list = []
    in_nb: set[Owner] = set()
    rows_in_nb = {RowId("Load_Balancer_Group", "in-nb")}
    objects = {("Service", "ns/lb"): svc("lb", "LoadBalancer"),
               ("Service", "ns/made"): svc("made", labels={YSVC_LABEL: "made"})}
    rows = EarlyRows(LandingStream, in_nb=in_nb.__contains__,
                     lookup=lambda key: objects.get(key, svc(key[1].split("/")[1])),
                     submit=handed.extend, row_in_nb=rows_in_nb.__contains__)
    return rows, handed, in_nb


def test_objects_that_contend_for_nothing_are_settled_by_themselves() -> None:
    for kind in ("Vpc", "Subnet", "Pod"):
        assert settled_by_itself(kind, None)
    assert settled_by_itself("Service", svc("a"))
    assert settled_by_itself("Service", {"metadata": {}, "spec": {}})  # type defaults
    assert not settled_by_itself("Service", svc("a", "LoadBalancer"))  # an EIP
    assert not settled_by_itself("Service", svc("a", labels={YSVC_LABEL: "a"}))
    assert not settled_by_itself("Service", None)
    for kind in ("YusurService", "EipPool", "Vnic", "Node", "Endpoints"):
        assert not settled_by_itself(kind, {})


def test_only_clean_new_rows_of_such_objects_are_sent(early: tuple) -> None:
    rows, handed, in_nb = early
    rows.chunks.limit = 1  # a chunk per object
    rows.add(("Service", "ns/a"), outcome("a"))
    rows.add(("Service", "ns/bad"), outcome("bad", invalid=True))
    rows.add(("Service", "ns/later"), outcome("later", retry="not yet"))
    rows.add(("Service", "ns/lb"), outcome("lb"))
    rows.add(("Service", "ns/made"), outcome("made"))
    in_nb.add(Owner("Service", "ns/there"))  # NB holds a row of it: left to the full sync
    rows.add(("Service", "ns/there"), outcome("there"))
    rows.add(("YusurService", "ns/y"), outcome("y"))
    rows.add(("Service", "ns/empty"), Outcome(rows={Owner("Service", "ns/empty"): []}))
    landed = rows.finish()
    assert rows.chunks.stream.sent == [[Owner("Service", "ns/a")]]
    assert list(landed) == [("Service", "ns/a")]
    assert rows.handed == {("Service", "ns/a")}
    # its condition was handed as it landed; its other writes are the settle pass's own
    assert [(type(e), e.obj["metadata"]["name"]) for e in handed] == [(StatusEffect, "a")]


def test_the_rows_sent_are_what_the_full_sync_compares_with(early: tuple) -> None:
    rows, _handed, _in_nb = early
    sent = outcome("a")
    rows.add(("Service", "ns/a"), sent)
    assert rows.finish()[("Service", "ns/a")] is sent.rows


def test_without_conditions_keeps_every_other_write() -> None:
    obj = svc("a")
    kept = [StatusEffect(res.SERVICES, obj, {"x": 1}, None),  # fields only: no condition
            EventEffect(obj, "Normal", "R", "m"),
            PatchEffect(res.SERVICES, "a", "ns", {"metadata": {}})]
    condition = StatusEffect(res.SERVICES, obj, {}, True, "Programmed", "in NB")
    assert without_conditions([condition, *kept]) == kept


def test_a_failed_settle_pass_reloads_the_index_if_rows_were_sent(early: tuple) -> None:
    rows, _handed, _in_nb = early
    applier = rows.chunks.stream.applier
    rows.abandon()
    assert applier.resyncs == 0  # nothing sent: nothing to reload
    rows.add(("Service", "ns/a"), outcome("a"))
    rows.abandon()
    assert applier.resyncs == 1
    applier.fail = True
    rows.abandon()  # NB down: the reconnection reloads it; the failure is not made worse
    assert applier.resyncs == 2


def test_a_row_goes_only_once_every_row_it_links_to_is_in_nb_or_sent(early: tuple) -> None:
    rows, _handed, _in_nb = early
    rows.add(("Service", "ns/orphan"), outcome("orphan", groups=("vpc-x",)))  # nothing has it
    rows.add(("Service", "ns/old"), outcome("old", groups=("in-nb",)))  # NB has its group
    vpc = Owner("Vpc", "x")
    rows.add(("Vpc", "x"), Outcome(rows={vpc: [LoadBalancerGroup(name="vpc-x", owner=vpc)]}))
    rows.add(("Service", "ns/new"), outcome("new", groups=("vpc-x",)))  # its group went first
    assert list(rows.finish()) == [("Service", "ns/old"), ("Vpc", "x"), ("Service", "ns/new")]
