"""A service's VIPs for one protocol -> one Load_Balancer (+ its health checks).

The LB joins the load-balancer groups it is given (a VPC's group for ClusterIPs: that group is
on every switch of the VPC) and/or sits directly on routers (EIP LBs on a VPC router or a
service gateway). A VIP without backends rejects (TCP RST / ICMP unreachable) instead of
black-holing, because every LB carries options:reject=true.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from topology import naming
from topology.builders.common import is_ipv4
from topology.model import HealthCheck, LoadBalancer, Owner, Row, fmap


def host(ip: str) -> str:
    """An address as OVN writes it before a port: IPv6 in brackets. Anything but an IPv4
    string is parsed, so an invalid address raises ValueError as ipaddress does."""
    if is_ipv4(ip):
        return ip
    return f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip


def endpoint(ip: str, port: int) -> str:
    """'10.0.0.1', 80 -> '10.0.0.1:80'; IPv6 in brackets."""
    return f"{host(ip)}:{port}"


def probe_mapping(port: str, source: str) -> str:
    """An ip_port_mappings value: the backend's logical port and the health checks' source
    address (OVN 23.03: an IPv6 source in brackets, as the backend key is)."""
    return f"{port}:{host(source)}"


@dataclass(frozen=True)
class Vip:
    ip: str
    port: int
    backends: tuple[tuple[str, int], ...]  # (ip, port), sorted by the caller or here
    # a template LB's VIP: the Chassis_Template_Var variable its backends are on each chassis
    template: str | None = None

    @property
    def key(self) -> str:
        return endpoint(self.ip, self.port)

    def value(self) -> str:
        if self.template:
            return f"^{self.template}"
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
    # backend ip -> "lsp:src_ip" (OVN health checks need the backend's port and a source IP;
    # IPv6: "[ip]" -> "lsp:[src_ip]")
    ip_port_mappings: tuple[tuple[str, str], ...] = ()
    extra_ids: tuple[tuple[str, str], ...] = ()
    selection_fields: tuple[str, ...] = ()  # empty: OVS picks a backend by dp_hash
    # a template LB (OVN 23.03): its VIPs' backends are Chassis_Template_Var variables, one
    # address family per LB; OVN cannot health-check it
    template_family: int | None = None


def build_lb(spec: LbSpec) -> list[Row]:
    options = {"reject": "true"}
    if spec.template_family:
        options["template"] = "true"
        options["address-family"] = f"ipv{spec.template_family}"
    if spec.affinity_timeout:
        options["affinity_timeout"] = str(spec.affinity_timeout)
    if spec.hairpin_snat_ip:
        options["hairpin_snat_ip"] = spec.hairpin_snat_ip
    common = {"owner": spec.owner, "vpc": spec.vpc, "ids": spec.extra_ids}
    lb = LoadBalancer(
        name=spec.name, protocol=spec.protocol.lower(),
        vips=fmap({v.key: v.value() for v in spec.vips}),
        options=fmap(options), groups=spec.groups, routers=spec.routers,
        selection_fields=spec.selection_fields,
        ip_port_mappings=fmap(dict(spec.ip_port_mappings)) if spec.health else (), **common)
    rows: list[Row] = [lb]
    if spec.health and spec.protocol.upper() in ("TCP", "UDP") and not spec.template_family:
        h = spec.health
        opts = fmap({"interval": h.interval, "timeout": h.timeout,
                     "success_count": h.success, "failure_count": h.failure})
        rows += [HealthCheck(lb=spec.name, vip=v.key, options=opts, **common)
                 for v in spec.vips if v.backends]
    return rows


# -- a service's LB configurations, and the rows of one placement ------------------------------
SCOPE_CLUSTER = "cluster"  # VIPs reached inside the VPC: ClusterIPs, externalIPs (and the EIP)
SCOPE_EIP = "eip"  # the EIP as the external network reaches it
# OVN Load_Balancer selection_fields of a service gateway's LBs (LbPlacement.service_gateway)
SVCGW_SELECTION_FIELDS = ("ip_dst", "ip_src", "tp_dst", "tp_src")


@dataclass(frozen=True)
class LBConfig:
    """What one Load_Balancer of a service carries, wherever it is placed: its protocol, its
    VIPs with their backends, health checks and options. A service has one per protocol and
    scope (reconcilers/lb_config.py computes them)."""

    scope: str  # SCOPE_CLUSTER | SCOPE_EIP
    protocol: str  # TCP | UDP | SCTP
    vips: tuple[Vip, ...]
    health: Health | None = None
    affinity_timeout: int | None = None
    hairpin_snat_ip: str | None = None
    # node-local (a traffic policy Local): a template LB of this address family whose VIPs
    # expand, on each chassis, to the backends on that chassis
    local_family: int | None = None

    def backend_ips(self) -> set[str]:
        return {ip for v in self.vips for ip, _ in v.backends}


@dataclass(frozen=True)
class LbPlacement:
    """Where a service's LBs of one scope go: a VPC's LB group (ClusterIPs), or directly on a
    router (the EIP LB on the VPC router, or on the pool's service gateway)."""

    scope: str
    vpc: str | None
    groups: tuple[str, ...] = ()
    routers: tuple[str, ...] = ()
    ids: tuple[tuple[str, str], ...] = ()  # external_ids after ycloud.io/service
    selection_fields: tuple[str, ...] = ()

    @classmethod
    @functools.lru_cache(maxsize=1024)  # one per VPC, not one per Service reconcile
    def vpc_group(cls, vpc: str) -> LbPlacement:
        return cls(SCOPE_CLUSTER, vpc, groups=(naming.lb_group(vpc),))

    @classmethod
    def vpc_router(cls, vpc: str, pool: str, eip: str) -> LbPlacement:
        return cls(SCOPE_EIP, vpc, routers=(naming.router(vpc),), ids=_eip_ids(pool, eip))

    @classmethod
    def service_gateway(cls, pool: str, eip: str) -> LbPlacement:
        """On the service gateway the backend is picked by a hash of the connection's
        addresses and ports (Load_Balancer selection_fields), not by OVS's default dp_hash,
        which costs the packet one more datapath recirculation: a pod reaching the EIP
        through svcgw would otherwise nest 7 deep on the gateway chassis when the client or
        the chosen backend sits there, past the userspace datapath's limit of 6 (README,
        Known limits). The price: each new connection through svcgw is an upcall."""
        return cls(SCOPE_EIP, None, routers=(naming.service_gateway(pool),),
                   ids=_eip_ids(pool, eip), selection_fields=SVCGW_SELECTION_FIELDS)


def _eip_ids(pool: str, eip: str) -> tuple[tuple[str, str], ...]:
    return ((naming.POOL, pool), (naming.EIP, eip))


def lb_rows(namespace: str, name: str, owner: Owner, configs: Iterable[LBConfig],
            placement: LbPlacement, mappings: Mapping[str, str] | None = None) -> list[Row]:
    """The Load_Balancer (+ health check) rows of the configs of `placement`'s scope.
    `mappings`: backend ip -> 'port:source' (`probe_mapping`) for OVN health checks (the
    backends we have a port for); each LB carries those of its own backends, keyed as OVN
    reads them (an IPv6 backend in brackets)."""
    rows: list[Row] = []
    ids = ((naming.SERVICE, f"{namespace}/{name}"), *placement.ids)
    for cfg in sorted((c for c in configs if c.scope == placement.scope),
                      key=lambda c: (c.protocol, c.local_family or 0)):
        found = mappings or {}
        ip_port = tuple(sorted((host(ip), found[ip]) for ip in cfg.backend_ips()
                               if ip in found)) if cfg.health else ()
        local = placement.scope == SCOPE_CLUSTER and cfg.local_family
        rows += build_lb(LbSpec(
            name=naming.service_lb(namespace, name, cfg.protocol, placement.scope,
                                   cfg.local_family if local else None),
            owner=owner, vpc=placement.vpc, protocol=cfg.protocol, vips=cfg.vips,
            groups=placement.groups, routers=placement.routers,
            affinity_timeout=cfg.affinity_timeout, hairpin_snat_ip=cfg.hairpin_snat_ip,
            health=None if cfg.local_family else cfg.health,
            ip_port_mappings=() if cfg.local_family else ip_port, extra_ids=ids,
            selection_fields=placement.selection_fields, template_family=cfg.local_family))
    return rows
