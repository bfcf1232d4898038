"""ApiBackend against FakeKube: raw JSON CRUD, pagination, watch, errors and retries."""

from __future__ import annotations

import threading

import pytest
from fakekube import FakeKube
from fakekube.util import wait_for
from kubernetes.client import ApiClient

from ycloud_controller.kube.backend import ApiBackend, Backend
from ycloud_controller.kube.errors import AlreadyExists, ApiError, Conflict, Expired, NotFound
from ycloud_controller.kube.patch import JSON_PATCH
from ycloud_controller.kube.resources import LEASES, NODES, PODS, VNICS, VPCS
from ycloud_controller.memkube.backend import MemoryBackend
from ycloud_controller.memkube.store import MemoryStore


def pod(name: str, ns: str = "default") -> dict:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"nodeName": "n1"}}


@pytest.fixture(params=["api", "memory"])
def any_backend(request, backend: ApiBackend) -> Backend:
    """The same contract for both implementations."""
    if request.param == "api":
        return backend
    return MemoryBackend(MemoryStore(), bookmark_interval=0.2)


def test_backend_contract(any_backend: Backend) -> None:
    b = any_backend
    created = b.create(VPCS, {"apiVersion": "iaas.yusur.io/v1", "kind": "Vpc",
                              "metadata": {"name": "v"}, "spec": {"a": 1}})
    assert created["metadata"]["resourceVersion"]
    assert b.get(VPCS, "v")["spec"] == {"a": 1}
    assert b.get(VPCS, "nope") is None
    with pytest.raises(AlreadyExists):
        b.create(VPCS, {"metadata": {"name": "v"}})
    updated = b.update(VPCS, dict(created, spec={"a": 2}))
    with pytest.raises(Conflict) as conflict:
        b.update(VPCS, dict(created, spec={"a": 3}))
    assert conflict.value.code == 409
    patched = b.patch(VPCS, "v", None, {"metadata": {"labels": {"x": "y"}}})
    assert patched["metadata"]["labels"] == {"x": "y"} and patched["spec"] == {"a": 2}
    status = b.patch(VPCS, "v", None, {"status": {"ok": True}}, "status")
    assert status["status"] == {"ok": True}
    status = b.update_status(VPCS, dict(status, status={"ok": False}, spec={"ignored": 1}))
    assert status["status"] == {"ok": False} and status["spec"] == {"a": 2}
    assert updated["metadata"]["generation"] == 2
    json_patched = b.patch(VPCS, "v", None, [{"op": "replace", "path": "/spec/a", "value": 5}],
                           patch_type=JSON_PATCH)
    assert json_patched["spec"]["a"] == 5
    b.create(VNICS, {"metadata": {"name": "n", "namespace": "default"}, "spec": {}})
    items, rv = b.list(VNICS, "default")
    assert [i["metadata"]["name"] for i in items] == ["n"] and items[0]["kind"] == "Vnic"
    assert int(rv) >= int(items[0]["metadata"]["resourceVersion"])
    # a uid precondition: only that object, not another made since under the same name
    with pytest.raises(Conflict):
        b.delete(VPCS, "v", uid="not-its-uid")
    assert b.get(VPCS, "v") is not None
    b.delete(VPCS, "v", uid=created["metadata"]["uid"])
    assert b.get(VPCS, "v") is None
    b.delete(VPCS, "v")  # missing is fine by default
    with pytest.raises(NotFound):
        b.delete(VPCS, "v", missing_ok=False)
    with pytest.raises(ApiError) as no_ns:
        b.create(VNICS, {"metadata": {"name": "x"}})
    assert no_ns.value.code in (400, 404)


def test_list_follows_pages(fake: FakeKube, api_client: ApiClient) -> None:
    for i in range(7):
        fake.store.create(PODS, pod(f"p{i}", ns="a" if i % 2 else "b"))
    backend = ApiBackend(api_client, page_size=3)
    items, rv = backend.list(PODS)
    assert sorted(i["metadata"]["name"] for i in items) == [f"p{i}" for i in range(7)]
    assert rv == fake.store.resource_version
    pages = fake.requests_matching("GET", r"^/api/v1/pods\?limit=3")
    assert len(pages) == 3
    assert len(backend.list(PODS, "a")[0]) == 3
    by_field, _ = backend.list(PODS, field_selector="metadata.name=p2")
    assert [i["metadata"]["name"] for i in by_field] == ["p2"]


def test_watch_events_and_bookmarks(fake: FakeKube, backend: ApiBackend) -> None:
    _, rv = backend.list(PODS)
    stream = backend.watch(PODS, rv, timeout_seconds=5)
    fake.store.create(PODS, pod("a"))
    fake.store.create(NODES, {"metadata": {"name": "n1"}})  # moves the global RV only
    event = next(stream)
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "a"
    bookmark = next(stream)
    assert bookmark["type"] == "BOOKMARK"
    assert int(bookmark["object"]["metadata"]["resourceVersion"]) == int(
        fake.store.resource_version)
    stream.close()
    wait_for(lambda: fake.open_watches() == 0, what="server saw the close")


def test_watch_close_from_another_thread_unblocks(fake: FakeKube, backend: ApiBackend) -> None:
    stream = backend.watch(PODS, fake.store.resource_version, 30, allow_bookmarks=False)
    result: list = []
    reader = threading.Thread(target=lambda: result.append(list(stream)))
    reader.start()
    wait_for(lambda: fake.open_watches() == 1, what="watch open")
    stream.close()
    reader.join(5)
    assert not reader.is_alive() and result == [[]]
    assert backend.list(PODS)[0] == []  # the pool still works


@pytest.mark.parametrize("as_http", [False, True])
def test_watch_expired_both_ways(as_http: bool) -> None:
    with FakeKube(gone_as_http=as_http) as fake:
        backend = ApiBackend(fake.api_client())
        rv = fake.store.create(PODS, pod("a"))["metadata"]["resourceVersion"]
        fake.store.create(PODS, pod("b"))
        fake.compact()
        with pytest.raises(Expired) as exc:
            list(backend.watch(PODS, rv, 5))
        assert exc.value.code == 410
        backend.api_client.close()


def test_dropped_watch_is_a_connection_error(fake: FakeKube, backend: ApiBackend) -> None:
    stream = backend.watch(PODS, fake.store.resource_version, 30)
    wait_for(lambda: fake.open_watches() == 1, what="watch open")
    fake.drop_watches()
    with pytest.raises(ApiError) as exc:
        for _ in stream:
            pass
    assert exc.value.code == 0 and exc.value.reason == "connection"


def test_reads_retry_500_and_429_with_retry_after(fake: FakeKube, backend: ApiBackend) -> None:
    fake.store.create(PODS, pod("a"))
    fake.inject("GET", r"^/api/v1/pods\?", 500, count=2)
    items, _ = backend.list(PODS)
    assert len(items) == 1
    statuses = [r.status for r in fake.requests_matching("GET", r"^/api/v1/pods\?")]
    assert statuses == [500, 500, 200]

    fake.inject("GET", r"/pods/a$", 429, count=1, retry_after=1)
    assert backend.get(PODS, "a", "default") is not None
    first, second = fake.requests_matching("GET", r"/pods/a$")
    assert first.status == 429 and second.status == 200
    assert second.time - first.time >= 0.9  # waited for Retry-After


def test_reads_give_up_after_bounded_attempts(fake: FakeKube, api_client: ApiClient) -> None:
    backend = ApiBackend(api_client, read_attempts=3, retry_initial=0.01, retry_max=0.02)
    fake.inject("GET", r"^/api/v1/nodes", 503, count=10)
    with pytest.raises(ApiError) as exc:
        backend.list(NODES)
    assert exc.value.code == 503
    assert len(fake.requests_matching("GET", r"^/api/v1/nodes")) == 3


def test_writes_are_not_retried(fake: FakeKube, backend: ApiBackend) -> None:
    fake.inject("POST", r"/leases$", 500, count=1)
    with pytest.raises(ApiError) as exc:
        backend.create(LEASES, {"metadata": {"name": "l", "namespace": "default"}, "spec": {}})
    assert exc.value.code == 500 and exc.value.reason == "InternalError"
    assert len(fake.requests_matching("POST", r"/leases$")) == 1


def test_connection_refused_is_code_0() -> None:
    fake = FakeKube().start()
    api_client = fake.api_client()
    fake.stop()
    backend = ApiBackend(api_client, read_attempts=2, retry_initial=0.01, retry_max=0.02)
    with pytest.raises(ApiError) as exc:
        backend.create(PODS, pod("a"))
    assert exc.value.code == 0 and exc.value.reason == "connection"
    api_client.close()
