"""Where OVN health checks of a backend come from: its port and its subnet's probe source."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from topology import naming
from topology.builders.service import probe_mapping
from ycloud_controller.reconcilers.base import Context


def probe_mappings(ctx: Context, vpcs: Iterable[str],
                   ips: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """backend ip -> 'port:source' for OVN health checks (backends we have a port for)."""
    net = ctx.network()
    out = {}
    for ip_str in ips:
        ip = ipaddress.ip_address(ip_str)
        for sub in (s for v in vpcs for s in net.subnets_of(v)):
            if not any(ip in c for c in sub.cidrs):
                continue
            holder = ctx.ipam.owner_of(sub.name, ip)
            if holder is None:
                continue
            kind, _, key = holder.partition("/")
            ns, _, name = key.partition("/")
            port = naming.pod_port(ns, name) if kind == "Pod" else naming.vnic_port(ns, name)
            src = next(s for s in sub.probe_sources() if s.version == ip.version)
            out[ip_str] = probe_mapping(port, str(src))
            break
    return tuple(sorted(out.items()))
