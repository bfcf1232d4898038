"""A derived EndpointSlice written late, after a newer reconcile found nothing to change,
is derived again (manifests mode: the controller plays the endpoint controller).

The Endpoints reconcile compares what it derives with the EndpointSlices in its cache and
writes only what differs; the writes go out on the KubeWriter's thread. A write of an
earlier reconcile still on its way is not in the cache yet: a newer reconcile that finds the
cache as it wants it writes nothing, and the older write then lands, stale. Seen in the
restart-anywhere property test (seed 62): a pod asking for another address had it taken
for its endpoint until its reconcile wrote back the address it keeps; that slice was still
being written when the next Endpoints reconcile found the cache already right, and the
Service kept the wrong backend. The race is forced here: the slice an earlier reconcile
derived (with a pod since deleted) is handed to the writer after the deletion was handled.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional.conftest import driven, find
from tests.unit import factories as f
from topology.nbsync.client import NbClient
from ycloud_controller import keys
from ycloud_controller.controller import Controller
from ycloud_controller.keys import SLICE_EMULATOR as EMULATOR
from ycloud_controller.keys import SLICE_MANAGED_BY as MANAGED_BY
from ycloud_controller.kube import resources as res
from ycloud_controller.memkube.store import MemoryStore
from ycloud_controller.reconcilers.base import UpsertEffect

SERVICE = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "web", "namespace": "default"},
           "spec": {"clusterIP": "10.96.0.40", "selector": {"app": "web"},
                    "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    store.create(res.SERVICES, SERVICE)
    for name in ("a", "b"):
        store.create(res.PODS, f.pod(name, labels={"app": "web"}, node="node1"))
    return store


@pytest.fixture
def ctl(store: MemoryStore, nb: NbClient, sandbox: Sandbox) -> Iterator[Controller]:
    with driven(store, sandbox, nb, emulate=True) as controller:
        yield controller


def slices(store: MemoryStore) -> list[dict[str, Any]]:
    items, _ = store.list(res.ENDPOINTSLICES, "default")
    return [s for s in items if s["metadata"]["labels"].get(MANAGED_BY) == EMULATOR]


def addresses(store: MemoryStore) -> set[str]:
    return {a for sl in slices(store) for e in sl["endpoints"] for a in e["addresses"]}


def backends(sandbox: Sandbox) -> set[str]:
    lbs = find(sandbox, "Load_Balancer", "name=Service_default/web_TCP_cluster")
    raw = (lbs[0]["vips"] or {}).get("10.96.0.40:80", "") if lbs else ""
    return {b.rpartition(":")[0] for b in raw.split(",") if b}


def ip_of(store: MemoryStore, name: str) -> str:
    return store.get(res.PODS, name, "default")["metadata"]["annotations"][keys.ANN_IP]


def test_a_stale_slice_landing_late_is_derived_again(ctl: Controller, store: MemoryStore,
                                                     sandbox: Sandbox) -> None:
    a, b = ip_of(store, "a"), ip_of(store, "b")
    assert addresses(store) == {a, b} and backends(sandbox) == {a, b}
    # what an earlier Endpoints reconcile derived, on its way to the API while b goes away
    (earlier,) = slices(store)
    on_its_way = {k: v for k, v in earlier.items() if k != "metadata"}
    on_its_way["metadata"] = {k: earlier["metadata"][k]
                              for k in ("name", "namespace", "labels")}
    store.delete(res.PODS, "b", "default")
    assert ctl.drain(timeout=60)
    assert addresses(store) == {a} and backends(sandbox) == {a}
    # the newest reconcile found the cache right; the earlier write lands now
    ctl.writer.submit([UpsertEffect(res.ENDPOINTSLICES, on_its_way)])
    wait_for(lambda: ctl.writer.idle(), timeout=10, what="the late write")
    assert ctl.drain(timeout=60)
    assert addresses(store) == {a}, "the deleted pod is back in the Service's slice"
    assert backends(sandbox) == {a}, "the deleted pod is back in the Service's VIP"
