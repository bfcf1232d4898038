"""YusurService (iaas.yusur.io/v1, namespaced): a service over pods and Vnics in VPC(s)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ycloud_controller.api.common import (
    Invalid,
    IPAddress,
    int_field,
    name_of,
    namespace_of,
    parse_ip,
    spec,
    str_list,
)
from ycloud_controller.api.service import HealthCheck, ServicePort, parse_health, parse_ports

TYPES = ("ClusterIP", "LoadBalancer")
SCOPES = ("vpc", "cluster", "multi-vpc")
# the owned Service takes the YusurService's name, which must therefore be a DNS-1035 label;
# it is also the value of the ycloud.io/yusurservice label (at most 63 characters)
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class YusurServiceView:
    namespace: str
    name: str
    type: str
    scope: str
    vpcs: tuple[str, ...]  # the VPC(s) backends come from; scope cluster: the default VPC
    ports: tuple[ServicePort, ...]
    selector: tuple[tuple[str, str], ...]
    cluster_ip: IPAddress | None
    eip: IPAddress | None
    eip_pool: str | None
    affinity_timeout: int | None
    health: HealthCheck | None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_yusurservice(obj: dict[str, Any], default_vpc: str) -> YusurServiceView:
    name = name_of(obj)
    if not DNS1035_LABEL.match(name):
        raise Invalid("InvalidName", f"name {name!r} cannot name the Service this YusurService "
                                     "owns: at most 63 lowercase letters, digits or '-', "
                                     "starting with a letter and ending with a letter or digit")
    s = spec(obj)
    stype = s.get("type")
    if stype not in TYPES:
        raise Invalid("InvalidType", f"type must be ClusterIP or LoadBalancer, got {stype!r}")
    vpc = s.get("vpc")
    vpcs = str_list(s.get("vpcs"), "vpcs")
    scope = s.get("scope") or ("vpc" if vpc else "multi-vpc" if vpcs else "cluster")
    if scope not in SCOPES:
        raise Invalid("InvalidScope", f"scope must be vpc, cluster or multi-vpc, got {scope!r}")
    if scope == "vpc":
        if not vpc:
            raise Invalid("InvalidScope", "scope vpc needs spec.vpc")
        chosen: tuple[str, ...] = (str(vpc),)
    elif scope == "cluster":
        chosen = (default_vpc,)
    else:
        if len(vpcs) < 1:
            raise Invalid("InvalidScope", "scope multi-vpc needs spec.vpcs")
        if len(set(vpcs)) != len(vpcs):
            raise Invalid("InvalidScope", "spec.vpcs lists a VPC twice")
        if stype != "LoadBalancer":
            raise Invalid("InvalidScope", "scope multi-vpc is served through an EIP: "
                                          "type must be LoadBalancer")
        chosen = vpcs
    selector = s.get("selector") or {}
    if not isinstance(selector, dict) or not selector:
        raise Invalid("InvalidSelector", "selector must be a non-empty map of labels")
    affinity = None
    if s.get("sessionAffinity") == "ClientIP":
        affinity = int_field(s.get("sessionAffinityTimeoutSeconds"),
                             "sessionAffinityTimeoutSeconds", 1, 86400, 10800)
    hc = s.get("healthCheck")
    if hc is None:
        hc = {}  # probes are on by default: one NetworkProbe per backend
    enabled = not (isinstance(hc, dict) and hc.get("enabled") is False)
    health = parse_health(hc) if enabled else None
    cluster_ip = parse_ip(s["clusterIP"], "clusterIP") if s.get("clusterIP") else None
    eip = parse_ip(s["eip"], "eip") if s.get("eip") else None
    if eip is not None and stype != "LoadBalancer":
        raise Invalid("InvalidEIP", "eip is only valid with type LoadBalancer")
    return YusurServiceView(
        namespace=namespace_of(obj) or "default", name=name, type=stype, scope=scope,
        vpcs=chosen, ports=parse_ports(s.get("ports")),
        selector=tuple(sorted((str(k), str(v)) for k, v in selector.items())),
        cluster_ip=cluster_ip, eip=eip, eip_pool=s.get("eipPool") or None,
        affinity_timeout=affinity, health=health)
