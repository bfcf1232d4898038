"""Manifests mode only: what Kubernetes itself would do for Services without a cluster.

There is no endpoint controller and no API server allocating ClusterIPs when the controller
runs on a directory of manifests. This reconciler plays both for one Service: it gives the
Service a ClusterIP from the service CIDR when it has none (ycloud_controller.cluster_ips;
the Service reconciler refuses one another Service holds), and derives its EndpointSlices
from the pods its selector matches, using the addresses our IPAM gave them (pod annotations),
resolving named targetPorts through the pods' container ports. Selector-less Services (those
of a YusurService) are left to their owner.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from ycloud_controller import keys
from ycloud_controller.api.common import meta
from ycloud_controller.api.subnet import SubnetView
from ycloud_controller.cluster_ips import (
    ClusterIps,
    consistent,
    requested_elsewhere,
    spec_cluster_ips,
)
from ycloud_controller.ipam import IpamError
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import (
    Context,
    DeleteEffect,
    Effect,
    Outcome,
    PatchEffect,
    UpsertEffect,
)
from ycloud_controller.reconcilers.selection import selected

KIND = "Endpoints"


def _pod_ready(pod: dict[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == keys.READY:
            return cond.get("status") != "False"
    return True


def _conditions(svc: dict[str, Any], pod: dict[str, Any]) -> dict[str, bool]:
    """An endpoint's conditions as the EndpointSlice controller writes them: serving is the
    pod's readiness, terminating its deletion; ready is serving and not terminating, or
    always with publishNotReadyAddresses."""
    serving = _pod_ready(pod)
    terminating = bool(meta(pod).get("deletionTimestamp"))
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    return {"ready": publish or (serving and not terminating), "serving": serving,
            "terminating": terminating}


def _resolve(pod: dict[str, Any], target: Any) -> int | None:
    if isinstance(target, int):
        return target
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return port.get("containerPort")
    return None


def _fits(ip: str, sub: SubnetView) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in c for c in sub.cidrs)


def _slices(svc: dict[str, Any], pods: list[dict[str, Any]],
            subnets: Mapping[str, SubnetView]) -> list[dict[str, Any]]:
    """A pod is an endpoint once the controller placed it (annotation logical_switch, with
    its addresses) on a subnet that still exists and holds its addresses: an address a user
    asked for in the annotation is not the pod's until then, a pod whose subnet is gone has
    no port, and one whose requested address no longer fits its subnet is refused (a fresh
    process, reading the request from the manifest, never places it)."""
    ns, name = meta(svc)["namespace"], meta(svc)["name"]
    ports = (svc.get("spec") or {}).get("ports") or []
    groups: dict[tuple, dict[str, list]] = defaultdict(lambda: {"IPv4": [], "IPv6": []})
    for pod in pods:
        ann = meta(pod).get("annotations") or {}
        ips = [ip for ip in str(ann.get(keys.ANN_IP, "")).split(",") if ip]
        sub = subnets.get(str(ann.get(keys.ANN_SWITCH)))
        if not ips or sub is None or not all(_fits(ip, sub) for ip in ips) or \
                (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        resolved = tuple((p.get("name") or "", _resolve(pod, p.get("targetPort", p.get("port"))),
                          p.get("protocol") or "TCP") for p in ports)
        resolved = tuple(r for r in resolved if r[1] is not None)
        for ip in ips:
            family = "IPv6" if ":" in ip else "IPv4"
            groups[resolved][family].append({
                "addresses": [ip], "conditions": _conditions(svc, pod),
                "nodeName": (pod.get("spec") or {}).get("nodeName"),
                "targetRef": {"kind": "Pod", "namespace": ns, "name": meta(pod)["name"]}})
    out = []
    for i, (resolved, families) in enumerate(sorted(groups.items())):
        for family, endpoints in families.items():
            if not endpoints:
                continue
            out.append({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{name}-{family.lower()}-{i}", "namespace": ns,
                             "labels": {keys.SERVICE_NAME_LABEL: name,
                                        keys.SLICE_MANAGED_BY: keys.SLICE_EMULATOR}},
                "addressType": family,
                "endpoints": sorted(endpoints, key=lambda e: e["addresses"][0]),
                "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in resolved],
            })
    return out


def reconcile_endpoints(ctx: Context, key: str, allocator: ClusterIps) -> Outcome:
    namespace, name = key.split("/", 1)
    svc = ctx.store("Service").get(key)
    existing = [s for s in ctx.store("EndpointSlice").by_index("service", key)
                if (meta(s).get("labels") or {}).get(keys.SLICE_MANAGED_BY) == keys.SLICE_EMULATOR]
    effects: list[Effect] = []
    wanted: list[dict[str, Any]] = []
    if svc is None:
        allocator.release(key)
    else:
        spec = svc.get("spec") or {}
        if not spec.get("clusterIP") and spec.get("type") != "ExternalName":
            ips = allocator.allocate_spec(key, spec, requested_elsewhere(ctx, key))
            effects.append(PatchEffect(res.SERVICES, name, namespace,
                                       {"spec": {"clusterIP": ips[0], "clusterIPs": ips}}))
        elif spec.get("clusterIP") not in (None, "None"):
            fix = consistent(spec)
            if fix is not None:
                effects.append(PatchEffect(res.SERVICES, name, namespace, {"spec": fix}))
            try:
                allocator.claim(key, spec_cluster_ips(spec))
            except IpamError:
                pass  # held by another Service: the Service reconcile refuses it
        selector = spec.get("selector")
        if selector:
            pods = selected(ctx.store("Pod"), selector, namespace)
            wanted = _slices(svc, pods, ctx.network().subnets)
    wanted_names = {meta(s)["name"] for s in wanted}
    current = {meta(s)["name"]: s for s in existing}
    for sl in wanted:
        old = current.get(meta(sl)["name"])
        if old is None or any(old.get(k) != sl.get(k) for k in ("endpoints", "ports",
                                                                 "addressType")):
            effects.append(UpsertEffect(res.ENDPOINTSLICES, sl))
    effects += [DeleteEffect(res.ENDPOINTSLICES, n, namespace, meta(s).get("uid"))
                for n, s in current.items() if n not in wanted_names]
    return Outcome(effects=effects)
