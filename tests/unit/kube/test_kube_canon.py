"""Shared read-only subtrees of the in-memory store (kube/canon.py)."""

from __future__ import annotations

import gc
import json

import pytest

from ycloud_controller.kube import canon, objects
from ycloud_controller.kube.errors import ApiError
from ycloud_controller.kube.resources import ENDPOINTSLICES, PODS
from ycloud_controller.memkube.store import MemoryStore


def endpoint(pod: str, ip: str) -> dict:
    return {"addresses": [ip], "conditions": {"ready": True}, "nodeName": "n1",
            "targetRef": {"kind": "Pod", "namespace": "default", "name": pod}}


def eps(name: str, *endpoints: dict) -> dict:
    return {"metadata": {"name": name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": list(endpoints),
            "ports": [{"name": "", "port": 80, "protocol": "TCP"}]}


def test_equal_subtrees_of_stored_objects_are_one_object() -> None:
    store = MemoryStore()
    store.create(ENDPOINTSLICES, eps("a", endpoint("p1", "10.0.0.1"), endpoint("p2", "10.0.0.2")))
    store.create(ENDPOINTSLICES, eps("b", endpoint("p2", "10.0.0.2"), endpoint("p3", "10.0.0.3")))
    a = store.get(ENDPOINTSLICES, "a", "default", copy=False)
    b = store.get(ENDPOINTSLICES, "b", "default", copy=False)
    assert a["endpoints"][1] is b["endpoints"][0]
    assert a["ports"] is b["ports"]
    assert a["endpoints"][0]["conditions"] is b["endpoints"][1]["conditions"]
    # the object and its metadata are each object's own: the store stamps them
    assert a["metadata"] is not b["metadata"]
    # what readers get is what was written
    got = store.get(ENDPOINTSLICES, "b", "default")
    assert got["endpoints"] == [endpoint("p2", "10.0.0.2"), endpoint("p3", "10.0.0.3")]
    # a later write of one object leaves the other as it was
    store.update(ENDPOINTSLICES, eps("a", endpoint("p9", "10.0.0.9")))
    assert store.get(ENDPOINTSLICES, "b", "default")["endpoints"][0] == endpoint("p2", "10.0.0.2")


def test_only_strictly_equal_containers_are_unified() -> None:
    values = [{"v": True}, {"v": 1}, {"v": 1.0}, {"v": 0.0}, {"v": -0.0}, {"a": 1, "b": 2},
              {"b": 2, "a": 1}, [1], [True], ["1"]]
    shared = [canon.share(v) for v in values]
    for value, copy in zip(values, shared, strict=True):
        assert json.dumps(copy) == json.dumps(value)
        assert copy is not value
    assert len({id(c) for c in shared}) == len(values)
    assert canon.share({"b": 2, "a": 1}) is shared[6]


def test_unusual_values_are_converted_like_json() -> None:
    assert canon.share({"t": (1, 2), "d": {1: "x"}}) == {"t": [1, 2], "d": {"1": "x"}}
    with pytest.raises(ApiError) as exc:
        objects.normalize({"metadata": {"name": "a"}, "spec": {"x": {1, 2}}})
    assert exc.value.code == 400


def test_sweep_drops_what_nothing_stores_any_more() -> None:
    marker = {"unique-subtree-for-sweep": ["x" * 100]}
    store = MemoryStore()
    store.create(PODS, {"metadata": {"name": "a", "namespace": "default"}, "spec": marker})
    stored = store.get(PODS, "a", "default", copy=False)["spec"]
    canon.TABLE.sweep()
    assert any(v is stored for v in canon.TABLE.items.values())
    store.delete(PODS, "a", "default")
    store.compact()  # the history referenced it too
    del stored
    gc.collect()
    canon.TABLE.sweep()
    assert not any(v == marker for v in canon.TABLE.items.values())


def test_a_pinned_value_is_stored_as_it_is_and_forgotten_with_it() -> None:
    entry = canon.pinned({"type": "Ready", "status": "True", "reason": "pinned-for-test"})
    assert canon.pinned(dict(entry)) is entry  # one per content
    store = MemoryStore()
    for name in ("a", "b"):
        store.create(PODS, {"metadata": {"name": name, "namespace": "default"}})
        store.patch(PODS, name, "default", {"status": {"conditions": [entry]}},
                    subresource="status")
    for name in ("a", "b"):  # not copied: the very object, for every object that gets it
        assert store.get(PODS, name, "default", copy=False)["status"]["conditions"][0] \
            is entry
    key = canon.TABLE.known(entry)
    assert key is not None
    # an equal value that is not the pinned object is walked and shared as before
    equal = {"type": "Ready", "status": "True", "reason": "pinned-for-test"}
    assert canon.TABLE.known(equal) is None and canon.share(equal) is entry
    for name in ("a", "b"):
        store.delete(PODS, name, "default")
    store.compact()
    del entry
    gc.collect()
    while canon.TABLE.sweep():  # one level of containers per sweep: the list held it
        pass
    assert key not in canon.TABLE.keys.values()


def test_a_condition_many_objects_get_is_stored_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from ycloud_controller.kube import status
    from ycloud_controller.memkube.backend import MemoryBackend
    monkeypatch.setattr(status, "now_rfc3339", lambda: "2026-01-01T00:00:00Z")
    store = MemoryStore()
    writer = status.StatusWriter(MemoryBackend(store))
    for name in ("a", "b"):
        store.create(PODS, {"metadata": {"name": name, "namespace": "default"}})
        writer.set_status(PODS, store.get(PODS, name, "default"), {},
                          status.Condition("Ready", "True", "Shared", "for the test"))
    a, b = (store.get(PODS, n, "default", copy=False)["status"]["conditions"][0] for n in "ab")
    assert a is b
    assert a == {"type": "Ready", "status": "True", "reason": "Shared",
                 "message": "for the test", "observedGeneration": 1,
                 "lastTransitionTime": "2026-01-01T00:00:00Z"}
