"""Memory of the Kubernetes caches: trimmed and interned objects, one copy shared between
the in-memory store and the informers (manifests mode), copy-on-write store writes."""

from __future__ import annotations

import threading

from fakekube.util import wait_for

from ycloud_controller.kube import objects
from ycloud_controller.kube.informer import Informer
from ycloud_controller.kube.resources import PODS
from ycloud_controller.memkube.backend import MemoryBackend
from ycloud_controller.memkube.store import MemoryStore

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _pod(name: str, **meta: object) -> dict:
    return {"metadata": {"name": name, "namespace": "default", **meta},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "pause"}]}}


def test_trim_for_cache_drops_managed_fields_and_last_applied_without_touching_input() -> None:
    obj = _pod("a", managedFields=[{"manager": "kubectl"}],
               annotations={LAST_APPLIED: "{...}", "ycloud.io/ip_address": "10.0.0.5"})
    trimmed = objects.trim_for_cache(obj)
    assert "managedFields" not in trimmed["metadata"]
    assert trimmed["metadata"]["annotations"] == {"ycloud.io/ip_address": "10.0.0.5"}
    assert trimmed["spec"] is obj["spec"]  # the rest is shared, not copied
    assert "managedFields" in obj["metadata"] and LAST_APPLIED in obj["metadata"]["annotations"]
    plain = _pod("b")
    assert objects.trim_for_cache(plain) is plain  # nothing to drop: no copy


def test_compact_interns_keys_and_short_strings() -> None:
    a = objects.compact({"".join(["spec"]): {"nodeName": "".join(["node", "1"])}})
    b = objects.compact({"spec": {"nodeName": "".join(["node", "1"])}})
    key_a, key_b = next(iter(a)), next(iter(b))
    assert key_a is key_b and a["spec"]["nodeName"] is b["spec"]["nodeName"]
    long = "x" * (objects.INTERN_MAX + 1)
    assert objects.compact({"v": [long, 1, 2.5, True, None]}) == {"v": [long, 1, 2.5, True, None]}


def test_memory_backend_shares_stored_objects_and_store_writes_are_copy_on_write() -> None:
    store = MemoryStore()
    backend = MemoryBackend(store)
    store.create(PODS, _pod("a"))
    (listed,), _ = backend.list(PODS)
    stored = store.get(PODS, "a", "default", copy=False)
    assert listed is stored
    snapshot = objects.clone(listed)
    store.patch(PODS, "a", "default", {"metadata": {"labels": {"x": "y"}}})
    assert listed == snapshot  # the old version handed out is never modified
    after = store.get(PODS, "a", "default", copy=False)
    assert after["metadata"]["labels"] == {"x": "y"}
    assert after["spec"] is listed["spec"]  # untouched parts are shared between versions
    (copied,), _ = MemoryBackend(store, share=False).list(PODS)
    assert copied == after and copied is not after


def test_informer_caches_the_store_objects_trimmed(stop: threading.Event) -> None:
    store = MemoryStore()
    backend = MemoryBackend(store, bookmark_interval=0.05)
    store.create(PODS, _pod("a"))
    informer = Informer(backend, PODS)
    informer.start(stop)
    assert informer.wait_synced(5)
    assert informer.store.get("default/a") is store.get(PODS, "a", "default", copy=False)
    store.create(PODS, _pod("b", managedFields=[{"manager": "m"}]))
    assert wait_for(lambda: informer.store.get("default/b") is not None)
    cached = informer.store.get("default/b")
    assert "managedFields" not in cached["metadata"]
    assert cached["spec"] is store.get(PODS, "b", "default", copy=False)["spec"]


def test_only_status_changed_answers_each_pair_of_versions_for_itself() -> None:
    """The store and the triggers ask it of one event in turn (the second answer is the
    first's): a different pair is answered anew, whichever pair came before."""
    old = _pod("a", resourceVersion="1")
    status = {**old, "metadata": {**old["metadata"], "resourceVersion": "2"},
              "status": {"phase": "Running"}}
    spec = {**status, "spec": {**old["spec"], "nodeName": "n2"}}
    labels = {**status, "metadata": {**status["metadata"], "labels": {"app": "web"}}}
    for _ in range(2):
        assert objects.only_status_changed(status, old)
        assert objects.only_status_changed(status, old)
        assert not objects.only_status_changed(spec, old)
        assert not objects.only_status_changed(labels, old)
        assert objects.only_status_changed(spec, {**spec, "status": {}})
