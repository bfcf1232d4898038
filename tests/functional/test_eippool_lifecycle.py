"""An EipPool with services on it cannot be deleted until they are gone (a finalizer)."""

from __future__ import annotations

from fakekube.server import FakeKube
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional.conftest import find
from tests.functional.test_controller import running
from topology.nbsync.client import NbClient
from ycloud_controller.keys import EIPPOOL_FINALIZER
from ycloud_controller.kube import resources as res
from ycloud_controller.kube.errors import NotFound

POOL = {"apiVersion": "iaas.yusur.io/v1", "kind": "EipPool", "metadata": {"name": "p1"},
        "spec": {"cidr": "172.30.0.0/24", "gateway": "172.30.0.1", "uplinkIP": "172.30.0.2",
                 "providerNetwork": "physnet", "gatewayNodes": ["gw1"], "default": True}}
SERVICE = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "lb", "namespace": "default"},
           "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.77",
                    "ports": [{"port": 80, "targetPort": 8080}]}}


def condition(obj: dict | None) -> dict:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == "Ready"), {})


def test_pool_in_use_is_kept_until_its_last_service_goes(fake: FakeKube, sandbox: Sandbox,
                                                         nb: NbClient) -> None:
    fake.store.create(res.EIPPOOLS, POOL)
    fake.store.create(res.SERVICES, SERVICE)
    with running(fake, sandbox):
        wait_for(lambda: find(sandbox, "Load_Balancer", "name=Service_default/lb_TCP_eip"),
                 timeout=15, what="EIP LB")
        wait_for(lambda: EIPPOOL_FINALIZER in (fake.store.get(res.EIPPOOLS, "p1")["metadata"]
                                       .get("finalizers") or []), timeout=10)
        fake.store.delete(res.EIPPOOLS, "p1")
        blocked = wait_for(lambda: condition(fake.store.get(res.EIPPOOLS, "p1")).get(
            "reason") == "DeletionBlocked" and fake.store.get(res.EIPPOOLS, "p1"), timeout=10)
        assert "default/lb" in condition(blocked)["message"]
        assert blocked["metadata"].get("deletionTimestamp")
        assert find(sandbox, "Logical_Router", "name=eipgw-p1")
        assert find(sandbox, "Load_Balancer", "name=Service_default/lb_TCP_eip")
        events, _ = fake.store.list(res.EVENTS)
        assert any(e["reason"] == "DeletionBlocked" and e["involvedObject"]["name"] == "p1"
                   for e in events)
        fake.store.delete(res.SERVICES, "lb", "default")

        def gone() -> bool:
            try:
                fake.store.get(res.EIPPOOLS, "p1")
            except NotFound:
                return True
            return False
        wait_for(gone, timeout=15, what="pool deleted after its last service")
        wait_for(lambda: not find(sandbox, "Logical_Router", "name=eipgw-p1"), timeout=15)
        assert not find(sandbox, "Logical_Switch", "name=ext-p1")
        assert not find(sandbox, "Logical_Router", "name=svcgw-p1")
        assert not find(sandbox, "Logical_Router_Port", "name=ovn-cluster-eipts-p1")
        assert find(sandbox, "Logical_Router", "name=ovn-cluster")
