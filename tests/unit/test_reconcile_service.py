"""reconcile_service as a pure function of a Context (in-memory stores, config, network model,
IPAM): one load balancer per protocol with its VIPs and backends from the EndpointSlices
(named target ports, readiness, families), health checks, affinity, hairpin, the VPC a
Service belongs to, Services without a load balancer, invalid and deleted Services.
"""

from __future__ import annotations

import pytest

from tests.unit import factories as f
from tests.unit.cluster import Cluster
from tests.unit.outcomes import SVC, lbs, only, rows_of, status, vips
from topology import naming
from topology.model import HealthCheck, LoadBalancer, Owner
from ycloud_controller import keys
from ycloud_controller.reconcilers.lb_config import hairpin_ips
from ycloud_controller.reconcilers.pod import reconcile_pod
from ycloud_controller.reconcilers.service import reconcile_service


def test_service_one_lb_per_protocol():
    c = Cluster().add(
        f.service("web", cluster_ips=["10.96.0.10"], externalIPs=["1.2.3.4"], ports=[
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "https", "port": 443, "targetPort": 8443},
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]),
        f.endpoint_slice("web", [f.endpoint("10.16.0.5"), f.endpoint("10.16.0.6")], ports=[
            {"name": "http", "port": 8080}, {"name": "https", "port": 8443},
            {"name": "dns", "port": 5353, "protocol": "UDP"}]))
    out = reconcile_service(c.ctx, "default/web")
    got = lbs(out)
    assert set(got) == {"Service_default/web_TCP_cluster", "Service_default/web_UDP_cluster"}
    tcp = got["Service_default/web_TCP_cluster"]
    assert tcp.protocol == "tcp" and tcp.groups == ("vpc-ovn-cluster",) and tcp.vpc == "ovn-cluster"
    assert dict(tcp.vips) == {
        "10.96.0.10:80": "10.16.0.5:8080,10.16.0.6:8080",
        "10.96.0.10:443": "10.16.0.5:8443,10.16.0.6:8443",
        "1.2.3.4:80": "10.16.0.5:8080,10.16.0.6:8080",
        "1.2.3.4:443": "10.16.0.5:8443,10.16.0.6:8443"}
    assert vips(out, "UDP") == {"10.96.0.10:53": "10.16.0.5:5353,10.16.0.6:5353",
                                "1.2.3.4:53": "10.16.0.5:5353,10.16.0.6:5353"}
    assert dict(tcp.options) == {"reject": "true", "hairpin_snat_ip": "10.96.0.10"}
    assert tcp.external_ids()[naming.SERVICE] == "default/web"
    assert status(out).ready is True


def test_service_without_endpoints_rejects():
    c = Cluster().add(f.service("web", cluster_ips=["10.96.0.10"]))
    assert vips(reconcile_service(c.ctx, "default/web")) == {"10.96.0.10:80": ""}


def test_named_target_port_resolved_through_slice_ports():
    c = Cluster().add(
        f.service("web", cluster_ips=["10.96.0.10"],
                  ports=[{"name": "http", "port": 80, "targetPort": "web"}]),
        # two slices: pods whose "web" port differ
        f.endpoint_slice("web", [f.endpoint("10.16.0.5")], ports=[{"name": "http",
                                                                   "port": 8080}],
                         name="web-a"),
        f.endpoint_slice("web", [f.endpoint("10.16.0.6")], ports=[{"name": "http",
                                                                   "port": 9090}],
                         name="web-b"),
        f.endpoint_slice("other", [f.endpoint("10.16.0.9")]))
    assert vips(reconcile_service(c.ctx, "default/web")) == {
        "10.96.0.10:80": "10.16.0.5:8080,10.16.0.6:9090"}


def test_slice_without_ports():
    numeric = Cluster().add(f.service("web", cluster_ips=["10.96.0.10"]),
                            f.endpoint_slice("web", [f.endpoint("10.16.0.5")], ports=[]))
    assert vips(reconcile_service(numeric.ctx, "default/web")) == {
        "10.96.0.10:80": "10.16.0.5:8080"}
    named = Cluster().add(
        f.service("web", cluster_ips=["10.96.0.10"],
                  ports=[{"name": "http", "port": 80, "targetPort": "web"}]),
        f.endpoint_slice("web", [f.endpoint("10.16.0.5")], ports=[]))
    assert vips(reconcile_service(named.ctx, "default/web")) == {"10.96.0.10:80": ""}


def test_slice_port_matched_by_name_and_protocol():
    c = Cluster().add(
        f.service("web", cluster_ips=["10.96.0.10"],
                  ports=[{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}]),
        f.endpoint_slice("web", [f.endpoint("10.16.0.5")],
                         ports=[{"name": "dns", "port": 5353, "protocol": "TCP"}]))
    assert vips(reconcile_service(c.ctx, "default/web"), "UDP") == {"10.96.0.10:53": ""}


def test_not_ready_and_terminating_endpoints():
    eps = [f.endpoint("10.16.0.5"), f.endpoint("10.16.0.6", ready=False),
           f.endpoint("10.16.0.7", ready=None),  # unknown readiness counts as ready
           f.endpoint("10.16.0.8", ready=True, terminating=True),
           f.endpoint("10.16.0.9", ready=False, terminating=True)]
    c = Cluster().add(f.service("web", cluster_ips=["10.96.0.10"]),
                      f.endpoint_slice("web", eps))
    assert vips(reconcile_service(c.ctx, "default/web")) == {
        "10.96.0.10:80": "10.16.0.5:8080,10.16.0.7:8080"}
    c.add(f.service("web", cluster_ips=["10.96.0.10"], publishNotReadyAddresses=True))
    assert vips(reconcile_service(c.ctx, "default/web")) == {
        "10.96.0.10:80": "10.16.0.5:8080,10.16.0.6:8080,10.16.0.7:8080"}


def test_health_checked_service_keeps_not_ready_backends_and_maps_them():
    c = Cluster().add(f.pod("web-0", annotations={keys.ANN_IP: "10.16.0.5"}),
                      f.pod("web-1", annotations={keys.ANN_IP: "10.16.0.6"})).sync_subnets()
    reconcile_pod(c.ctx, "default/web-0")
    reconcile_pod(c.ctx, "default/web-1")
    c.add(f.service("web", cluster_ips=["10.96.0.10"],
                    annotations={keys.ANN_HEALTH_CHECK: '{"interval": 2, "failureCount": 2}'}),
          f.endpoint_slice("web", [f.endpoint("10.16.0.5"),
                                   f.endpoint("10.16.0.6", ready=False),
                                   f.endpoint("10.16.0.7")]))  # no port of ours: no mapping
    out = reconcile_service(c.ctx, "default/web")
    rows = rows_of(out, SVC)
    lb = only(rows, LoadBalancer)
    assert dict(lb.vips) == {"10.96.0.10:80": "10.16.0.5:8080,10.16.0.6:8080,10.16.0.7:8080"}
    assert dict(lb.ip_port_mappings) == {"10.16.0.5": "web-0.default:10.16.255.254",
                                         "10.16.0.6": "web-1.default:10.16.255.254"}
    hc = only(rows, HealthCheck)
    assert hc.vip == "10.96.0.10:80" and hc.lb == lb.name
    assert dict(hc.options)["interval"] == "2" and dict(hc.options)["failure_count"] == "2"


def test_client_ip_affinity():
    c = Cluster().add(f.service("web", cluster_ips=["10.96.0.10"], sessionAffinity="ClientIP"))
    lb = only(rows_of(reconcile_service(c.ctx, "default/web"), SVC), LoadBalancer)
    assert dict(lb.options)["affinity_timeout"] == "10800"


def test_ipv6_service():
    c = Cluster().add(f.service("web", cluster_ips=["fd00::10"]),
                      f.endpoint_slice("web", [f.endpoint("fd16::5")], address_type="IPv6"),
                      f.endpoint_slice("web", [f.endpoint("10.16.0.5")], name="v4"))
    out = reconcile_service(c.ctx, "default/web")
    assert vips(out) == {"[fd00::10]:80": "[fd16::5]:8080"}
    assert dict(only(rows_of(out, SVC), LoadBalancer).options)["hairpin_snat_ip"] == "fd00::10"


def test_dual_stack_service_uses_backends_of_each_family():
    c = Cluster().add(f.service("web", cluster_ips=["10.96.0.10", "fd00::10"]),
                      f.endpoint_slice("web", [f.endpoint("fd16::5")], address_type="IPv6"),
                      f.endpoint_slice("web", [f.endpoint("10.16.0.5")]))
    out = reconcile_service(c.ctx, "default/web")
    assert vips(out) == {"10.96.0.10:80": "10.16.0.5:8080", "[fd00::10]:80": "[fd16::5]:8080"}
    hairpin = dict(only(rows_of(out, SVC), LoadBalancer).options)["hairpin_snat_ip"]
    assert sorted(hairpin.split()) == ["10.96.0.10", "fd00::10"]  # one per family


def test_hairpin_ips_first_of_each_family():
    # the value is part of the LB's content hash: its order must not change
    assert hairpin_ips([("10.96.0.10", 4), ("10.96.0.11", 4), ("fd00::10", 6)]) == \
        "fd00::10 10.96.0.10"
    assert hairpin_ips([("fd00::10", 6), ("10.96.0.10", 4)]) == "10.96.0.10 fd00::10"
    assert hairpin_ips([]) == ""


@pytest.mark.parametrize("spec", [
    {"cluster_ips": ["None"]},
    {"type": "ExternalName", "externalName": "example.com", "ports": []},
    {},  # no ClusterIP allocated yet
])
def test_services_without_lb(spec):
    c = Cluster().add(f.service("web", **spec))
    out = reconcile_service(c.ctx, "default/web")
    assert out.rows == {SVC: []}
    assert status(out).ready is True


def test_deleted_service():
    out = reconcile_service(Cluster().ctx, "default/web")
    assert out.rows == {SVC: []} and out.effects == []


def test_service_in_vpc_namespace_uses_the_vpc_group():
    c = Cluster().add(f.vpc("v1", namespaces=["t1"]),
                      f.service("web", namespace="t1", cluster_ips=["10.96.0.10"]))
    lb = only(rows_of(reconcile_service(c.ctx, "t1/web"), Owner("Service", "t1/web")),
              LoadBalancer)
    assert lb.groups == ("vpc-v1",) and lb.vpc == "v1"


def test_service_vpc_from_annotation():
    c = Cluster().add(f.vpc("v2"), f.service("web", cluster_ips=["10.96.0.10"],
                                             annotations={keys.ANN_VPC: "v2"}))
    lb = only(rows_of(reconcile_service(c.ctx, "default/web"), SVC), LoadBalancer)
    assert lb.groups == ("vpc-v2",)


def test_service_of_unknown_vpc_is_invalid():
    c = Cluster().add(f.service("web", cluster_ips=["10.96.0.10"],
                                annotations={keys.ANN_VPC: "nope"}))
    out = reconcile_service(c.ctx, "default/web")
    assert out.rows == {SVC: None}
    assert out.invalid.reason == "UnknownVPC"
    assert status(out).ready is False


def test_service_with_bad_port_is_invalid():
    c = Cluster().add(f.service("web", cluster_ips=["10.96.0.10"], ports=[{"port": 0}]))
    out = reconcile_service(c.ctx, "default/web")
    assert out.rows == {SVC: None} and out.invalid.reason == "InvalidPort"


def test_service_rows_are_deterministic():
    objs = [f.service("web", cluster_ips=["10.96.0.10"]),
            f.endpoint_slice("web", [f.endpoint(f"10.16.0.{i}") for i in (9, 3, 7)])]
    one = reconcile_service(Cluster().add(*objs).ctx, "default/web")
    two = reconcile_service(Cluster().add(*reversed(objs)).ctx, "default/web")
    assert one.rows == two.rows
    assert [r.content_hash for r in rows_of(one, SVC)] == \
        [r.content_hash for r in rows_of(two, SVC)]
