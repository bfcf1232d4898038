"""The client-side limit of Kubernetes writes and the KubeWriter's concurrent workers.

No test here measures time: the token bucket runs on an injected clock, and concurrency is
what a backend sees (writes in flight at once, per object and for creates)."""

from __future__ import annotations

import threading
import time
from collections import Counter

from fakekube.util import wait_for

from ycloud_controller import keys
from ycloud_controller.kube.events import EventRecorder
from ycloud_controller.kube.resources import PODS, SERVICES, SUBNETS, VPCS
from ycloud_controller.kube.status import StatusWriter
from ycloud_controller.kube.throttle import ThrottledBackend, TokenBucket
from ycloud_controller.memkube.backend import MemoryBackend
from ycloud_controller.memkube.store import MemoryStore
from ycloud_controller.reconcilers.base import PatchEffect, StatusEffect, UpsertEffect
from ycloud_controller.writer import KubeWriter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 3, clock=clock, sleep=clock.sleep)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]  # the burst
    waits = [bucket.reserve() for _ in range(3)]  # then one every 1/qps, in reserve order
    assert [round(w, 6) for w in waits] == [0.1, 0.2, 0.3]
    clock.now += 10.0  # refilled, never above the burst
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert round(bucket.reserve(), 6) == 0.1
    bucket.take()  # waits its turn on the clock it was given
    assert [round(s, 6) for s in clock.slept] == [0.2]


def test_qps_zero_is_no_limit() -> None:
    clock = Clock()
    bucket = TokenBucket(0, 1, clock=clock, sleep=clock.sleep)
    assert bucket.unlimited
    assert all(bucket.reserve() == 0.0 for _ in range(10_000))


class CountingBucket(TokenBucket):
    def __init__(self) -> None:
        super().__init__(0, 1)
        self.taken = 0

    def reserve(self) -> float:
        self.taken += 1
        return 0.0


def test_throttled_backend_limits_writes_not_reads() -> None:
    bucket = CountingBucket()
    backend = ThrottledBackend(MemoryBackend(MemoryStore()), bucket)
    backend.create(VPCS, {"metadata": {"name": "v"}})
    backend.patch(VPCS, "v", None, {"metadata": {"labels": {"a": "b"}}})
    backend.patch(VPCS, "v", None, {"status": {"router": "r"}}, "status")
    assert bucket.taken == 3
    assert backend.get(VPCS, "v")["status"] == {"router": "r"}
    backend.list(VPCS)
    assert bucket.taken == 3  # reads take no token
    backend.delete(VPCS, "v")
    assert bucket.taken == 4


class Watching(MemoryBackend):
    """Counts the writes in flight: at once, per object, and creates (the ordered lane);
    the first `gate` patches wait until that many are in flight together."""

    def __init__(self, store: MemoryStore, gate: int = 0) -> None:
        super().__init__(store)
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.per_object: Counter[tuple] = Counter()
        self.most_per_object = 0
        self.creating = 0
        self.most_creating = 0
        self.patches: list[tuple[str, str | None, dict]] = []
        self.barrier = threading.Barrier(gate) if gate else None

    def _enter(self, obj: tuple) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.per_object[obj] += 1
            self.most_per_object = max(self.most_per_object, self.per_object[obj])

    def _leave(self, obj: tuple) -> None:
        with self.lock:
            self.now -= 1
            self.per_object[obj] -= 1

    def patch(self, res, name, namespace, patch, subresource=None, **kw):  # noqa: ANN001
        obj = (res.kind, namespace, name)
        self._enter(obj)
        try:
            with self.lock:
                self.patches.append((name, subresource, patch))
            if self.barrier is not None:
                try:
                    # a deadlock guard, not a speed check: a writer writing one at a time
                    # never gets `gate` patches in flight and breaks the barrier
                    self.barrier.wait(timeout=10)
                except threading.BrokenBarrierError:
                    pass
            else:
                time.sleep(0.001)  # room for another worker to overlap, were it allowed
            return super().patch(res, name, namespace, patch, subresource, **kw)
        finally:
            self._leave(obj)

    def create(self, res, obj):  # noqa: ANN001
        with self.lock:
            self.creating += 1
            self.most_creating = max(self.most_creating, self.creating)
        try:
            time.sleep(0.001)
            return super().create(res, obj)
        finally:
            with self.lock:
                self.creating -= 1


def writer_on(backend: MemoryBackend, workers: int = 8) -> KubeWriter:
    return KubeWriter(backend, EventRecorder(None), StatusWriter(backend), workers=workers)


def run_writer(writer: KubeWriter, spawn) -> threading.Event:  # noqa: ANN001
    stop = threading.Event()
    spawn(writer.run, stop)
    return stop


def test_writes_go_out_concurrently(spawn) -> None:
    store = MemoryStore()
    for i in range(12):
        store.create(VPCS, {"metadata": {"name": f"v{i}"}})
    backend = Watching(store, gate=4)
    writer = writer_on(backend, workers=4)
    writer.submit([PatchEffect(VPCS, f"v{i}", None, {"metadata": {"labels": {"w": "1"}}})
                   for i in range(12)])
    stop = run_writer(writer, spawn)
    try:
        assert writer.flush(30)
    finally:
        stop.set()
    assert not backend.barrier.broken, "4 workers never had 4 patches in flight together"
    assert backend.most == 4 and writer.max_concurrency == 4
    assert writer.written == 12
    assert all(o["metadata"]["labels"] == {"w": "1"} for o in store.list(VPCS)[0])


def test_one_write_per_object_at_a_time_and_creates_one_at_a_time_in_order(spawn) -> None:
    store = MemoryStore()
    for i in range(4):
        store.create(VPCS, {"metadata": {"name": f"v{i}"}})
    backend = Watching(store)
    writer = writer_on(backend)
    effects: list = []
    for round_ in range(5):  # a newer patch of the same target replaces a queued one
        for i in range(4):
            effects.append(PatchEffect(VPCS, f"v{i}", None,
                                       {"metadata": {"labels": {f"l{round_}": "x"}}}))
    for i in range(4):  # and two more targets of each object: its spec, its status
        effects.append(PatchEffect(VPCS, f"v{i}", None, {"spec": {"namespaces": ["n"]}}))
        effects.append(StatusEffect(VPCS, store.get(VPCS, f"v{i}"), {"router": "r"}))
    services = [f"s{i}" for i in range(10)]
    effects += [UpsertEffect(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": name, "namespace": "ns"}, "spec": {"ports": [{"port": 80}]}})
        for name in services]
    writer.submit(effects)
    stop = run_writer(writer, spawn)
    try:
        assert writer.flush(30)
    finally:
        stop.set()
    assert writer.written == 4 * 3 + len(services)
    assert backend.most_per_object == 1
    assert backend.most_creating == 1
    created = sorted(store.list(SERVICES, "ns")[0],
                     key=lambda o: int(o["metadata"]["resourceVersion"]))
    assert [o["metadata"]["name"] for o in created] == services  # in the order queued
    for i in range(4):
        vpc = store.get(VPCS, f"v{i}")
        assert vpc["metadata"]["labels"] == {"l4": "x"}  # the newest of the coalesced
        assert vpc["spec"] == {"namespaces": ["n"]} and vpc["status"]["router"] == "r"


def test_a_pods_annotations_and_status_are_one_write(spawn) -> None:
    store = MemoryStore()
    pod = store.create(PODS, {"metadata": {"name": "p", "namespace": "ns"},
                              "spec": {"containers": [{"name": "c"}]}})
    backend = Watching(store)
    writer = writer_on(backend)
    writer.submit([
        StatusEffect(PODS, pod, {}, True, keys.REASON_RECONCILED, "port p.ns",
                     keys.NETWORK_READY),
        PatchEffect(PODS, "p", "ns", {"metadata": {"annotations": {"a": "1"}}}),
    ])
    stop = run_writer(writer, spawn)
    try:
        assert writer.flush(10)
    finally:
        stop.set()
    assert len(backend.patches) == 1
    name, subresource, body = backend.patches[0]
    assert (name, subresource) == ("p", "status") and set(body) == {"metadata", "status"}
    got = store.get(PODS, "p", "ns")
    assert got["metadata"]["annotations"] == {"a": "1"}
    assert got["status"]["conditions"][0]["type"] == keys.NETWORK_READY


def test_a_subnets_counts_wait_while_the_controller_is_busy(spawn) -> None:
    store = MemoryStore()
    subnet = store.create(SUBNETS, {"metadata": {"name": "s"}, "spec": {}})
    store.create(VPCS, {"metadata": {"name": "v"}})
    backend = Watching(store)
    writer = writer_on(backend)
    busy = threading.Event()
    busy.set()
    writer.defer = busy.is_set
    writer.submit([StatusEffect(SUBNETS, subnet, {"v4UsingIPs": 1}),
                   PatchEffect(VPCS, "v", None, {"metadata": {"labels": {"a": "b"}}})])
    stop = run_writer(writer, spawn)
    try:
        wait_for(lambda: store.get(VPCS, "v")["metadata"].get("labels"), what="vpc patch")
        assert writer.backlog() == 1 and "status" not in store.get(SUBNETS, "s")
        writer.submit([StatusEffect(SUBNETS, subnet, {"v4UsingIPs": 5})])  # replaces it
        busy.clear()
        assert writer.flush(10)
    finally:
        stop.set()
    subnet_patches = [p for p in backend.patches if p[0] == "s"]
    assert len(subnet_patches) == 1
    assert store.get(SUBNETS, "s")["status"]["v4UsingIPs"] == 5


class Gated(MemoryBackend):
    """Creates of `held` wait for `gate`."""

    def __init__(self, store: MemoryStore, held: str) -> None:
        super().__init__(store)
        self.held, self.gate, self.entered = held, threading.Event(), threading.Event()

    def create(self, res, obj):  # noqa: ANN001
        if obj["metadata"]["name"] == self.held:
            self.entered.set()
            assert self.gate.wait(10)
        return super().create(res, obj)


def test_a_write_never_overtakes_an_earlier_one_of_its_object(spawn) -> None:
    """While one create is in flight, the next create waits its turn, and so does a patch
    of the object that create makes (it would find no object yet)."""
    store = MemoryStore()
    backend = Gated(store, held="s0")
    writer = writer_on(backend)

    def service(name: str) -> UpsertEffect:
        return UpsertEffect(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": name, "namespace": "ns"}, "spec": {"ports": [{"port": 80}]}})

    writer.submit([service("s0"), service("s1"),
                   PatchEffect(SERVICES, "s1", "ns", {"metadata": {"labels": {"a": "b"}}})])
    stop = run_writer(writer, spawn)
    try:
        assert backend.entered.wait(10)
        with writer._cond:  # s0's create in flight: nothing else may go
            assert writer._take() is None and writer.backlog() == 3
        backend.gate.set()
        assert writer.flush(10)
    finally:
        backend.gate.set()
        stop.set()
    assert store.get(SERVICES, "s1", "ns")["metadata"]["labels"] == {"a": "b"}
