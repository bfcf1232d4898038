"""YusurService reconciler: what it asks the writer to do when a Service of its name is not
its own."""

from __future__ import annotations

from typing import Any

from tests.unit import factories as f
from tests.unit.cluster import Cluster
from ycloud_controller.api.common import key_of
from ycloud_controller.keys import YSVC_LABEL
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import DeleteEffect, StatusEffect, UpsertEffect
from ycloud_controller.reconcilers.pod import reconcile_pod
from ycloud_controller.reconcilers.ysvc import reconcile_yusur_service


def ysvc(name: str = "web") -> dict[str, Any]:
    return {"apiVersion": f.GROUP, "kind": "YusurService",
            "metadata": {"name": name, "namespace": "default", "uid": "u-" + name},
            "spec": {"type": "ClusterIP", "scope": "vpc", "vpc": "ovn-cluster",
                     "ports": [{"port": 80}], "selector": {"app": "web"}}}


def cluster() -> Cluster:
    c = Cluster().add(f.subnet("ovn-default", "10.16.0.0/16"),
                      f.pod("p1", labels={"app": "web"})).sync_subnets()
    reconcile_pod(c.ctx, "default/p1")  # its address
    return c


def store_effects(c: Cluster, effects: list[Any]) -> None:
    """What the writer and the API server make of the effects, as the informers see it."""
    kinds = {res.ENDPOINTSLICES: "EndpointSlice", res.NETWORKPROBES: "NetworkProbe",
             res.SERVICES: "Service"}
    for e in effects:
        if isinstance(e, UpsertEffect):
            c.add({**e.obj, "kind": kinds[e.resource]})
        elif isinstance(e, DeleteEffect):
            c.remove(kinds[e.resource], f"{e.namespace}/{e.name}")


def test_reconciled_before_a_users_service_was_seen_its_children_are_deleted() -> None:
    """Reconciled while the user's Service of its name was not yet in the cache, it made
    EndpointSlices that name that Service: once the Service is seen they are deleted, and
    the conflict is reported."""
    c = cluster().add(ysvc())
    first = reconcile_yusur_service(c.ctx, "default/web")
    store_effects(c, [e for e in first.effects if not (isinstance(e, UpsertEffect)
                                                       and e.resource is res.SERVICES)])
    slices = [key_of(o) for o in c.stores["EndpointSlice"].list()]
    assert slices and all(o["metadata"]["labels"][YSVC_LABEL] == "web"
                          for o in c.stores["EndpointSlice"].list())
    c.add(f.service("web", cluster_ips=["10.96.50.1"]))  # the user's, now seen
    out = reconcile_yusur_service(c.ctx, "default/web")
    assert out.invalid is not None and out.invalid.reason == "ServiceConflict"
    deleted = {(e.resource, f"{e.namespace}/{e.name}") for e in out.effects
               if isinstance(e, DeleteEffect)}
    assert {(res.ENDPOINTSLICES, k) for k in slices} <= deleted
    assert not [e for e in out.effects if isinstance(e, UpsertEffect)]
    assert [e.ready for e in out.effects if isinstance(e, StatusEffect)] == [False]
    # another invalid reason leaves the YusurService's own objects as they are
    c.remove("Service", "default/web")
    bad = ysvc()
    bad["spec"]["vpc"] = "no-such-vpc"
    c.add(bad)
    out = reconcile_yusur_service(c.ctx, "default/web")
    assert out.invalid is not None and out.invalid.reason != "ServiceConflict"
    assert not [e for e in out.effects if isinstance(e, DeleteEffect)]
