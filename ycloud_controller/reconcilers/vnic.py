"""Vnic -> addresses from its subnet's IPAM (primary plus extra "VNicIP" addresses) and a
switch port like a pod's, bound on the Vnic's node; status carries the addresses."""

from __future__ import annotations

from typing import Any

from topology import naming
from topology.builders.port import PortSpec, build_port
from ycloud_controller.api.common import Invalid
from ycloud_controller.api.vnic import parse_vnic
from ycloud_controller.ipam import IpamError
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import (
    Context,
    Outcome,
    PortReconciler,
)
from ycloud_controller.reconcilers.pod import choose_subnet


class VnicReconciler(PortReconciler):
    RESOURCE = res.VNICS

    def reconcile(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> Outcome:
        net = ctx.network()
        view = parse_vnic(obj or {})
        sub = choose_subnet(net, view.namespace, view.subnet, None)
        for ip in (*((view.ip,) if view.ip else ()), *view.extra_ips):
            if not any(ip in c for c in sub.cidrs):
                raise Invalid("AddressOutsideSubnet", f"{ip} is not in subnet {sub.name} "
                                                      f"({','.join(sub.cidr_strs)})")
        try:
            alloc = ctx.ipam.allocate(self.ipam_key(key), sub.name,
                                      ips=(view.ip,) if view.ip else (), mac=view.mac,
                                      extra=view.extra_ips, extra_count=view.extra_count)
        except IpamError as exc:
            if exc.reason == "SubnetNotReady":
                return Outcome(rows={self.owner(key): None}, retry=exc.message)
            raise Invalid(exc.reason, exc.message) from None
        ips = tuple(str(ip) for ip in alloc.ips)
        port = naming.vnic_port(view.namespace, view.name)
        rows = build_port(PortSpec(
            name=port, switch=sub.name, owner=self.owner(key), vpc=sub.vpc, mac=alloc.mac,
            ips=ips, role=naming.ROLE_VNIC, node=view.node, gateways=sub.gateway_strs,
            cidrs=sub.cidr_strs, mtu=sub.mtu or ctx.config.mtu))
        families = len(sub.cidrs)
        status = {"ip": ",".join(ips[:families]), "mac": alloc.mac,
                  "extraIPs": list(ips[families:]), "port": port, "logicalSwitch": sub.name}
        return self.ready(key, obj, rows, status)


reconcile_vnic = VnicReconciler()
