"""Restart anywhere: a running controller, random manifest changes, restarts at random points.

A `World` (tests/functional/world.py) of contending objects changes one slot at a time
(adds, changes, deletes; overlapping CIDRs, a namespace bound twice, one static IP, one
ClusterIP, one EIP asked for twice, under names that sort before and after the holder's)
while `ycloud-controller run` handles it as users run it: a child process. After every
change, a fresh `render` must come to report no change (the running controller decided
what a fresh process decides: the outcome of a conflict does not depend on the history of
the process that decided it), and a fresh `sync --once` must write nothing. At random
points the controller is stopped (SIGTERM or SIGKILL) and a new one started: after a
restart at a converged point NB gets no write at all (its database file is unchanged),
and render still reports no change; a kill in the middle of a change converges as well.

Manifests mode reads a directory; cluster mode the API server the tests use (FakeKube,
real HTTP), where objects carry creationTimestamps. Seeded: a failure prints the seed and
the sequence that reproduces it. YCLOUD_RESTART_SEEDS (comma-separated) and
YCLOUD_RESTART_STEPS run other or longer sequences.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakekube.server import FakeKube
from fakekube.util import wait_for
from ovn_sandbox import Sandbox, free_port

from tests.functional import nbcheck
from tests.functional.conftest import nb_db_file, wipe_nb
from tests.functional.ctlproc import ControllerProcess
from tests.functional.world import World
from topology.nbsync.client import NbClient
from ycloud_controller.kube import resources as res
from ycloud_controller.kube.resources import Resource

STEPS = int(os.environ.get("YCLOUD_RESTART_STEPS", "8"))


def _seeds(default: str) -> list[int]:
    return [int(s) for s in os.environ.get("YCLOUD_RESTART_SEEDS", default).split(",")]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Run:
    """One sequence: the world, the controller process, the checks."""

    def __init__(self, sandbox: Sandbox, world: World, source: list[str], log: Path,
                 apply: Callable[[], None], delivered: Callable[[], bool] = lambda: True):
        assert sandbox.state is not None
        self.box, self.world, self.source, self.log = sandbox, world, source, log
        self.apply = apply
        self.delivered = delivered
        self.manifests = source[0] == "--manifests"
        self.nb_args = ["--ovn-nb-db", sandbox.state.nb_remote,
                        "--ovn-sb-db", sandbox.state.sb_remote]
        self.proc: ControllerProcess | None = None

    def where(self) -> str:
        return f"replay with {self.world.replay()}"

    def start(self) -> None:
        self.proc = ControllerProcess([*self.source, *self.nb_args, "--log-format", "json"],
                                      self.log, http_port=free_port())
        proc = self.proc
        wait_for(lambda: proc.seen("full sync done") or proc.proc.poll() is not None,
                 timeout=120, interval=0.05, what=f"full sync after start; {self.where()}")
        assert proc.proc.poll() is None, f"controller exited; {self.where()}; see {self.log}"
        self.settled()

    def settled(self, reloads: int | None = None) -> None:
        """The controller has handled what it was given: with `reloads`, it has read the
        manifests more often than that; then it has no work pending (ycloud_work_pending:
        no key waiting, retrying or being reconciled, no Kubernetes write to make, and, in
        manifests mode, every informer has handled every write to its store), and in
        cluster mode the API server has sent every watch event; seen twice half a second
        apart (in cluster mode the controller cannot tell whether it has read every event
        the server sent)."""
        proc = self.proc
        assert proc is not None
        if reloads is not None:
            wait_for(lambda: proc.counts.get("manifests reloaded", 0) > reloads, timeout=30,
                     interval=0.05, what=f"manifests reloaded; {self.where()}")

        def quiet() -> bool:
            return self.delivered() and proc.metric("ycloud_work_pending") == 0

        def idle() -> bool:
            if not quiet():
                return False
            time.sleep(0.5)
            return quiet()
        wait_for(idle, timeout=60, interval=0.1, what=f"controller idle; {self.where()}")

    def stop(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.stop(sig)
        self.proc = None

    def render(self) -> list[dict[str, Any]]:
        assert self.box.state is not None
        return nbcheck.render_plan(self.source, self.box.state.nb_remote,
                                   self.box.state.sb_remote)

    def converged(self, after: str) -> None:
        """A fresh render comes to report no change, and a fresh sync --once writes
        nothing."""
        last: list[dict[str, Any]] = []

        def clean() -> bool:
            nonlocal last
            last = self.render()
            return not last
        try:
            wait_for(clean, timeout=45, interval=0.5, what="render reports no change")
        except AssertionError:
            raise AssertionError(f"after {after}, render still plans "
                                 f"{[_brief(c) for c in last][:12]}; {self.where()}") from None
        before = digest(nb_db_file(self.box))
        once = nbcheck.cli("sync", "--once", *self.source, *self.nb_args)
        assert once.returncode == 0 and "converged" in once.stdout, (
            f"after {after}: sync --once: {once.stdout}{once.stderr[-2000:]}; {self.where()}")
        assert digest(nb_db_file(self.box)) == before, (
            f"after {after}: sync --once wrote to NB; {self.where()}")

    def restart_converged(self, sig: int) -> None:
        """Stop at a converged point and start again: NB gets no write."""
        before = digest(nb_db_file(self.box))
        self.stop(sig)
        self.start()
        assert digest(nb_db_file(self.box)) == before, (
            f"the restart ({signal.Signals(sig).name}) wrote to NB: "
            f"{[_brief(c) for c in self.render()][:12]}; {self.where()}")
        assert self.render() == [], f"render after the restart; {self.where()}"

    def sequence(self, rng: random.Random) -> list[str]:
        try:
            return self._sequence(rng)
        finally:
            if self.proc is not None:  # a failed check leaves no controller behind
                self.stop(signal.SIGKILL)

    def _sequence(self, rng: random.Random) -> list[str]:
        done = []
        self.apply()
        self.start()
        self.converged("the start")
        for _ in range(STEPS):
            what = self.world.step()
            reloads = self.proc.counts.get("manifests reloaded", 0) if self.proc else 0
            self.apply()
            roll = rng.random()
            if roll < 0.2:  # killed in the middle of handling the change
                time.sleep(rng.uniform(0.0, 1.5))
                sig = rng.choice((signal.SIGTERM, signal.SIGKILL))
                self.stop(sig)
                self.start()
                done.append(f"{what} (stopped mid-change by {sig.name})")
            else:
                self.settled(reloads if self.manifests else None)
            self.converged(what)
            if roll > 0.65:
                sig = rng.choice((signal.SIGTERM, signal.SIGKILL))
                self.restart_converged(sig)
                done.append(f"{what} (restarted by {sig.name})")
            else:
                done.append(what)
        self.stop(signal.SIGTERM)
        return done


def _brief(change: dict[str, Any]) -> str:
    cols = change.get("columns") or {}
    shown = {k: cols[k] for k in ("vips", "networks", "addresses", "logical_ip") if k in cols}
    return (f"{change.get('op')} {change.get('table')} {change.get('key')} "
            f"({change.get('owner')}){' ' + str(shown) if shown else ''}")


@pytest.mark.parametrize("seed", _seeds("11,12"))
def test_restart_anywhere_in_manifests_mode(sandbox: Sandbox, nb: NbClient, tmp_path: Path,
                                            seed: int) -> None:
    wipe_nb(sandbox)
    world = World(seed)
    world.fill(0.5)
    directory = tmp_path / "manifests"
    run = Run(sandbox, world, ["--manifests", str(directory)], tmp_path / "controller.log",
              lambda: world.write(directory))
    done = run.sequence(random.Random(seed))
    print(f"seed {seed}: {done}")


_KINDS: dict[str, Resource] = {
    "Namespace": res.NAMESPACES, "Node": res.NODES, "Vpc": res.VPCS, "Subnet": res.SUBNETS,
    "EipPool": res.EIPPOOLS, "Pod": res.PODS, "Service": res.SERVICES}


@pytest.fixture
def fake_api() -> Iterator[FakeKube]:
    with FakeKube(bookmark_interval=0.5) as server:
        yield server


def _store_ops(fake: FakeKube) -> tuple[Callable, Callable, Callable]:
    store = fake.store

    def ident(obj: dict[str, Any]) -> tuple[Resource, str, str | None]:
        md = obj["metadata"]
        return _KINDS[obj["kind"]], md["name"], md.get("namespace")

    def create(obj: dict[str, Any]) -> None:
        r, _, _ = ident(obj)
        store.create(r, {k: v for k, v in obj.items() if k != "status"})
        if "status" in obj:
            name, ns = obj["metadata"]["name"], obj["metadata"].get("namespace")
            store.patch(r, name, ns, {"status": obj["status"]}, subresource="status")

    def replace(old: dict[str, Any], new: dict[str, Any]) -> None:
        r, name, ns = ident(new)
        # what kubectl apply sends: the spec, labels and annotations of the file
        patch: dict[str, Any] = {"spec": new.get("spec")}
        patch["metadata"] = {
            "labels": new["metadata"].get("labels"),
            "annotations": {**{k: None for k in old["metadata"].get("annotations") or {}},
                            **(new["metadata"].get("annotations") or {})} or None}
        store.patch(r, name, ns, patch)

    def delete(obj: dict[str, Any]) -> None:
        r, name, ns = ident(obj)
        store.delete(r, name, ns)
    return create, replace, delete


@pytest.mark.parametrize("seed", _seeds("21"))
def test_restart_anywhere_in_cluster_mode(sandbox: Sandbox, nb: NbClient, tmp_path: Path,
                                          fake_api: FakeKube, seed: int) -> None:
    wipe_nb(sandbox)
    world = World(seed)
    world.fill(0.5)
    applied: dict[str, dict[str, Any]] = {}
    create, replace, delete = _store_ops(fake_api)
    kubeconfig = fake_api.write_kubeconfig(tmp_path / "kubeconfig")
    run = Run(sandbox, world, ["--kubeconfig", str(kubeconfig)], tmp_path / "controller.log",
              lambda: world.apply(applied, create, replace, delete),
              delivered=lambda: fake_api.undelivered() == 0)
    done = run.sequence(random.Random(seed))
    print(f"seed {seed}: {done}")
