"""FakeKube speaks the wire protocol the official kubernetes client expects."""

from __future__ import annotations

import json
import threading

import pytest
from fakekube import FakeKube
from fakekube.util import wait_for
from kubernetes import client, watch
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from ycloud_controller.kube.resources import BUILTINS


def status_of(exc: ApiException) -> dict:
    return json.loads(exc.body)


def test_core_crud_list_and_errors(api_client: ApiClient) -> None:
    v1 = client.CoreV1Api(api_client)
    created = v1.create_namespaced_service("default", {
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"ports": [{"port": 80}]},
    })
    assert created.metadata.uid and created.metadata.resource_version
    listed = v1.list_service_for_all_namespaces(label_selector="app=web")
    assert [s.metadata.name for s in listed.items] == ["web"]
    assert listed.metadata.resource_version == created.metadata.resource_version
    with pytest.raises(ApiException) as exc:
        v1.read_namespaced_service("missing", "default")
    assert exc.value.status == 404
    body = status_of(exc.value)
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["reason"] == "NotFound" and body["code"] == 404
    with pytest.raises(ApiException) as exists:
        v1.create_namespaced_service("default", {"metadata": {"name": "web"}})
    assert exists.value.status == 409 and status_of(exists.value)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as invalid:
        v1.create_namespaced_service("default", {"metadata": {"name": "Not_Valid"}})
    assert invalid.value.status == 422 and status_of(invalid.value)["reason"] == "Invalid"
    patched = v1.patch_namespaced_service("web", "default", {"metadata": {"labels": {"x": "y"}}})
    assert patched.metadata.labels == {"app": "web", "x": "y"}
    status = v1.patch_namespaced_service_status(
        "web", "default", {"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}]}}})
    assert status.status.load_balancer.ingress[0].ip == "203.0.113.5"
    deleted = v1.delete_namespaced_service("web", "default")
    assert deleted.metadata.name == "web"


def test_watch_through_official_client(fake: FakeKube, api_client: ApiClient) -> None:
    v1 = client.CoreV1Api(api_client)
    v1.create_namespaced_pod("default", {"metadata": {"name": "p0"}, "spec": {
        "containers": [{"name": "c", "image": "i"}]}})
    rv = v1.list_namespaced_pod("default").metadata.resource_version

    def writer() -> None:
        wait_for(lambda: fake.open_watches() == 1, what="watch open")
        v1.create_namespaced_pod("default", {"metadata": {"name": "p1"}, "spec": {
            "containers": [{"name": "c", "image": "i"}]}})
        v1.delete_namespaced_pod("p0", "default")

    w = watch.Watch()
    seen = []
    thread = threading.Thread(target=writer)
    thread.start()
    for event in w.stream(v1.list_namespaced_pod, "default", resource_version=rv,
                          timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 2:
            w.stop()
    thread.join(5)
    assert seen == [("ADDED", "p1"), ("DELETED", "p0")]
    wait_for(lambda: fake.open_watches() == 0, what="watch closed on the server")


def test_watch_too_old_resource_version_is_410(fake: FakeKube, api_client: ApiClient) -> None:
    v1 = client.CoreV1Api(api_client)
    v1.create_namespace({"metadata": {"name": "x"}})
    fake.compact()
    with pytest.raises(ApiException) as exc:
        for _ in watch.Watch().stream(v1.list_namespace, resource_version="1",
                                      timeout_seconds=2):
            pass
    assert exc.value.status == 410


def test_custom_objects_coordination_discovery(api_client: ApiClient) -> None:
    custom = client.CustomObjectsApi(api_client)
    vpc = custom.create_cluster_custom_object("iaas.yusur.io", "v1", "vpcs", {
        "apiVersion": "iaas.yusur.io/v1", "kind": "Vpc", "metadata": {"name": "vpc1"},
        "spec": {"namespaces": ["default"]}})
    assert vpc["metadata"]["generation"] == 1
    updated = custom.patch_cluster_custom_object_status(
        "iaas.yusur.io", "v1", "vpcs", "vpc1", {"status": {"router": "vpc-vpc1"}})
    assert updated["status"] == {"router": "vpc-vpc1"}
    ysvc = custom.create_namespaced_custom_object("iaas.yusur.io", "v1", "default",
                                                  "yusurservices", {
        "apiVersion": "iaas.yusur.io/v1", "kind": "YusurService",
        "metadata": {"name": "s"}, "spec": {"type": "ClusterIP"}})
    assert ysvc["metadata"]["namespace"] == "default"
    leases = client.CoordinationV1Api(api_client)
    lease = leases.create_namespaced_lease("kube-system", {
        "metadata": {"name": "l"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                                            "renewTime": "2025-01-01T00:00:00.123456Z"}})
    assert lease.spec.renew_time.microsecond == 123456
    slices = client.DiscoveryV1Api(api_client)
    created = slices.create_namespaced_endpoint_slice("default", {
        "metadata": {"name": "s-1", "labels": {"kubernetes.io/service-name": "s"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.5"]}],
        "ports": [{"port": 80, "protocol": "TCP"}]})
    assert created.endpoints[0].addresses == ["10.0.0.5"]
    found = slices.list_endpoint_slice_for_all_namespaces(
        label_selector="kubernetes.io/service-name=s")
    assert [s.metadata.name for s in found.items] == ["s-1"]


def test_discovery_lists_crds_created_at_runtime(api_client: ApiClient) -> None:
    fake = FakeKube(resources=BUILTINS).start()
    try:
        fake_client = fake.api_client()
        apis = client.ApisApi(fake_client)
        assert "example.com" not in [g.name for g in apis.get_api_versions().groups]
        client.ApiextensionsV1Api(fake_client).create_custom_resource_definition({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Cluster",
                     "names": {"plural": "widgets", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object"}}}]}})
        assert "example.com" in [g.name for g in apis.get_api_versions().groups]
        resources = client.CustomObjectsApi(fake_client).get_api_resources("example.com", "v1")
        assert [r.name for r in resources.resources] == ["widgets"]
        fake_client.close()
    finally:
        fake.stop()


def test_pagination_is_a_consistent_snapshot(api_client: ApiClient) -> None:
    v1 = client.CoreV1Api(api_client)
    for i in range(5):
        v1.create_namespaced_config_map("default", {"metadata": {"name": f"cm{i}"}})
    first = v1.list_namespaced_config_map("default", limit=2)
    assert len(first.items) == 2 and first.metadata._continue
    v1.delete_namespaced_config_map("cm4", "default")
    names = [i.metadata.name for i in first.items]
    token = first.metadata._continue
    while token:
        page = v1.list_namespaced_config_map("default", limit=2, _continue=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        names += [i.metadata.name for i in page.items]
        token = page.metadata._continue
    assert names == [f"cm{i}" for i in range(5)]
