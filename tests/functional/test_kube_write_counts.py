"""The Kubernetes requests of `sync --once` in cluster mode, counted by the API server.

The bench's objects (5 VPCs, 50 subnets, pods, Services with EndpointSlices) and one invalid
Subnet are served by a FakeKube (real HTTP); `ycloud-controller sync --once --kubeconfig`
runs as users run it, from an empty NB, then again (a restart). FakeKube counts every
request by verb and resource, and every write per object:

- the cold sync writes each object that needs a write once: a VPC's, subnet's and
  Service's status, a pod's annotations and status together (one patch of pods/status),
  and for the invalid Subnet its condition and one Warning Event;
- the restart writes nothing at all: no status, no annotation, no Event.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fakekube.server import FakeKube, count_delta, writes
from ovn_sandbox import Sandbox

from bench import shapes, workload
from tests.functional.conftest import wipe_nb
from ycloud_controller.kube.resources import SUBNETS

ROOT = Path(__file__).resolve().parents[2]
ORPHAN = {"apiVersion": "iaas.yusur.io/v1", "kind": "Subnet", "metadata": {"name": "orphan"},
          "spec": {"vpc": "no-such-vpc", "cidrBlock": "10.250.0.0/24"}}


def sync_once(sandbox: Sandbox, kubeconfig: Path, *extra: str) -> None:
    assert sandbox.state is not None
    proc = subprocess.run(
        [sys.executable, "-m", "ycloud_controller.cli", "sync", "--once", "--kubeconfig",
         str(kubeconfig), "--ovn-nb-db", sandbox.state.nb_remote, "--log-format", "json",
         *extra], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]


def test_cold_sync_writes_once_per_object_and_a_restart_writes_nothing(
        sandbox: Sandbox, tmp_path: Path) -> None:
    wipe_nb(sandbox)
    shape = workload.Shape(40)
    fake = FakeKube(bookmark_interval=1.0, history=100_000)
    workload.fill_store(shape, fake.store)
    fake.store.create(SUBNETS, dict(ORPHAN))
    needing = shape.vpcs + shape.vpcs * shape.subnets_per_vpc + shape.pods + shape.services
    with fake:
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        before = fake.counts()
        sync_once(sandbox, kubeconfig)
        cold = count_delta(before, fake.counts())
        per_object = fake.writes_per_object()
        assert writes(cold) == {
            "create events": 1,  # the invalid Subnet's Warning
            "patch pods/status": shape.pods,  # annotations and NetworkReady in one write
            "patch services/status": shape.services,
            "patch subnets.iaas.yusur.io/status": shape.vpcs * shape.subnets_per_vpc + 1,
            "patch vpcs.iaas.yusur.io/status": shape.vpcs,
        }, cold
        assert sum(writes(cold).values()) == needing + 1 + 1
        assert len(per_object) == needing + 1 + 1 and set(per_object.values()) == {1}
        assert fake.store.get(SUBNETS, "orphan")["status"]["conditions"][0]["status"] == "False"

        fake.reset_counts()
        sync_once(sandbox, kubeconfig)
        restart = fake.counts()
        assert writes(restart) == {}, restart
        # it did look: every resource listed and watched
        assert restart["list pods"] == 1 and restart["watch pods"] >= 1
    wipe_nb(sandbox)


def test_owned_objects_are_not_patched_again_when_as_wanted(
        sandbox: Sandbox, tmp_path: Path) -> None:
    """Every kind of object of the max shape, few of each (bench's tiny shape): the Services
    and EndpointSlices YusurServices own are created once and never patched when they are
    as wanted already (each reconcile of their owner asks for them again), and a restart
    writes nothing at all."""
    wipe_nb(sandbox)
    fake = FakeKube(bookmark_interval=1.0, history=100_000)
    workload.fill_store(shapes.TINY, fake.store)
    with fake:
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        before = fake.counts()
        sync_once(sandbox, kubeconfig)
        cold = writes(count_delta(before, fake.counts()))
        owned = 2 * shapes.TINY.multi_vpc_lbs  # a Service and an EndpointSlice each
        assert cold["create services"] + cold["create endpointslices.discovery.k8s.io"] == owned
        assert "patch services" not in cold and \
            "patch endpointslices.discovery.k8s.io" not in cold, cold
        before = fake.counts()
        sync_once(sandbox, kubeconfig)
        assert writes(count_delta(before, fake.counts())) == {}
