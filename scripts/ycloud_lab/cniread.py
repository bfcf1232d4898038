"""The NB side of a plugged port, as the controller writes it (pods, Vnics and node ports are
plugged by the node agent from Kubernetes annotations; the lab reads this only to address a
Vnic's guest, standing in for the guest's DHCP).

A Logical_Switch_Port is plugged when its external_ids hold
    ycloud.io/managed-by = ycloud-controller
    ycloud.io/role       = pod | vnic | node
    ycloud.io/node       = chassis (Kubernetes node) to bind it on
and optionally
    ycloud.io/gateway    = gateway IP(s), comma-separated (one per address family)
    ycloud.io/cidr       = subnet CIDR(s), comma-separated (prefix length of each IP)
    ycloud.io/mtu        = interface MTU (default: the shape's pod_mtu)
    ycloud.io/routes     = node ports only: CIDRs routed via the gateway
                           (default: the shape's service_cidr)
Its `addresses` is "MAC IP [IP ...]": every IP is configured, the first is the primary.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import asdict, dataclass
from typing import Any

from topology import naming
from ycloud_lab.ovsdb import as_list, rows
from ycloud_lab.shape import Shape

ROLES = (naming.ROLE_POD, naming.ROLE_VNIC, naming.ROLE_NODE)


@dataclass(frozen=True)
class PortSpec:
    port: str
    role: str
    node: str
    mac: str
    ips: tuple[str, ...]  # "ip/prefix", primary first
    gateways: tuple[str, ...]
    mtu: int
    routes: tuple[str, ...]  # node ports only

    @property
    def fingerprint(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True)
        return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()

    def gateway_for(self, address: str) -> str | None:
        version = ipaddress.ip_interface(address).version
        return next((g for g in self.gateways if ipaddress.ip_address(g).version == version),
                    None)


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _mac(token: str) -> bool:
    parts = token.split(":")
    return len(parts) == 6 and all(len(p) == 2 for p in parts) and all(
        c in "0123456789abcdefABCDEF" for p in parts for c in p)


def parse_port(row: dict[str, Any], shape: Shape) -> PortSpec | str:
    """The PortSpec of an NB row, or why the row is not something the CNI plugs."""
    ids: dict[str, str] = row.get("external_ids") or {}
    name = row["name"]
    if ids.get(naming.MANAGED_BY) != naming.MANAGED_BY_VALUE:
        return "not managed by ycloud-controller"
    role = ids.get(naming.ROLE, "")
    if role not in ROLES:
        return f"role {role!r} is not plugged"
    node = ids.get(naming.NODE, "")
    if not node:
        return f"no {naming.NODE}"
    entry = next((a.split() for a in as_list(row.get("addresses"))
                  if a.split() and _mac(a.split()[0])), None)
    if entry is None or len(entry) < 2:
        return f"addresses {row.get('addresses')!r} hold no 'MAC IP'"
    try:
        cidrs = [ipaddress.ip_network(c, strict=False) for c in _csv(ids.get(naming.CIDR))]
        gateways = tuple(str(ipaddress.ip_address(g)) for g in _csv(ids.get(naming.GATEWAY)))
        routes_raw = _csv(ids.get(naming.ROUTES)) or [shape.service_cidr]
        routes = tuple(str(ipaddress.ip_network(r, strict=False)) for r in routes_raw)
        ips = []
        for token in entry[1:]:
            ip = ipaddress.ip_address(token)
            net = next((c for c in cidrs if c.version == ip.version and ip in c), None)
            ips.append(f"{ip}/{net.prefixlen if net else ip.max_prefixlen}")
        mtu = int(ids.get(naming.MTU) or shape.pod_mtu)
    except ValueError as exc:
        return f"bad external_ids/addresses: {exc}"
    return PortSpec(port=name, role=role, node=node, mac=entry[0].lower(), ips=tuple(ips),
                    gateways=gateways, mtu=mtu,
                    routes=routes if role == naming.ROLE_NODE else ())


def read_ports(nb_remote: str, shape: Shape) -> tuple[dict[str, PortSpec], dict[str, str]]:
    """Every pluggable port in NB, and {port: reason} for managed ports that were skipped."""
    found = rows("ovn-nbctl", nb_remote, "--columns=name,addresses,external_ids", "find",
                 "Logical_Switch_Port",
                 f'external_ids:"{naming.MANAGED_BY}"="{naming.MANAGED_BY_VALUE}"',
                 what="cni: read NB ports")
    specs: dict[str, PortSpec] = {}
    skipped: dict[str, str] = {}
    for row in found:
        spec = parse_port(row, shape)
        if isinstance(spec, PortSpec):
            specs[spec.port] = spec
        elif (row.get("external_ids") or {}).get(naming.ROLE) in ROLES:
            skipped[row["name"]] = spec
    return specs, skipped
