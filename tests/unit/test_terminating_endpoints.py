"""KEP-1669: when a port of a Service has no usable endpoint in a family, its serving and
terminating endpoints carry the traffic (as kube-proxy's CategorizeEndpoints and
ovn-kubernetes' services controller do), so a rolling update does not drop connections;
the fallback is decided per port and per family."""

from __future__ import annotations

from typing import Any

from tests.unit import factories as f
from tests.unit.cluster import Cluster
from tests.unit.outcomes import vips
from tests.unit.test_reconcile_endpoints import run, svc, upserts, web_pod
from ycloud_controller.reconcilers.service import reconcile_service

VIP = "10.96.0.10:80"


def service_vips(*slices: dict[str, Any], **spec: Any) -> dict[str, str]:
    c = Cluster().add(f.service("web", cluster_ips=["10.96.0.10", "fd00::10"], **spec),
                      *slices)
    return vips(reconcile_service(c.ctx, "default/web"))


def test_ready_endpoints_win_over_serving_terminating_ones() -> None:
    got = service_vips(f.endpoint_slice("web", [
        f.endpoint("10.16.0.5"),
        f.endpoint("10.16.0.6", ready=False, serving=True, terminating=True)]))
    assert got[VIP] == "10.16.0.5:8080"


def test_no_ready_endpoint_falls_back_to_serving_terminating_ones() -> None:
    got = service_vips(f.endpoint_slice("web", [
        f.endpoint("10.16.0.5", ready=False),  # not ready, not terminating: never
        f.endpoint("10.16.0.6", ready=False, serving=True, terminating=True),
        f.endpoint("10.16.0.7", ready=False, serving=False, terminating=True),
        f.endpoint("10.16.0.8", ready=False, terminating=True)]))  # serving unknown: ready's
    assert got[VIP] == "10.16.0.6:8080"


def test_gone_endpoints_leave_an_empty_vip_that_rejects() -> None:
    got = service_vips(f.endpoint_slice("web", []))
    assert got[VIP] == ""


def test_fallback_is_per_family() -> None:
    got = service_vips(
        f.endpoint_slice("web", [f.endpoint("10.16.0.5")]),
        f.endpoint_slice("web", [f.endpoint("fd16::6", ready=False, serving=True,
                                            terminating=True)],
                         address_type="IPv6", name="web-v6"),
        ipFamilies=["IPv4", "IPv6"])
    assert got == {VIP: "10.16.0.5:8080", "[fd00::10]:80": "[fd16::6]:8080"}


def test_fallback_is_per_port() -> None:
    ports = [{"name": "http", "port": 80, "targetPort": 8080},
             {"name": "admin", "port": 81, "targetPort": 9090}]
    c = Cluster().add(
        f.service("web", cluster_ips=["10.96.0.10"], ports=ports),
        f.endpoint_slice("web", [f.endpoint("10.16.0.5")],
                         ports=[{"name": "http", "port": 8080}]),
        f.endpoint_slice("web", [f.endpoint("10.16.0.6", ready=False, serving=True,
                                            terminating=True)],
                         ports=[{"name": "admin", "port": 9090}], name="web-admin"))
    assert vips(reconcile_service(c.ctx, "default/web")) == {
        VIP: "10.16.0.5:8080", "10.96.0.10:81": "10.16.0.6:9090"}


def test_publish_not_ready_keeps_not_ready_backends_and_falls_back_too() -> None:
    slice_ = f.endpoint_slice("web", [
        f.endpoint("10.16.0.5", ready=False),
        f.endpoint("10.16.0.6", ready=False, serving=True, terminating=True)])
    assert service_vips(slice_, publishNotReadyAddresses=True)[VIP] == "10.16.0.5:8080"
    alone = f.endpoint_slice("web", [
        f.endpoint("10.16.0.6", ready=False, serving=True, terminating=True)])
    assert service_vips(alone, publishNotReadyAddresses=True)[VIP] == "10.16.0.6:8080"


def test_emulated_slices_mark_a_deleting_pod_serving_and_terminating() -> None:
    """Manifests mode writes the conditions the EndpointSlice controller writes: a pod being
    deleted is terminating, serving while it is ready, and not ready."""
    deleting = web_pod("web-1", "10.16.0.6")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    c = Cluster(emulate=True).add(svc(), web_pod("web-0", "10.16.0.5"), deleting)
    (sl,) = upserts(run(c))
    got = {e["addresses"][0]: e["conditions"] for e in sl["endpoints"]}
    assert got == {
        "10.16.0.5": {"ready": True, "serving": True, "terminating": False},
        "10.16.0.6": {"ready": False, "serving": True, "terminating": True}}
    c2 = Cluster(emulate=True).add(svc(publishNotReadyAddresses=True), deleting)
    (sl2,) = upserts(run(c2))
    assert sl2["endpoints"][0]["conditions"] == {"ready": True, "serving": True,
                                                 "terminating": True}
