"""Faults outside the controller (issue 9, fault 3): NB unreachable for 30 s, and the
Kubernetes API answering 500, 429 (with Retry-After) and dropping watches.

Each test has its own OVN central (`Sandbox(dir, tcp=True)`, stopped by pid; the session
sandbox other tests use is never touched) and its own FakeKube; the controller runs in this
process on the NB TCP remote (`ctlrun.controller`), with `/readyz` served as `run` serves it.

NB outage: the NB ovsdb-server is frozen with SIGSTOP for 30 s (its socket stays, the kernel
still accepts connections, nothing answers: the worst case for a client) while pods and
services are created, changed and deleted. The controller must not crash, must report not
ready (`Controller.ready()` and HTTP 503 on /readyz), must keep the changed objects' keys
queued, and once NB answers again (SIGCONT) it must catch up: a fresh `render` finds nothing
to change, every pod has its port, every service its load balancer with the current
backends, no row of ours is duplicated or orphaned.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakekube.server import FakeKube
from fakekube.util import wait_for
from ovn_sandbox import Sandbox, pid_alive

from tests.functional import nbcheck
from tests.functional.conftest import find
from tests.functional.ctlrun import controller
from topology.model import Owner
from ycloud_controller import keys
from ycloud_controller.kube import resources as res

NS = "default"
OUTAGE = 30.0


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    """A private OVN central with NB on TCP (the inactivity probe applies to it)."""
    sandbox = Sandbox(tmp_path / "central", tcp=True)
    sandbox.start()
    try:
        yield sandbox
    finally:
        nb = sandbox.process("nb")
        pid = nb.pid()
        if pid is not None and pid_alive(pid, nb.marker):
            os.kill(pid, signal.SIGCONT)  # never leave it frozen
        sandbox.stop()


class Cluster:
    """Pods and services (with one EndpointSlice each) in FakeKube, and what NB must show."""

    def __init__(self, fake: FakeKube):
        self.fake = fake
        self.pods: set[str] = set()
        self.services: dict[str, tuple[str, list[str]]] = {}  # name -> (VIP, backends)

    def add_pod(self, name: str) -> None:
        self.fake.store.create(res.PODS, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]}})
        self.pods.add(name)

    def delete_pod(self, name: str) -> None:
        self.fake.store.delete(res.PODS, name, NS)
        self.pods.discard(name)

    def add_service(self, name: str, vip: str, backends: list[str]) -> None:
        self.fake.store.create(res.SERVICES, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"clusterIP": vip, "ports": [{"name": "http", "port": 80,
                                                  "targetPort": 8080}]}})
        self.fake.store.create(res.ENDPOINTSLICES, {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-x", "namespace": NS,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}
                          for ip in backends]})
        self.services[name] = (vip, backends)

    def set_backends(self, name: str, backends: list[str]) -> None:
        self.fake.store.patch(res.ENDPOINTSLICES, f"{name}-x", NS, {"endpoints": [
            {"addresses": [ip], "conditions": {"ready": True}} for ip in backends]})
        self.services[name] = (self.services[name][0], backends)

    def delete_service(self, name: str) -> None:
        self.fake.store.delete(res.ENDPOINTSLICES, f"{name}-x", NS)
        self.fake.store.delete(res.SERVICES, name, NS)
        del self.services[name]

    def owners(self) -> set[Owner]:
        return nbcheck.expected_owners(NS, self.pods, self.services)


def converged(box: Sandbox, kubeconfig: Path) -> bool:
    """A fresh controller (`render`) finds nothing to change in NB."""
    assert box.state is not None
    return nbcheck.render_changes(kubeconfig, box.state.nb_remote, box.state.sb_remote) == []


def nb_matches(box: Sandbox, cluster: Cluster) -> bool:
    try:
        assert_nb_is(box, cluster)
    except AssertionError:
        return False
    return True


def assert_nb_is(box: Sandbox, cluster: Cluster) -> None:
    """NB holds exactly the cluster: ports of the pods, LBs with the current backends."""
    assert box.state is not None
    ports = {p["name"] for p in find(box, "Logical_Switch_Port")
             if p["name"].endswith(f".{NS}")}
    assert ports == {f"{p}.{NS}" for p in cluster.pods}
    lbs = {lb["name"]: {vip: ",".join(sorted(backends.split(",")))
                        for vip, backends in lb["vips"].items()}
           for lb in find(box, "Load_Balancer")}
    want = {f"Service_{NS}/{s}_TCP_cluster": {f"{vip}:80": ",".join(
        f"{ip}:8080" for ip in sorted(ips))} for s, (vip, ips) in cluster.services.items()}
    assert {k: v for k, v in lbs.items() if k in want} == want
    assert not set(lbs) - set(want), f"load balancers of deleted services: {set(lbs) - set(want)}"
    rows = nbcheck.owned_rows(box.state.nb_remote)
    assert nbcheck.duplicates(rows) == {}
    assert nbcheck.orphans(rows, cluster.owners()) == []


def test_nb_unreachable_for_30s_then_catches_up(fake: FakeKube, box: Sandbox,
                                                tmp_path: Path) -> None:
    assert box.state is not None and box.state.nb_tcp
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
    cluster = Cluster(fake)
    for i in range(8):
        cluster.add_pod(f"p{i}")
    cluster.add_service("keep", "10.96.50.1", ["10.16.0.11", "10.16.0.12"])
    cluster.add_service("change", "10.96.50.2", ["10.16.0.21", "10.16.0.22"])
    cluster.add_service("gone", "10.96.50.3", ["10.16.0.31"])
    nb = box.process("nb")
    # a transaction waits at most 5 s for NB: the worker tries again and again meanwhile
    with controller(fake, box.state.nb_tcp, http=True, nb_timeout=5) as run:
        wait_for(lambda: converged(box, kubeconfig), timeout=60, interval=0.5,
                 what="initial convergence")
        assert_nb_is(box, cluster)
        wait_for(run.ctl.ready, timeout=10, what="ready before the outage")
        assert run.readyz() == 200

        pid = nb.pid()
        assert pid is not None and pid_alive(pid, nb.marker)
        os.kill(pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            # Kubernetes changes while NB does not answer
            cluster.delete_pod("p0")
            cluster.add_pod("new1")
            cluster.set_backends("change", ["10.16.0.23", "10.16.0.24", "10.16.0.25"])
            cluster.delete_service("gone")
            cluster.add_service("fresh", "10.96.50.4", ["10.16.0.41", "10.16.0.42"])
            wait_for(lambda: not run.ctl.ready(), timeout=OUTAGE - 5, interval=0.1,
                     what="not ready while NB does not answer")
            assert run.readyz() == 503
            cluster.delete_pod("p1")
            cluster.add_pod("new2")
            time.sleep(max(0.0, frozen_at + OUTAGE / 2 - time.monotonic()))
            cluster.add_pod("new3")
            cluster.set_backends("keep", ["10.16.0.13"])
            time.sleep(max(0.0, frozen_at + OUTAGE - time.monotonic()))
            # still down: nothing crashed, nothing was dropped, and nothing claims readiness
            assert run.loop.is_alive(), "the controller loop died during the outage"
            assert all(t.is_alive() for t in run.ctl._threads), "a controller thread died"  # noqa: SLF001
            assert run.pending() > 0, "the changed objects' keys left the queue"
            # NB's absence is not the objects' fault: their retry backoff did not grow
            changed = [("Pod", f"{NS}/{p}") for p in ("p0", "new1", "p1", "new2", "new3")] + \
                [("Service", f"{NS}/{s}") for s in ("change", "gone", "fresh", "keep")]
            assert {k: run.ctl.queue.retries(k) for k in changed} == dict.fromkeys(changed, 0)
            assert not run.ctl.ready() and run.readyz() == 503
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_for(run.ctl.ready, timeout=60, interval=0.1, what="ready after NB returned")
        assert run.readyz() == 200
        wait_for(lambda: converged(box, kubeconfig), timeout=120, interval=0.5,
                 what="NB caught up with Kubernetes")
        assert_nb_is(box, cluster)
        assert run.loop.is_alive()


def test_kube_api_errors_back_off_and_recover(fake: FakeKube, box: Sandbox,
                                              tmp_path: Path) -> None:
    """500s and 429s (Retry-After) on lists, watches and writes, watches dropped and history
    compacted while objects change: the informers back off (Retry-After honoured), relist,
    and the controller converges; nothing is lost."""
    assert box.state is not None and box.state.nb_tcp
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
    cluster = Cluster(fake)
    for i in range(4):
        cluster.add_pod(f"p{i}")
    cluster.add_service("svc", "10.96.60.1", ["10.16.1.1"])
    with controller(fake, box.state.nb_tcp, http=True) as run:
        wait_for(lambda: converged(box, kubeconfig), timeout=60, interval=0.5)
        restarts = {kind: inf.restarts for kind, inf in run.ctl.informers.items()}
        mark = len(fake.requests)
        # every re-watch and relist of pods and endpoint slices fails for a while; pod
        # writes (the CNI annotations) fail too
        fake.inject("GET", r"/api/v1/pods\?", 500, count=3)
        fake.inject("GET", r"/api/v1/pods\?", 429, count=2, retry_after=1)
        fake.inject("GET", r"/endpointslices\?", 429, count=2, retry_after=1)
        fake.inject("GET", r"/endpointslices\?", 500, count=2)
        fake.inject("PATCH", r"/api/v1/namespaces/default/pods/", 500, count=3)
        fake.drop_watches()
        fake.compact()  # the informers must relist: their resourceVersion is gone
        cluster.delete_pod("p0")
        cluster.add_pod("late")
        cluster.set_backends("svc", ["10.16.1.2", "10.16.1.3"])
        cluster.add_service("svc2", "10.96.60.2", ["10.16.1.4"])
        # (the controller's requests only: `render` would be a second client of FakeKube)
        wait_for(lambda: nb_matches(box, cluster), timeout=90, interval=0.2,
                 what="NB as the cluster after the API errors")
        late = wait_for(lambda: (fake.store.get(res.PODS, "late", NS)["metadata"]
                                 .get("annotations") or {}).get(keys.ANN_IP),
                        timeout=30, what="the late pod's annotations despite PATCH errors")
        assert late
        requests = fake.requests[mark:]
        assert run.ctl.ready() and run.readyz() == 200
        assert converged(box, kubeconfig)
    failed = [r for r in requests if r.status in (429, 500)]
    assert len(failed) == 12, [(r.method, r.path, r.status) for r in failed]
    assert run.ctl.informers["Pod"].restarts > restarts["Pod"]
    assert run.ctl.informers["EndpointSlice"].restarts > restarts["EndpointSlice"]
    # Retry-After honoured: after a 429 the same collection was not asked again sooner
    for plural in ("pods", "endpointslices"):
        seen = [(r.time, r.status) for r in requests if r.method == "GET"
                and f"/{plural}?" in r.path]
        for (t429, status), (t_next, _) in zip(seen, seen[1:], strict=False):
            if status == 429:
                assert t_next - t429 >= 0.9, f"{plural}: asked again {t_next - t429:.2f}s " \
                                             "after a 429 with Retry-After: 1"
        # and it did not hammer the server meanwhile (bounded, backed-off retries)
        assert len(seen) < 40, f"{plural}: {len(seen)} requests"
