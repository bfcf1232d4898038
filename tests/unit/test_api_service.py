"""ycloud_controller.api.service: the Service view (ClusterIPs, ports, affinity, the ycloud.io
annotations, Services without a load balancer), ports and health checks, and the reason each
bad input is refused.
"""

from __future__ import annotations

import json
from ipaddress import ip_address
from typing import Any

import pytest

from tests.unit.api_objects import obj, reason
from ycloud_controller import keys
from ycloud_controller.api.service import (
    DEFAULT_AFFINITY_TIMEOUT,
    HealthCheck,
    ServicePort,
    parse_health,
    parse_ports,
    parse_service,
)


def svc(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    o = obj("web", spec, namespace="ns")
    if annotations:
        o["metadata"]["annotations"] = annotations
    return o


def test_service_view():
    view = parse_service(svc({
        "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::10"],
        "externalIPs": ["1.2.3.4"],
        "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                  {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "5353"}],
        "publishNotReadyAddresses": True}))
    assert view.key == "ns/web" and view.type == "ClusterIP"
    assert view.cluster_ips == (ip_address("10.96.0.10"), ip_address("fd00::10"))
    assert view.external_ips == (ip_address("1.2.3.4"),)
    assert view.ports == (ServicePort("http", 80, "TCP", "http"),
                          ServicePort("dns", 53, "UDP", 5353))
    assert view.publish_not_ready and view.has_lb and not view.headless
    assert view.affinity_timeout is None and view.health is None and view.vpcs == ()


def test_service_cluster_ip_only():
    view = parse_service(svc({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}))
    assert view.cluster_ips == (ip_address("10.96.0.10",),)
    assert view.ports == (ServicePort("", 80, "TCP", 80),)


def test_service_headless_and_external_name_have_no_lb():
    headless = parse_service(svc({"clusterIP": "None", "ports": [{"port": 80}]}))
    assert headless.headless and not headless.has_lb and headless.cluster_ips == ()
    ext = parse_service(svc({"type": "ExternalName", "externalName": "example.com"}))
    assert not ext.has_lb and ext.ports == ()
    no_ip = parse_service(svc({"ports": [{"port": 80}]}))
    assert not no_ip.has_lb


def test_service_client_ip_affinity():
    view = parse_service(svc({"clusterIP": "10.96.0.10", "ports": [{"port": 80}],
                              "sessionAffinity": "ClientIP"}))
    assert view.affinity_timeout == DEFAULT_AFFINITY_TIMEOUT == 10800
    view = parse_service(svc({"clusterIP": "10.96.0.10", "ports": [{"port": 80}],
                              "sessionAffinity": "ClientIP",
                              "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}))
    assert view.affinity_timeout == 60
    view = parse_service(svc({"clusterIP": "10.96.0.10", "ports": [{"port": 80}],
                              "sessionAffinity": "None"}))
    assert view.affinity_timeout is None
    assert reason(parse_service, svc({
        "clusterIP": "10.96.0.10", "ports": [{"port": 80}], "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}})) == "InvalidSpec"


def test_service_annotations():
    view = parse_service(svc({"type": "LoadBalancer", "clusterIP": "10.96.0.10",
                              "ports": [{"port": 80}], "loadBalancerIP": "192.168.100.9"},
                             {"ycloud.io/eip-pool": "p1", keys.ANN_VPC: "v1,v2",
                              keys.ANN_HEALTH_CHECK: json.dumps({"interval": 2})}))
    assert view.load_balancer_ip == ip_address("192.168.100.9")
    assert view.eip_pool == "p1"
    assert view.vpcs == ("v1", "v2")
    assert view.health == HealthCheck(interval=2, timeout=3, success=1, failure=3)
    # the EIP annotation wins over spec.loadBalancerIP
    view = parse_service(svc({"type": "LoadBalancer", "clusterIP": "10.96.0.10",
                              "ports": [{"port": 80}], "loadBalancerIP": "192.168.100.9"},
                             {"ycloud.io/eip": "192.168.100.7"}))
    assert view.load_balancer_ip == ip_address("192.168.100.7")


@pytest.mark.parametrize("ports", [
    [{"port": 0}], [{"port": 70000}], [{"port": "80"}], [{"port": True}],
    [{"port": 80, "targetPort": 0}], [{"port": 80, "targetPort": 70000}],
    [{"port": 80, "targetPort": ""}], [{"port": 80, "targetPort": 1.5}],
    [{"port": 80, "protocol": "ICMP"}],
    [{"port": 80}, {"port": 80, "protocol": "tcp"}],
    [], "80", ["x"],
])
def test_bad_ports(ports):
    assert reason(parse_ports, ports) == "InvalidPort"


def test_ports_same_number_different_protocols():
    got = parse_ports([{"port": 53, "protocol": "udp"}, {"port": 53}, {"port": 53,
                                                                      "protocol": "SCTP"}])
    assert [p.protocol for p in got] == ["UDP", "TCP", "SCTP"]


def test_ports_named_and_numeric_targets():
    got = parse_ports([{"port": 80, "targetPort": "web"}, {"port": 81, "targetPort": "8081"},
                       {"port": 82, "targetPort": 8082}, {"port": 83}])
    assert [p.target_port for p in got] == ["web", 8081, 8082, 83]


def test_parse_health():
    assert parse_health({}) == HealthCheck(5, 3, 1, 3)
    assert parse_health('{"interval": 2, "timeout": 1, "successCount": 2, "failureCount": 4}') \
        == HealthCheck(2, 1, 2, 4)
    assert reason(parse_health, "not json") == "InvalidHealthCheck"
    assert reason(parse_health, [1]) == "InvalidHealthCheck"
    assert reason(parse_health, {"interval": 0}) == "InvalidSpec"
    assert reason(parse_health, {"failureCount": 101}) == "InvalidSpec"
    # round trip through the annotation the YusurService writes
    hc = HealthCheck(2, 1, 2, 4)
    assert parse_health(hc.to_json()) == hc


def test_service_bad_health_annotation():
    assert reason(parse_service, svc({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]},
                                     {keys.ANN_HEALTH_CHECK: "{"})) == "InvalidHealthCheck"


def test_service_bad_ips():
    assert reason(parse_service, svc({"clusterIP": "10.96.0.300",
                                      "ports": [{"port": 80}]})) == "InvalidIP"
    assert reason(parse_service, svc({"clusterIP": "10.96.0.1", "externalIPs": ["x"],
                                      "ports": [{"port": 80}]})) == "InvalidIP"
