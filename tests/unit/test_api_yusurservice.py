"""ycloud_controller.api.yusurservice: the YusurService view (scope, VPCs, load balancer,
affinity, health check) and the reason each bad input is refused.
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

import pytest

from tests.unit.api_objects import DEFAULT_VPC, obj, reason
from ycloud_controller.api.service import HealthCheck, ServicePort
from ycloud_controller.api.yusurservice import parse_yusurservice


def ysvc(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": "ClusterIP", "ports": [{"port": 80, "targetPort": 8080}],
                            "selector": {"app": "web"}}
    base.update(spec)
    return obj("ys", {k: v for k, v in base.items() if v is not None}, namespace="ns")


def test_yusurservice_scope_vpc():
    view = parse_yusurservice(ysvc(scope="vpc", vpc="vpc1", clusterIP="10.96.0.20"),
                              DEFAULT_VPC)
    assert view.key == "ns/ys" and view.scope == "vpc" and view.vpcs == ("vpc1",)
    assert view.ports == (ServicePort("", 80, "TCP", 8080),)
    assert view.selector == (("app", "web"),)
    assert view.cluster_ip == ip_address("10.96.0.20")
    assert view.eip is None and view.eip_pool is None
    assert view.health == HealthCheck()  # probes are on by default


def test_yusurservice_scope_inferred():
    assert parse_yusurservice(ysvc(vpc="vpc1"), DEFAULT_VPC).scope == "vpc"
    view = parse_yusurservice(ysvc(), DEFAULT_VPC)
    assert view.scope == "cluster" and view.vpcs == (DEFAULT_VPC,)
    view = parse_yusurservice(ysvc(type="LoadBalancer", vpcs=["a", "b"]), DEFAULT_VPC)
    assert view.scope == "multi-vpc" and view.vpcs == ("a", "b")


def test_yusurservice_cluster_scope_ignores_vpc_list():
    view = parse_yusurservice(ysvc(scope="cluster", vpcs=["a"]), DEFAULT_VPC)
    assert view.vpcs == (DEFAULT_VPC,)


def test_yusurservice_load_balancer():
    view = parse_yusurservice(ysvc(type="LoadBalancer", scope="multi-vpc", vpcs="a,b",
                                   eip="192.168.100.10", eipPool="p1",
                                   sessionAffinity="ClientIP",
                                   healthCheck={"interval": 2, "failureCount": 2}),
                              DEFAULT_VPC)
    assert view.type == "LoadBalancer" and view.vpcs == ("a", "b")
    assert view.eip == ip_address("192.168.100.10") and view.eip_pool == "p1"
    assert view.affinity_timeout == 10800
    assert view.health == HealthCheck(interval=2, timeout=3, success=1, failure=2)


def test_yusurservice_affinity_timeout():
    view = parse_yusurservice(ysvc(sessionAffinity="ClientIP",
                                   sessionAffinityTimeoutSeconds=30), DEFAULT_VPC)
    assert view.affinity_timeout == 30


def test_yusurservice_health_check_disabled():
    assert parse_yusurservice(ysvc(healthCheck={"enabled": False}), DEFAULT_VPC).health is None
    assert parse_yusurservice(ysvc(healthCheck={"enabled": True, "interval": 9}),
                              DEFAULT_VPC).health == HealthCheck(interval=9)


@pytest.mark.parametrize("spec,why", [
    ({"type": "NodePort"}, "InvalidType"),
    ({"type": None}, "InvalidType"),
    ({"scope": "galaxy"}, "InvalidScope"),
    ({"scope": "vpc"}, "InvalidScope"),  # no spec.vpc
    ({"scope": "multi-vpc", "type": "LoadBalancer"}, "InvalidScope"),  # no vpcs
    ({"scope": "multi-vpc", "type": "LoadBalancer", "vpcs": ["a", "a"]}, "InvalidScope"),
    ({"scope": "multi-vpc", "vpcs": ["a", "b"]}, "InvalidScope"),  # ClusterIP
    ({"selector": None}, "InvalidSelector"),
    ({"selector": {}}, "InvalidSelector"),
    ({"selector": ["app=web"]}, "InvalidSelector"),
    ({"eip": "192.168.100.10"}, "InvalidEIP"),  # ClusterIP with an EIP
    ({"ports": []}, "InvalidPort"),
    ({"ports": [{"port": 0}]}, "InvalidPort"),
    ({"healthCheck": {"interval": 0}}, "InvalidSpec"),
    ({"healthCheck": "x"}, "InvalidHealthCheck"),
    ({"clusterIP": "nope"}, "InvalidIP"),
    ({"sessionAffinity": "ClientIP", "sessionAffinityTimeoutSeconds": 0}, "InvalidSpec"),
])
def test_yusurservice_invalid(spec, why):
    assert reason(parse_yusurservice, ysvc(**spec), DEFAULT_VPC) == why
