"""A service's VIPs for one protocol -> one Load_Balancer (+ its health checks).

The LB joins the load-balancer groups it is given (a VPC's group for ClusterIPs: that group is
on every switch of the VPC) and/or sits directly on routers (EIP LBs on a VPC router or a
service gateway). A VIP without backends rejects (TCP RST / ICMP unreachable) instead of
black-holing, because every LB carries options:reject=true.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from topology.builders.common import is_ipv4
from topology.model import HealthCheck, LoadBalancer, Owner, Row, fmap


def endpoint(ip: str, port: int) -> str:
    """'10.0.0.1', 80 -> '10.0.0.1:80'; IPv6 in brackets. Anything but an IPv4 string is
    parsed, so an invalid address raises ValueError as ipaddress does."""
    if is_ipv4(ip):
        return f"{ip}:{port}"
    return f"[{ip}]:{port}" if ipaddress.ip_address(ip).version == 6 else f"{ip}:{port}"


@dataclass(frozen=True)
class Vip:
    ip: str
    port: int
    backends: tuple[tuple[str, int], ...]  # (ip, port), sorted by the caller or here

    @property
    def key(self) -> str:
        return endpoint(self.ip, self.port)

    def value(self) -> str:
        return ",".join([endpoint(ip, port) for ip, port in sorted(set(self.backends))])


@dataclass(frozen=True)
class Health:
    interval: int
    timeout: int
    success: int
    failure: int


@dataclass(frozen=True)
class LbSpec:
    name: str
    owner: Owner
    vpc: str | None
    protocol: str  # TCP | UDP | SCTP
    vips: tuple[Vip, ...]
    groups: tuple[str, ...] = ()
    routers: tuple[str, ...] = ()
    affinity_timeout: int | None = None
    hairpin_snat_ip: str | None = None
    health: Health | None = None
    # backend ip -> "lsp:src_ip" (OVN health checks need the backend's port and a source IP)
    ip_port_mappings: tuple[tuple[str, str], ...] = ()
    extra_ids: tuple[tuple[str, str], ...] = ()


def build_lb(spec: LbSpec) -> list[Row]:
    options = {"reject": "true"}
    if spec.affinity_timeout:
        options["affinity_timeout"] = str(spec.affinity_timeout)
    if spec.hairpin_snat_ip:
        options["hairpin_snat_ip"] = spec.hairpin_snat_ip
    common = {"owner": spec.owner, "vpc": spec.vpc, "ids": spec.extra_ids}
    lb = LoadBalancer(
        name=spec.name, protocol=spec.protocol.lower(),
        vips=fmap({v.key: v.value() for v in spec.vips}),
        options=fmap(options), groups=spec.groups, routers=spec.routers,
        ip_port_mappings=fmap(dict(spec.ip_port_mappings)) if spec.health else (), **common)
    rows: list[Row] = [lb]
    if spec.health and spec.protocol.upper() in ("TCP", "UDP"):
        h = spec.health
        opts = fmap({"interval": h.interval, "timeout": h.timeout,
                     "success_count": h.success, "failure_count": h.failure})
        rows += [HealthCheck(lb=spec.name, vip=v.key, options=opts, **common)
                 for v in spec.vips if v.backends]
    return rows
