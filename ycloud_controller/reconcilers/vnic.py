"""Vnic -> addresses from its subnet's IPAM (primary plus extra "VNicIP" addresses) and a
switch port like a pod's, bound on the Vnic's node; status carries the addresses."""

from __future__ import annotations

from topology import naming
from topology.builders.port import PortSpec, build_port
from topology.model import Owner
from ycloud_controller.api.common import Invalid
from ycloud_controller.api.vnic import parse_vnic
from ycloud_controller.ipam import IpamError
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import (
    Context,
    Outcome,
    invalid_effects,
    ready_effects,
    refused_effects,
)
from ycloud_controller.reconcilers.pod import choose_subnet

KIND = "Vnic"


def owner(key: str) -> Owner:
    return Owner(KIND, key)


def reconcile_vnic(ctx: Context, key: str) -> Outcome:
    obj = ctx.store(KIND).get(key)
    ipam_key = f"{KIND}/{key}"
    if obj is None:
        ctx.ipam.release(ipam_key)
        return Outcome(rows={owner(key): []})
    net = ctx.network()
    try:
        view = parse_vnic(obj)
        sub = choose_subnet(net, view.namespace, view.subnet, None)
        for ip in (*((view.ip,) if view.ip else ()), *view.extra_ips):
            if not any(ip in c for c in sub.cidrs):
                raise Invalid("AddressOutsideSubnet", f"{ip} is not in subnet {sub.name} "
                                                      f"({','.join(sub.cidr_strs)})")
        alloc = ctx.ipam.allocate(ipam_key, sub.name, ips=(view.ip,) if view.ip else (),
                                  mac=view.mac, extra=view.extra_ips,
                                  extra_count=view.extra_count)
    except IpamError as exc:
        if exc.reason == "SubnetNotReady":
            return Outcome(rows={owner(key): None}, retry=exc.message)
        err = Invalid(exc.reason, exc.message)
        return Outcome(rows={owner(key): None}, invalid=err,
                       effects=invalid_effects(res.VNICS, obj, err))
    except Invalid as exc:
        return Outcome(rows={owner(key): None}, invalid=exc,
                       effects=invalid_effects(res.VNICS, obj, exc))
    ips = tuple(str(ip) for ip in alloc.ips)
    port = naming.vnic_port(view.namespace, view.name)
    rows = build_port(PortSpec(
        name=port, switch=sub.name, owner=owner(key), vpc=sub.vpc, mac=alloc.mac, ips=ips,
        role=naming.ROLE_VNIC, node=view.node, gateways=sub.gateway_strs, cidrs=sub.cidr_strs,
        mtu=sub.mtu or ctx.config.mtu))
    families = len(sub.cidrs)
    status = {"ip": ",".join(ips[:families]), "mac": alloc.mac, "extraIPs": list(ips[families:]),
              "port": port, "logicalSwitch": sub.name}
    return Outcome(rows={owner(key): rows}, effects=ready_effects(res.VNICS, obj, status),
                   on_refused=refused_effects(res.VNICS, obj))
