"""Traffic policy Local on OVN 23.03 template load balancers: internalTrafficPolicy: Local
moves a Service's ClusterIPs to template LBs (one per protocol and family, `_local4`,
`_local6`) and externalTrafficPolicy: Local makes its EIP LB a template LB; their VIPs
expand on each chassis to a Chassis_Template_Var variable the Node reconciler writes (the
backends on that node, chosen per node: ready ones, else serving and terminating ones)."""

from __future__ import annotations

from typing import Any

from tests.unit import factories as f
from tests.unit.cluster import Cluster
from tests.unit.outcomes import SVC, rows_of
from tests.unit.test_service_lb import EIP, eip_cluster
from tests.unit.test_triggers import service as plain_service
from tests.unit.test_triggers import triggers
from topology import naming
from topology.builders.service import SCOPE_CLUSTER, SCOPE_EIP
from topology.model import ChassisTemplateVar, HealthCheck, LoadBalancer, Owner
from ycloud_controller import keys
from ycloud_controller.api.service import parse_service
from ycloud_controller.reconcilers.lb_config import lb_configs, template_values
from ycloud_controller.reconcilers.node import reconcile_node
from ycloud_controller.reconcilers.service import reconcile_service

VAR4 = naming.template_var("default/web", SCOPE_CLUSTER, "TCP", 80, 4)
VAR6 = naming.template_var("default/web", SCOPE_CLUSTER, "TCP", 80, 6)


def local_cluster(**spec: Any) -> Cluster:
    """A dual-stack internalTrafficPolicy: Local Service with an externalIP; backends on n1
    (one ready, one serving+terminating) and n2 (serving+terminating only)."""
    spec.setdefault("internalTrafficPolicy", "Local")
    return Cluster().add(
        f.node("n1"), f.node("n2"),
        f.service("web", cluster_ips=["10.96.0.10", "fd00::10"], externalIPs=["192.0.2.7"],
                  **spec),
        f.endpoint_slice("web", [
            f.endpoint("10.16.0.5", node="n1"),
            f.endpoint("10.16.0.6", ready=False, serving=True, terminating=True, node="n1"),
            f.endpoint("10.16.0.7", ready=False, serving=True, terminating=True, node="n2")]),
        f.endpoint_slice("web", [f.endpoint("fd16::5", node="n2")], address_type="IPv6",
                         name="web-v6"))


def lbs(c: Cluster) -> dict[str, LoadBalancer]:
    out = reconcile_service(c.ctx, "default/web")
    assert out.invalid is None, out.invalid
    return {r.name: r for r in rows_of(out, SVC) if isinstance(r, LoadBalancer)}


def test_internal_local_puts_cluster_ips_on_template_lbs_per_family() -> None:
    got = lbs(local_cluster())
    assert set(got) == {"Service_default/web_TCP_cluster", "Service_default/web_TCP_cluster_local4",
                        "Service_default/web_TCP_cluster_local6"}
    # externalIPs keep cluster-wide backends
    assert dict(got["Service_default/web_TCP_cluster"].vips) == {
        "192.0.2.7:80": "10.16.0.5:8080"}
    v4, v6 = got["Service_default/web_TCP_cluster_local4"], \
        got["Service_default/web_TCP_cluster_local6"]
    assert dict(v4.vips) == {"10.96.0.10:80": f"^{VAR4}"}
    assert dict(v6.vips) == {"[fd00::10]:80": f"^{VAR6}"}
    assert dict(v4.options) == {"reject": "true", "template": "true",
                                "address-family": "ipv4", "hairpin_snat_ip": "10.96.0.10"}
    assert dict(v6.options)["address-family"] == "ipv6"
    assert v4.groups == ("vpc-ovn-cluster",)


def test_template_values_are_each_nodes_backends_chosen_per_node() -> None:
    c = local_cluster()
    svc = parse_service(c.get("Service", "default/web") or {})
    slices = c.ctx.store("EndpointSlice").by_index("service", "default/web")
    values = template_values(svc, slices)
    # n1 has a ready endpoint: its terminating one is not used; n2 has only a terminating
    # one: it is (kube-proxy's Local fallback, per node)
    assert values[VAR4] == {"n1": "10.16.0.5:8080", "n2": "10.16.0.7:8080"}
    assert values[VAR6] == {"n2": "[fd16::5]:8080"}


def test_node_writes_its_chassis_template_variables() -> None:
    c = local_cluster()
    c.sync_subnets()
    rows = {n: [r for r in rows_of(reconcile_node(c.ctx, n), Owner("Node", n))
                if isinstance(r, ChassisTemplateVar)] for n in ("n1", "n2")}
    assert [dict(r.variables) for r in rows["n1"]] == [{VAR4: "10.16.0.5:8080", VAR6: ""}]
    assert [dict(r.variables) for r in rows["n2"]] == [{VAR4: "10.16.0.7:8080",
                                                        VAR6: "[fd16::5]:8080"}]
    assert rows["n1"][0].chassis == "n1" and rows["n1"][0].key == "n1"


def test_no_template_variables_without_a_local_service() -> None:
    c = local_cluster(internalTrafficPolicy="Cluster")
    c.sync_subnets()
    rows = rows_of(reconcile_node(c.ctx, "n1"), Owner("Node", "n1"))
    assert not [r for r in rows if isinstance(r, ChassisTemplateVar)]
    assert "Service_default/web_TCP_cluster_local4" not in lbs(c)


def test_external_local_makes_the_eip_lb_a_template_lb_without_health_checks() -> None:
    c = eip_cluster()
    svc_obj = c.get("Service", "default/web") or {}
    c.add({**svc_obj, "spec": {**svc_obj["spec"], "externalTrafficPolicy": "Local"}})
    out = reconcile_service(c.ctx, "default/web")
    rows = rows_of(out, SVC)
    got = {r.name: r for r in rows if isinstance(r, LoadBalancer)}
    eip_lb = got["Service_default/web_TCP_eip"]
    var = naming.template_var("default/web", SCOPE_EIP, "TCP", 80, 4)
    assert dict(eip_lb.vips) == {f"{EIP}:80": f"^{var}"}
    assert dict(eip_lb.options)["template"] == "true" and eip_lb.ip_port_mappings == ()
    assert eip_lb.routers == ("ovn-cluster",)
    # inside the VPC the EIP stays a cluster-wide VIP, health-checked as before
    assert dict(got["Service_default/web_TCP_cluster"].vips)[f"{EIP}:80"] == \
        "10.16.0.5:8080,10.16.0.6:8080"
    assert {r.lb for r in rows if isinstance(r, HealthCheck)} == {
        "Service_default/web_TCP_cluster", "Service_default/web_UDP_cluster"}
    svc = parse_service(c.get("Service", "default/web") or {})
    slices = c.ctx.store("EndpointSlice").by_index("service", "default/web")
    assert template_values(svc, slices)[var] == {"n1": "10.16.0.5:8080,10.16.0.6:8080"}
    assert [cfg.local_family for cfg in lb_configs(svc, slices, EIP)
            if cfg.scope == SCOPE_EIP] == [4, 4]


def test_a_local_services_slices_queue_every_node() -> None:
    t, queued = triggers()
    for name in ("n1", "n2"):
        t.stores["Node"].upsert(name, f.node(name))
    svc = plain_service()
    t.on_event("Service", "ADDED", svc, None)
    assert ("Node", "n1") not in queued
    local = {**svc, "spec": {**svc["spec"], "internalTrafficPolicy": "Local"}}
    t.stores["Service"].upsert("ns/web", local)
    t.on_event("Service", "MODIFIED", local, svc)
    assert {("Node", "n1"), ("Node", "n2")} <= set(queued)
    queued.clear()
    t.on_event("EndpointSlice", "MODIFIED", f.endpoint_slice("web", [], namespace="ns"), None)
    assert {("Node", "n1"), ("Node", "n2")} <= set(queued)


def test_a_multi_vpc_eip_stays_cluster_wide() -> None:
    """A multi-VPC EIP's service gateway SNATs to its link address: no client address to
    keep, and its LB runs on the service gateway's chassis; the policy is not applied."""
    obj = f.service("web", cluster_ips=["10.96.0.10"], type="LoadBalancer",
                    externalTrafficPolicy="Local",
                    annotations={keys.ANN_VPC: "vpc1,vpc2"})
    svc = parse_service(obj)
    assert svc.external_local and not svc.eip_local
    slices = [f.endpoint_slice("web", [f.endpoint("10.1.1.5")])]
    assert all(cfg.local_family is None for cfg in lb_configs(svc, slices, EIP))
    assert template_values(svc, slices) == {}


def test_node_local_backends_of_a_health_checked_service_are_the_ready_ones() -> None:
    """OVN health checks keep not-ready endpoints as backends of ordinary LBs (OVN takes
    the dead ones out); template LBs are not health-checked, so only ready ones count."""
    c = Cluster().add(
        f.service("web", cluster_ips=["10.96.0.10"], internalTrafficPolicy="Local",
                  annotations={keys.ANN_HEALTH_CHECK: '{"interval": 2}'}),
        f.endpoint_slice("web", [f.endpoint("10.16.0.5", node="n1"),
                                 f.endpoint("10.16.0.6", ready=False, node="n1")]))
    svc = parse_service(c.get("Service", "default/web") or {})
    slices = c.ctx.store("EndpointSlice").by_index("service", "default/web")
    assert template_values(svc, slices)[VAR4] == {"n1": "10.16.0.5:8080"}
