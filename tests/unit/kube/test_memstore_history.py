"""The MemoryStore's watch history keeps a previous version only when selectors need it."""

from __future__ import annotations

import threading

import pytest
from fakekube.util import wait_for

from ycloud_controller.kube.errors import Expired
from ycloud_controller.kube.informer import Informer
from ycloud_controller.kube.resources import ENDPOINTSLICES, PODS
from ycloud_controller.memkube.backend import MemoryBackend
from ycloud_controller.memkube.history import covered, field_paths
from ycloud_controller.memkube.store import MemoryStore


def pod(name: str, labels: dict[str, str] | None = None, node: str = "n1") -> dict:
    return {"metadata": {"name": name, "namespace": "default", "labels": labels or {}},
            "spec": {"nodeName": node}}


def drain(sub) -> list[tuple[str, str]]:
    events = []
    while (event := sub.next_event(timeout=0)) is not None:
        events.append((event["type"], event["object"]["metadata"]["name"]))
    return events


def priors(store: MemoryStore) -> list:
    return [entry[4] for entry in store._history._entries]  # noqa: SLF001


def eps(name: str, ip: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "s"}},
            "addressType": "IPv4", "endpoints": [{"addresses": [ip]}]}


def test_churn_keeps_no_previous_versions() -> None:
    store = MemoryStore(history=1000)
    store.create(PODS, pod("unrelated"))
    start = store.resource_version
    store.create(ENDPOINTSLICES, eps("e", "10.0.0.1"))
    for i in range(2, 50):
        store.update(ENDPOINTSLICES, eps("e", f"10.0.0.{i}"))
    assert all(p is None for p in priors(store))
    # a resumed watch still gets every write, in order, each with its own object
    sub = store.watch(ENDPOINTSLICES, resource_version=start,
                      label_selector="kubernetes.io/service-name=s")
    events = []
    while (event := sub.next_event(timeout=0)) is not None:
        events.append((event["type"], event["object"]["endpoints"][0]["addresses"][0]))
    assert events == [("ADDED", "10.0.0.1")] + [("MODIFIED", f"10.0.0.{i}")
                                                for i in range(2, 50)]


def test_label_and_selectable_field_changes_keep_the_previous_version() -> None:
    store = MemoryStore(history=100)
    store.create(PODS, pod("a", {"app": "x"}))
    start = store.resource_version
    store.patch(PODS, "a", "default", {"metadata": {"labels": {"app": "web"}}})  # kept
    store.patch(PODS, "a", "default", {"metadata": {"annotations": {"k": "v"}}})  # dropped
    store.patch(PODS, "a", "default", {"spec": {"nodeName": "n2"}})  # selectable: kept
    store.patch(PODS, "a", "default", {"metadata": {"labels": {"app": "db"}}})  # kept
    kept = [p is not None for p in priors(store)[1:]]
    assert kept == [True, False, True, True]
    by_label = store.watch(PODS, resource_version=start, label_selector="app=web")
    assert drain(by_label) == [("ADDED", "a"), ("MODIFIED", "a"), ("MODIFIED", "a"),
                               ("DELETED", "a")]
    by_node = store.watch(PODS, resource_version=start, field_selector="spec.nodeName=n1")
    assert drain(by_node) == [("MODIFIED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    none = store.watch(PODS, resource_version=start, label_selector="app=other")
    assert drain(none) == []


def test_unselectable_field_path_over_a_dropped_prior_is_410_then_relist_works() -> None:
    store = MemoryStore(history=100)
    store.create(PODS, pod("a"))
    start = store.resource_version
    store.patch(PODS, "a", "default", {"spec": {"priority": 5}})
    assert priors(store)[-1] is None
    with pytest.raises(Expired):
        store.watch(PODS, resource_version=start, field_selector="spec.priority=5")
    # the client relists and watches from the list's resourceVersion: nothing is missed
    items, rv = store.list(PODS, field_selector="spec.priority=5")
    assert [o["metadata"]["name"] for o in items] == ["a"]
    sub = store.watch(PODS, resource_version=rv, field_selector="spec.priority=5")
    store.patch(PODS, "a", "default", {"spec": {"priority": 6}})
    assert drain(sub) == [("DELETED", "a")]
    # a selectable path, or no field selector, replays from the same point
    assert drain(store.watch(PODS, resource_version=start, field_selector="spec.nodeName=n1")) \
        == [("MODIFIED", "a"), ("MODIFIED", "a")]


def test_field_paths_and_coverage() -> None:
    assert field_paths("metadata.name=a, spec.nodeName!=b,status.phase==Running") == (
        "metadata.name", "spec.nodeName", "status.phase")
    assert field_paths(None) == ()
    assert covered(("", "pods"), ("metadata.name", "spec.nodeName"))
    assert covered(("discovery.k8s.io", "endpointslices"), ("metadata.namespace",))
    assert not covered(("", "pods"), ("spec.priority",))


def test_informer_relists_after_history_overflow_and_sees_everything(spawn) -> None:
    store = MemoryStore(history=5)
    backend = MemoryBackend(store, bookmark_interval=3600)
    for i in range(3):
        store.create(PODS, pod(f"p{i}"))
    informer = Informer(backend, PODS, backoff_initial=0.01, backoff_max=0.05)
    stop = threading.Event()
    spawn(informer.run, stop)
    try:
        assert informer.wait_synced(5)
        # the watch breaks; more writes than the history holds happen meanwhile
        store.close_watches(dropped=True)
        store.delete(PODS, "p0", "default")
        for i in range(3, 12):
            store.create(PODS, pod(f"p{i}", {"v": str(i)}))
        store.patch(PODS, "p1", "default", {"metadata": {"labels": {"v": "x"}}})
        wanted = {f"default/p{i}" for i in range(1, 12)}
        wait_for(lambda: set(informer.store.keys()) == wanted, what="relisted cache")
        wait_for(lambda: (informer.store.get("default/p1")["metadata"]["labels"]
                          == {"v": "x"}), what="latest p1")
        assert informer.restarts >= 1
    finally:
        stop.set()


def test_informer_caught_up_is_exact_over_the_memory_store(spawn) -> None:
    store = MemoryStore()
    backend = MemoryBackend(store, bookmark_interval=3600)
    store.create(PODS, pod("a"))
    release = threading.Event()
    seen: list[str] = []

    def slow(type_: str, obj: dict, old: dict | None) -> None:
        if obj["metadata"]["name"] == "b":
            release.wait(5)
        seen.append(obj["metadata"]["name"])

    informer = Informer(backend, PODS)
    informer.add_handler(slow)
    stop = threading.Event()
    spawn(informer.run, stop)
    try:
        assert informer.wait_synced(5)
        wait_for(lambda: informer.caught_up() is True, what="caught up after the list")
        store.create(PODS, pod("b"))
        assert informer.caught_up() is False  # its handler has not run yet
        release.set()
        wait_for(lambda: informer.caught_up() is True, what="caught up after b")
        assert "b" in seen
        store.create(ENDPOINTSLICES, eps("other", "10.0.0.1"))  # another resource
        assert informer.caught_up() is True
        assert Informer(backend, PODS, label_selector="x=y").caught_up() is None
    finally:
        stop.set()
