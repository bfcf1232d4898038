"""The watch loop end to end: FakeKube (real HTTP list/watch, the real kubernetes client),
the controller, and a real NB. Assertions read NB rows and Kubernetes objects."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from fakekube.server import FakeKube
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional.conftest import find, nb_db_file
from tests.functional.ctlrun import handled_everything
from topology import naming
from topology.nbsync.client import NbClient
from ycloud_controller import keys
from ycloud_controller.assemble import assemble
from ycloud_controller.config import Config
from ycloud_controller.controller import Controller
from ycloud_controller.kube import resources as res
from ycloud_controller.kube.backend import ApiBackend
from ycloud_controller.kube.leader import LeaderElector


def cfg(sandbox: Sandbox) -> Config:
    assert sandbox.state is not None
    return Config(nb_remote=sandbox.state.nb_remote, batch_size=200)


@contextmanager
def running(fake: FakeKube, sandbox: Sandbox, elector: LeaderElector | None = None,
            emulate: bool = False, wait_synced: bool = False) -> Iterator[Controller]:
    """A Controller on FakeKube and the session NB, its loop on a thread. `emulate`: also
    play Kubernetes' own parts (ClusterIP allocation, EndpointSlices of selector Services),
    which FakeKube does not; `wait_synced`: start the loop only once every informer has
    listed, as `ycloud-controller run` does."""
    client = fake.api_client()
    kube = ApiBackend(client, retry_initial=0.05, retry_max=0.5)
    parts = assemble(cfg(sandbox), kube, nb_timeout=30, emulate=emulate,
                     is_leader=(lambda: elector.is_leader) if elector else None)
    ctl = parts.ctl
    leader = None
    try:
        synced = parts.start(wait=30 if wait_synced else None)
        assert synced, "informers did not sync"
        if elector is not None:
            leader = threading.Thread(target=elector.run, args=(ctl.stop_event,), daemon=True)
            leader.start()
        parts.serve()
        yield ctl
    finally:
        parts.stop(join=5)
        if leader is not None:
            leader.join(timeout=5)
        client.close()


def pod(name: str, ns: str = "default", labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]}}


def port_names(sandbox: Sandbox) -> set[str]:
    return {p["name"] for p in find(sandbox, "Logical_Switch_Port")}


@pytest.fixture
def nbclean(nb: NbClient) -> NbClient:
    """A wiped NB (the `nb` fixture empties it before and after)."""
    return nb


def test_pods_get_ports_and_cni_annotations(fake: FakeKube, sandbox: Sandbox,
                                            nbclean: NbClient) -> None:
    fake.store.create(res.PODS, pod("web-1"))
    with running(fake, sandbox):
        wait_for(lambda: "web-1.default" in port_names(sandbox), timeout=15, what="pod port")
        ann = wait_for(lambda: (fake.store.get(res.PODS, "web-1", "default")["metadata"]
                                .get("annotations") or {}).get(keys.ANN_IP), timeout=10)
        got = fake.store.get(res.PODS, "web-1", "default")["metadata"]["annotations"]
        assert got[keys.ANN_SWITCH] == "ovn-default"
        assert got[keys.ANN_GATEWAY] == "10.16.0.1"
        row = find(sandbox, "Logical_Switch_Port", "name=web-1.default")[0]
        assert row["addresses"] == f"{got[keys.ANN_MAC]} {ann}"
        assert row["external_ids"][naming.NODE] == "node1"
        # deleting the pod removes its port
        fake.store.delete(res.PODS, "web-1", "default")
        wait_for(lambda: "web-1.default" not in port_names(sandbox), timeout=15)


def test_object_deleted_while_watch_was_down(fake: FakeKube, sandbox: Sandbox,
                                             nbclean: NbClient) -> None:
    fake.store.create(res.PODS, pod("a"))
    fake.store.create(res.PODS, pod("b"))
    with running(fake, sandbox):
        wait_for(lambda: {"a.default", "b.default"} <= port_names(sandbox), timeout=15)
        # the watch goes down and stays down while b is deleted and history is compacted
        fake.inject("GET", r"/pods\?.*watch=", 503, count=3)
        fake.drop_watches()
        fake.store.delete(res.PODS, "b", "default")
        fake.store.compact()
        wait_for(lambda: "b.default" not in port_names(sandbox), timeout=20,
                 what="port of the pod deleted while the watch was down")
        assert "a.default" in port_names(sandbox)


def test_api_errors_back_off_and_recover(fake: FakeKube, sandbox: Sandbox,
                                         nbclean: NbClient) -> None:
    fake.store.create(res.PODS, pod("x"))
    fake.inject("GET", r"/api/v1/pods", 500, count=2)
    fake.inject("GET", r"/api/v1/nodes", 429, count=2, retry_after=1)
    with running(fake, sandbox):
        wait_for(lambda: "x.default" in port_names(sandbox), timeout=20)
    failed = [r for r in fake.requests if r[3] in (429, 500)]
    assert len(failed) == 4
    node_lists = [r[0] for r in fake.requests if r[1] == "GET" and "/api/v1/nodes" in r[2]]
    assert node_lists[1] - node_lists[0] >= 0.9  # honoured Retry-After
    pod_lists = [r[0] for r in fake.requests
                 if r[1] == "GET" and r[2].startswith("/api/v1/pods")]
    gaps = [b - a for a, b in zip(pod_lists[:2], pod_lists[1:3], strict=True)]
    assert min(gaps) >= 0.04  # waited before each retry


def test_only_the_leader_writes_and_a_follower_takes_over(fake: FakeKube, sandbox: Sandbox,
                                                          nbclean: NbClient) -> None:
    fake.store.create(res.NAMESPACES, {"metadata": {"name": "ycloud-system"}})

    def elector(identity: str) -> LeaderElector:
        return LeaderElector(ApiBackend(fake.api_client()), name="ycloud", namespace=
                             "ycloud-system", identity=identity, lease_duration=2.0,
                             renew_deadline=1.5, retry_period=0.3, release_on_cancel=False)

    first, second = elector("one"), elector("two")
    fake.store.create(res.PODS, pod("p1"))
    with running(fake, sandbox, first) as one:
        wait_for(lambda: "p1.default" in port_names(sandbox), timeout=15)
        with running(fake, sandbox, second) as two:
            wait_for(lambda: two.informers["Pod"].has_synced(), timeout=10)
            fake.store.create(res.PODS, pod("p2"))
            wait_for(lambda: "p2.default" in port_names(sandbox), timeout=15)
            assert one.last_sync is not None and two.last_sync is None  # two never wrote
            assert first.is_leader and not second.is_leader
            one.shutdown()  # the leader dies without releasing its lease
            fake.store.create(res.PODS, pod("p3"))
            wait_for(lambda: second.is_leader, timeout=6, what="follower takes the lease")
            wait_for(lambda: "p3.default" in port_names(sandbox), timeout=15)
            # the rows land in NB a moment before full_sync() records its report
            wait_for(lambda: two.last_sync is not None, timeout=5, what="two's full sync")


def test_ipam_never_duplicates_under_concurrent_creations(fake: FakeKube, sandbox: Sandbox,
                                                          nbclean: NbClient) -> None:
    with running(fake, sandbox):
        client = fake.api_client()
        kube = ApiBackend(client)
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda i: kube.create(res.PODS, pod(f"p{i}")), range(200)))

        def annotated() -> list[str]:
            pods, _ = fake.store.list(res.PODS, "default")
            ips = [(p["metadata"].get("annotations") or {}).get(keys.ANN_IP) for p in pods]
            return ips if all(ips) and len(ips) == 200 else []
        ips = wait_for(annotated, timeout=60, what="200 pods annotated")
        assert len(set(ips)) == 200
        def pod_ports() -> list[dict] | None:
            found = [p for p in find(sandbox, "Logical_Switch_Port")
                     if p["name"].endswith(".default")]
            return found if len(found) == 200 else None
        rows = wait_for(pod_ports, timeout=30)
        addresses = [r["addresses"].split()[1] for r in rows]
        assert sorted(addresses) == sorted(ips)
        client.close()


def test_restart_with_nothing_changed_writes_nothing(fake: FakeKube, sandbox: Sandbox,
                                                     nbclean: NbClient) -> None:
    for i in range(5):
        fake.store.create(res.PODS, pod(f"r{i}"))
    fake.store.create(res.SERVICES, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.50", "ports": [{"port": 80, "targetPort": 8080}]}})
    with running(fake, sandbox):
        wait_for(lambda: {f"r{i}.default" for i in range(5)} <= port_names(sandbox), timeout=15)
        wait_for(lambda: find(sandbox, "Load_Balancer"), timeout=15)
    sandbox.nbctl("--wait=sb", "sync")
    size = nb_db_file(sandbox).stat().st_size
    with running(fake, sandbox) as again:
        wait_for(lambda: again.last_sync is not None, timeout=15)
        assert again.last_sync.transactions == 0 and again.last_sync.changes == 0
        # witness: it handled every event after its sync too (none of them wrote either)
        wait_for(lambda: handled_everything(fake, again), timeout=15,
                 what="the restarted controller handled every write")
    assert nb_db_file(sandbox).stat().st_size == size
