"""A controller restart is invisible to traffic: open TCP connections through a ClusterIP, an
EIP and a multi-VPC EIP keep working before, during and after it, new connections succeed
throughout, and NB rows keep their _uuid (nothing deleted and recreated; nothing written).

Runs on the examples served by the in-process controller (`examples` fixture): it is stopped
and a new Controller is started on the same store and NB, like a process restart."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from ycloud_lab import HeldConnection, Lab, Reply
from ycloud_lab.ovsdb import rows
from ycloud_lab.scenarios import CLIENT1, EXT_HOST, MULTI_EIP, WEB_EIP, WEB_VIP, wait_until

from topology import naming

from .conftest import Examples

pytestmark = pytest.mark.lab

TABLES = ("Load_Balancer", "Load_Balancer_Group", "Logical_Switch", "Logical_Router",
          "Logical_Switch_Port", "Logical_Router_Port", "NAT", "Logical_Router_Static_Route")


def owned_uuids(lab: Lab, table: str) -> dict[str, str]:
    """ycloud.io/key -> _uuid of the rows of `table` the controller owns (Load_Balancer_Group
    has no external_ids in OVN 23.03: the controller's groups are known by name)."""
    if table == "Load_Balancer_Group":
        return {r["name"]: r["_uuid"] for r in rows(
            "ovn-nbctl", lab.nb_remote, "--columns=_uuid,name", "list", table)
            if naming.is_our_lb_group(r["name"])}
    out = {}
    for r in rows("ovn-nbctl", lab.nb_remote, "--columns=_uuid,external_ids", "list", table):
        ids = r["external_ids"]
        if ids.get(naming.MANAGED_BY) == naming.MANAGED_BY_VALUE:
            out[ids.get(naming.KEY, r["_uuid"])] = r["_uuid"]
    return out


class Traffic:
    """Sends on held connections and opens new ones in a loop, in a thread, until stopped."""

    def __init__(self, lab: Lab, held: dict[str, HeldConnection],
                 fresh: dict[str, Callable[[], Reply]]):
        self.lab = lab
        self.held = held
        self.fresh = fresh
        self.log: list[tuple[str, str, Reply]] = []  # (phase, what, reply)
        self.phase = "before"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            phase = self.phase
            for name, conn in self.held.items():
                self.log.append((phase, f"held {name}", conn.send()))
            for name, request in self.fresh.items():
                self.log.append((phase, f"new {name}", request()))

    def rounds(self, phase: str) -> int:
        return sum(1 for p, what, _ in self.log if p == phase and what.startswith("held"))

    def during(self, phase: str, rounds: int = 3) -> None:
        """Switch to `phase` and wait until `rounds` rounds ran in it."""
        self.phase = phase
        wait_until(lambda: self.rounds(phase) >= rounds * len(self.held), 60,
                   f"{rounds} rounds of traffic while {phase}")


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
        traffic.thread.start()
        try:
            traffic.during("before")
            traffic.phase = "stopped"
            controller.stop()
            traffic.during("stopped")
            traffic.phase = "starting"
            controller.start()
            controller.wait_idle()
            traffic.during("after")
        finally:
            traffic.stop.set()
            traffic.thread.join(timeout=30)
        failed = [(p, w, str(r)) for p, w, r in traffic.log if not r.ok]
        assert not failed, failed
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
