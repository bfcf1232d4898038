"""Informer over ApiBackend and FakeKube: sync, bookmarks, relist, backoff."""

from __future__ import annotations

import threading

from fakekube import FakeKube
from fakekube.util import wait_for

from ycloud_controller.kube.backend import ApiBackend
from ycloud_controller.kube.informer import Informer
from ycloud_controller.kube.resources import NODES, PODS, SERVICES
from ycloud_controller.kube.workqueue import WorkQueue


class Events:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()

    def __call__(self, type_: str, obj: dict, old: dict | None) -> None:
        old_rv = old["metadata"]["resourceVersion"] if old else None
        with self.lock:
            self.items.append((type_, obj["metadata"]["name"], old_rv))

    def has(self, type_: str, name: str) -> bool:
        with self.lock:
            return any(t == type_ and n == name for t, n, _ in self.items)

    def count(self, type_: str, name: str) -> int:
        with self.lock:
            return sum(1 for t, n, _ in self.items if t == type_ and n == name)


def pod(name: str, labels: dict | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "labels": labels or {}},
            "spec": {"nodeName": "n1"}}


def make(backend: ApiBackend, res=PODS, **kw) -> tuple[Informer, Events]:
    informer = Informer(backend, res, backoff_initial=0.05, backoff_max=0.5, **kw)
    events = Events()
    informer.add_handler(events)
    return informer, events


def test_list_then_watch_feeds_handlers_and_queue(fake: FakeKube, backend, spawn, stop) -> None:
    fake.store.create(PODS, pod("a", {"app": "web"}))
    fake.store.create(PODS, pod("skip", {"app": "db"}))
    informer, events = make(backend, label_selector="app=web")
    queue = WorkQueue()
    informer.add_handler(lambda t, o, old: queue.add(("Pod", PODS.key_of(o))))
    informer.store.add_index("node", lambda o: [o["spec"].get("nodeName", "")])
    spawn(informer.run, stop)
    assert informer.wait_synced(5) and informer.has_synced()
    assert informer.store.keys() == ["default/a"]
    fake.store.create(PODS, pod("b", {"app": "web"}))
    fake.store.patch(PODS, "a", "default", {"metadata": {"annotations": {"x": "1"}}})
    fake.store.patch(PODS, "skip", "default", {"metadata": {"labels": {"app": "web"}}})
    fake.store.patch(PODS, "b", "default", {"metadata": {"labels": {"app": "db"}}})
    wait_for(lambda: events.has("DELETED", "b"), what="b left the selector")
    assert events.has("MODIFIED", "a") and events.has("ADDED", "skip")
    assert sorted(informer.store.keys()) == ["default/a", "default/skip"]
    assert len(informer.store.by_index("node", "n1")) == 2
    assert set(queue.get_batch(10, timeout=1)) == {
        ("Pod", "default/a"), ("Pod", "default/b"), ("Pod", "default/skip")}


def test_bookmarks_advance_resource_version(fake: FakeKube, backend, spawn, stop) -> None:
    informer, _ = make(backend, res=SERVICES)
    spawn(informer.run, stop)
    assert informer.wait_synced(5)
    listed = int(informer.resource_version)
    fake.store.create(NODES, {"metadata": {"name": "n1"}})
    fake.store.create(NODES, {"metadata": {"name": "n2"}})
    wait_for(lambda: int(informer.resource_version) >= listed + 2, what="bookmark")
    assert fake.requests_matching("GET", r"/services\?.*allowWatchBookmarks=true")
    assert informer.restarts == 0


def test_deleted_while_watch_down_is_seen_after_reconnect(
    fake: FakeKube, backend, spawn, stop
) -> None:
    for name in ("keep", "gone", "changed"):
        fake.store.create(PODS, pod(name))
    reasons: list[str] = []
    informer, events = make(backend, on_restart=reasons.append)
    spawn(informer.run, stop)
    assert informer.wait_synced(5)
    wait_for(lambda: fake.open_watches() == 1, what="watch open")
    # keep the watch from coming back while the world changes
    fake.inject("GET", r"/api/v1/pods\?", 500, count=2)
    fake.drop_watches()
    fake.store.delete(PODS, "gone", "default")
    fake.store.patch(PODS, "changed", "default", {"spec": {"nodeName": "n2"}})
    fake.compact()
    wait_for(lambda: events.has("DELETED", "gone"), what="DELETED after reconnection")
    wait_for(lambda: events.has("MODIFIED", "changed"), what="MODIFIED after reconnection")
    assert not events.has("DELETED", "keep") and events.count("ADDED", "keep") == 1
    assert informer.store.get("default/gone") is None
    assert informer.store.get("default/changed")["spec"]["nodeName"] == "n2"
    assert informer.restarts >= 1 and reasons[0] == "connection"
    wait_for(lambda: fake.open_watches() == 1, what="watching again")


def test_expired_watch_relists(fake: FakeKube, backend, spawn, stop) -> None:
    fake.store.create(PODS, pod("a"))
    reasons: list[str] = []
    informer, events = make(backend, on_restart=reasons.append)
    # the first watch starts from a compacted resourceVersion
    fake.inject("GET", r"/api/v1/pods\?watch", 410, count=1)
    spawn(informer.run, stop)
    wait_for(lambda: "expired" in reasons, what="410 seen")
    fake.store.create(PODS, pod("b"))
    wait_for(lambda: events.has("ADDED", "b"), what="watching after relist")
    lists = fake.requests_matching("GET", r"^/api/v1/pods\?limit")
    assert len(lists) == 2


def test_500_and_429_are_retried_with_backoff_then_sync(
    fake: FakeKube, api_client, spawn, stop
) -> None:
    fake.store.create(PODS, pod("a"))
    # the backend's own read retries are disabled: the informer backs off and relists
    backend = ApiBackend(api_client, read_attempts=1)
    fake.inject("GET", r"^/api/v1/pods\?limit", 500, count=2)
    fake.inject("GET", r"^/api/v1/pods\?limit", 429, count=1, retry_after=0.4)
    reasons: list[str] = []
    informer, _ = make(backend, on_restart=reasons.append)
    spawn(informer.run, stop)
    assert informer.wait_synced(10)
    assert informer.store.keys() == ["default/a"]
    attempts = fake.requests_matching("GET", r"^/api/v1/pods\?limit")
    assert [r.status for r in attempts] == [500, 500, 429, 200]
    assert reasons == ["http_500", "http_500", "throttled"]
    gaps = [b.time - a.time for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # exponential: 0.05, then 0.1 (+jitter)
    assert gaps[2] >= 0.4  # Retry-After
    # watch errors back off too, and the informer recovers
    wait_for(lambda: fake.open_watches() == 1, what="watch open")
    fake.inject("GET", r"^/api/v1/pods\?watch", 503, count=2)
    fake.drop_watches()
    wait_for(lambda: reasons.count("http_503") == 2, what="two failed watches")
    fake.store.create(PODS, pod("b"))
    wait_for(lambda: informer.store.get("default/b") is not None, timeout=10, what="recovered")


def test_stop_ends_a_blocked_watch_promptly(fake: FakeKube, backend) -> None:
    informer, _ = make(backend, watch_timeout=600)
    stop = threading.Event()
    thread = informer.start(stop)
    assert informer.wait_synced(5)
    wait_for(lambda: fake.open_watches() == 1, what="watch open")
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    wait_for(lambda: fake.open_watches() == 0, what="server side closed")
