"""KubeWriter: effects written off the reconcile path, one at a time, nothing lost."""

from __future__ import annotations

import threading

from ycloud_controller.kube.errors import ApiError
from ycloud_controller.kube.events import EventRecorder
from ycloud_controller.kube.resources import (
    ENDPOINTSLICES,
    PODS,
    SERVICES,
    VPCS,
    YUSURSERVICES,
)
from ycloud_controller.kube.status import StatusWriter
from ycloud_controller.memkube.backend import MemoryBackend
from ycloud_controller.memkube.store import MemoryStore
from ycloud_controller.reconcilers.base import (
    DeleteEffect,
    PatchEffect,
    StatusEffect,
    UpsertEffect,
)
from ycloud_controller.writer import KubeWriter


class Flaky(MemoryBackend):
    """Fails chosen patches: a 409 once (retried), or a crash (a bug in a write)."""

    def __init__(self, store: MemoryStore, conflict: set[str], crash: set[str]) -> None:
        super().__init__(store)
        self.conflict, self.crash = conflict, crash

    def patch(self, res, name, namespace, patch, subresource=None, **kw):  # noqa: ANN001
        if name in self.crash:
            self.crash.discard(name)
            raise RuntimeError("bug")
        if name in self.conflict:
            self.conflict.discard(name)
            raise ApiError(409, "Conflict", "stale")
        return super().patch(res, name, namespace, patch, subresource, **kw)


def writer_for(backend: MemoryBackend) -> KubeWriter:
    return KubeWriter(backend, EventRecorder(None), StatusWriter(backend))


def write_all(backend: MemoryBackend, effects: list, spawn,  # noqa: ANN001
              *later: list) -> KubeWriter:
    """A writer that has written `effects` and the `later` batches, all submitted before
    its thread starts (its thread stopped again)."""
    writer = writer_for(backend)
    for batch in (effects, *later):
        writer.submit(batch)
    stop = threading.Event()
    spawn(writer.run, stop)
    try:
        assert writer.flush(10)
    finally:
        stop.set()
    return writer


def test_many_effects_are_all_written_and_flush_waits_for_them(spawn) -> None:
    store = MemoryStore()
    n = 163
    for i in range(n):
        store.create(VPCS, {"metadata": {"name": f"v{i}"}})
    backend = MemoryBackend(store)
    writer = writer_for(backend)
    objs, _ = backend.list(VPCS)
    writer.submit([StatusEffect(VPCS, o, {"router": "r"}, True, "Reconciled", "ok")
                   for o in objs])
    stop = threading.Event()
    spawn(writer.run, stop)
    try:
        assert writer.flush(10)
        assert writer.idle() and writer.written == n
        for o in store.list(VPCS)[0]:
            assert o["status"]["router"] == "r"
            assert o["status"]["conditions"][0]["status"] == "True"
        # the same effects again change nothing: no write, no new resourceVersion
        rv = store.resource_version
        objs, _ = backend.list(VPCS)
        writer.submit([StatusEffect(VPCS, o, {"router": "r"}, True, "Reconciled", "ok")
                       for o in objs])
        assert writer.flush(10) and store.resource_version == rv
    finally:
        stop.set()


def test_a_conflict_is_retried_and_a_crash_loses_nothing_queued(spawn) -> None:
    store = MemoryStore()
    names = [f"p{i}" for i in range(6)]
    for name in names:
        store.create(PODS, {"metadata": {"name": name, "namespace": "default"}})
    backend = Flaky(store, conflict={"p1"}, crash={"p3"})
    writer = writer_for(backend)
    writer.submit([PatchEffect(PODS, name, "default", {"metadata": {"labels": {"x": "1"}}})
                   for name in names])
    stop = threading.Event()
    died = threading.Event()

    def run() -> None:
        try:
            writer.run(stop)
        except RuntimeError:
            died.set()

    spawn(run)
    assert died.wait(10)  # the crash ends the thread
    stop2 = threading.Event()
    spawn(writer.run, stop2)  # a new writer thread finds what was not written yet
    try:
        assert writer.flush(10)
        labelled = {o["metadata"]["name"] for o in store.list(PODS)[0]
                    if (o["metadata"].get("labels") or {}).get("x") == "1"}
        assert labelled == set(names) - {"p3"}  # p3's own effect was the crash
    finally:
        stop.set()
        stop2.set()


def test_an_upsert_never_takes_over_an_object_another_controls(spawn) -> None:
    """A user's Service of the name a YusurService wants stays as the user made it; the
    YusurService's own Service is updated."""
    store = MemoryStore()
    backend = MemoryBackend(store)
    uids = {name: store.create(YUSURSERVICES, {"metadata": {"name": name, "namespace": "ns"}})[
        "metadata"]["uid"] for name in ("taken", "mine")}

    def ref(name: str) -> dict:
        return {"apiVersion": "iaas.yusur.io/v1", "kind": "YusurService", "name": name,
                "uid": uids[name], "controller": True}

    store.create(SERVICES, {"metadata": {"name": "taken", "namespace": "ns"},
                            "spec": {"clusterIP": "10.96.50.1", "ports": [{"port": 80}]}})
    store.create(SERVICES, {"metadata": {"name": "mine", "namespace": "ns",
                                         "ownerReferences": [ref("mine")]},
                            "spec": {"ports": [{"port": 80}]}})

    def wanted(name: str) -> UpsertEffect:
        return UpsertEffect(SERVICES, {"metadata": {
            "name": name, "namespace": "ns", "labels": {"ycloud.io/yusurservice": name},
            "ownerReferences": [ref(name)]}, "spec": {"ports": [{"port": 8080}]}})

    writer = write_all(backend, [wanted("taken"), wanted("mine")], spawn)
    taken = backend.get(SERVICES, "taken", "ns")
    assert taken["spec"]["ports"] == [{"port": 80}] and "labels" not in taken["metadata"]
    assert "ownerReferences" not in taken["metadata"]
    mine = backend.get(SERVICES, "mine", "ns")
    assert mine["spec"]["ports"] == [{"port": 8080}]
    assert mine["metadata"]["labels"] == {"ycloud.io/yusurservice": "mine"}
    assert writer.refused == 1 and writer.failed == 0


def test_a_delete_takes_only_the_object_the_reconcile_saw(spawn) -> None:
    """A slice deleted and made again under its name since the reconcile stays."""
    store = MemoryStore()
    backend = MemoryBackend(store)
    body = {"metadata": {"name": "web-1", "namespace": "ns"}, "addressType": "IPv4",
            "endpoints": []}
    seen = store.create(ENDPOINTSLICES, body)["metadata"]["uid"]
    store.delete(ENDPOINTSLICES, "web-1", "ns")
    again = store.create(ENDPOINTSLICES, body)["metadata"]["uid"]
    gone = store.create(ENDPOINTSLICES, dict(body, metadata={"name": "web-2",
                                                             "namespace": "ns"}))
    writer = write_all(backend, [DeleteEffect(ENDPOINTSLICES, "web-1", "ns", seen),
                                 DeleteEffect(ENDPOINTSLICES, "web-2", "ns",
                                              gone["metadata"]["uid"])], spawn)
    assert backend.get(ENDPOINTSLICES, "web-1", "ns")["metadata"]["uid"] == again
    assert backend.get(ENDPOINTSLICES, "web-2", "ns") is None
    assert writer.refused == 1 and writer.failed == 0


def test_a_newer_effect_takes_the_place_of_the_queued_one(spawn) -> None:
    """Objects are created in the order reconciles first asked for them, however often
    they asked since (the older of two contenders first); of an upsert and a delete of one
    object, the newer is what was last wanted."""
    store = MemoryStore()
    backend = MemoryBackend(store)

    def svc(name: str, port: int) -> UpsertEffect:
        return UpsertEffect(SERVICES, {"metadata": {"name": name, "namespace": "ns"},
                                       "spec": {"ports": [{"port": port}]}})

    def sl(name: str) -> UpsertEffect:
        return UpsertEffect(ENDPOINTSLICES, {"metadata": {"name": name, "namespace": "ns"},
                                             "addressType": "IPv4", "endpoints": []})

    def rm(name: str) -> DeleteEffect:
        return DeleteEffect(ENDPOINTSLICES, name, "ns", None)

    write_all(backend, [svc("older", 80), svc("younger", 80), sl("kept"), sl("dropped")], spawn,
              [svc("older", 81), rm("kept"), rm("dropped")], [sl("kept")])
    older, younger = (backend.get(SERVICES, n, "ns") for n in ("older", "younger"))
    assert older["spec"]["ports"] == [{"port": 81}]
    assert int(older["metadata"]["resourceVersion"]) < int(
        younger["metadata"]["resourceVersion"])
    assert backend.get(ENDPOINTSLICES, "kept", "ns") is not None
    assert backend.get(ENDPOINTSLICES, "dropped", "ns") is None
