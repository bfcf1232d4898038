"""Backends of a YusurService: pods and Vnics (with their extra IPs) in its scope's VPCs.

The selector matches labels of pods and Vnics in any namespace; scope decides which VPCs the
backends may come from (tenancy: a scope-vpc service never sees another VPC's workloads).
Addresses come from IPAM, so a backend appears once the controller has placed its port.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from ycloud_controller.api.common import Invalid, key_of, meta
from ycloud_controller.api.service import ServicePort
from ycloud_controller.api.yusurservice import YusurServiceView
from ycloud_controller.reconcilers.base import Context
from ycloud_controller.reconcilers.endpoints import _resolve
from ycloud_controller.reconcilers.selection import selected

NAME_RE = re.compile(r"[^a-z0-9.-]+")


@dataclass(frozen=True)
class Backend:
    kind: str  # Pod | Vnic
    namespace: str
    name: str
    ip: str
    vpc: str
    subnet: str
    node: str | None
    extra: bool  # an extra ("VNicIP") address of a Vnic
    obj: dict[str, Any]

    def port_for(self, port: ServicePort) -> int | None:
        if isinstance(port.target_port, int):
            return port.target_port
        return _resolve(self.obj, port.target_port) if self.kind == "Pod" else None

    def probe_name(self, service: str) -> str:
        base = f"{service}-{self.kind.lower()}-{self.name}"
        if self.extra or self.namespace != meta(self.obj).get("namespace"):
            base += "-" + self.ip.replace(".", "-").replace(":", "-")
        base = NAME_RE.sub("-", base.lower()).strip("-.")
        if len(base) > 253:
            digest = hashlib.blake2b(base.encode(), digest_size=5).hexdigest()
            base = f"{base[:242]}-{digest}"
        return base


def select(ctx: Context, view: YusurServiceView) -> list[Backend]:
    net = ctx.network()
    out: list[Backend] = []
    for kind in ("Pod", "Vnic"):
        for obj in selected(ctx.store(kind), view.selector):
            md = meta(obj)
            spec = obj.get("spec") or {}
            if kind == "Pod" and (spec.get("hostNetwork") or (obj.get("status") or {}).get(
                    "phase") in ("Succeeded", "Failed")):
                continue
            alloc = ctx.ipam.get(f"{kind}/{key_of(obj)}")
            if alloc is None:
                continue
            sub = net.subnets.get(alloc.subnet)
            if sub is None or sub.vpc not in view.vpcs:
                continue
            families = len(sub.cidrs)
            node = spec.get("nodeName") if kind == "Pod" else spec.get("node")
            for i, ip in enumerate(alloc.ips):
                if kind == "Pod" and i >= families:
                    break
                out.append(Backend(kind, md.get("namespace", "default"), md["name"], str(ip),
                                   sub.vpc, sub.name, node, i >= families, obj))
    return sorted(out, key=lambda b: (b.vpc, b.ip))


def check_overlaps(backends: list[Backend]) -> None:
    """One address in two VPCs cannot be told apart by a load balancer: refuse it."""
    seen: dict[str, Backend] = {}
    for be in backends:
        other = seen.get(be.ip)
        if other is not None and other.vpc != be.vpc:
            raise Invalid("OverlappingBackends",
                          f"backend address {be.ip} exists in VPC {other.vpc} "
                          f"({other.kind} {other.namespace}/{other.name}) and in VPC {be.vpc} "
                          f"({be.kind} {be.namespace}/{be.name})")
        seen.setdefault(be.ip, be)
