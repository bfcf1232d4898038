"""MemoryStore: the API server semantics the controller and the fake server rely on."""

from __future__ import annotations

import pytest

from ycloud_controller.kube.errors import AlreadyExists, ApiError, Conflict, Expired, NotFound
from ycloud_controller.kube.resources import (
    CUSTOMRESOURCEDEFINITIONS,
    ENDPOINTSLICES,
    NAMESPACES,
    NODES,
    PODS,
    SERVICES,
    VPCS,
    YUSURSERVICES,
    Resource,
)
from ycloud_controller.memkube.store import MemoryStore


def pod(name: str, ns: str = "default", labels: dict[str, str] | None = None, **spec):
    return {"metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": spec or {"nodeName": "n1"}}


def drain(sub, limit: int = 100) -> list[tuple[str, str]]:
    events = []
    while len(events) < limit:
        event = sub.next_event(timeout=0)
        if event is None:
            break
        events.append((event["type"], event["object"]["metadata"].get("name")))
    return events


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(history=100)


def test_create_stamps_metadata_and_monotonic_resource_versions(store: MemoryStore) -> None:
    a = store.create(PODS, pod("a"))
    b = store.create(PODS, pod("b"))
    assert a["kind"] == "Pod" and a["apiVersion"] == "v1"
    assert a["metadata"]["uid"] and a["metadata"]["uid"] != b["metadata"]["uid"]
    assert a["metadata"]["creationTimestamp"].endswith("Z")
    assert a["metadata"]["generation"] == 1
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    items, rv = store.list(PODS)
    assert [i["metadata"]["name"] for i in items] == ["a", "b"]
    assert rv == b["metadata"]["resourceVersion"] == store.resource_version


def test_returned_objects_are_copies(store: MemoryStore) -> None:
    created = store.create(PODS, pod("a"))
    created["spec"]["nodeName"] = "mutated"
    store.get(PODS, "a", "default")["metadata"]["labels"]["x"] = "y"
    got = store.get(PODS, "a", "default")
    assert got["spec"]["nodeName"] == "n1" and got["metadata"]["labels"] == {}


def test_already_exists_not_found_and_invalid(store: MemoryStore) -> None:
    store.create(PODS, pod("a"))
    with pytest.raises(AlreadyExists) as exc:
        store.create(PODS, pod("a"))
    assert exc.value.code == 409 and exc.value.reason == "AlreadyExists"
    with pytest.raises(NotFound) as missing:
        store.get(PODS, "zz", "default")
    assert missing.value.status_dict()["code"] == 404
    assert missing.value.status_dict()["message"] == 'pods "zz" not found'
    with pytest.raises(ApiError) as invalid:
        store.create(PODS, pod("Bad_Name"))
    assert invalid.value.code == 422
    with pytest.raises(ApiError) as bad_labels:
        store.create(PODS, {"metadata": {"name": "x", "namespace": "default",
                                         "labels": {"a": 1}}})
    assert bad_labels.value.code == 422


def test_generate_name(store: MemoryStore) -> None:
    obj = store.create(PODS, {"metadata": {"generateName": "web-", "namespace": "default"}})
    assert obj["metadata"]["name"].startswith("web-") and len(obj["metadata"]["name"]) == 9


def test_update_conflict_on_stale_resource_version(store: MemoryStore) -> None:
    first = store.create(SERVICES, {"metadata": {"name": "s", "namespace": "default"},
                                    "spec": {"ports": [{"port": 80}]}})
    fresh = dict(first, spec={"ports": [{"port": 81}]})
    updated = store.update(SERVICES, fresh)
    assert updated["metadata"]["generation"] == 2
    with pytest.raises(Conflict) as exc:
        store.update(SERVICES, dict(first, spec={"ports": [{"port": 82}]}))
    assert exc.value.code == 409 and exc.value.reason == "Conflict"
    no_rv = dict(first, spec={"ports": [{"port": 83}]})
    no_rv["metadata"] = {k: v for k, v in first["metadata"].items() if k != "resourceVersion"}
    assert store.update(SERVICES, no_rv)["spec"]["ports"][0]["port"] == 83


def test_generation_bumps_only_on_spec_change_and_noop_writes_are_free(
    store: MemoryStore,
) -> None:
    obj = store.create(VPCS, {"metadata": {"name": "v"}, "spec": {"a": 1}})
    labelled = store.patch(VPCS, "v", None, {"metadata": {"labels": {"x": "y"}}})
    assert labelled["metadata"]["generation"] == 1
    assert labelled["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]
    same = store.patch(VPCS, "v", None, {"metadata": {"labels": {"x": "y"}}})
    assert same["metadata"]["resourceVersion"] == labelled["metadata"]["resourceVersion"]
    changed = store.patch(VPCS, "v", None, {"spec": {"a": 2}})
    assert changed["metadata"]["generation"] == 2


def test_status_subresource_semantics(store: MemoryStore) -> None:
    created = store.create(YUSURSERVICES, {
        "metadata": {"name": "y", "namespace": "default"}, "spec": {"type": "ClusterIP"},
        "status": {"ignored": "on create"},
    })
    assert "status" not in created
    with_status = store.update(
        YUSURSERVICES, dict(created, status={"vip": "10.0.0.1"}), subresource="status"
    )
    assert with_status["status"] == {"vip": "10.0.0.1"}
    # a main-resource write ignores .status changes
    main = store.update(YUSURSERVICES, dict(with_status, spec={"type": "LoadBalancer"},
                                            status={"vip": "changed"}))
    assert main["status"] == {"vip": "10.0.0.1"} and main["spec"]["type"] == "LoadBalancer"
    # a /status write ignores everything but .status
    status_only = store.patch(
        YUSURSERVICES, "y", "default",
        {"spec": {"type": "ClusterIP"}, "metadata": {"labels": {"a": "b"}},
         "status": {"vip": "10.0.0.2"}},
        subresource="status",
    )
    assert status_only["spec"]["type"] == "LoadBalancer"
    assert "labels" not in status_only["metadata"]
    assert status_only["status"] == {"vip": "10.0.0.2"}
    assert status_only["metadata"]["generation"] == 2
    # resources without the subresource keep whatever is written
    with pytest.raises(ApiError):
        store.patch(ENDPOINTSLICES, "nope", "default", {}, subresource="status")


def test_nodes_keep_status_on_create_and_namespaces_are_active(store: MemoryStore) -> None:
    node = store.create(NODES, {"metadata": {"name": "n1"},
                                "status": {"addresses": [{"type": "InternalIP",
                                                          "address": "192.0.2.1"}]}})
    assert node["status"]["addresses"][0]["address"] == "192.0.2.1"
    assert store.create(NAMESPACES, {"metadata": {"name": "ns1"}})["status"] == {
        "phase": "Active"}


def test_list_selectors(store: MemoryStore) -> None:
    store.create(PODS, pod("a", labels={"app": "web", "tier": "fe"}, nodeName="n1"))
    store.create(PODS, pod("b", labels={"app": "db"}, nodeName="n2"))
    store.create(PODS, pod("c", ns="other", labels={"app": "web"}, nodeName="n2"))

    def names(**kw):
        return [i["metadata"]["name"] for i in store.list(PODS, **kw)[0]]

    assert names(label_selector="app=web") == ["a", "c"]
    assert names(namespace="default", label_selector="app in (web,db)") == ["a", "b"]
    assert names(label_selector="app notin (web),!tier") == ["b"]
    assert names(label_selector="tier") == ["a"]
    assert names(label_selector="app!=web") == ["b"]
    assert names(field_selector="spec.nodeName=n2") == ["b", "c"]
    assert names(field_selector="metadata.namespace=other") == ["c"]
    assert names(field_selector="metadata.name!=a,spec.nodeName=n2") == ["b", "c"]
    assert names(label_selector={"app": "db"}) == ["b"]
    with pytest.raises(ApiError) as exc:
        store.list(PODS, label_selector="app in ()")
    assert exc.value.code == 400


def test_watch_replays_history_then_live_events(store: MemoryStore) -> None:
    a = store.create(PODS, pod("a"))
    store.patch(PODS, "a", "default", {"metadata": {"labels": {"x": "1"}}})
    sub = store.watch(PODS, resource_version=a["metadata"]["resourceVersion"])
    store.create(PODS, pod("b"))
    store.delete(PODS, "a", "default")
    assert drain(sub) == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    sub.stop()
    assert sub.closed and store.watch_count() == 0


def test_watch_without_resource_version_starts_with_current_state(store: MemoryStore) -> None:
    store.create(PODS, pod("a"))
    sub = store.watch(PODS, namespace="default", resource_version="0")
    store.create(PODS, pod("z", ns="other"))
    assert drain(sub) == [("ADDED", "a")]


def test_watch_label_transitions_are_added_and_deleted(store: MemoryStore) -> None:
    store.create(PODS, pod("a", labels={"app": "x"}))
    sub = store.watch(PODS, resource_version=store.resource_version, label_selector="app=web")
    store.patch(PODS, "a", "default", {"metadata": {"labels": {"app": "web"}}})
    store.patch(PODS, "a", "default", {"spec": {"nodeName": "n9"}})
    store.patch(PODS, "a", "default", {"metadata": {"labels": {"app": "db"}}})
    assert drain(sub) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_bookmark_carries_current_resource_version_in_order(store: MemoryStore) -> None:
    sub = store.watch(PODS, resource_version=store.resource_version)
    store.create(NODES, {"metadata": {"name": "n"}})
    sub.bookmark()
    event = sub.next_event(timeout=1)
    assert event["type"] == "BOOKMARK"
    assert event["object"]["metadata"]["resourceVersion"] == store.resource_version


def test_expired_after_compact_and_history_overflow() -> None:
    store = MemoryStore(history=3)
    first = store.create(PODS, pod("a"))
    rv = first["metadata"]["resourceVersion"]
    store.watch(PODS, resource_version=rv).stop()
    for i in range(5):
        store.create(PODS, pod(f"p{i}"))
    with pytest.raises(Expired) as exc:
        store.watch(PODS, resource_version=rv)
    assert exc.value.code == 410 and exc.value.status_dict()["reason"] == "Expired"
    recent = store.resource_version
    store.watch(PODS, resource_version=recent).stop()
    store.create(PODS, pod("later"))
    store.compact()
    with pytest.raises(Expired):
        store.watch(PODS, resource_version=recent)
    store.watch(PODS, resource_version=store.resource_version).stop()


def test_owner_reference_garbage_collection(store: MemoryStore) -> None:
    svc = store.create(SERVICES, {"metadata": {"name": "s", "namespace": "default"}})
    other = store.create(SERVICES, {"metadata": {"name": "t", "namespace": "default"}})

    def ref(owner):
        return {"apiVersion": "v1", "kind": "Service", "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"]}

    slice_ = store.create(ENDPOINTSLICES, {"metadata": {
        "name": "s-1", "namespace": "default", "ownerReferences": [ref(svc)]}})
    store.create(PODS, {"metadata": {"name": "grandchild", "namespace": "default",
                                     "ownerReferences": [{"uid": slice_["metadata"]["uid"],
                                                          "kind": "EndpointSlice",
                                                          "name": "s-1", "apiVersion": "v1"}]}})
    shared = store.create(ENDPOINTSLICES, {"metadata": {
        "name": "shared", "namespace": "default", "ownerReferences": [ref(svc), ref(other)]}})
    sub = store.watch(ENDPOINTSLICES, resource_version=store.resource_version)
    store.delete(SERVICES, "s", "default")
    with pytest.raises(NotFound):
        store.get(ENDPOINTSLICES, "s-1", "default")
    with pytest.raises(NotFound):
        store.get(PODS, "grandchild", "default")
    kept = store.get(ENDPOINTSLICES, "shared", "default")
    assert [r["name"] for r in kept["metadata"]["ownerReferences"]] == ["t"]
    assert kept["metadata"]["uid"] == shared["metadata"]["uid"]
    assert ("DELETED", "s-1") in drain(sub)
    store.delete(SERVICES, "t", "default", propagation="Orphan")
    assert "ownerReferences" not in store.get(ENDPOINTSLICES, "shared", "default")["metadata"]


def test_object_created_for_an_absent_owner_is_collected(store: MemoryStore) -> None:
    """A create that raced its owner's deletion: the garbage collector removes it."""
    svc = store.create(SERVICES, {"metadata": {"name": "gone", "namespace": "default"}})
    ref = {"apiVersion": "v1", "kind": "Service", "name": "gone", "controller": True,
           "uid": svc["metadata"]["uid"]}
    store.delete(SERVICES, "gone", "default")
    sub = store.watch(ENDPOINTSLICES, resource_version=store.resource_version)
    store.create(ENDPOINTSLICES, {"metadata": {"name": "late", "namespace": "default",
                                               "ownerReferences": [ref]}})
    with pytest.raises(NotFound):
        store.get(ENDPOINTSLICES, "late", "default")
    assert [e for e in drain(sub) if e[1] == "late"] == [("ADDED", "late"), ("DELETED", "late")]


def test_namespace_deletion_deletes_its_objects(store: MemoryStore) -> None:
    store.create(NAMESPACES, {"metadata": {"name": "team"}})
    store.create(PODS, pod("a", ns="team"))
    store.create(PODS, pod("b"))
    store.delete(NAMESPACES, "team")
    assert [p["metadata"]["name"] for p in store.list(PODS)[0]] == ["b"]


def test_crd_registers_and_unregisters_its_resource() -> None:
    store = MemoryStore(resources=(NAMESPACES, CUSTOMRESOURCEDEFINITIONS))
    widgets = Resource("example.com", "v1", "widgets", "Widget", True, True)
    with pytest.raises(ApiError) as unknown:
        store.list(widgets)
    assert unknown.value.code == 404
    crd = {
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "subresources": {"status": {}}}]},
    }
    created = store.create(CUSTOMRESOURCEDEFINITIONS, crd)
    assert {c["type"] for c in created["status"]["conditions"]} == {
        "Established", "NamesAccepted"}
    res = store.resource_by_kind("Widget", "example.com/v1")
    assert res == Resource("example.com", "v1", "widgets", "Widget", True, True, ("wd",))
    store.create(res, {"metadata": {"name": "w", "namespace": "default"}})
    store.delete(CUSTOMRESOURCEDEFINITIONS, "widgets.example.com")
    assert store.resource_by_kind("Widget") is None
    with pytest.raises(ApiError):
        store.create(CUSTOMRESOURCEDEFINITIONS, dict(crd, metadata={"name": "wrong"}))


def test_json_and_strategic_patches(store: MemoryStore) -> None:
    store.create(PODS, {"metadata": {"name": "a", "namespace": "default"},
                        "spec": {"containers": [{"name": "c1", "image": "i1"},
                                                {"name": "c2", "image": "i2"}]}})
    patched = store.patch(PODS, "a", "default",
                          {"spec": {"containers": [{"name": "c2", "image": "new"}]}},
                          "application/strategic-merge-patch+json")
    assert [c["image"] for c in patched["spec"]["containers"]] == ["i1", "new"]
    patched = store.patch(PODS, "a", "default",
                          [{"op": "remove", "path": "/spec/containers/0"},
                           {"op": "add", "path": "/metadata/labels", "value": {"k": "v"}}],
                          "application/json-patch+json")
    assert [c["name"] for c in patched["spec"]["containers"]] == ["c2"]
    assert patched["metadata"]["labels"] == {"k": "v"}
    with pytest.raises(Conflict):
        store.patch(PODS, "a", "default", {"metadata": {"resourceVersion": "1"}})
