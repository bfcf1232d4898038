"""Kubernetes Service (core/v1) as the service reconciler needs it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ycloud_controller import keys
from ycloud_controller.api.common import (
    Invalid,
    IPAddress,
    int_field,
    meta,
    name_of,
    namespace_of,
    parse_ip,
    spec,
)

PROTOCOLS = ("TCP", "UDP", "SCTP")
DEFAULT_AFFINITY_TIMEOUT = 10800


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    protocol: str
    target_port: int | str


@dataclass(frozen=True)
class HealthCheck:
    interval: int = 5
    timeout: int = 3
    success: int = 1
    failure: int = 3

    def to_json(self) -> str:
        return json.dumps({"interval": self.interval, "timeout": self.timeout,
                           "successCount": self.success, "failureCount": self.failure},
                          sort_keys=True)


@dataclass(frozen=True)
class ServiceView:
    namespace: str
    name: str
    type: str
    cluster_ips: tuple[IPAddress, ...]
    external_ips: tuple[IPAddress, ...]
    ports: tuple[ServicePort, ...]
    affinity_timeout: int | None
    publish_not_ready: bool
    headless: bool
    load_balancer_ip: IPAddress | None
    eip_pool: str | None
    health: HealthCheck | None
    vpcs: tuple[str, ...]  # from the owning YusurService; empty: the namespace's VPC
    lb_class: str | None = None
    internal_local: bool = False  # internalTrafficPolicy: Local
    external_local: bool = False  # externalTrafficPolicy: Local (LoadBalancer)

    @property
    def eip_local(self) -> bool:
        """externalTrafficPolicy: Local where it can hold: an EIP of one VPC (on the VPC
        router, run on the active gateway). A multi-VPC EIP's service gateway SNATs: its
        backends stay cluster-wide."""
        return self.external_local and len(self.vpcs) <= 1

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def has_lb(self) -> bool:
        return not self.headless and self.type != "ExternalName" and bool(self.cluster_ips)


def parse_health(raw: Any) -> HealthCheck:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise Invalid("InvalidHealthCheck", f"health check is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise Invalid("InvalidHealthCheck", "healthCheck must be an object")
    return HealthCheck(
        interval=int_field(raw.get("interval"), "healthCheck.interval", 1, 3600, 5) or 5,
        timeout=int_field(raw.get("timeout"), "healthCheck.timeout", 1, 3600, 3) or 3,
        success=int_field(raw.get("successCount"), "healthCheck.successCount", 1, 100, 1) or 1,
        failure=int_field(raw.get("failureCount"), "healthCheck.failureCount", 1, 100, 3) or 3)


def parse_ports(raw: Any, field: str = "ports") -> tuple[ServicePort, ...]:
    if not isinstance(raw, list) or not raw:
        raise Invalid("InvalidPort", f"{field} needs at least one port")
    out, seen = [], set()
    for i, p in enumerate(raw):
        if not isinstance(p, dict):
            raise Invalid("InvalidPort", f"{field}[{i}] must be an object")
        port = p.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise Invalid("InvalidPort", f"{field}[{i}].port {port!r} is not in 1..65535")
        proto = str(p.get("protocol") or "TCP").upper()
        if proto not in PROTOCOLS:
            raise Invalid("InvalidPort", f"{field}[{i}].protocol {proto!r} is not TCP, UDP or "
                                         "SCTP")
        target = p.get("targetPort", port)
        if isinstance(target, int) and not isinstance(target, bool):
            if not 1 <= target <= 65535:
                raise Invalid("InvalidPort", f"{field}[{i}].targetPort {target} not in 1..65535")
        elif not isinstance(target, str) or not target:
            raise Invalid("InvalidPort", f"{field}[{i}].targetPort must be a number or a name")
        elif target.isdigit():
            target = int(target)
        if (port, proto) in seen:
            raise Invalid("InvalidPort", f"{field}: port {port}/{proto} is listed twice")
        seen.add((port, proto))
        out.append(ServicePort(str(p.get("name") or ""), port, proto, target))
    return tuple(out)


def parse_service(obj: dict[str, Any]) -> ServiceView:
    s = spec(obj)
    ann = meta(obj).get("annotations") or {}
    stype = str(s.get("type") or "ClusterIP")
    raw_ips = s.get("clusterIPs") or ([s["clusterIP"]] if s.get("clusterIP") else [])
    headless = any(ip == "None" for ip in raw_ips)
    cluster_ips = () if headless else tuple(parse_ip(ip, "clusterIPs") for ip in raw_ips)
    ports = parse_ports(s.get("ports")) if stype != "ExternalName" and s.get("ports") else ()
    affinity = None
    if s.get("sessionAffinity") == "ClientIP":
        cfg = ((s.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        affinity = int_field(cfg.get("timeoutSeconds"), "timeoutSeconds", 1, 86400,
                             DEFAULT_AFFINITY_TIMEOUT)
    lb_ip = ann.get(keys.ANN_EIP) or s.get("loadBalancerIP")
    vpcs = tuple(v for v in str(ann.get(keys.ANN_VPC, "")).split(",") if v)
    return ServiceView(
        namespace=namespace_of(obj) or "default", name=name_of(obj), type=stype,
        cluster_ips=cluster_ips,
        external_ips=tuple(parse_ip(ip, "externalIPs") for ip in s.get("externalIPs") or []),
        ports=ports, affinity_timeout=affinity,
        publish_not_ready=bool(s.get("publishNotReadyAddresses")), headless=headless,
        load_balancer_ip=parse_ip(lb_ip, "loadBalancerIP") if lb_ip else None,
        eip_pool=ann.get(keys.ANN_EIP_POOL),
        health=parse_health(ann[keys.ANN_HEALTH_CHECK]) if ann.get(keys.ANN_HEALTH_CHECK) else None,
        vpcs=vpcs, lb_class=s.get("loadBalancerClass") or None,
        internal_local=s.get("internalTrafficPolicy") == "Local",
        external_local=s.get("externalTrafficPolicy") == "Local" and stype == "LoadBalancer")
