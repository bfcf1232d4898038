"""What an EipPool's and a Subnet's status count is what their allocators hold once the
batch that changed it is done, deletes included.

A pool and a subnet are reconciled before the Services and pods of the same batch (their
rows come first), so the batch in which a LoadBalancer Service or a pod goes away reports
the pool's EIPs and the subnet's addresses as they were before it. The deletion's batch is
forced here: the controller's loop does not run, the test waits until the informers have
queued what the deletion causes (the Service and every pool, the pod), then drains.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional.conftest import driven
from tests.unit import factories as f
from topology.nbsync.client import NbClient
from ycloud_controller.controller import Controller
from ycloud_controller.kube import resources as res
from ycloud_controller.memkube.store import MemoryStore

POOL = {"apiVersion": "iaas.yusur.io/v1", "kind": "EipPool", "metadata": {"name": "p1"},
        "spec": {"cidr": "172.30.0.0/24", "gateway": "172.30.0.1", "uplinkIP": "172.30.0.2",
                 "providerNetwork": "physnet", "gatewayNodes": ["gw1"], "default": True}}


def lb(name: str, eip: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "clusterIP": f"10.96.0.{int(eip[-2:])}",
                     "loadBalancerIP": eip, "allocateLoadBalancerNodePorts": False,
                     "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}


SUBNET = {"apiVersion": "iaas.yusur.io/v1", "kind": "Subnet", "metadata": {"name": "s1"},
          "spec": {"vpc": "ovn-cluster", "cidrBlock": "10.5.0.0/24", "namespaces": ["default"]}}


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    store.create(res.EIPPOOLS, POOL)
    store.create(res.SUBNETS, SUBNET)
    for name, eip in (("lb1", "172.30.0.51"), ("lb2", "172.30.0.52")):
        store.create(res.SERVICES, lb(name, eip))
    for name in ("a", "b"):
        store.create(res.PODS, f.pod(name, node="node1"))
    return store


@pytest.fixture
def ctl(store: MemoryStore, nb: NbClient, sandbox: Sandbox) -> Iterator[Controller]:
    with driven(store, sandbox, nb) as controller:
        yield controller


def caught_up(ctl: Controller) -> bool:
    return all(inf.caught_up() for inf in ctl.informers.values())


def test_a_deleted_services_eip_leaves_its_pools_status(ctl: Controller,
                                                        store: MemoryStore) -> None:
    status = store.get(res.EIPPOOLS, "p1")["status"]
    assert set(status["eips"]) == {"172.30.0.51", "172.30.0.52"}
    used = status["usedIPs"]
    store.delete(res.SERVICES, "lb2", "default")
    wait_for(lambda: caught_up(ctl), timeout=10, what="the deletion queued its keys")
    assert ctl.drain(timeout=60)
    status = store.get(res.EIPPOOLS, "p1")["status"]
    assert set(status["eips"]) == {"172.30.0.51"}
    assert status["usedIPs"] == used - 1


def test_a_deleted_pods_address_leaves_its_subnets_count(ctl: Controller,
                                                         store: MemoryStore) -> None:
    status = store.get(res.SUBNETS, "s1")["status"]
    assert status["v4UsingIPs"] == 2
    store.delete(res.PODS, "b", "default")
    wait_for(lambda: caught_up(ctl), timeout=10, what="the deletion queued its keys")
    assert ctl.drain(timeout=60)
    status = store.get(res.SUBNETS, "s1")["status"]
    assert status["v4UsingIPs"] == 1
    assert status["v4AvailableIPs"] == ctl.ipam.usage("s1")[4][1]
