"""Service + EndpointSlices -> one Load_Balancer per protocol in its VPC's LB group.

Semantics users of kube-proxy, ovn-kubernetes and kube-ovn rely on: several ports; named
targetPorts resolved through EndpointSlice ports; TCP, UDP and SCTP; only ready endpoints
(unless publishNotReadyAddresses, or the service is health-checked by OVN, which then takes
unhealthy backends out itself), else the serving and terminating ones (KEP-1669); ClientIP
affinity as affinity_timeout; empty VIPs reject; headless and ExternalName services get no
LB; externalIPs are extra VIPs; IPv6 and dual-stack VIPs use the backends of the same
family. The VPC is the one of the owning YusurService (annotation), else the namespace's VPC.
"""

from __future__ import annotations

from typing import Any

from topology.builders.service import LbPlacement, lb_rows
from topology.model import Row
from ycloud_controller import keys
from ycloud_controller.api.common import Invalid
from ycloud_controller.api.service import ServiceView, parse_service
from ycloud_controller.cluster_ips import ClusterIps, consistent, requested_elsewhere
from ycloud_controller.ipam import IpamError
from ycloud_controller.kube import resources as res
from ycloud_controller.network import NetworkModel
from ycloud_controller.reconcilers import service_eip
from ycloud_controller.reconcilers.base import (
    Context,
    NotReady,
    Outcome,
    Reconciler,
    invalid_effects,
    ready_effects,
    refused_effects,
)
from ycloud_controller.reconcilers.health_sources import probe_mappings
from ycloud_controller.reconcilers.lb_config import backend_ips, lb_configs

SLICE_INDEX = "service"


def slice_service_key(obj: dict[str, Any]) -> list[str]:
    """Index function for EndpointSlices: the Service they belong to ("ns/name")."""
    md = obj.get("metadata") or {}
    name = (md.get("labels") or {}).get(keys.SERVICE_NAME_LABEL)
    return [f"{md.get('namespace', 'default')}/{name}"] if name else []


def service_vpc(net: NetworkModel, svc: ServiceView) -> str:
    vpc = svc.vpcs[0] if len(svc.vpcs) == 1 else net.vpc_of_namespace(svc.namespace)
    if vpc not in net.vpcs:
        raise Invalid("UnknownVPC", f"VPC {vpc} of the service does not exist or is invalid")
    return vpc


def service_rows(ctx: Context, svc: ServiceView, vpc: str | None,
                 slices: list[dict[str, Any]],
                 eip: service_eip.EipPlacement | None) -> tuple[list[Row], list[Row]]:
    """(ClusterIP rows, EIP rows): the LBs of one set of configurations in each placement
    (no ClusterIP LB for a multi-VPC service: it has no VPC to hold one)."""
    configs = lb_configs(svc, slices, eip.eip if eip else None)
    mappings = dict(probe_mappings(ctx, svc.vpcs or (vpc,), backend_ips(configs))) \
        if svc.health else {}
    own = ServiceReconciler.owner(svc.key)
    cluster = [] if vpc is None else lb_rows(svc.namespace, svc.name, own, configs,
                                             LbPlacement.vpc_group(vpc), mappings)
    if eip is None:
        return cluster, []
    return cluster, [*lb_rows(svc.namespace, svc.name, own, configs, eip.lbs, mappings),
                     *service_eip.eip_routes(svc, vpc, own, eip)]


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
    ips = ctx.cluster_ips.allocate_spec(key, spec, requested_elsewhere(ctx, key))
    return {**obj, "spec": {**spec, "clusterIP": ips[0], "clusterIPs": ips}}


def claim_cluster_ips(cluster_ips: ClusterIps, key: str, svc: ServiceView) -> None:
    try:
        cluster_ips.claim(key, [str(ip) for ip in svc.cluster_ips])
    except IpamError as exc:
        raise Invalid(exc.reason, exc.message) from None


class ServiceReconciler(Reconciler):
    RESOURCE = res.SERVICES

    def gone(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> Outcome:
        service_eip.release(ctx, key)
        if ctx.cluster_ips is not None:
            ctx.cluster_ips.release(key)
        return super().gone(ctx, key, obj)

    def reconcile(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> Outcome:
        obj = obj or {}
        net = ctx.network()
        if ctx.cluster_ips is not None:  # manifests mode: ClusterIPs as the API server gives
            obj = with_cluster_ip(ctx, key, obj)
        svc = parse_service(obj)
        if ctx.cluster_ips is not None:
            claim_cluster_ips(ctx.cluster_ips, key, svc)
        if not svc.has_lb:
            service_eip.release(ctx, key)
            return Outcome(rows={self.owner(key): []}, effects=ready_effects(
                res.SERVICES, obj, {}, "headless or ExternalName: no load balancer"))
        slices = ctx.store("EndpointSlice").by_index(SLICE_INDEX, key)
        vpc = None if len(svc.vpcs) > 1 else service_vpc(net, svc)
        try:
            eip = service_eip.eip_placement(ctx, svc, vpc)
        except (Invalid, NotReady) as exc:  # the ClusterIP part still works without an EIP
            rows, _ = service_rows(ctx, svc, vpc, slices, None)
            if isinstance(exc, NotReady):
                return Outcome(rows={self.owner(key): rows}, retry=str(exc))
            return Outcome(rows={self.owner(key): rows}, invalid=exc,
                           effects=invalid_effects(res.SERVICES, obj, exc),
                           on_refused=refused_effects(res.SERVICES, obj))
        rows, eip_rows = service_rows(ctx, svc, vpc, slices, eip)
        return self.ready(key, obj, rows + eip_rows, service_eip.eip_status(eip))


reconcile_service = ServiceReconciler()
