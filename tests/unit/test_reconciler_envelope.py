"""The envelope every reconciler shares (reconcilers/base.py Reconciler): a deleted object's
rows go, a refused object's rows stay and it is told why, the same way for every kind."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit import factories as f
from tests.unit.cluster import Cluster
from topology.model import Owner
from ycloud_controller.keys import ANN_SUBNET, NETWORK_READY, READY
from ycloud_controller.reconcilers.base import EventEffect, Reconciler, StatusEffect
from ycloud_controller.reconcilers.eippool import reconcile_eippool
from ycloud_controller.reconcilers.node import reconcile_node
from ycloud_controller.reconcilers.pod import reconcile_pod
from ycloud_controller.reconcilers.registry import build
from ycloud_controller.reconcilers.service import reconcile_service
from ycloud_controller.reconcilers.subnet import reconcile_subnet
from ycloud_controller.reconcilers.vnic import reconcile_vnic
from ycloud_controller.reconcilers.vpc import reconcile_vpc
from ycloud_controller.reconcilers.ysvc import reconcile_yusur_service

WITH_ROWS = [(reconcile_vpc, "gone"), (reconcile_subnet, "gone"),
             (reconcile_eippool, "gone"), (reconcile_node, "gone"),
             (reconcile_pod, "ns/gone"), (reconcile_vnic, "ns/gone"),
             (reconcile_service, "ns/gone")]


@pytest.mark.parametrize(("reconcile", "key"), WITH_ROWS)
def test_a_deleted_object_deletes_its_rows(reconcile: Reconciler, key: str) -> None:
    out = reconcile(Cluster().sync_subnets().ctx, key)
    assert out.rows == {Owner(reconcile.RESOURCE.kind, key): []}
    assert (out.effects, out.invalid, out.retry) == ([], None, None)


def test_kinds_without_rows_answer_nothing_for_a_deleted_object() -> None:
    c = Cluster()
    table = build(c.ctx, emulate=False)
    for kind in ("YusurService", "NetworkProbe"):
        out = table[kind]("ns/gone")
        assert (out.rows, out.effects, out.invalid) == ({}, [], None)


BAD: list[tuple[Reconciler, dict[str, Any], str, str]] = [
    (reconcile_pod, f.pod("p", "ns", annotations={ANN_SUBNET: "nope"}), "ns/p",
     NETWORK_READY),
    (reconcile_vnic, {"apiVersion": f.GROUP, "kind": "Vnic",
                      "metadata": {"name": "v", "namespace": "ns"},
                      "spec": {"subnet": "nope"}}, "ns/v", READY),
    (reconcile_service, f.service("s", "ns", cluster_ips=["10.96.0.9"],
                                  ports=[{"port": 0}]), "ns/s", NETWORK_READY),
    (reconcile_eippool, f.eippool("p", "172.18.0.0/24", "10.0.0.1"), "p", READY),
]


@pytest.mark.parametrize(("reconcile", "obj", "key", "condition"), BAD)
def test_a_refused_object_keeps_its_rows_and_is_told_why(
        reconcile: Reconciler, obj: dict[str, Any], key: str, condition: str) -> None:
    c = Cluster().add(obj).sync_subnets()
    out = reconcile(c.ctx, key)
    assert out.rows == {Owner(reconcile.RESOURCE.kind, key): None}
    assert out.invalid is not None and out.retry is None
    (st,) = [e for e in out.effects if isinstance(e, StatusEffect)]
    (ev,) = [e for e in out.effects if isinstance(e, EventEffect)]
    assert (st.ready, st.reason, st.condition) == (False, out.invalid.reason, condition)
    assert (ev.type, ev.reason, ev.message) == ("Warning", out.invalid.reason,
                                                out.invalid.message)


def test_a_refused_yusurservice_has_no_rows_to_keep() -> None:
    ysvc = {"apiVersion": f.GROUP, "kind": "YusurService",
            "metadata": {"name": "y", "namespace": "ns"}, "spec": {"ports": []}}
    out = reconcile_yusur_service(Cluster().add(ysvc).ctx, "ns/y")
    assert out.rows == {} and out.invalid is not None
    assert [type(e) for e in out.effects] == [StatusEffect, EventEffect]
