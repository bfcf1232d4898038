"""SIGKILL `ycloud-controller run` in the middle of a large sync, ten times at random points.

The controller runs as users run it: a process (`ycloud-controller run --kubeconfig ...`)
against FakeKube (in this process, real HTTP) and the session NB. Each round changes a fifth
of the cluster while the controller is down (pods and services deleted and created,
endpoints changed) and a little more while it starts, so that every start has thousands of
rows to write and to delete; the process is killed at a random moment of that sync (a seeded
random delay after it starts serving, spread over the time a sync took so far). It is then
restarted and left to converge, and NB is checked on its rows: every pod has its port (and no
two ports the same address), every service its load balancer with the current endpoints, no
row of ours exists twice, and none outlives its owner. At the end `ycloud-controller sync
--once` finds nothing to write.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakekube.server import FakeKube
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional import nbcheck
from tests.functional.conftest import as_list, nb_db_file
from tests.functional.ctlproc import ControllerProcess
from topology import naming
from topology.model import Owner
from topology.nbsync.client import NbClient
from ycloud_controller.kube import resources as res

SEED = 20240909
PODS, SERVICES = 1000, 1500
ROUNDS = 10
CHANGED = 0.2  # share of pods and services replaced (and endpoints changed) between runs
NS = "default"


class Cluster:
    """The Kubernetes side: pods, and services with one EndpointSlice each."""

    def __init__(self, fake: FakeKube, rng: random.Random):
        self.fake, self.rng = fake, rng
        self.pods: set[str] = set()
        self.services: dict[str, list[str]] = {}  # name -> endpoint addresses
        self._next = 0

    def _name(self, prefix: str) -> str:
        self._next += 1
        return f"{prefix}{self._next}"

    def _endpoints(self) -> list[str]:
        return sorted({f"10.16.{self.rng.randrange(256)}.{self.rng.randrange(1, 255)}"
                       for _ in range(3)})

    def add_pod(self) -> None:
        name = self._name("p")
        self.fake.store.create(res.PODS, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]}})
        self.pods.add(name)

    def add_service(self) -> None:
        name = self._name("s")
        n = self._next
        self.fake.store.create(res.SERVICES, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"clusterIP": f"10.{96 + n // 65000}.{n // 250 % 256}.{n % 250 + 1}",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
        ips = self._endpoints()
        self.fake.store.create(res.ENDPOINTSLICES, {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-x", "namespace": NS,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]})
        self.services[name] = ips

    def change(self, share: float) -> None:
        """Replace `share` of the pods and services; give as many others new endpoints."""
        for name in self.rng.sample(sorted(self.pods), int(len(self.pods) * share)):
            self.fake.store.delete(res.PODS, name, NS)
            self.pods.discard(name)
            self.add_pod()
        for name in self.rng.sample(sorted(self.services), int(len(self.services) * share)):
            self.fake.store.delete(res.ENDPOINTSLICES, f"{name}-x", NS)
            self.fake.store.delete(res.SERVICES, name, NS)
            del self.services[name]
            self.add_service()
        for name in self.rng.sample(sorted(self.services), int(len(self.services) * share)):
            ips = self._endpoints()
            self.fake.store.patch(res.ENDPOINTSLICES, f"{name}-x", NS, {"endpoints": [
                {"addresses": [ip], "conditions": {"ready": True}} for ip in ips]})
            self.services[name] = ips

    def owners(self) -> set[Owner]:
        return nbcheck.expected_owners(NS, self.pods, self.services)


@pytest.fixture
def controller_args(sandbox: Sandbox, nb: NbClient, tmp_path: Path,
                    fake_big: FakeKube) -> list[str]:
    assert sandbox.state is not None
    kubeconfig = fake_big.write_kubeconfig(tmp_path / "kubeconfig")
    return ["--kubeconfig", str(kubeconfig), "--ovn-nb-db", sandbox.state.nb_remote,
            "--ovn-sb-db", sandbox.state.sb_remote, "--log-format", "json"]


@pytest.fixture
def fake_big() -> Iterator[FakeKube]:
    """FakeKube with room in its watch history for thousands of changes per round."""
    with FakeKube(bookmark_interval=0.5, history=100_000) as server:
        yield server


def nb_state(box: Sandbox) -> tuple[dict[str, list[dict]], dict[str, set[str]]]:
    """Our rows per table, and the backend IPs of each LB by name."""
    assert box.state is not None
    rows = nbcheck.owned_rows(box.state.nb_remote, {"Load_Balancer": ("vips",),
                                                    "Logical_Switch_Port": ("addresses",)})
    backends = {r["name"]: {be.rsplit(":", 1)[0] for v in (r["vips"] or {}).values()
                            for be in v.split(",")} for r in rows["Load_Balancer"]}
    return rows, backends


def problems(box: Sandbox, cluster: Cluster) -> list[str]:
    """What keeps NB from being the desired state ([] when converged)."""
    rows, backends = nb_state(box)
    found = []
    dups = nbcheck.duplicates(rows)
    if dups:
        found.append(f"duplicates: {sorted(dups.items())[:5]}")
    orphans = nbcheck.orphans(rows, cluster.owners())
    if orphans:
        found.append(f"{len(orphans)} orphans: {orphans[:5]}")
    want_lbs = {naming.service_lb(NS, s, "TCP"): set(ips) for s, ips in cluster.services.items()}
    if backends != want_lbs:
        wrong = {k for k in want_lbs.keys() | backends.keys()
                 if want_lbs.get(k) != backends.get(k)}
        found.append(f"{len(wrong)} load balancers differ: {sorted(wrong)[:5]}")
    pod_rows = [r for r in rows["Logical_Switch_Port"]
                if r["external_ids"].get(naming.KIND) == "Pod"]
    ports = {r["name"] for r in pod_rows}
    ips = Counter(a.split()[1] for r in pod_rows for a in as_list(r["addresses"]))
    if any(n > 1 for n in ips.values()):
        found.append(f"pod IPs given twice: {[ip for ip, n in ips.items() if n > 1][:5]}")
    want_ports = {naming.pod_port(NS, p) for p in cluster.pods}
    if ports != want_ports:
        found.append(f"pod ports: {len(want_ports - ports)} missing, "
                     f"{len(ports - want_ports)} extra")
    return found


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sigkill_during_large_syncs_leaves_no_orphans_or_duplicates(
        sandbox: Sandbox, fake_big: FakeKube, controller_args: list[str],
        tmp_path: Path) -> None:
    rng = random.Random(SEED)
    cluster = Cluster(fake_big, rng)
    for _ in range(PODS):
        cluster.add_pod()
    for _ in range(SERVICES):
        cluster.add_service()
    log = tmp_path / "controller.log"
    window = 1.5  # seconds after "controller running" in which to kill; then as long as the
    # last restart took to sync
    kills = []
    for round_ in range(ROUNDS):
        if round_:
            cluster.change(CHANGED)  # while the controller is down
        victim = ControllerProcess(controller_args, log)
        wait_for(lambda p=victim: p.seen("controller running"), timeout=60, interval=0.002,
                 what="controller started")
        delay = rng.uniform(0.0, window)
        time.sleep(delay / 2)
        cluster.change(0.01)  # objects change while it syncs, too
        time.sleep(delay / 2)
        victim.kill()
        synced = victim.seen("full sync done")
        kills.append((round_, round(delay, 2), "after its sync" if synced else "mid-sync"))
        # the restart converges by itself
        restart = ControllerProcess(controller_args, log)
        wait_for(lambda p=restart: p.seen("full sync done"), timeout=120, interval=0.01,
                 what="full sync after the restart")
        began, done = restart.seen("controller running"), restart.seen("full sync done")
        assert began is not None and done is not None
        window = max(0.3, done - began)
        wait_for(lambda: not problems(sandbox, cluster), timeout=120, interval=0.2,
                 what=f"NB converged after restart {round_ + 1}: {problems(sandbox, cluster)}")
        restart.kill()
    print(f"kills (round, seconds after start of serving, when): {kills}")
    assert not problems(sandbox, cluster)
    # a final sync --once writes nothing to NB
    sandbox.nbctl("--wait=sb", "sync")
    before = digest(nb_db_file(sandbox))
    final = nbcheck.cli("sync", "--once", *controller_args)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "converged" in final.stdout
    assert digest(nb_db_file(sandbox)) == before
