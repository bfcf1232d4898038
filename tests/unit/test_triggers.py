"""Which keys an informer event queues (ycloud_controller.triggers)."""

from __future__ import annotations

import copy

from ycloud_controller import keys
from ycloud_controller.config import Config
from ycloud_controller.keys import ANN_VPC, YSVC_LABEL
from ycloud_controller.kube.informer import Store
from ycloud_controller.kube.resources import PODS
from ycloud_controller.reconcilers import registry
from ycloud_controller.reconcilers.base import PatchEffect
from ycloud_controller.triggers import Key, Triggers

from .factories import node, subnet

KINDS = ("Namespace", "Node", "Pod", "Service", "EndpointSlice", "Vpc", "Subnet", "EipPool",
         "Vnic", "YusurService", "NetworkProbe")


def triggers() -> tuple[Triggers, list[Key]]:
    queued: list[Key] = []
    stores = {k: Store() for k in KINDS}
    registry.add_indexes(stores)  # the indexes the controller's stores have
    return Triggers(Config(), stores, queued.append, emulate=True), queued


def service(labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "1",
                         "labels": labels or {}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.9",
                     "ports": [{"port": 80, "protocol": "TCP"}]}}


def with_status(obj: dict, rv: str) -> dict:
    new = copy.deepcopy(obj)
    new["metadata"]["resourceVersion"] = rv
    new["status"] = {"conditions": [{"type": "ycloud.io/NetworkReady", "status": "True"}]}
    return new


def test_our_status_coming_back_does_not_queue_the_service_again() -> None:
    t, queued = triggers()
    old = service()
    t.on_event("Service", "MODIFIED", with_status(old, "2"), old)
    assert queued == []


def test_a_spec_or_label_change_queues_the_service() -> None:
    t, queued = triggers()
    old = service()
    new = with_status(old, "2")
    new["spec"]["ports"][0]["port"] = 81
    t.on_event("Service", "MODIFIED", new, old)
    assert ("Service", "ns/web") in queued and ("Endpoints", "ns/web") in queued
    queued.clear()
    relabeled = with_status(old, "3")
    relabeled["metadata"]["labels"] = {"app": "x"}
    t.on_event("Service", "MODIFIED", relabeled, old)
    assert ("Service", "ns/web") in queued


def test_the_yusurservice_still_hears_its_services_status() -> None:
    """A YusurService reads its Service's status (EIP, refusals)."""
    t, queued = triggers()
    old = service({YSVC_LABEL: "ysvc1"})
    t.on_event("Service", "MODIFIED", with_status(old, "2"), old)
    assert queued == [("YusurService", "ns/ysvc1")]


def test_a_users_service_of_a_yusurservices_name_queues_that_yusurservice() -> None:
    """The YusurService may have been reconciled before the Service reached the cache: it
    hears of it (to report the conflict) and of its deletion (to take the name)."""
    t, queued = triggers()
    t.stores["YusurService"].upsert("ns/web", {"apiVersion": "iaas.yusur.io/v1",
                                              "kind": "YusurService",
                                              "metadata": {"name": "web", "namespace": "ns"}})
    t.on_event("Service", "ADDED", service(), None)
    assert ("YusurService", "ns/web") in queued
    queued.clear()
    t.on_event("Service", "DELETED", service(), service())
    assert ("YusurService", "ns/web") in queued
    queued.clear()
    other = service()
    other["metadata"]["name"] = "api"
    t.on_event("Service", "ADDED", other, None)
    assert not [k for k in queued if k[0] == "YusurService"]


def test_a_new_slice_of_a_yusurservice_queues_it_and_a_changed_one_does_not() -> None:
    """A slice written before its YusurService saw a conflicting Service must reach it so it
    can be deleted; updates of its slices are its own writes coming back."""
    t, queued = triggers()
    sl = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
          "metadata": {"name": "web-1", "namespace": "ns", "resourceVersion": "1",
                       "labels": {"kubernetes.io/service-name": "web", YSVC_LABEL: "web"}}}
    t.on_event("EndpointSlice", "ADDED", sl, None)
    assert ("YusurService", "ns/web") in queued and ("Service", "ns/web") in queued
    queued.clear()
    t.on_event("EndpointSlice", "MODIFIED", sl, sl)
    assert queued == [("Service", "ns/web")]


def test_a_change_of_a_derived_slice_queues_its_derivation_again() -> None:
    """Manifests mode: a slice the controller derived may be a write of an earlier
    reconcile landing after a newer one found the cache as it wanted it; it is derived again.
    A slice of another manager (a cluster's endpoint controller) is not ours to derive."""
    t, queued = triggers()
    sl = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
          "metadata": {"name": "web-ipv4-0", "namespace": "ns", "resourceVersion": "2",
                       "labels": {"kubernetes.io/service-name": "web",
                                  keys.SLICE_MANAGED_BY: keys.SLICE_EMULATOR}}}
    t.on_event("EndpointSlice", "MODIFIED", sl, sl)
    assert set(queued) == {("Service", "ns/web"), ("Endpoints", "ns/web")}
    queued.clear()
    t.on_event("EndpointSlice", "DELETED", sl, sl)
    assert set(queued) == {("Service", "ns/web"), ("Endpoints", "ns/web")}
    queued.clear()
    theirs = copy.deepcopy(sl)
    theirs["metadata"]["labels"][keys.SLICE_MANAGED_BY] = "endpointslice-controller.k8s.io"
    t.on_event("EndpointSlice", "MODIFIED", theirs, theirs)
    assert queued == [("Service", "ns/web")]


def test_a_loadbalancer_service_is_reconciled_on_every_status_change() -> None:
    t, queued = triggers()
    old = service()
    old["spec"]["type"] = "LoadBalancer"
    t.on_event("Service", "MODIFIED", with_status(old, "2"), old)
    assert ("Service", "ns/web") in queued


def test_a_deleted_service_is_queued_whatever_its_last_version() -> None:
    t, queued = triggers()
    old = service()
    t.on_event("Service", "DELETED", with_status(old, "2"), old)
    t.on_event("Service", "DELETED", old, old)
    assert queued.count(("Service", "ns/web")) == 2


def pod(phase: str = "Running") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "resourceVersion": "1"},
            "spec": {"nodeName": "n1"}, "status": {"phase": phase}}


def test_our_condition_on_a_pod_does_not_queue_the_pod_again() -> None:
    """A pod's reconcile reads only the phase of its status: our own condition coming back
    is not work (it was every pod once more after a cold sync)."""
    t, queued = triggers()
    old = pod()
    new = copy.deepcopy(old)
    new["metadata"]["resourceVersion"] = "2"
    new["status"]["conditions"] = [{"type": "ycloud.io/NetworkReady", "status": "True"}]
    t.on_event("Pod", "MODIFIED", new, old)
    assert ("Pod", "ns/p") not in queued


def test_a_pod_whose_phase_changes_is_queued() -> None:
    t, queued = triggers()
    old = pod()
    t.on_event("Pod", "MODIFIED", dict(pod("Succeeded"), metadata=dict(
        old["metadata"], resourceVersion="2")), old)
    assert ("Pod", "ns/p") in queued


def test_our_status_on_vpcs_and_subnets_does_not_rebuild_the_network() -> None:
    """The network model and the Vpc and Subnet reconcilers read none of their status: our
    own status coming back is not work; any other change is. A pool's status still rebuilds
    it (test_eippool_lifecycle: a terminating pool waits for its last EIP's release)."""
    t, queued = triggers()
    for kind in ("Vpc", "Subnet", "EipPool"):
        old = {"apiVersion": "iaas.yusur.io/v1", "kind": kind,
               "metadata": {"name": "x", "resourceVersion": "1"}, "spec": {"cidr": "10.1.0.0/24"}}
        t.on_event(kind, "MODIFIED", with_status(old, "2"), old)
        assert queued == ([("Network", "")] if kind == "EipPool" else [])
        queued.clear()
        changed = with_status(old, "3")
        changed["spec"]["cidr"] = "10.2.0.0/24"
        t.on_event(kind, "MODIFIED", changed, old)
        assert queued == [("Network", "")]
        queued.clear()


def annotated(obj: dict, rv: str, annotations: dict) -> dict:
    new = copy.deepcopy(obj)
    new["metadata"]["resourceVersion"] = rv
    new["metadata"]["annotations"] = {**new["metadata"].get("annotations", {}), **annotations}
    return new


OURS = {"ycloud.io/ip_address": "10.16.0.5", "ycloud.io/mac_address": "0a:00:00:00:00:05"}


def test_our_own_address_annotations_do_not_queue_the_pod_again() -> None:
    """The addresses a pod's reconcile chose come back as annotations: reconciling the pod
    again would give the same; services selecting it still hear of it (their endpoints)."""
    t, queued = triggers()
    t.stores["Service"].upsert("ns/web", dict(service(), spec=dict(
        service()["spec"], selector={"app": "web"})))
    old = pod()
    old["metadata"]["labels"] = {"app": "web"}
    t.expect_patch(PatchEffect(PODS, "p", "ns", {"metadata": {"annotations": OURS}}))
    t.on_event("Pod", "MODIFIED", annotated(old, "2", OURS), old)
    assert ("Pod", "ns/p") not in queued and ("Endpoints", "ns/web") in queued


def test_an_annotation_change_that_is_not_ours_queues_the_pod() -> None:
    t, queued = triggers()
    old = pod()
    t.on_event("Pod", "MODIFIED", annotated(old, "2", OURS), old)  # nothing expected
    assert queued == [("Pod", "ns/p")]
    queued.clear()
    t.expect_patch(PatchEffect(PODS, "p", "ns", {"metadata": {"annotations": OURS}}))
    other = annotated(old, "3", {**OURS, "ycloud.io/ip_address": "10.16.0.9"})
    t.on_event("Pod", "MODIFIED", other, old)  # someone else's value
    assert queued == [("Pod", "ns/p")]
    queued.clear()
    t.expect_patch(PatchEffect(PODS, "p", "ns", {"metadata": {"annotations": OURS}}))
    moved = annotated(old, "4", OURS)
    moved["spec"]["nodeName"] = "n2"  # more than our annotations changed
    t.on_event("Pod", "MODIFIED", moved, old)
    assert queued == [("Pod", "ns/p")]


def _backend_pod() -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "ns", "resourceVersion": "5",
                         "labels": {"app": "web"}},
            "spec": {"nodeName": "node1"}, "status": {"phase": "Running"}}


def test_a_deleted_backend_pod_queues_every_service_that_selected_it() -> None:
    """The informer hands a DELETED event the last version as both objects (a watch's
    delete, and a relist that no longer lists the pod): the derived EndpointSlice and the
    YusurServices that selected the pod must still hear of it."""
    t, queued = triggers()
    svc = service()
    svc["spec"]["selector"] = {"app": "web"}
    t.stores["Service"].upsert("ns/web", svc)
    t.stores["YusurService"].upsert("ns/ysvc1", {
        "apiVersion": "iaas.yusur.io/v1", "kind": "YusurService",
        "metadata": {"name": "ysvc1", "namespace": "ns"},
        "spec": {"selector": {"app": "web"}}})
    pod = _backend_pod()
    t.on_event("Pod", "DELETED", pod, pod)
    assert ("Endpoints", "ns/web") in queued
    assert ("YusurService", "ns/ysvc1") in queued
    queued.clear()
    vnic = {"apiVersion": "iaas.yusur.io/v1", "kind": "Vnic",
            "metadata": {"name": "vm-1", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"subnet": "s1"}}
    t.on_event("Vnic", "DELETED", vnic, vnic)
    assert ("YusurService", "ns/ysvc1") in queued


def _ysvc(namespace: str, name: str, selector: object) -> dict:
    return {"apiVersion": "iaas.yusur.io/v1", "kind": "YusurService",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": selector}}


def test_a_pod_label_change_queues_the_selectors_it_leaves_or_joins_only() -> None:
    """Services (of the pod's namespace: their derived EndpointSlices) and YusurServices (in
    any namespace) are found by the first pair of their selector, then matched whole; those
    the pod matches in neither version, or with a malformed selector, are not queued."""
    t, queued = triggers()
    for ns, name, selector in (("ns", "both", {"app": "web", "tier": "front"}),
                               ("ns", "first-only", {"app": "web", "tier": "back"}),
                               ("other", "elsewhere", {"app": "web"}),
                               ("ns", "malformed", ["app", "web"])):
        svc = service()
        svc["metadata"].update(namespace=ns, name=name)
        svc["spec"]["selector"] = selector
        t.stores["Service"].upsert(f"{ns}/{name}", svc)
    for ysvc in (_ysvc("other", "both", {"app": "web", "tier": "front"}),
                 _ysvc("ns", "first-only", {"app": "web", "tier": "back"}),
                 _ysvc("ns", "unrelated", {"app": "db"}),
                 _ysvc("ns", "empty", {}),
                 _ysvc("ns", "malformed", "app=web")):
        t.stores["YusurService"].upsert(f"{ysvc['metadata']['namespace']}/"
                                        f"{ysvc['metadata']['name']}", ysvc)
    old = _backend_pod()
    new = copy.deepcopy(old)
    new["metadata"]["labels"]["tier"] = "front"
    new["metadata"]["resourceVersion"] = "6"
    for versions in ((new, old), (old, new)):  # joins, then leaves again
        queued.clear()
        t.on_event("Pod", "MODIFIED", *versions)
        assert [k for k in queued if k[0] in ("YusurService", "Endpoints")] == [
            ("Endpoints", "ns/both"), ("YusurService", "other/both")]


def multi_vpc_service(name: str) -> dict:
    svc = service()
    svc["metadata"].update(name=name, annotations={ANN_VPC: "vpc1,vpc2"})
    svc["spec"]["type"] = "LoadBalancer"
    return svc


def test_a_multi_vpc_service_change_queues_every_multi_vpc_service() -> None:
    """Each routes its EIP over every link of the pool's service gateway, and one service's
    VPCs can change the links (a client VPC refused when a backend VPC overlaps it)."""
    t, queued = triggers()
    other, plain = multi_vpc_service("other"), service()
    t.stores["Service"].upsert("ns/other", other)
    t.stores["Service"].upsert("ns/web", plain)
    new = multi_vpc_service("new")
    t.stores["Service"].upsert("ns/new", new)
    t.on_event("Service", "ADDED", new, None)
    assert ("Service", "ns/other") in queued and ("Service", "ns/new") in queued
    assert ("Service", "ns/web") not in queued
    queued.clear()
    t.on_event("Service", "MODIFIED", with_status(new, "2"), new)  # our status: nothing more
    assert ("Service", "ns/other") not in queued


def test_a_new_vpc_queues_the_multi_vpc_services() -> None:
    """A VPC attached to the pool gets a link: the multi-VPC services route over it."""
    t, queued = triggers()
    t.stores["Service"].upsert("ns/other", multi_vpc_service("other"))
    t.stores["Vpc"].upsert("vpc9", {"apiVersion": "iaas.yusur.io/v1", "kind": "Vpc",
                                    "metadata": {"name": "vpc9", "resourceVersion": "1"},
                                    "spec": {}})
    t.rebuild_network()
    assert ("Vpc", "vpc9") in queued and ("Service", "ns/other") in queued


def test_a_default_vpc_subnet_added_or_removed_queues_the_nodes() -> None:
    """Node ports are on the default VPC's subnets (their routes): a subnet of it that comes
    or goes is a change for every Node, one of another VPC is not."""
    t, queued = triggers()
    t.stores["Node"].upsert("n1", node("n1"))
    t.stores["Vpc"].upsert("vpc9", {"apiVersion": "iaas.yusur.io/v1", "kind": "Vpc",
                                    "metadata": {"name": "vpc9"}, "spec": {}})
    for name, cidr, vpc in (("extra", "10.20.0.0/24", None), ("other", "10.30.0.0/24", "vpc9")):
        t.stores["Subnet"].upsert(name, subnet(name, cidr, vpc))
        t.rebuild_network()
        assert (("Node", "n1") in queued) == (vpc is None), (name, queued)
        queued.clear()
        t.stores["Subnet"].remove(name)
        t.rebuild_network()
        assert (("Node", "n1") in queued) == (vpc is None), (name, queued)
        queued.clear()
