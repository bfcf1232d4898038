"""Functional tier: a real ovsdb-server + ovn-northd (the session sandbox) and a real NbClient."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fakekube.fixtures import api_client, backend, fake  # noqa: F401 - fixtures
from ovn_sandbox import Sandbox

from topology.nbsync.applier import Applier
from topology.nbsync.client import NbClient
from ycloud_controller.assemble import assemble
from ycloud_controller.config import Config
from ycloud_controller.controller import Controller
from ycloud_controller.kube import resources as res
from ycloud_controller.memkube.backend import MemoryBackend
from ycloud_controller.memkube.store import MemoryStore

WIPE_TABLES = ("Logical_Switch", "Logical_Router", "Load_Balancer", "Load_Balancer_Group",
               "HA_Chassis_Group", "Chassis_Template_Var")


def wipe_nb(sandbox: Sandbox) -> None:
    for table in WIPE_TABLES:
        sandbox.nbctl("--all", "destroy", table)


@pytest.fixture
def nb(sandbox: Sandbox) -> Iterator[NbClient]:
    """A fresh NB (every table emptied) and a started NbClient; both cleaned after the test."""
    wipe_nb(sandbox)
    assert sandbox.state is not None
    client = NbClient(sandbox.state.nb_remote, timeout=30).start()
    yield client
    client.stop()
    wipe_nb(sandbox)


@pytest.fixture
def applier(nb: NbClient) -> Applier:
    return Applier(nb)


def nb_db_file(sandbox: Sandbox) -> Path:
    return Path(sandbox.dir) / "nb.db"


def find(sandbox: Sandbox, table: str, *conditions: str) -> list[dict]:
    """Rows of `table` matching ovn-nbctl find conditions, as {column: python value}."""
    out = sandbox.nbctl("--format=json", "find", table, *conditions)
    data = json.loads(out)
    return [{h: _plain(v) for h, v in zip(data["headings"], row, strict=True)}
            for row in data["data"]]


def _plain(value):  # noqa: ANN001, ANN202 - OVSDB JSON -> python
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        kind, inner = value
        if kind == "map":
            return {k: _plain(v) for k, v in inner}
        if kind == "set":
            return [_plain(v) for v in inner]
        if kind in ("uuid", "named-uuid"):
            return inner
    return value


def as_list(value) -> list:  # noqa: ANN001 - ovn-nbctl JSON prints a one-element set bare
    return value if isinstance(value, list) else [value]


# -- a manifests-mode Controller over SERVICES ClusterIP Services (full-sync tests) -----------
SERVICES = 40


def service(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"s{i}", "namespace": "default"},
            "spec": {"type": "ClusterIP", "clusterIP": f"10.96.3.{i + 1}",
                     "clusterIPs": [f"10.96.3.{i + 1}"],
                     "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}]}}


def endpoint_slice(i: int) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"s{i}-a", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [f"10.16.0.{10 + i}"], "conditions": {"ready": True}}],
            "ports": [{"port": 8080, "protocol": "TCP"}]}


@contextmanager
def driven(store: MemoryStore, sandbox: Sandbox, nb: NbClient, emulate: bool = False,
           ) -> Iterator[Controller]:
    """A Controller on `store` (manifests mode with `emulate`, else as on a cluster) and the
    session NB, after its full sync and drain; its loop does not run: the test drives its
    batches (`drain`), so it can order what happens between them."""
    assert sandbox.state is not None
    controller = Controller(Config(nb_remote=sandbox.state.nb_remote), MemoryBackend(store),
                            nb, emulate=emulate, object_ages=not emulate)
    controller.start()
    try:
        assert controller.wait_synced(30)
        controller.full_sync()
        assert controller.drain(timeout=60)
        yield controller
    finally:
        controller.shutdown()


@pytest.fixture
def svc_store() -> MemoryStore:
    """SERVICES ClusterIP Services, each with an EndpointSlice of one endpoint."""
    store = MemoryStore()
    for i in range(SERVICES):
        store.create(res.SERVICES, service(i))
        store.create(res.ENDPOINTSLICES, endpoint_slice(i))
    return store


@pytest.fixture
def svc_ctl(svc_store: MemoryStore, nb: NbClient, sandbox: Sandbox) -> Iterator[Controller]:
    """A manifests-mode Controller on `svc_store` and the session NB, informers listed."""
    assert sandbox.state is not None
    parts = assemble(Config(nb_remote=sandbox.state.nb_remote), MemoryBackend(svc_store), nb=nb,
                     emulate=True)
    assert parts.start(wait=30)
    yield parts.ctl
    parts.stop()
