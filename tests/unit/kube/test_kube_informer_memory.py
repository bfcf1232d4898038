"""Informer, StatusWriter and EventRecorder over the MemoryBackend (manifests mode)."""

from __future__ import annotations

import threading

import pytest
from fakekube.util import wait_for

from ycloud_controller.kube.events import EventRecorder
from ycloud_controller.kube.informer import Informer, Store
from ycloud_controller.kube.resources import EVENTS, PODS, VPCS
from ycloud_controller.kube.status import Condition, StatusWriter
from ycloud_controller.memkube.backend import MemoryBackend
from ycloud_controller.memkube.store import MemoryStore


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, type_: str, obj: dict, old: dict | None) -> None:
        with self.lock:
            self.events.append((type_, obj["metadata"]["name"]))

    def seen(self, *expected: tuple[str, str]) -> bool:
        with self.lock:
            return all(e in self.events for e in expected)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(history=50)


@pytest.fixture
def backend(store: MemoryStore) -> MemoryBackend:
    return MemoryBackend(store, bookmark_interval=0.05)


def test_store_indexes() -> None:
    cache = Store()
    cache.upsert("ns/a", {"metadata": {"name": "a"}, "spec": {"nodeName": "n1"}})
    cache.add_index("node", lambda o: [o["spec"].get("nodeName", "")])
    cache.upsert("ns/b", {"metadata": {"name": "b"}, "spec": {"nodeName": "n1"}})
    assert [o["metadata"]["name"] for o in cache.by_index("node", "n1")] == ["a", "b"]
    cache.upsert("ns/a", {"metadata": {"name": "a"}, "spec": {"nodeName": "n2"}})
    assert cache.index_keys("node", "n1") == ["ns/b"]
    cache.remove("ns/b")
    assert cache.by_index("node", "n1") == []
    cache.replace({"ns/c": {"metadata": {"name": "c"}, "spec": {"nodeName": "n3"}}})
    assert cache.keys() == ["ns/c"] and cache.by_index("node", "n3")[0]["metadata"]["name"] == "c"
    assert "ns/c" in cache and len(cache) == 1


def test_a_status_write_keeps_the_index_and_any_other_change_moves_it() -> None:
    cache = Store()
    cache.add_index("node", lambda o: [o["spec"]["nodeName"]] if o["spec"] else [])
    a = {"metadata": {"name": "a", "resourceVersion": "1"}, "spec": {"nodeName": "n1"}}
    cache.upsert("ns/a", a)
    # our own status written back (and a new resourceVersion): nothing indexed moves
    cache.upsert("ns/a", {**a, "metadata": {"name": "a", "resourceVersion": "2"},
                          "status": {"phase": "Running"}})
    assert cache.index_keys("node", "n1") == ["ns/a"]
    assert cache.get("ns/a")["status"] == {"phase": "Running"}
    # a spec change with a status change in the same write is indexed again
    cache.upsert("ns/a", {"metadata": {"name": "a", "resourceVersion": "3"},
                          "spec": {"nodeName": "n2"}, "status": {}})
    assert cache.index_keys("node", "n1") == [] and cache.index_keys("node", "n2") == ["ns/a"]
    # a label change alone is too (an index may read metadata)
    cache.add_index("app", lambda o: [(o["metadata"].get("labels") or {}).get("app", "")])
    cache.upsert("ns/a", {"metadata": {"name": "a", "resourceVersion": "4",
                                       "labels": {"app": "web"}},
                          "spec": {"nodeName": "n2"}, "status": {}})
    assert cache.index_keys("app", "web") == ["ns/a"] and cache.index_keys("app", "") == []
    cache.upsert("ns/a", {"metadata": {"name": "a", "resourceVersion": "5"}, "spec": None})
    assert cache.index_keys("node", "n2") == [] and cache.index_keys("app", "") == ["ns/a"]


def test_informer_lists_watches_and_resyncs_after_store_drop(
    store: MemoryStore, backend: MemoryBackend, spawn, stop: threading.Event
) -> None:
    store.create(PODS, {"metadata": {"name": "a", "namespace": "default"}})
    store.create(PODS, {"metadata": {"name": "gone", "namespace": "default"}})
    informer = Informer(backend, PODS, backoff_initial=0.01, backoff_max=0.05)
    events = Recorder()
    informer.add_handler(events)
    spawn(informer.run, stop)
    assert informer.wait_synced(5)
    assert events.seen(("ADDED", "a"), ("ADDED", "gone"))
    store.create(PODS, {"metadata": {"name": "b", "namespace": "default"}})
    wait_for(lambda: events.seen(("ADDED", "b")), what="watch ADDED")
    # break every watch, delete while nobody watches, and forget the history
    store.close_watches(dropped=True)
    store.delete(PODS, "gone", "default")
    store.compact()
    wait_for(lambda: events.seen(("DELETED", "gone")), what="DELETED after relist")
    assert informer.store.get("default/gone") is None
    assert informer.restarts >= 1


def test_a_quiet_first_list_fills_the_cache_and_only_later_changes_reach_handlers(
    store: MemoryStore, backend: MemoryBackend, spawn, stop: threading.Event
) -> None:
    store.create(PODS, {"metadata": {"name": "a", "namespace": "default"}})
    store.create(PODS, {"metadata": {"name": "gone", "namespace": "default"}})
    informer = Informer(backend, PODS, backoff_initial=0.01, backoff_max=0.05,
                        quiet_first_list=True)
    events = Recorder()
    informer.add_handler(events)
    spawn(informer.run, stop)
    assert informer.wait_synced(5)
    assert sorted(informer.store.keys()) == ["default/a", "default/gone"]
    store.create(PODS, {"metadata": {"name": "b", "namespace": "default"}})
    wait_for(lambda: events.seen(("ADDED", "b")), what="watch ADDED")
    assert events.events == [("ADDED", "b")]  # nothing of the first list
    # a relist is not the first one: what changed while nobody watched is heard
    store.close_watches(dropped=True)
    store.delete(PODS, "gone", "default")
    store.compact()
    wait_for(lambda: events.seen(("DELETED", "gone")), what="DELETED after relist")


def test_informer_bookmarks_advance_resource_version(
    store: MemoryStore, backend: MemoryBackend, spawn, stop: threading.Event
) -> None:
    informer = Informer(backend, VPCS)
    spawn(informer.run, stop)
    assert informer.wait_synced(5)
    listed = int(informer.resource_version)
    for i in range(3):  # writes to another resource move the global resourceVersion
        store.create(PODS, {"metadata": {"name": f"p{i}", "namespace": "default"}})
    wait_for(lambda: int(informer.resource_version) >= listed + 3, what="bookmark RV")


def test_status_writer_conditions(store: MemoryStore, backend: MemoryBackend) -> None:
    writer = StatusWriter(backend)
    vpc = store.create(VPCS, {"metadata": {"name": "v"}, "spec": {}})
    ready = Condition("Ready", "True", "Reconciled", "router vpc-v")
    first = writer.set_status(VPCS, vpc, {"router": "vpc-v"}, ready)
    cond = first["status"]["conditions"][0]
    assert cond["observedGeneration"] == 1 and cond["status"] == "True"
    # same content: no write at all
    assert writer.set_status(VPCS, first, {"router": "vpc-v"}, ready) is first
    # message change keeps lastTransitionTime, flip changes it
    cond["lastTransitionTime"] = "2000-01-01T00:00:00Z"
    store.update(VPCS, first, subresource="status")
    current = store.get(VPCS, "v")
    again = writer.set_status(VPCS, current, {}, Condition("Ready", "True", "Reconciled", "x"))
    assert again["status"]["conditions"][0]["lastTransitionTime"] == "2000-01-01T00:00:00Z"
    flipped = writer.set_status(VPCS, again, {"router": None},
                                Condition("Ready", "False", "Invalid", "bad cidr"))
    assert flipped["status"]["conditions"][0]["lastTransitionTime"] != "2000-01-01T00:00:00Z"
    assert "router" not in flipped["status"]
    store.delete(VPCS, "v")
    assert writer.set_status(VPCS, flipped, {"router": "r"}) is None
    with pytest.raises(ValueError):
        Condition("Ready", "yes")


def test_event_recorder_aggregates_and_rate_limits(
    store: MemoryStore, backend: MemoryBackend
) -> None:
    vpc = store.create(VPCS, {"metadata": {"name": "v"}, "spec": {}})
    recorder = EventRecorder(backend, host="node-a", burst=3, qps=0.0)
    for _ in range(5):
        recorder.event(vpc, "Warning", "InvalidCIDR", "10.0.0.0/33 is not a CIDR")
    assert recorder.flush(5)
    events, _ = store.list(EVENTS, "default")
    assert len(events) == 1
    event = events[0]
    assert event["count"] == 3 and recorder.dropped == 2
    assert event["involvedObject"] == {"apiVersion": "iaas.yusur.io/v1", "kind": "Vpc",
                                       "name": "v", "uid": vpc["metadata"]["uid"],
                                       "resourceVersion": vpc["metadata"]["resourceVersion"]}
    assert event["source"] == {"component": "ycloud-controller", "host": "node-a"}
    recorder.event({"kind": "Vpc"}, "Normal", "Broken", "no metadata")  # never raises
    EventRecorder(None).event(vpc, "Normal", "Logged", "only logged")
    recorder.close()
