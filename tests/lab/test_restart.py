"""A controller restart is invisible to traffic: open TCP connections through a ClusterIP, an
EIP and a multi-VPC EIP keep working before, during and after it, new connections succeed
throughout, NB rows keep their _uuid (nothing deleted and recreated; nothing written), and
what the chassis act on is left alone: the SB rows they read and every chassis' flows.

Runs on the examples served by the in-process controller (`examples` fixture): it is stopped
and a new Controller is started on the same store and NB, like a process restart."""

from __future__ import annotations

import pytest
from ycloud_lab import Lab
from ycloud_lab.scenarios import CLIENT1, EXT_HOST, MULTI_EIP, WEB_EIP, WEB_VIP

from .conftest import TABLES, Examples, Traffic, owned_uuids, restart_under
from .dataplane import Dataplane, dataplane

pytestmark = pytest.mark.lab


def test_restart_keeps_open_connections_and_row_uuids(examples: Examples, lab: Lab) -> None:
    controller = examples.controller
    controller.wait_idle()
    before = {t: owned_uuids(lab, t) for t in TABLES}
    assert before["Load_Balancer"], "no LB owned by the controller"
    targets = {"clusterip": (CLIENT1, WEB_VIP, 80), "eip": (EXT_HOST, WEB_EIP, 80),
               "multi-eip": (EXT_HOST, MULTI_EIP, 80)}
    held = {name: lab.open_connection(*t) for name, t in targets.items()}
    try:
        first = {name: conn.send() for name, conn in held.items()}
        assert all(r.ok for r in first.values()), first
        fresh = {name: (lambda t=t: lab.request(t[0], "tcp", t[1], t[2]))
                 for name, t in targets.items()}
        traffic = Traffic(lab, held, fresh)
        planes: list[Dataplane] = []
        restart_under(traffic, controller, before_stop=lambda: planes.append(dataplane(lab)))
        planes.append(dataplane(lab))
        assert not traffic.failed(), traffic.failed()
        for name in held:  # one connection, one backend, one source throughout
            seen = {(r.server, r.source) for _, w, r in traffic.log if w == f"held {name}"}
            assert seen == {(first[name].server, first[name].source)}, (name, seen)
        phases = {p for p, _, _ in traffic.log}
        assert {"before", "stopped", "after"} <= phases, phases
    finally:
        for conn in held.values():
            conn.close()
    sync = controller.ctl.last_sync
    assert sync is not None and sync.changes == 0 and sync.transactions == 0, sync
    after = {t: owned_uuids(lab, t) for t in TABLES}
    assert after == before
    # nothing the chassis act on changed: no SB row (the controller only reads SB), no flow
    assert planes[0].summary()["SB Port_Binding"], planes[0].summary()
    assert not planes[0].changes(planes[1]), planes[0].changes(planes[1])
