"""Manifests mode: ClusterIP allocation and EndpointSlices derived from selected pods."""

from __future__ import annotations

from typing import Any

from tests.unit import factories as f
from tests.unit.cluster import Cluster
from topology.model import Owner
from ycloud_controller import keys
from ycloud_controller.cluster_ips import ClusterIps
from ycloud_controller.config import Config, SubnetConfig
from ycloud_controller.keys import SLICE_EMULATOR, SLICE_MANAGED_BY
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import DeleteEffect, Outcome, PatchEffect, UpsertEffect
from ycloud_controller.reconcilers.endpoints import reconcile_endpoints
from ycloud_controller.reconcilers.service import reconcile_service

WEB = {"app": "web"}


def web_pod(name: str, ip: str | None, switch: str | None = Config().default_subnet.name,
            **kw: Any) -> dict[str, Any]:
    """A pod the controller placed on `switch` (its annotations) with address `ip`."""
    ann = {keys.ANN_IP: ip, **({keys.ANN_SWITCH: switch} if switch else {})} if ip else None
    return f.pod(name, labels=kw.pop("labels", WEB), annotations=ann, **kw)


def svc(**kw: Any) -> dict[str, Any]:
    kw.setdefault("cluster_ips", ["10.96.0.10"])
    kw.setdefault("selector", WEB)
    return f.service("web", **kw)


def run(c: Cluster, key: str = "default/web",
        alloc: ClusterIps | None = None) -> Outcome:
    return reconcile_endpoints(c.ctx, key, alloc or ClusterIps(c.cfg.service_cidr))


def upserts(out: Outcome) -> list[dict[str, Any]]:
    return [e.obj for e in out.effects if isinstance(e, UpsertEffect)]


def apply(c: Cluster, out: Outcome) -> None:
    """What the KubeWriter does with the effects, on the stores."""
    for e in out.effects:
        if isinstance(e, UpsertEffect):
            md = e.obj["metadata"]
            c.stores["EndpointSlice"].upsert(f"{md['namespace']}/{md['name']}", e.obj)
        elif isinstance(e, DeleteEffect):
            c.stores["EndpointSlice"].remove(f"{e.namespace}/{e.name}")


# -- ClusterIP allocation --------------------------------------------------------------------------
def test_cluster_ip_allocated_when_missing():
    c = Cluster(emulate=True).add(f.service("web", selector=WEB), f.service("db"))
    alloc = ClusterIps(c.cfg.service_cidr)
    out = run(c, alloc=alloc)
    (p,) = [e for e in out.effects if isinstance(e, PatchEffect)]
    assert (p.resource, p.name, p.namespace) == (res.SERVICES, "web", "default")
    # the first address is left for the API server's own service, as Kubernetes does
    assert p.patch == {"spec": {"clusterIP": "10.96.0.2", "clusterIPs": ["10.96.0.2"]}}
    # the same service keeps its address; another gets the next one
    again = [e for e in run(c, alloc=alloc).effects if isinstance(e, PatchEffect)]
    assert again[0].patch == p.patch
    (other,) = [e for e in run(c, "default/db", alloc).effects if isinstance(e, PatchEffect)]
    assert other.patch["spec"]["clusterIP"] == "10.96.0.3"


def test_existing_cluster_ips_are_never_reused():
    c = Cluster(emulate=True).add(f.service("fixed", cluster_ips=["10.96.0.2"]),
                                  f.service("web"))
    alloc = ClusterIps(c.cfg.service_cidr)
    assert not [e for e in run(c, "default/fixed", alloc).effects
                if isinstance(e, PatchEffect)]
    (p,) = [e for e in run(c, "default/web", alloc).effects if isinstance(e, PatchEffect)]
    assert p.patch["spec"]["clusterIP"] == "10.96.0.3"


def test_deleted_service_releases_its_cluster_ip():
    c = Cluster(emulate=True).add(f.service("web"))
    alloc = ClusterIps(c.cfg.service_cidr)
    run(c, alloc=alloc)
    c.remove("Service", "default/web")
    run(c, alloc=alloc)
    c.add(f.service("db"))
    (p,) = [e for e in run(c, "default/db", alloc).effects if isinstance(e, PatchEffect)]
    assert p.patch["spec"]["clusterIP"] == "10.96.0.2"


def test_headless_and_external_name_get_no_cluster_ip():
    c = Cluster(emulate=True).add(
        f.service("headless", cluster_ips=["None"]),
        f.service("ext", type="ExternalName", externalName="example.com", ports=[]))
    alloc = ClusterIps(c.cfg.service_cidr)
    assert run(c, "default/headless", alloc).effects == []
    assert run(c, "default/ext", alloc).effects == []
    assert alloc.used == {}


# -- EndpointSlices --------------------------------------------------------------------------------
def test_slices_from_selected_pods():
    c = Cluster(emulate=True).add(
        svc(), web_pod("web-0", "10.16.0.5", node="n1"), web_pod("web-1", "10.16.0.6"),
        web_pod("no-ip", None), web_pod("done", "10.16.0.7", phase="Succeeded"),
        web_pod("other", "10.16.0.8", labels={"app": "db"}),
        f.pod("elsewhere", namespace="ns2", labels=WEB,
              annotations={keys.ANN_IP: "10.16.0.9"}),
        web_pod("slow", "10.16.0.10", ready=False))
    out = run(c)
    (sl,) = upserts(out)
    assert sl["metadata"]["namespace"] == "default"
    assert sl["metadata"]["labels"] == {"kubernetes.io/service-name": "web",
                                        SLICE_MANAGED_BY: SLICE_EMULATOR}
    assert sl["addressType"] == "IPv4"
    assert sl["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    got = {e["addresses"][0]: e["conditions"]["ready"] for e in sl["endpoints"]}
    assert got == {"10.16.0.5": True, "10.16.0.6": True, "10.16.0.10": False}
    ep = next(e for e in sl["endpoints"] if e["addresses"] == ["10.16.0.5"])
    assert ep["nodeName"] == "n1"
    assert ep["targetRef"] == {"kind": "Pod", "namespace": "default", "name": "web-0"}


def test_service_reconciler_reads_the_emulated_slices():
    c = Cluster(emulate=True).add(svc(), web_pod("web-0", "10.16.0.5"),
                                  web_pod("slow", "10.16.0.6", ready=False))
    apply(c, run(c))
    out = reconcile_service(c.ctx, "default/web")
    (lb,) = out.rows[next(iter(out.rows))]
    assert dict(lb.vips) == {"10.96.0.10:80": "10.16.0.5:8080"}


def test_named_target_ports_resolved_per_pod():
    ports = [{"name": "http", "port": 80, "targetPort": "web"}]
    c = Cluster(emulate=True).add(
        svc(ports=ports),
        web_pod("a", "10.16.0.5", container_ports=[{"name": "web", "containerPort": 8080}]),
        web_pod("b", "10.16.0.6", container_ports=[{"name": "web", "containerPort": 9090}]),
        web_pod("c", "10.16.0.7", container_ports=[{"name": "web", "containerPort": 8080}]),
        web_pod("none", "10.16.0.8", container_ports=[{"name": "other",
                                                       "containerPort": 1}]))
    slices = upserts(run(c))
    by_port = {s["ports"][0]["port"]: sorted(e["addresses"][0] for e in s["endpoints"])
               for s in slices if s["ports"]}
    assert by_port == {8080: ["10.16.0.5", "10.16.0.7"], 9090: ["10.16.0.6"]}
    assert len({s["metadata"]["name"] for s in slices}) == len(slices)
    # a pod without the named port still counts as an endpoint, with no ports
    assert [s["endpoints"][0]["addresses"] for s in slices if not s["ports"]] == [["10.16.0.8"]]
    apply(c, run(c))
    out = reconcile_service(c.ctx, "default/web")
    (lb,) = out.rows[next(iter(out.rows))]
    assert dict(lb.vips) == {"10.96.0.10:80": "10.16.0.5:8080,10.16.0.6:9090,10.16.0.7:8080"}


def test_dual_stack_pods_give_one_slice_per_family():
    dual = Config(default_subnet=SubnetConfig("ovn-default", "10.16.0.0/16,fd16::/112"))
    c = Cluster(dual, emulate=True).add(svc(), web_pod("a", "10.16.0.5,fd16::5"))
    slices = {s["addressType"]: s for s in upserts(run(c))}
    assert set(slices) == {"IPv4", "IPv6"}
    assert slices["IPv6"]["endpoints"][0]["addresses"] == ["fd16::5"]


def test_a_pod_whose_address_no_longer_fits_its_subnet_is_no_endpoint():
    """Its request was refused (reconcilers/pod.py): a fresh process never places it, so the
    running one, which still holds the annotations of the earlier placement, drops it too."""
    c = Cluster(emulate=True).add(svc(), web_pod("in", "10.16.0.5"), web_pod("out", "10.9.0.5"))
    (slice_,) = upserts(run(c))
    assert [e["addresses"] for e in slice_["endpoints"]] == [["10.16.0.5"]]


def test_unchanged_slices_are_not_rewritten_and_stale_ones_deleted():
    c = Cluster(emulate=True).add(svc(), web_pod("a", "10.16.0.5"))
    apply(c, run(c))
    assert run(c).effects == []
    # an emulated slice nobody wants any more is deleted; slices of others are not touched
    c.add(f.endpoint_slice("web", [], name="web-stale", labels={SLICE_MANAGED_BY: SLICE_EMULATOR}),
          f.endpoint_slice("web", [], name="web-mirror",
                           labels={SLICE_MANAGED_BY: "endpointslice-controller.k8s.io"}))
    assert run(c).effects == [DeleteEffect(res.ENDPOINTSLICES, "web-stale", "default")]


def test_slice_updated_when_pods_change():
    c = Cluster(emulate=True).add(svc(), web_pod("a", "10.16.0.5"))
    apply(c, run(c))
    c.add(web_pod("b", "10.16.0.6"))
    (sl,) = upserts(run(c))
    assert [e["addresses"][0] for e in sl["endpoints"]] == ["10.16.0.5", "10.16.0.6"]
    apply(c, run(c))
    c.remove("Pod", "default/a")
    c.remove("Pod", "default/b")
    out = run(c)
    assert upserts(out) == []
    assert [e for e in out.effects if isinstance(e, DeleteEffect)]
    apply(c, out)
    assert c.stores["EndpointSlice"].list() == []


def test_selectorless_service_gets_no_emulated_slices():
    c = Cluster(emulate=True).add(f.service("web", cluster_ips=["10.96.0.10"]),
                                  web_pod("a", "10.16.0.5"),
                                  f.endpoint_slice("web", [f.endpoint("10.16.0.5")],
                                                   labels={SLICE_MANAGED_BY: "ycloud-controller"}))
    assert run(c).effects == []


def test_deleted_service_removes_its_emulated_slices():
    c = Cluster(emulate=True).add(svc(), web_pod("a", "10.16.0.5"))
    apply(c, run(c))
    (name,) = [s["metadata"]["name"] for s in c.stores["EndpointSlice"].list()]
    c.remove("Service", "default/web")
    assert run(c).effects == [DeleteEffect(res.ENDPOINTSLICES, name, "default")]


def test_only_pods_placed_on_an_existing_subnet_are_endpoints():
    """An address a user asked for (annotation ip_address alone) is not the pod's until the
    controller placed it; a pod placed on a subnet that is gone has no port."""
    c = Cluster()
    c.add(svc(), web_pod("placed", "10.16.0.5"), web_pod("asked", "10.16.0.6", switch=None),
          web_pod("orphaned", "10.16.0.7", switch="gone"))
    (sl,) = upserts(run(c))
    assert [e["addresses"] for e in sl["endpoints"]] == [["10.16.0.5"]]


def test_a_dynamic_cluster_ip_avoids_addresses_other_services_ask_for():
    """A Service that names its ClusterIP gets it even when a Service without one is
    reconciled first (as the API server never hands out an address in use)."""
    c = Cluster(emulate=True).add(f.service("web"), f.service("fixed", cluster_ips=["10.96.0.2"]))
    alloc = ClusterIps(c.cfg.service_cidr)
    (p,) = [e for e in run(c, "default/web", alloc).effects if isinstance(e, PatchEffect)]
    assert p.patch["spec"]["clusterIP"] == "10.96.0.3"
    run(c, "default/fixed", alloc)
    assert alloc.holder("10.96.0.2") == "default/fixed"


def test_a_cluster_ip_another_service_holds_is_refused_until_it_is_released():
    c = Cluster(emulate=True).add(f.service("a", cluster_ips=["10.96.0.9"]),
                                  f.service("b", cluster_ips=["10.96.0.9"]))
    c.ctx.cluster_ips = alloc = ClusterIps(c.cfg.service_cidr)
    assert alloc.restore("default/b", "10.96.0.9")  # NB records b's VIP: b holds it
    assert not alloc.restore("default/a", "10.96.0.9")
    out = reconcile_service(c.ctx, "default/a")
    assert out.invalid is not None and out.invalid.reason == "AddressInUse"
    assert "default/b" in out.invalid.message
    assert out.rows == {Owner("Service", "default/a"): None}  # its rows are left alone
    assert reconcile_service(c.ctx, "default/b").invalid is None
    released = alloc.releases
    c.remove("Service", "default/b")
    reconcile_service(c.ctx, "default/b")
    assert alloc.releases > released  # what wakes the refused Service (sync.batch.Waiters)
    assert reconcile_service(c.ctx, "default/a").invalid is None
    assert alloc.holder("10.96.0.9") == "default/a"


def test_a_clusterip_changed_in_a_file_wins_over_the_clusterips_left_from_before():
    """A merge patch of a file's difference sets clusterIP and leaves the clusterIPs the
    emulator wrote: the emulator makes them agree, and the LB serves the file's address."""
    c = Cluster(emulate=True).add(f.service("web", cluster_ips=["10.96.0.2"]))
    c.stores["Service"].get("default/web")["spec"]["clusterIP"] = "10.96.7.7"
    c.ctx.cluster_ips = alloc = ClusterIps(c.cfg.service_cidr)
    (p,) = [e for e in run(c, alloc=alloc).effects if isinstance(e, PatchEffect)]
    assert p.patch == {"spec": {"clusterIPs": ["10.96.7.7"]}}
    out = reconcile_service(c.ctx, "default/web")
    (lb,) = [r for r in out.rows[Owner("Service", "default/web")] if r.TABLE == "Load_Balancer"]
    assert list(dict(lb.vips)) == ["10.96.7.7:80"]
