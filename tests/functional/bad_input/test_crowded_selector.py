"""Bad input: a YusurService created over 2000 running pods, on the real controller (FakeKube,
a real NB, emulation on): every pod is a backend of its VIP in NB, the service gets ready, and
its EndpointSlices stay within what the API server accepts.
"""

from __future__ import annotations

from typing import Any

from fakekube.server import FakeKube
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional.bad_input.support import DEADLINE, assert_alive, condition
from tests.functional.conftest import find
from tests.functional.test_controller import running
from topology.nbsync.client import NbClient
from ycloud_controller import keys
from ycloud_controller.kube import resources as res

CROWD = 2000


def crowd_pod(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"c-{i:04d}", "namespace": "crowd", "labels": {"app": "crowd"}},
            "spec": {"nodeName": f"node{i % 2 + 1}", "containers": [{"name": "c", "image": "x"}]}}


def test_selector_matching_thousands_of_pods(fake: FakeKube, sandbox: Sandbox,
                                             nb: NbClient) -> None:
    """A YusurService created over 2000 running pods works: each pod is a backend of its
    VIP in NB, and its EndpointSlices stay within what the API server accepts (at most 1000
    endpoints each; the EndpointSlice controller's default is 100)."""
    fake.store.create(res.NAMESPACES, {"metadata": {"name": "crowd"}})
    for i in range(CROWD):
        fake.store.create(res.PODS, crowd_pod(i))
    with running(fake, sandbox, emulate=True, wait_synced=True) as ctl:
        def placed() -> int:
            pods, _ = fake.store.list(res.PODS, "crowd", copy=False)
            return sum(1 for p in pods if keys.ANN_IP in (p["metadata"].get("annotations")
                                                            or {}))
        wait_for(lambda: placed() == CROWD, timeout=DEADLINE, what=f"{CROWD} pods placed")
        fake.store.create(res.YUSURSERVICES, {
            "apiVersion": "iaas.yusur.io/v1", "kind": "YusurService",
            "metadata": {"name": "crowd", "namespace": "crowd"},
            "spec": {"type": "ClusterIP", "scope": "cluster", "clusterIP": "10.96.77.77",
                     "ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "crowd"},
                     "healthCheck": {"enabled": False}}})

        def backends() -> int:
            lbs = find(sandbox, "Load_Balancer", "name=Service_crowd/crowd_TCP_cluster")
            vips = lbs[0]["vips"] if lbs else {}
            return len(vips.get("10.96.77.77:80", "").split(",")) if vips else 0
        wait_for(lambda: backends() == CROWD, timeout=DEADLINE, what=f"{CROWD} backends in NB")
        ysvc = wait_for(lambda: (y := fake.store.get(res.YUSURSERVICES, "crowd", "crowd"))
                        and condition(y).get("status") == "True"
                        and y["status"].get("totalBackends") == CROWD and y,
                        timeout=DEADLINE, what="YusurService ready")
        assert ysvc["status"]["backends"] == f"{CROWD}/{CROWD}"
        slices, _ = fake.store.list(res.ENDPOINTSLICES, "crowd")
        sizes = [len(s["endpoints"]) for s in slices]
        assert sum(sizes) == CROWD
        assert max(sizes) <= 100, f"EndpointSlices larger than the API server accepts: {sizes}"
        assert_alive(ctl)
