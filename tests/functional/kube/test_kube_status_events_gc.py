"""StatusWriter, EventRecorder and garbage collection through HTTP."""

from __future__ import annotations

from fakekube import FakeKube
from fakekube.util import wait_for
from kubernetes import client

from ycloud_controller.kube.backend import ApiBackend
from ycloud_controller.kube.events import EventRecorder
from ycloud_controller.kube.resources import (
    ENDPOINTSLICES,
    EVENTS,
    NETWORKPROBES,
    SERVICES,
    SUBNETS,
    YUSURSERVICES,
)
from ycloud_controller.kube.status import Condition, StatusWriter


def test_status_subresource_over_http(fake: FakeKube, backend: ApiBackend) -> None:
    subnet = backend.create(SUBNETS, {"metadata": {"name": "s1"},
                                      "spec": {"cidrBlock": "10.0.0.0/24"},
                                      "status": {"dropped": "on create"}})
    assert "status" not in subnet
    writer = StatusWriter(backend)
    ok = Condition("Ready", "True", "Reconciled", "switch s1")
    written = writer.set_status(SUBNETS, subnet, {"availableIPs": 250}, ok)
    assert written["status"]["availableIPs"] == 250
    assert written["status"]["conditions"][0]["observedGeneration"] == 1
    patches = fake.requests_matching("PATCH", r"/subnets/s1/status$")
    assert len(patches) == 1
    assert writer.set_status(SUBNETS, written, {"availableIPs": 250}, ok) is written
    assert len(fake.requests_matching("PATCH", r"/subnets/s1/status$")) == 1  # skipped
    # spec writes through the main resource do not touch status, and bump generation
    spec = backend.update(SUBNETS, dict(written, spec={"cidrBlock": "10.0.1.0/24"},
                                        status={"availableIPs": 1}))
    assert spec["status"]["availableIPs"] == 250 and spec["metadata"]["generation"] == 2
    flipped = writer.set_status(SUBNETS, spec, {}, Condition("Ready", "False", "Overlap",
                                                            "overlaps s0"))
    cond = flipped["status"]["conditions"][0]
    assert cond["status"] == "False" and cond["observedGeneration"] == 2
    backend.delete(SUBNETS, "s1")
    assert writer.set_status(SUBNETS, flipped, {"availableIPs": 0}) is None  # 404 tolerated


def test_events_are_aggregated_and_never_raise(fake: FakeKube, backend: ApiBackend) -> None:
    ysvc = backend.create(YUSURSERVICES, {"metadata": {"name": "web", "namespace": "default"},
                                          "spec": {"type": "LoadBalancer"}})
    recorder = EventRecorder(backend, host="ctl-0")
    recorder.event(ysvc, "Warning", "VIPOutsidePool", "203.0.113.9 is not in pool p1")
    recorder.event(ysvc, "Warning", "VIPOutsidePool", "203.0.113.9 is not in pool p1")
    recorder.event(ysvc, "Normal", "Synced", "load balancer ready")
    assert recorder.flush(5)
    events = client.CoreV1Api(fake.api_client()).list_namespaced_event("default").items
    by_reason = {e.reason: e for e in events}
    assert set(by_reason) == {"VIPOutsidePool", "Synced"}
    warning = by_reason["VIPOutsidePool"]
    assert warning.count == 2 and warning.type == "Warning"
    assert warning.involved_object.kind == "YusurService"
    assert warning.involved_object.uid == ysvc["metadata"]["uid"]
    assert warning.source.component == "ycloud-controller"
    # API failures are logged, never raised to the caller
    fake.inject("POST", r"/events$", 500, count=5)
    recorder.event(ysvc, "Warning", "Other", "boom")
    assert recorder.flush(5)
    assert len(backend.list(EVENTS, "default")[0]) == 2
    recorder.close()


def test_owner_reference_gc_over_http(fake: FakeKube, backend: ApiBackend) -> None:
    ysvc = backend.create(YUSURSERVICES, {"metadata": {"name": "web", "namespace": "default"},
                                          "spec": {}})
    owner = [{"apiVersion": "iaas.yusur.io/v1", "kind": "YusurService", "name": "web",
              "uid": ysvc["metadata"]["uid"], "controller": True}]
    svc = backend.create(SERVICES, {"metadata": {"name": "web", "namespace": "default",
                                                 "ownerReferences": owner}})
    backend.create(ENDPOINTSLICES, {"metadata": {
        "name": "web-1", "namespace": "default", "ownerReferences": [{
            "apiVersion": "v1", "kind": "Service", "name": "web",
            "uid": svc["metadata"]["uid"]}]}, "addressType": "IPv4", "endpoints": []})
    backend.create(NETWORKPROBES, {"metadata": {"name": "web-10-0-0-5", "namespace": "default",
                                                "ownerReferences": owner}, "spec": {}})
    backend.delete(YUSURSERVICES, "web", "default")

    def all_gone() -> bool:
        return (backend.get(SERVICES, "web", "default") is None
                and backend.get(ENDPOINTSLICES, "web-1", "default") is None
                and backend.get(NETWORKPROBES, "web-10-0-0-5", "default") is None)

    wait_for(all_gone, what="dependents collected")
