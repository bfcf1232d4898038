"""A full sync covers what the informers queued when they listed: the drain after it does not
reconcile every object a second time, and it ends when every write has been handled."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from tests.functional.conftest import find
from topology.nb import NbClient
from topology.sandbox import Sandbox
from ycloud_controller.config import Config
from ycloud_controller.controller import Controller
from ycloud_controller.kube import resources as res
from ycloud_controller.kube.backend import MemoryBackend
from ycloud_controller.kube.memstore import MemoryStore

SERVICES = 40


def service(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"s{i}", "namespace": "default"},
            "spec": {"type": "ClusterIP", "clusterIP": f"10.96.3.{i + 1}",
                     "clusterIPs": [f"10.96.3.{i + 1}"],
                     "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}]}}


def endpoint_slice(i: int) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"s{i}-a", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [f"10.16.0.{10 + i}"], "conditions": {"ready": True}}],
            "ports": [{"port": 8080, "protocol": "TCP"}]}


def reconciles(kind: str) -> float:
    return REGISTRY.get_sample_value("ycloud_reconciles_total",
                                     {"kind": kind, "result": "ok"}) or 0.0


@pytest.fixture
def ctl(nb: NbClient, sandbox: Sandbox) -> Iterator[Controller]:
    store = MemoryStore()
    for i in range(SERVICES):
        store.create(res.SERVICES, service(i))
        store.create(res.ENDPOINTSLICES, endpoint_slice(i))
    assert sandbox.state is not None
    controller = Controller(Config(nb_remote=sandbox.state.nb_remote), MemoryBackend(store), nb,
                            emulate=True)
    controller.start()
    assert controller.wait_synced(30)
    yield controller
    controller.shutdown()


def test_the_drain_after_a_full_sync_does_not_reconcile_everything_again(
        ctl: Controller, sandbox: Sandbox) -> None:
    assert len(ctl.queue) >= SERVICES  # the informers queued every listed object
    report = ctl.full_sync()
    assert report.converged and report.transactions >= 1
    assert len(find(sandbox, "Load_Balancer")) == SERVICES
    before = reconciles("Service")
    assert ctl.drain(timeout=30)
    assert reconciles("Service") - before < SERVICES / 2
    # drained means: nothing queued, the writer idle and every store write handled
    assert not len(ctl.queue) and ctl.writer.idle()
    assert all(inf.caught_up() for inf in ctl.informers.values())


def test_keys_the_full_sync_does_not_reconcile_stay_queued(ctl: Controller) -> None:
    gone = ("Pod", "default/deleted-meanwhile")  # e.g. a deletion seen before the sync
    ctl.queue.add(gone)
    ctl.full_sync()
    assert gone in ctl.queue.get_batch(10_000, 0)
