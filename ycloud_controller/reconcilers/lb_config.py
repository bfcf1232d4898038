"""A Service's load-balancer configurations, computed once whatever carries them.

`lb_configs` turns a Service and its EndpointSlices into one `LBConfig` per protocol and scope
(the ClusterIP scope: ClusterIPs, externalIPs and the EIP, which pods of the VPC reach
without leaving it; the EIP scope: the EIP as the external network reaches it), as
ovn-kubernetes' buildServiceLBConfigs does. `topology.builders.service.lb_rows` then makes the
rows of one placement from them: the VPC's LB group, the VPC router, or the pool's service
gateway. Both the ClusterIP and the EIP paths of the Service reconciler go through here.

Semantics users of kube-proxy, ovn-kubernetes and kube-ovn rely on: several ports; named
targetPorts resolved through EndpointSlice ports; only ready endpoints (unless
publishNotReadyAddresses, or the service is health-checked by OVN, which then takes unhealthy
backends out itself), and when a port has none in a family, its serving and terminating
endpoints (KEP-1669); ClientIP affinity as affinity_timeout; IPv6 and dual-stack VIPs use the
backends of the same family.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from topology import naming
from topology.builders.service import SCOPE_CLUSTER, SCOPE_EIP, Health, LBConfig, Vip, endpoint
from ycloud_controller.api.service import ServicePort, ServiceView

LOCAL_INDEX = "local-policy"  # index of the Service store, and its one value


def local_policy_index(obj: dict[str, Any]) -> list[str]:
    """Index function for Services: a Service with a traffic policy Local (its node-local
    backends are template variables of every chassis) is indexed under LOCAL_INDEX."""
    spec = obj.get("spec") or {}
    local = spec.get("internalTrafficPolicy") == "Local" or (
        spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local")
    return [LOCAL_INDEX] if local else []


def slice_port(sl: dict[str, Any], port: ServicePort) -> Any:
    """The number an EndpointSlice gives `port` (same name and protocol), or None."""
    for p in sl.get("ports") or []:
        if (p.get("name") or "") == port.name and (p.get("protocol") or "TCP") == port.protocol:
            return p.get("port")
    return None


def _conditions(ep: dict[str, Any]) -> tuple[bool, bool, bool]:
    """(ready, serving, terminating) of an endpoint, read as the EndpointSlice API says:
    unknown readiness is ready, unknown serving defers to ready, unknown terminating is not."""
    cond = ep.get("conditions") or {}
    ready = cond.get("ready") is not False
    serving = ready if cond.get("serving") is None else bool(cond.get("serving"))
    return ready, serving, cond.get("terminating") is True


Backend = tuple[str, int]  # (address, port)


def _candidates(slices: Iterable[dict[str, Any]], port: ServicePort, family: int,
                include_not_ready: bool) -> list[tuple[str | None, Backend, bool]]:
    """(node, backend, usable) of every endpoint of `port` in `family` that is usable or
    serving and terminating (usable False). Usable: not terminating, and ready unless told
    otherwise (publishNotReadyAddresses, OVN health checks). Serving and terminating
    (KEP-1669): shutting down but still serving, a backend only while the port has no usable
    endpoint in that family, so a rolling update does not drop connections."""
    out: list[tuple[str | None, Backend, bool]] = []
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
            ready, serving, terminating = _conditions(ep)
            ok = not terminating and (include_not_ready or ready)
            if ok or (serving and terminating):
                node = ep.get("nodeName")
                for addr in ep.get("addresses") or []:
                    out.append((node, (addr, int(number)), ok))
    return out


def _select(candidates: Iterable[tuple[str | None, Backend, bool]]) -> list[Backend]:
    """The usable backends, else the serving and terminating ones."""
    found = list(candidates)
    return sorted({be for _, be, ok in found if ok} or {be for _, be, _ in found})


def backends(slices: Iterable[dict[str, Any]], port: ServicePort, family: int,
             include_not_ready: bool) -> list[Backend]:
    """The (address, port) backends of `port` in `family`: the usable endpoints, else (as
    kube-proxy's CategorizeEndpoints and ovn-kubernetes do, per port and family) the serving
    and terminating ones."""
    return _select(_candidates(slices, port, family, include_not_ready))


def backends_by_node(slices: Iterable[dict[str, Any]], port: ServicePort, family: int,
                     include_not_ready: bool) -> dict[str, list[Backend]]:
    """Node -> the backends on it (traffic policy Local): its usable endpoints, else its
    serving and terminating ones, chosen per node as kube-proxy does for Local."""
    by_node: dict[str, list[tuple[str | None, Backend, bool]]] = defaultdict(list)
    for cand in _candidates(slices, port, family, include_not_ready):
        if cand[0]:
            by_node[str(cand[0])].append(cand)
    return {node: _select(cands) for node, cands in by_node.items()}


def vip_addresses(svc: ServiceView, extra_vips: tuple[str, ...] = ()) -> list[tuple[str, int]]:
    """(address, IP family) of every VIP: ClusterIPs, externalIPs, then `extra_vips`."""
    ips = [*svc.cluster_ips, *svc.external_ips, *(ipaddress.ip_address(v) for v in extra_vips)]
    return [(str(ip), ip.version) for ip in ips]


def hairpin_ips(cluster_ips: list[tuple[str, int]]) -> str:
    """hairpin_snat_ip: the first ClusterIP of each family (the last family listed first)."""
    return " ".join({family: ip for ip, family in reversed(cluster_ips)}.values())


def lb_configs(svc: ServiceView, slices: list[dict[str, Any]],
               eip: str | None = None) -> tuple[LBConfig, ...]:
    """The service's LB configurations: per protocol, the ClusterIP scope (with `eip` as one
    more VIP) and, with an EIP, the EIP scope (the backends of the EIP's family, no hairpin
    SNAT). internalTrafficPolicy: Local moves the ClusterIPs to node-local template LBs (one
    per protocol and family); externalTrafficPolicy: Local makes the EIP scope node-local
    (`template_values` gives each chassis its backends)."""
    include_not_ready = svc.publish_not_ready or svc.health is not None
    health = (Health(svc.health.interval, svc.health.timeout, svc.health.success,
                     svc.health.failure) if svc.health else None)
    cluster_vips = vip_addresses(svc, (eip,) if eip else ())
    n_cluster = len(svc.cluster_ips)
    hairpin = hairpin_ips(cluster_vips[:n_cluster]) or None
    plain = cluster_vips[n_cluster:] if svc.internal_local else cluster_vips
    scopes = [(SCOPE_CLUSTER, plain, hairpin)] if plain else []
    if eip and not svc.eip_local:
        scopes.append((SCOPE_EIP, vip_addresses(svc, (eip,))[-1:], None))
    out: list[LBConfig] = []
    for scope, vips, scope_hairpin in scopes:
        by_proto: dict[str, list[Vip]] = defaultdict(list)
        for sp in svc.ports:
            for ip, family in vips:
                bes = backends(slices, sp, family, include_not_ready)
                by_proto[sp.protocol].append(Vip(ip, sp.port, tuple(bes)))
        out += [LBConfig(scope, proto, tuple(proto_vips), health, svc.affinity_timeout,
                         scope_hairpin) for proto, proto_vips in sorted(by_proto.items())]
    local: list[tuple[str, list[tuple[str, int]]]] = []
    if svc.internal_local:
        local.append((SCOPE_CLUSTER, cluster_vips[:n_cluster]))
    if eip and svc.eip_local:
        local.append((SCOPE_EIP, vip_addresses(svc, (eip,))[-1:]))
    for scope, vips in local:
        for family in sorted({f for _, f in vips}):
            fam_hairpin = hairpin_ips([v for v in vips if v[1] == family]) \
                if scope == SCOPE_CLUSTER else None
            for proto in sorted({sp.protocol for sp in svc.ports}):
                tvips = tuple(Vip(ip, sp.port, (), naming.template_var(
                    svc.key, scope, proto, sp.port, family))
                    for sp in svc.ports if sp.protocol == proto
                    for ip, f in vips if f == family)
                out.append(LBConfig(scope, proto, tvips, None, svc.affinity_timeout,
                                    fam_hairpin or None, local_family=family))
    return tuple(out)


def template_values(svc: ServiceView, slices: list[dict[str, Any]],
                    ) -> dict[str, dict[str, str]]:
    """Template variable -> node -> the backends on that node ('ip:port,...'), of every
    node-local VIP the service's LBs may have (`lb_configs` names the same variables). OVN
    does not health-check template LBs: a health-checked service's not-ready endpoints are
    left out here, as without health checks."""
    include_not_ready = svc.publish_not_ready
    scopes: list[tuple[str, tuple[int, ...]]] = []
    if svc.internal_local:
        scopes.append((SCOPE_CLUSTER, tuple(sorted({ip.version for ip in svc.cluster_ips}))))
    if svc.eip_local and svc.type == "LoadBalancer":
        scopes.append((SCOPE_EIP, (4, 6)))  # the EIP's family is the pool's
    out: dict[str, dict[str, str]] = {}
    for scope, families in scopes:
        for family in families:
            for sp in svc.ports:
                by_node = backends_by_node(slices, sp, family, include_not_ready)
                out[naming.template_var(svc.key, scope, sp.protocol, sp.port, family)] = {
                    node: ",".join(endpoint(ip, port) for ip, port in bes)
                    for node, bes in by_node.items()}
    return out


def backend_ips(configs: Iterable[LBConfig]) -> set[str]:
    return {ip for cfg in configs for ip in cfg.backend_ips()}
