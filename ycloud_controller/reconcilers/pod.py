"""Pod -> an IP and MAC from its subnet's IPAM, annotations for the CNI, and its switch port.

Subnet choice: annotation ycloud.io/subnet, else the namespace's subnet, else (for a namespace
bound to a VPC) that VPC's first subnet, else the default subnet. A pod keeps the subnet and
addresses it was given (sticky annotations). Tenancy: a pod may name a subnet of another VPC
only when that subnet lists the pod's namespace.
"""

from __future__ import annotations

from typing import Any

from topology import naming
from topology.builders.port import PortSpec, build_port
from ycloud_controller import keys
from ycloud_controller.api.common import Invalid, meta, parse_ip
from ycloud_controller.api.subnet import SubnetView
from ycloud_controller.api.vnic import parse_mac
from ycloud_controller.ipam import Allocation, IpamError
from ycloud_controller.kube import resources as res
from ycloud_controller.network import NetworkModel
from ycloud_controller.reconcilers.base import (
    Context,
    Outcome,
    PatchEffect,
    PortReconciler,
)


def choose_subnet(net: NetworkModel, namespace: str, requested: str | None,
                  sticky: str | None) -> SubnetView:
    if sticky and sticky in net.subnets and sticky != net.join_subnet:
        requested = sticky  # keep the subnet the pod was given, under the same tenancy check
    vpc = net.vpc_of_namespace(namespace)
    if requested:
        sub = net.subnets.get(requested)
        if sub is None or requested == net.join_subnet:
            raise Invalid("UnknownSubnet", f"subnet {requested} does not exist or is not ready")
        if sub.vpc != vpc and namespace not in sub.namespaces:
            raise Invalid("SubnetNotAllowed",
                          f"namespace {namespace} belongs to VPC {vpc}; subnet {requested} of VPC "
                          f"{sub.vpc} does not list it in spec.namespaces")
        return sub
    bound = net.namespace_subnet.get(namespace)
    if bound and bound in net.subnets:
        return net.subnets[bound]
    if vpc == net.default_vpc:
        return net.subnets[net.default_subnet]
    candidates = sorted(s.name for s in net.subnets_of(vpc))
    if not candidates:
        raise Invalid("NoSubnet", f"namespace {namespace} is bound to VPC {vpc}, which has no "
                                  "valid subnet")
    return net.subnets[candidates[0]]


def cni_annotations(sub: SubnetView, alloc: Allocation, mtu: int) -> dict[str, str]:
    return {
        keys.ANN_IP: ",".join(str(ip) for ip in alloc.ips[:len(sub.cidrs)]),
        keys.ANN_MAC: alloc.mac,
        keys.ANN_SWITCH: sub.name,
        keys.ANN_GATEWAY: ",".join(sub.gateway_strs),
        keys.ANN_CIDR: ",".join(sub.cidr_strs),
        keys.ANN_MTU: str(mtu),
    }


def _addresses(ann: dict[str, Any], key: str) -> tuple:
    raw = ann.get(key)
    return tuple(parse_ip(v, key) for v in str(raw).split(",") if v) if raw else ()


def requested_addresses(ann: dict[str, Any]) -> tuple[tuple, str | None]:
    return _addresses(ann, keys.ANN_IP), parse_mac(ann.get(keys.ANN_MAC), keys.ANN_MAC)


def placed_on(net: NetworkModel, switch: str | None, ips: tuple,
              held: Allocation | None) -> str | None:
    """Where the pod was placed: its logical_switch annotation while its addresses fit that
    subnet, else what IPAM holds for it, which a restart restores from the pod's port in NB
    (in manifests mode annotations do not outlive the process). Both sources agree: a
    subnet change that leaves the addresses outside drops the allocation (Ipam.set_subnet)
    and a restart cannot restore it, so the annotation stops counting as well."""
    sub = net.subnets.get(switch) if switch else None
    if sub is not None and all(any(ip in c for c in sub.cidrs) for ip in ips):
        return switch
    return held.subnet if held is not None else None


def fitting(ips: tuple, sub: SubnetView, allocated: tuple) -> tuple:
    """The addresses of ip_address that fit the subnet. Provenance decides, not the process's
    history: an address the controller chose itself (listed in ip_allocated) that no longer
    fits is dropped, to be re-allocated; a user's request (not listed) that does not fit is
    refused, as a fresh process reading the same request decides."""
    outside = [ip for ip in ips if not any(ip in c for c in sub.cidrs)]
    requested = [ip for ip in outside if ip not in allocated]
    if requested:
        raise Invalid("AddressOutsideSubnet", f"{keys.ANN_IP} {requested[0]} is not in subnet "
                                              f"{sub.name} ({','.join(sub.cidr_strs)})")
    return tuple(ip for ip in ips if ip not in outside)


def allocated_marker(sub: SubnetView, alloc: Allocation, ips: tuple,
                     allocated: tuple) -> str | None:
    """ip_allocated after `alloc`: its addresses the user did not ask for (None: no key)."""
    asked = {ip for ip in ips if ip not in allocated}
    chosen = [str(ip) for ip in alloc.ips[:len(sub.cidrs)] if ip not in asked]
    return ",".join(chosen) or None


class PodReconciler(PortReconciler):
    RESOURCE = res.PODS

    def absent(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> bool:
        """Deleted, on the host network, or finished: no port."""
        spec = (obj or {}).get("spec") or {}
        phase = ((obj or {}).get("status") or {}).get("phase")
        return obj is None or bool(spec.get("hostNetwork")) or phase in ("Succeeded", "Failed")

    def reconcile(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> Outcome:
        obj = obj or {}
        ipam_key = self.ipam_key(key)
        net = ctx.network()
        namespace, name = key.split("/", 1)
        ann = meta(obj).get("annotations") or {}
        ips, mac = requested_addresses(ann)
        sub = choose_subnet(net, namespace, ann.get(keys.ANN_SUBNET),
                            placed_on(net, ann.get(keys.ANN_SWITCH), ips,
                                      ctx.ipam.get(ipam_key)))
        allocated = _addresses(ann, keys.ANN_IP_ALLOCATED)
        ips = fitting(ips, sub, allocated)
        try:
            alloc = ctx.ipam.allocate(ipam_key, sub.name, ips=ips, mac=mac)
        except IpamError as exc:
            if exc.reason == "SubnetNotReady":
                return Outcome(rows={self.owner(key): None}, retry=exc.message)
            raise Invalid(exc.reason, exc.message) from None
        port = naming.pod_port(namespace, name)
        rows = build_port(PortSpec(
            name=port, switch=sub.name, owner=self.owner(key), vpc=sub.vpc, mac=alloc.mac,
            ips=tuple(str(ip) for ip in alloc.ips), role=naming.ROLE_POD,
            node=(obj.get("spec") or {}).get("nodeName"), gateways=sub.gateway_strs,
            cidrs=sub.cidr_strs, mtu=sub.mtu or ctx.config.mtu))
        mtu = sub.mtu or ctx.config.mtu
        outcome = self.ready(key, obj, rows, {}, f"port {port} on subnet {sub.name}")
        wanted: dict[str, str | None] = {**cni_annotations(sub, alloc, mtu)}
        marker = allocated_marker(sub, alloc, ips, allocated)
        if marker is not None or keys.ANN_IP_ALLOCATED in ann:  # None: the key goes
            wanted[keys.ANN_IP_ALLOCATED] = marker
        if any(ann.get(k) != v for k, v in wanted.items()):
            outcome.effects.append(PatchEffect(res.PODS, name, namespace,
                                               {"metadata": {"annotations": wanted}}))
        return outcome


reconcile_pod = PodReconciler()
