"""A restart keeps an established Subnet when a refused newcomer overlaps it (issue 22).

vpc1's subnet1 (10.1.1.0/24) holds web-1 and web-2, the backends of ClusterIP web
(10.96.10.10). A Subnet `subnet-0` of vpc1 asking for 10.1.0.0/23 arrives later: younger, and
its name sorts first. The running controller refuses it (CIDRConflict), and a restart must
decide the same — the holder NB records first, never the name — while an open TCP connection
through the VIP and new connections keep working. The in-process controller runs with object
ages off, as on a manifests directory, where the issue's restart handed subnet1's CIDR to the
newcomer (6 of 6 new connections timed out).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import structlog
from ycloud_lab import Lab
from ycloud_lab.inprocess import InProcessController
from ycloud_lab.scenarios import CLIENT1, WEB_VIP, wait_until

from ycloud_controller.keys import READY
from ycloud_controller.kube import resources as res

from .conftest import TABLES, Examples, Traffic, owned_uuids, restart_under
from .dataplane import Dataplane, dataplane

pytestmark = pytest.mark.lab
log = structlog.get_logger(__name__)

HOLDER = "subnet1"
NEWCOMER = "subnet-0"  # sorts before the holder: a tie broken by name would hand it the CIDR
NEWCOMER_CIDR = "10.1.0.0/23"  # overlaps subnet1 (10.1.1.0/24) only


def newcomer() -> dict[str, Any]:
    return {"apiVersion": "iaas.yusur.io/v1", "kind": "Subnet",
            "metadata": {"name": NEWCOMER},
            "spec": {"vpc": "vpc1", "cidrBlock": NEWCOMER_CIDR, "gateway": "10.1.0.1"}}


def ready(controller: InProcessController, name: str) -> dict[str, Any]:
    obj = controller.backend.get(res.SUBNETS, name, None) or {}
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == READY), {})


def warnings(controller: InProcessController, name: str) -> set[str]:
    """Reasons of the Warning Events about Subnet `name`."""
    events, _ = controller.backend.list(res.EVENTS)
    return {ev.get("reason", "") for ev in events
            if ev.get("type") == "Warning"
            and (ev.get("involvedObject") or {}).get("kind") == "Subnet"
            and (ev.get("involvedObject") or {}).get("name") == name}


def refused(controller: InProcessController) -> bool:
    cond = ready(controller, NEWCOMER)
    return (cond.get("status") == "False" and cond.get("reason") == "CIDRConflict"
            and HOLDER in cond.get("message", ""))


@contextmanager
def overlapping(controller: InProcessController) -> Iterator[None]:
    """The newcomer created (after the examples converged), deleted at the end."""
    controller.wait_idle()
    controller.backend.create(res.SUBNETS, newcomer())
    try:
        yield
    finally:
        controller.backend.delete(res.SUBNETS, NEWCOMER, None)
        wait_until(lambda: controller.backend.get(res.SUBNETS, NEWCOMER, None) is None, 10,
                   f"Subnet {NEWCOMER} deleted")
        controller.wait_idle()


def test_restart_keeps_the_holder_of_a_contested_cidr(examples: Examples, lab: Lab) -> None:
    controller = examples.controller
    controller.wait_idle()
    assert ready(controller, HOLDER).get("status") == "True", ready(controller, HOLDER)
    before = {t: owned_uuids(lab, t) for t in TABLES}
    held = lab.open_connection(CLIENT1, WEB_VIP, 80)
    try:
        first = held.send()
        assert first.ok, first
        with overlapping(controller):
            wait_until(lambda: refused(controller), 20, f"Subnet {NEWCOMER} refused")
            wait_until(lambda: "CIDRConflict" in warnings(controller, NEWCOMER), 20,
                       f"a CIDRConflict Warning Event about Subnet {NEWCOMER}")
            controller.wait_idle()
            assert {t: owned_uuids(lab, t) for t in TABLES} == before, \
                "the refused newcomer changed NB"
            traffic = Traffic(lab, {"clusterip": held},
                              {"clusterip": lambda: lab.request(CLIENT1, "tcp", WEB_VIP, 80)})
            planes: list[Dataplane] = []
            restart_under(traffic, controller, rounds=6,
                          before_stop=lambda: planes.append(dataplane(lab)))
            planes.append(dataplane(lab))
            news = [r for _, w, r in traffic.log if w.startswith("new")]
            log.info("restart with a refused overlapping subnet", requests=len(traffic.log),
                     new_connections=len(news), failed=len(traffic.failed()),
                     backends=sorted({r.server or "" for r in news}))
            assert not traffic.failed(), traffic.failed()
            seen = {(r.server, r.source) for _, w, r in traffic.log if w == "held clusterip"}
            assert seen == {(first.server, first.source)}, seen
            assert {p for p, _, _ in traffic.log} >= {"before", "stopped", "after"}
            sync = controller.ctl.last_sync
            assert sync is not None and sync.changes == 0 and sync.transactions == 0, sync
            assert {t: owned_uuids(lab, t) for t in TABLES} == before
            assert not planes[0].changes(planes[1]), planes[0].changes(planes[1])
            assert refused(controller), ready(controller, NEWCOMER)
            assert ready(controller, HOLDER).get("status") == "True", ready(controller, HOLDER)
    finally:
        held.close()
