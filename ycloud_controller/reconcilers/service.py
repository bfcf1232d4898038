"""Service + EndpointSlices -> one Load_Balancer per protocol in its VPC's LB group.

Semantics users of kube-proxy, ovn-kubernetes and kube-ovn rely on: several ports; named
targetPorts resolved through EndpointSlice ports; TCP, UDP and SCTP; only ready endpoints
(unless publishNotReadyAddresses, or the service is health-checked by OVN, which then takes
unhealthy backends out itself); ClientIP affinity as affinity_timeout; empty VIPs reject;
headless and ExternalName services get no LB; externalIPs are extra VIPs; IPv6 and
dual-stack VIPs use the backends of the same family. The VPC is the one of the owning
YusurService (annotation), else the namespace's VPC.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from topology import naming
from topology.builders.service import Health, LbSpec, Vip, build_lb
from topology.model import Owner, Row
from ycloud_controller.api.common import Invalid
from ycloud_controller.api.service import ServicePort, ServiceView, parse_service
from ycloud_controller.cluster_ips import ClusterIps, consistent, requested_elsewhere
from ycloud_controller.ipam import IpamError
from ycloud_controller.kube import resources as res
from ycloud_controller.network import NetworkModel
from ycloud_controller.reconcilers import service_eip
from ycloud_controller.reconcilers.base import (
    Context,
    NotReady,
    Outcome,
    invalid_effects,
    ready_effects,
    refused_effects,
)
from ycloud_controller.reconcilers.health_sources import probe_mappings

KIND = "Service"
SLICE_INDEX = "service"


def owner(key: str) -> Owner:
    return Owner(KIND, key)


def slice_service_key(obj: dict[str, Any]) -> list[str]:
    """Index function for EndpointSlices: the Service they belong to ("ns/name")."""
    md = obj.get("metadata") or {}
    name = (md.get("labels") or {}).get("kubernetes.io/service-name")
    return [f"{md.get('namespace', 'default')}/{name}"] if name else []


def slice_port(sl: dict[str, Any], port: ServicePort) -> Any:
    """The number an EndpointSlice gives `port` (same name and protocol), or None."""
    for p in sl.get("ports") or []:
        if (p.get("name") or "") == port.name and (p.get("protocol") or "TCP") == port.protocol:
            return p.get("port")
    return None


def serving(ep: dict[str, Any], include_not_ready: bool) -> bool:
    """Whether an endpoint is a backend: not terminating, and ready unless told otherwise."""
    cond = ep.get("conditions") or {}
    if cond.get("terminating"):
        return False
    return include_not_ready or cond.get("ready") is not False


def backends(slices: Iterable[dict[str, Any]], port: ServicePort, family: int,
             include_not_ready: bool) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    want_type = "IPv4" if family == 4 else "IPv6"
    for sl in slices:
        if sl.get("addressType", "IPv4") != want_type:
            continue
        number = slice_port(sl, port)
        if number is None:
            if isinstance(port.target_port, int) and not sl.get("ports"):
                number = port.target_port
            else:
                continue
        for ep in sl.get("endpoints") or []:
            if serving(ep, include_not_ready):
                for addr in ep.get("addresses") or []:
                    out.append((addr, int(number)))
    return sorted(set(out))


def service_vpc(net: NetworkModel, svc: ServiceView) -> str:
    vpc = svc.vpcs[0] if len(svc.vpcs) == 1 else net.vpc_of_namespace(svc.namespace)
    if vpc not in net.vpcs:
        raise Invalid("UnknownVPC", f"VPC {vpc} of the service does not exist or is invalid")
    return vpc


def vip_addresses(svc: ServiceView, extra_vips: tuple[str, ...] = ()) -> list[tuple[str, int]]:
    """(address, IP family) of every VIP: ClusterIPs, externalIPs, then `extra_vips`."""
    ips = [*svc.cluster_ips, *svc.external_ips, *(ipaddress.ip_address(v) for v in extra_vips)]
    return [(str(ip), ip.version) for ip in ips]


def hairpin_ips(cluster_ips: list[tuple[str, int]]) -> str:
    """hairpin_snat_ip: the first ClusterIP of each family (the last family listed first)."""
    return " ".join({family: ip for ip, family in reversed(cluster_ips)}.values())


def cluster_lbs(ctx: Context, svc: ServiceView, vpc: str, slices: list[dict[str, Any]],
                extra_vips: tuple[str, ...] = ()) -> list[Row]:
    """ClusterIP LBs; `extra_vips` (the service's EIP) let the VPC reach it from inside."""
    by_proto: dict[str, list[Vip]] = defaultdict(list)
    include_not_ready = svc.publish_not_ready or svc.health is not None
    vips = vip_addresses(svc, extra_vips)
    for sp in svc.ports:
        for ip, family in vips:
            bes = backends(slices, sp, family, include_not_ready)
            by_proto[sp.protocol].append(Vip(ip, sp.port, tuple(bes)))
    health = (Health(svc.health.interval, svc.health.timeout, svc.health.success,
                     svc.health.failure) if svc.health else None)
    hairpin = hairpin_ips(vips[:len(svc.cluster_ips)])
    rows: list[Row] = []
    for proto, proto_vips in sorted(by_proto.items()):
        mappings = probe_mappings(ctx, (vpc,), {ip for v in proto_vips for ip, _ in v.backends}) \
            if health else ()
        rows += build_lb(LbSpec(
            name=naming.service_lb(svc.namespace, svc.name, proto), owner=owner(svc.key),
            vpc=vpc, protocol=proto, vips=tuple(proto_vips), groups=(naming.lb_group(vpc),),
            affinity_timeout=svc.affinity_timeout, hairpin_snat_ip=hairpin or None,
            health=health, ip_port_mappings=mappings,
            extra_ids=((naming.SERVICE, svc.key),)))
    return rows


def with_cluster_ip(ctx: Context, key: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Manifests mode: a Service whose file names no ClusterIP has the one the emulator
    gives it (the same the Endpoints reconcile writes to it), also before that write comes
    back, so that a ClusterIP taken out of a file does not take the VIP down meanwhile."""
    spec = obj.get("spec") or {}
    if spec.get("type") == "ExternalName" or ctx.cluster_ips is None:
        return obj
    if spec.get("clusterIP"):
        fix = consistent(spec)
        return obj if fix is None else {**obj, "spec": {**spec, **fix}}
    ip = ctx.cluster_ips.allocate(key, requested_elsewhere(ctx, key))
    return {**obj, "spec": {**spec, "clusterIP": ip, "clusterIPs": [ip]}}


def claim_cluster_ips(cluster_ips: ClusterIps, key: str, svc: ServiceView) -> None:
    try:
        cluster_ips.claim(key, [str(ip) for ip in svc.cluster_ips])
    except IpamError as exc:
        raise Invalid(exc.reason, exc.message) from None


def reconcile_service(ctx: Context, key: str) -> Outcome:
    obj = ctx.store(KIND).get(key)
    if obj is None:
        service_eip.release(ctx, key)
        if ctx.cluster_ips is not None:
            ctx.cluster_ips.release(key)
        return Outcome(rows={owner(key): []})
    net = ctx.network()
    try:
        if ctx.cluster_ips is not None:  # manifests mode: ClusterIPs as the API server gives
            obj = with_cluster_ip(ctx, key, obj)
        svc = parse_service(obj)
        if ctx.cluster_ips is not None:
            claim_cluster_ips(ctx.cluster_ips, key, svc)
        if not svc.has_lb:
            service_eip.release(ctx, key)
            return Outcome(rows={owner(key): []}, effects=ready_effects(
                res.SERVICES, obj, {}, "headless or ExternalName: no load balancer"))
        slices = ctx.store("EndpointSlice").by_index(SLICE_INDEX, key)
        multi = len(svc.vpcs) > 1
        vpc = None if multi else service_vpc(net, svc)
        include = svc.publish_not_ready or svc.health is not None

        def backends_of(sp: ServicePort, family: int) -> list[tuple[str, int]]:
            return backends(slices, sp, family, include)

        eip_problem: Invalid | NotReady | None = None
        try:
            eip_rows, eip_status, eip = service_eip.eip_lbs(ctx, svc, vpc, owner(key),
                                                            backends_of)
        except (Invalid, NotReady) as exc:  # the ClusterIP part still works without an EIP
            eip_problem, eip_rows, eip_status, eip = exc, [], {}, None
        rows = [] if multi else cluster_lbs(ctx, svc, vpc, slices, (eip,) if eip else ())
    except Invalid as exc:
        return Outcome(rows={owner(key): None}, invalid=exc,
                       effects=invalid_effects(res.SERVICES, obj, exc))
    if isinstance(eip_problem, NotReady):
        return Outcome(rows={owner(key): rows}, retry=str(eip_problem))
    if isinstance(eip_problem, Invalid):
        return Outcome(rows={owner(key): rows}, invalid=eip_problem,
                       effects=invalid_effects(res.SERVICES, obj, eip_problem),
                       on_refused=refused_effects(res.SERVICES, obj))
    return Outcome(rows={owner(key): rows + eip_rows},
                   effects=ready_effects(res.SERVICES, obj, eip_status),
                   on_refused=refused_effects(res.SERVICES, obj))
