"""Which keys an informer event queues (ycloud_controller.triggers)."""

from __future__ import annotations

import copy

from ycloud_controller.config import Config
from ycloud_controller.kube.informer import Store
from ycloud_controller.reconcilers.yusur_service import LABEL as YSVC_LABEL
from ycloud_controller.triggers import Key, Triggers

KINDS = ("Namespace", "Node", "Pod", "Service", "EndpointSlice", "Vpc", "Subnet", "EipPool",
         "Vnic", "YusurService", "NetworkProbe")


def triggers() -> tuple[Triggers, list[Key]]:
    queued: list[Key] = []
    stores = {k: Store() for k in KINDS}
    stores["Service"].add_index("namespace", lambda o: [o["metadata"].get("namespace", "")])
    return Triggers(Config(), stores, queued.append, emulate=True), queued


def service(labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "1",
                         "labels": labels or {}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.9",
                     "ports": [{"port": 80, "protocol": "TCP"}]}}


def with_status(obj: dict, rv: str) -> dict:
    new = copy.deepcopy(obj)
    new["metadata"]["resourceVersion"] = rv
    new["status"] = {"conditions": [{"type": "ycloud.io/NetworkReady", "status": "True"}]}
    return new


def test_our_status_coming_back_does_not_queue_the_service_again() -> None:
    t, queued = triggers()
    old = service()
    t.on_event("Service", "MODIFIED", with_status(old, "2"), old)
    assert queued == []


def test_a_spec_or_label_change_queues_the_service() -> None:
    t, queued = triggers()
    old = service()
    new = with_status(old, "2")
    new["spec"]["ports"][0]["port"] = 81
    t.on_event("Service", "MODIFIED", new, old)
    assert ("Service", "ns/web") in queued and ("Endpoints", "ns/web") in queued
    queued.clear()
    relabeled = with_status(old, "3")
    relabeled["metadata"]["labels"] = {"app": "x"}
    t.on_event("Service", "MODIFIED", relabeled, old)
    assert ("Service", "ns/web") in queued


def test_the_yusurservice_still_hears_its_services_status() -> None:
    """A YusurService reads its Service's status (EIP, refusals)."""
    t, queued = triggers()
    old = service({YSVC_LABEL: "ysvc1"})
    t.on_event("Service", "MODIFIED", with_status(old, "2"), old)
    assert queued == [("YusurService", "ns/ysvc1")]


def test_a_loadbalancer_service_is_reconciled_on_every_status_change() -> None:
    t, queued = triggers()
    old = service()
    old["spec"]["type"] = "LoadBalancer"
    t.on_event("Service", "MODIFIED", with_status(old, "2"), old)
    assert ("Service", "ns/web") in queued


def test_a_deleted_service_is_queued_whatever_its_last_version() -> None:
    t, queued = triggers()
    old = service()
    t.on_event("Service", "DELETED", with_status(old, "2"), old)
    t.on_event("Service", "DELETED", old, old)
    assert queued.count(("Service", "ns/web")) == 2


def pod(phase: str = "Running") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "resourceVersion": "1"},
            "spec": {"nodeName": "n1"}, "status": {"phase": phase}}


def test_our_condition_on_a_pod_does_not_queue_the_pod_again() -> None:
    """A pod's reconcile reads only the phase of its status: our own condition coming back
    is not work (it was every pod once more after a cold sync)."""
    t, queued = triggers()
    old = pod()
    new = copy.deepcopy(old)
    new["metadata"]["resourceVersion"] = "2"
    new["status"]["conditions"] = [{"type": "ycloud.io/NetworkReady", "status": "True"}]
    t.on_event("Pod", "MODIFIED", new, old)
    assert ("Pod", "ns/p") not in queued


def test_a_pod_whose_phase_changes_is_queued() -> None:
    t, queued = triggers()
    old = pod()
    t.on_event("Pod", "MODIFIED", dict(pod("Succeeded"), metadata=dict(
        old["metadata"], resourceVersion="2")), old)
    assert ("Pod", "ns/p") in queued
