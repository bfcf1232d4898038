"""A full sync covers what was queued before it: the drain after it does not reconcile every
object a second time, and it ends when every write has been handled."""

from __future__ import annotations

from ovn_sandbox import Sandbox
from prometheus_client import REGISTRY

from tests.functional.conftest import SERVICES, find
from ycloud_controller.controller import Controller


def reconciles(kind: str) -> float:
    return REGISTRY.get_sample_value("ycloud_reconciles_total",
                                     {"kind": kind, "result": "ok"}) or 0.0


def test_the_drain_after_a_full_sync_does_not_reconcile_everything_again(
        svc_ctl: Controller, sandbox: Sandbox) -> None:
    # the first list queues nothing (the full sync reconciles every listed object anyway);
    # what events queue before the full sync, it takes
    assert not len(svc_ctl.queue)
    for name in svc_ctl.informers["Service"].store.keys():
        svc_ctl.queue.add(("Service", name))
    report = svc_ctl.full_sync()
    assert report.converged and report.transactions >= 1
    assert len(find(sandbox, "Load_Balancer")) == SERVICES
    before = reconciles("Service")
    assert svc_ctl.drain(timeout=30)
    assert reconciles("Service") - before < SERVICES / 2
    # drained means: nothing queued, the writer idle and every store write handled
    assert not len(svc_ctl.queue) and svc_ctl.writer.idle()
    assert all(inf.caught_up() for inf in svc_ctl.informers.values())


def test_keys_the_full_sync_does_not_reconcile_stay_queued(svc_ctl: Controller) -> None:
    gone = ("Pod", "default/deleted-meanwhile")  # e.g. a deletion seen before the sync
    svc_ctl.queue.add(gone)
    svc_ctl.full_sync()
    assert gone in svc_ctl.queue.get_batch(10_000, 0)
