"""YusurService -> a selector-less Service, its EndpointSlices and one NetworkProbe per backend.

Everything it creates carries an ownerReference to the YusurService (Kubernetes garbage-collects
it) and the label ycloud.io/yusurservice. The service reconciler then treats the Service like
any other: ClusterIP + scope vpc is scenario 1, LoadBalancer + scope vpc scenario 3,
LoadBalancer + multi-vpc scenario 4. With health checks on (the default), endpoints carry the
NetworkProbe's verdict as `ready`, and OVN's own monitor keeps probing every backend so an
unhealthy one returns to the VIP as soon as it answers again.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from typing import Any

from ycloud_controller import keys
from ycloud_controller.api.common import Invalid, meta, overlaps
from ycloud_controller.api.service import ServicePort
from ycloud_controller.api.subnet import SubnetView
from ycloud_controller.api.yusurservice import YusurServiceView, parse_yusurservice
from ycloud_controller.kube import resources as res
from ycloud_controller.network import NetworkModel
from ycloud_controller.reconcilers.base import (
    Context,
    DeleteEffect,
    Effect,
    Outcome,
    Reconciler,
    StatusEffect,
    UpsertEffect,
    warning_effects,
)
from ycloud_controller.reconcilers.ysvc_backends import Backend, check_overlaps, select

# endpoints per EndpointSlice: the EndpointSlice controller's default (the API server refuses
# more than 1000)
MAX_SLICE_ENDPOINTS = 100


def owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    md = meta(obj)
    return {"apiVersion": res.YUSURSERVICES.api_version, "kind": res.YUSURSERVICES.kind,
            "name": md["name"], "uid": md.get("uid", ""), "controller": True}


def _port_name(p: ServicePort, count: int) -> str:
    return p.name or (f"{p.protocol.lower()}-{p.port}" if count > 1 else "")


def _service(view: YusurServiceView, obj: dict[str, Any]) -> dict[str, Any]:
    ann = {keys.ANN_VPC: ",".join(view.vpcs)}
    if view.health:
        ann[keys.ANN_HEALTH_CHECK] = view.health.to_json()
    if view.eip:
        ann[keys.ANN_EIP] = str(view.eip)
    if view.eip_pool:
        ann[keys.ANN_EIP_POOL] = view.eip_pool
    spec: dict[str, Any] = {
        "type": view.type,
        "ports": [{"name": _port_name(p, len(view.ports)), "port": p.port,
                   "protocol": p.protocol, "targetPort": p.target_port} for p in view.ports],
    }
    if view.cluster_ip and view.scope != "multi-vpc":
        spec["clusterIP"] = str(view.cluster_ip)
        spec["clusterIPs"] = [str(view.cluster_ip)]
    if view.type == "LoadBalancer":
        spec["allocateLoadBalancerNodePorts"] = False
        spec["loadBalancerClass"] = keys.LB_CLASS
    if view.affinity_timeout:
        spec["sessionAffinity"] = "ClientIP"
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": view.affinity_timeout}}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": view.name, "namespace": view.namespace,
                         "labels": {keys.YSVC_LABEL: view.name}, "annotations": ann,
                         "ownerReferences": [owner_ref(obj)]},
            "spec": spec}


def _probe_state(ctx: Context, view: YusurServiceView, be: Backend) -> str:
    probe = ctx.store("NetworkProbe").get(f"{view.namespace}/{be.probe_name(view.name)}")
    return ((probe or {}).get("status") or {}).get("state") or "Unknown"


def _slices(ctx: Context, view: YusurServiceView, obj: dict[str, Any],
            backends: list[Backend]) -> list[dict[str, Any]]:
    groups: dict[tuple, dict[str, list]] = defaultdict(lambda: {"IPv4": [], "IPv6": []})
    for be in backends:
        resolved = tuple((_port_name(p, len(view.ports)), be.port_for(p), p.protocol)
                         for p in view.ports)
        resolved = tuple(r for r in resolved if r[1] is not None)
        if not resolved:
            continue
        ready = not view.health or _probe_state(ctx, view, be) != "Offline"
        family = "IPv6" if ipaddress.ip_address(be.ip).version == 6 else "IPv4"
        groups[resolved][family].append({
            "addresses": [be.ip], "conditions": {"ready": ready, "serving": ready},
            "nodeName": be.node,
            "targetRef": {"kind": be.kind, "namespace": be.namespace, "name": be.name}})
    out = []
    for i, (resolved, families) in enumerate(sorted(groups.items())):
        for family, endpoints in families.items():
            endpoints.sort(key=lambda e: e["addresses"][0])
            for c in range(0, len(endpoints), MAX_SLICE_ENDPOINTS):
                name = f"{view.name}-ycloud-{family.lower()}-{i}"
                out.append({
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": f"{name}-{c // MAX_SLICE_ENDPOINTS}" if c else name,
                                 "namespace": view.namespace,
                                 "labels": {keys.SERVICE_NAME_LABEL: view.name,
                                            keys.SLICE_MANAGED_BY: keys.SLICE_MANAGER,
                                            keys.YSVC_LABEL: view.name},
                                 "ownerReferences": [owner_ref(obj)]},
                    "addressType": family,
                    "endpoints": endpoints[c:c + MAX_SLICE_ENDPOINTS],
                    "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in resolved]})
    return out


def _probes(view: YusurServiceView, obj: dict[str, Any],
            backends: list[Backend]) -> list[dict[str, Any]]:
    if view.health is None:
        return []
    port = next((p for p in view.ports if p.protocol in ("TCP", "UDP")), None)
    if port is None:
        return []
    h = view.health
    out = []
    for be in backends:
        number = be.port_for(port)
        if number is None:
            continue
        out.append({
            "apiVersion": res.NETWORKPROBES.api_version, "kind": "NetworkProbe",
            "metadata": {"name": be.probe_name(view.name), "namespace": view.namespace,
                         "labels": {keys.YSVC_LABEL: view.name},
                         "ownerReferences": [owner_ref(obj)]},
            "spec": {"service": view.name,
                     "target": {"kind": be.kind, "name": be.name, "namespace": be.namespace},
                     "ip": be.ip, "port": number, "protocol": port.protocol,
                     "vpc": be.vpc, "subnet": be.subnet, "interval": h.interval,
                     "timeout": h.timeout, "successThreshold": h.success,
                     "failureThreshold": h.failure}})
    return out


def _validate(ctx: Context, view: YusurServiceView) -> None:
    net = ctx.network()
    for vpc in view.vpcs:
        if vpc not in net.vpcs:
            raise Invalid("UnknownVPC", f"VPC {vpc} does not exist or is invalid")
    if view.cluster_ip is not None:
        ip = view.cluster_ip
        service_nets = [ipaddress.ip_network(c.strip())
                        for c in ctx.config.service_cidr.split(",")]
        inside = any(ip.version == n.version and ip in n for n in service_nets) or any(
            ip in c for s in net.subnets_of(view.vpcs[0]) for c in s.cidrs
            if c.version == ip.version)
        if view.scope == "multi-vpc":
            raise Invalid("ClusterIPOutsideVPC",
                          f"clusterIP {ip}: a multi-VPC service has no VPC to hold a ClusterIP "
                          "(it is served through its EIP)")
        if not inside:
            raise Invalid("ClusterIPOutsideVPC",
                          f"clusterIP {ip} is neither in the service CIDR "
                          f"{ctx.config.service_cidr} nor in a subnet of VPC {view.vpcs[0]}")
    if view.eip is not None:
        pool = net.pool_for(view.eip_pool)
        if pool is None or not pool.contains(view.eip):
            raise Invalid("EIPOutsidePool", f"eip {view.eip} is in no EipPool"
                          + (f" ({view.eip_pool})" if view.eip_pool else ""))


def _check_subnet_overlaps(net: NetworkModel, view: YusurServiceView) -> None:
    """The service gateway routes every subnet of every backend VPC over that VPC's link: two
    VPCs with overlapping subnets cannot both be reached from it."""
    seen: list[tuple[str, SubnetView]] = []
    for vpc in view.vpcs:
        mine = [s for s in net.subnets_of(vpc) if s.name != net.join_subnet]
        for other_vpc, other in seen:
            clash = next((s for s in mine if overlaps(other.cidrs, s.cidrs)), None)
            if clash is not None:
                raise Invalid("OverlappingSubnets",
                              f"subnet {clash.name} ({','.join(clash.cidr_strs)}) of VPC {vpc} "
                              f"overlaps subnet {other.name} ({','.join(other.cidr_strs)}) of "
                              f"VPC {other_vpc}: one service gateway cannot route both")
        seen += [(vpc, s) for s in mine]


def _service_refused(existing: dict[str, Any] | None) -> dict[str, Any] | None:
    """The owned Service's ycloud.io/NetworkReady condition when it says False for the
    Service as it is now (an EIP taken or outside its pool, no pool, NB refused its rows)."""
    if existing is None:
        return None
    conds = (existing.get("status") or {}).get("conditions") or []
    cond = next((c for c in conds if c.get("type") == keys.NETWORK_READY), None)
    if cond is None or cond.get("status") != "False":
        return None
    observed = cond.get("observedGeneration")
    if observed is not None and observed != meta(existing).get("generation"):
        return None  # written for an older spec of the Service
    return cond


_CHILDREN = (("EndpointSlice", res.ENDPOINTSLICES), ("NetworkProbe", res.NETWORKPROBES))


# EndpointSlices and NetworkProbes by the YusurService that made them ("namespace/name", from
# their YSVC_LABEL)
OWNED_INDEX = "yusurservice"


def owned_index(obj: dict[str, Any]) -> list[str]:
    md = meta(obj)
    owner = (md.get("labels") or {}).get(keys.YSVC_LABEL)
    return [f"{md.get('namespace')}/{owner}"] if owner else []


def _owned(ctx: Context, kind: str, namespace: str, name: str) -> list[dict[str, Any]]:
    return ctx.store(kind).by_index(OWNED_INDEX, f"{namespace}/{name}")


class YusurServiceReconciler(Reconciler):
    """Writes only to Kubernetes; what it owns is garbage-collected through ownerReferences
    when it is deleted."""

    RESOURCE = res.YUSURSERVICES
    HAS_ROWS = False

    def refuse(self, ctx: Context, key: str, obj: dict[str, Any] | None,
               exc: Invalid) -> Outcome:
        outcome = super().refuse(ctx, key, obj, exc)
        if exc.reason == "ServiceConflict":
            # made while the Service was not yet seen: they would feed a Service not ours
            namespace, name = key.split("/", 1)
            outcome.effects += [
                DeleteEffect(resource, meta(o)["name"], namespace, meta(o).get("uid"))
                for kind, resource in _CHILDREN for o in _owned(ctx, kind, namespace, name)]
        return outcome

    def reconcile(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> Outcome:
        obj = obj or {}
        namespace, name = key.split("/", 1)
        view = parse_yusurservice(obj, ctx.network().default_vpc)
        _validate(ctx, view)
        backends = select(ctx, view)
        if len(view.vpcs) > 1:
            check_overlaps(backends)  # the precise complaint first, then the general one
            _check_subnet_overlaps(ctx.network(), view)
        existing = ctx.store("Service").get(key)
        labels = meta(existing).get("labels") or {} if existing is not None else {}
        if existing is not None and labels.get(keys.YSVC_LABEL) != name:
            raise Invalid("ServiceConflict", f"a Service {key} exists and is not owned by this "
                                             "YusurService")
        effects: list[Effect] = []
        svc = _service(view, obj)
        old_ip = ((existing or {}).get("spec") or {}).get("clusterIP")
        if existing is not None and view.cluster_ip and old_ip not in (None, str(view.cluster_ip)):
            # clusterIP is immutable
            effects.append(DeleteEffect(res.SERVICES, name, namespace, meta(existing).get("uid")))
        else:
            effects.append(UpsertEffect(res.SERVICES, svc))
        slices, probes = _slices(ctx, view, obj, backends), _probes(view, obj, backends)
        effects += [UpsertEffect(res.ENDPOINTSLICES, s) for s in slices]
        effects += [UpsertEffect(res.NETWORKPROBES, p) for p in probes]
        for (kind, resource), wanted in zip(_CHILDREN, (slices, probes), strict=True):
            names = {meta(w)["name"] for w in wanted}
            effects += [DeleteEffect(resource, meta(o)["name"], namespace, meta(o).get("uid"))
                        for o in _owned(ctx, kind, namespace, name) if meta(o)["name"] not in names]
        healthy = sum(1 for be in backends
                      if not view.health or _probe_state(ctx, view, be) != "Offline")
        ingress = (((existing or {}).get("status") or {}).get("loadBalancer") or {}).get(
            "ingress") or []
        status = {"clusterIP": "" if len(view.vpcs) > 1 else (old_ip or ""),
                  "eip": ingress[0].get("ip", "") if ingress else "",
                  "backends": f"{healthy}/{len(backends)}", "healthyBackends": healthy,
                  "totalBackends": len(backends)}
        message = f"{healthy}/{len(backends)} backends healthy in {', '.join(view.vpcs)}"
        refused = _service_refused(existing)
        if refused is not None:  # surfaced here: users look at the YusurService, not its Service
            reason, message = refused.get("reason") or "ServiceNotReady", (
                f"Service {key}: {refused.get('message', '')}")
            effects += warning_effects(res.YUSURSERVICES, obj, status, reason, message)
            return Outcome(effects=effects)
        effects.append(StatusEffect(res.YUSURSERVICES, obj, status, True,
                                    keys.REASON_RECONCILED, message))
        return Outcome(effects=effects)


reconcile_yusur_service = YusurServiceReconciler()
