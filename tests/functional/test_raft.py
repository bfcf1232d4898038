"""NB as a three-member RAFT cluster: the leader dies (SIGKILL) while the controller writes.

Each test runs its own cluster (`Sandbox(cluster=3, tcp=True)` in its own directory, not the
session sandbox) and gives the controller all three members' TCP remotes. Checked on real NB
rows: after the new leader is elected the controller reconnects by itself, writes only
through the leader, and NB ends equal to the desired state with every row once; a
transaction in flight when the leader dies is neither lost nor applied twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fakekube.server import FakeKube
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.conftest import _have_ovn
from tests.functional import nbcheck
from topology import naming
from topology.builders.service import LbSpec, Vip, build_lb
from topology.builders.vpc import VpcSpec, build_vpc
from topology.model import Owner, Row
from topology.nbsync.applier import Applier
from topology.nbsync.client import NbClient
from ycloud_controller.assemble import assemble
from ycloud_controller.config import Config
from ycloud_controller.controller import Controller
from ycloud_controller.kube import resources as res
from ycloud_controller.kube.backend import ApiBackend

SERVICES = 24
VPC = Owner("Vpc", "v1")


@pytest.fixture
def raft(tmp_path: Path) -> Iterator[Sandbox]:
    reason = _have_ovn()
    if reason:
        pytest.skip(reason)
    box = Sandbox(tmp_path / "raft", tcp=True, cluster=3)
    box.start()
    yield box
    box.stop()


def leader_db(box: Sandbox) -> str:
    """The unix socket of the member that leads now (read NB there: it has every commit)."""
    return box.member_remote(box.leader(timeout=30), tcp=False)


def tcp_remotes(box: Sandbox) -> str:
    assert box.state is not None and box.state.nb_tcp
    assert len(box.state.nb_tcp.split(",")) == 3
    return box.state.nb_tcp


@contextmanager
def controller(fake: FakeKube, remote: str) -> Iterator[Controller]:
    """The watch loop on a thread, on FakeKube and NB `remote` (as `running()` of
    test_controller.py, with a remote of our own)."""
    client = fake.api_client()
    kube = ApiBackend(client, retry_initial=0.05, retry_max=0.5)
    parts = assemble(Config(nb_remote=remote, batch_size=50), kube, nb_timeout=60)
    try:
        assert parts.start(wait=30), "informers did not sync"
        parts.serve()
        yield parts.ctl
    finally:
        parts.stop(join=10)
        client.close()


# -- Kubernetes objects --------------------------------------------------------------------------
def service(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"svc-{i}", "namespace": "default"},
            "spec": {"clusterIP": f"10.96.1.{i + 1}",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def backends(i: int, version: int) -> list[str]:
    """Three endpoint addresses of service i at `version` (a different set each version)."""
    return [f"10.16.{(version + k) % 250}.{i + 1}" for k in range(3)]


def endpoints(i: int, version: int) -> list[dict]:
    return [{"addresses": [ip], "conditions": {"ready": True}} for ip in backends(i, version)]


def endpoint_slice(i: int, version: int) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"svc-{i}-abc", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints(i, version)}


def lb_backends(box: Sandbox) -> dict[str, set[str]]:
    """Backend IPs of each service LB in NB, by LB name."""
    rows = nbcheck.owned_rows(leader_db(box), {"Load_Balancer": ("vips",)})["Load_Balancer"]
    return {r["name"]: {be.rsplit(":", 1)[0] for v in (r["vips"] or {}).values()
                        for be in v.split(",")} for r in rows}


class Churn:
    """EndpointSlice updates in a loop (one service after another), on its own thread; the
    last version written per service is the desired state."""

    def __init__(self, fake: FakeKube):
        self.fake = fake
        self.version = dict.fromkeys(range(SERVICES), 0)
        self.updates = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="churn", daemon=True)

    def __enter__(self) -> Churn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            v = self.version[i] + 1
            self.fake.store.patch(res.ENDPOINTSLICES, f"svc-{i}-abc", "default",
                                  {"endpoints": endpoints(i, v)})
            self.version[i] = v
            self.updates += 1
            i = (i + 1) % SERVICES
            time.sleep(0.004)

    def advance(self, updates: int) -> None:
        """Wait until `updates` more endpoint updates were made (not a span of time: the
        count the test needs does not depend on how fast this machine is)."""
        target = self.updates + updates
        wait_for(lambda: self.updates >= target, timeout=60, interval=0.01,
                 what=f"{updates} more endpoint updates")

    def desired(self) -> dict[str, set[str]]:
        return {naming.service_lb("default", f"svc-{i}", "TCP"): set(backends(i, v))
                for i, v in self.version.items()}


def fail_over(box: Sandbox, ctl: Controller) -> tuple[str, str, float, float]:
    """SIGKILL the leader; wait for the new one and for the controller's session to resync
    with it. Returns (old, new, seconds to elect, seconds until the controller resynced)."""
    session = ctl.nb.session if ctl.nb else None
    assert session is not None
    old = box.leader()
    assert session.synced_remote == box.member_remote(old), "not connected to the leader"
    epoch = session.epoch
    start = time.monotonic()
    box.kill(old)
    new = box.leader(timeout=30)
    elected = time.monotonic() - start
    wait_for(lambda: session.epoch > epoch and session.synced.is_set(), timeout=30,
             interval=0.02, what="controller resynced with the new leader")
    resynced = time.monotonic() - start
    return old, new, elected, resynced


def test_leader_killed_during_endpoint_churn(raft: Sandbox, fake: FakeKube,
                                             tmp_path: Path) -> None:
    for i in range(SERVICES):
        fake.store.create(res.SERVICES, service(i))
        fake.store.create(res.ENDPOINTSLICES, endpoint_slice(i, 0))
    remote = tcp_remotes(raft)
    with controller(fake, remote) as ctl:
        first = {naming.service_lb("default", f"svc-{i}", "TCP"): set(backends(i, 0))
                 for i in range(SERVICES)}
        wait_for(lambda: lb_backends(raft) == first, timeout=30, what="services in NB")
        failovers = []
        with Churn(fake) as churn:
            for _ in range(2):  # the leader dies twice; the dead member comes back each time
                churn.advance(200)  # endpoints change while the leader serves
                old, new, elected, resynced = fail_over(raft, ctl)
                failovers.append((old, new, round(elected, 2), round(resynced, 2)))
                churn.advance(100)  # and with one member down
                raft.relaunch(old)
            churn.advance(200)
        assert churn.updates > 100
        wait_for(lambda: lb_backends(raft) == churn.desired(), timeout=60, interval=0.2,
                 what="NB equal to the last endpoints of every service")
        # the controller writes through the leader only, and reconnected by itself
        session = ctl.nb.session if ctl.nb else None
        assert session is not None and session.synced_remote == raft.member_remote(
            raft.leader())
        assert session.epoch >= 3
        print(f"failovers (old, new, elected s, controller resynced s): {failovers}; "
              f"{churn.updates} endpoint updates")
    rows = nbcheck.owned_rows(leader_db(raft))
    assert not nbcheck.duplicates(rows)
    assert len(rows["Load_Balancer"]) == SERVICES
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
    assert raft.state is not None
    assert nbcheck.render_changes(kubeconfig, remote, raft.state.sb_remote) == []


def lb(i: int) -> tuple[Owner, list[Row]]:
    owner = Owner("Service", f"ns/svc{i}")
    vip = f"10.96.{i // 250}.{i % 250 + 1}"
    return owner, build_lb(LbSpec(
        name=naming.service_lb("ns", f"svc{i}", "TCP"), owner=owner, vpc="v1", protocol="TCP",
        vips=(Vip(vip, 80, tuple((f"10.7.{k}.{i % 250 + 1}", 8080) for k in range(3))),),
        groups=(naming.lb_group("v1"),)))


def test_transaction_in_flight_when_the_leader_dies_lands_once(raft: Sandbox) -> None:
    """A large transaction is sent; the leader is killed at once or a moment later (before,
    while or after it commits). apply() plans again after the resync and finishes; every
    row exists once whichever way the lost transaction went."""
    with NbClient(tcp_remotes(raft), timeout=90) as client:
        session = client.session
        assert session is not None
        applier = Applier(client)
        vpc_rows = build_vpc(VpcSpec(name="v1", owner=VPC))
        assert applier.apply({VPC: vpc_rows}).ok
        desired: dict[Owner, list[Row]] = {VPC: vpc_rows}
        for round_, delay in enumerate((0.0, 0.003, 0.02, 0.08)):
            batch = dict(lb(round_ * 300 + i) for i in range(300))
            desired.update(batch)
            leader = raft.leader()
            outcome: dict = {}

            def write(b: dict = batch, out: dict = outcome) -> None:
                out["r"] = applier.apply(b)
            writer = threading.Thread(target=write)
            writer.start()
            wait_for(lambda: session._pending, timeout=10, interval=0.0005,  # noqa: SLF001
                     what="the transaction on its way")
            time.sleep(delay)
            raft.kill(leader)
            writer.join(timeout=90)
            assert outcome["r"].ok, outcome["r"].errors
            raft.relaunch(leader)
            rows = nbcheck.owned_rows(leader_db(raft))
            assert not nbcheck.duplicates(rows)
            assert len(rows["Load_Balancer"]) == 300 * (round_ + 1)
            assert applier.apply(desired, gc=True).changes == 0
