"""What the controller wrote for one interface (a pod's, or the node's port on the join
subnet): the annotations of the CNI contract, parsed (`keys.ANN_*`)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from ycloud_controller import keys
from ycloud_controller.api.vnic import MAC_RE

REQUIRED = (keys.ANN_IP, keys.ANN_MAC, keys.ANN_GATEWAY, keys.ANN_CIDR)


class BadAnnotations(ValueError):
    """The annotations are present but cannot be used."""


@dataclass(frozen=True)
class Addressing:
    ips: tuple[str, ...]  # ip/prefix, primary first (dual stack: one per family)
    mac: str
    gateways: tuple[str, ...]  # one per family
    mtu: int | None
    routes: tuple[str, ...] = ()  # node port only: CIDRs routed through it

    def gateway_for(self, address: str) -> str | None:
        version = ipaddress.ip_interface(address).version
        return next((g for g in self.gateways if ipaddress.ip_address(g).version == version),
                    None)


def _csv(value: Any) -> list[str]:
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def missing(annotations: dict[str, Any]) -> list[str]:
    return [k for k in REQUIRED if not annotations.get(k)]


def parse(annotations: dict[str, Any]) -> Addressing:
    """The Addressing of complete annotations (see `missing`); BadAnnotations otherwise."""
    if missing(annotations):
        raise BadAnnotations(f"missing {', '.join(missing(annotations))}")
    try:
        cidrs = [ipaddress.ip_network(c, strict=False) for c in _csv(annotations[keys.ANN_CIDR])]
        ips = []
        for raw in _csv(annotations[keys.ANN_IP]):
            ip = ipaddress.ip_address(raw)
            net = next((c for c in cidrs if c.version == ip.version and ip in c), None)
            if net is None:
                raise BadAnnotations(f"{keys.ANN_IP} {ip} is in none of {keys.ANN_CIDR} "
                                     f"{annotations[keys.ANN_CIDR]}")
            ips.append(f"{ip}/{net.prefixlen}")
        gateways = tuple(str(ipaddress.ip_address(g))
                         for g in _csv(annotations[keys.ANN_GATEWAY]))
        routes = tuple(str(ipaddress.ip_network(r, strict=False))
                       for r in _csv(annotations.get(keys.ANN_ROUTES)))
        mtu_raw = annotations.get(keys.ANN_MTU)
        mtu = int(mtu_raw) if mtu_raw else None
    except ValueError as exc:
        if isinstance(exc, BadAnnotations):
            raise
        raise BadAnnotations(str(exc)) from None
    mac = str(annotations[keys.ANN_MAC]).lower()
    if not MAC_RE.match(mac):
        raise BadAnnotations(f"{keys.ANN_MAC} {mac!r} is not a MAC address")
    if mtu is not None and not 576 <= mtu <= 65535:
        raise BadAnnotations(f"{keys.ANN_MTU} {mtu} is out of range")
    return Addressing(ips=tuple(ips), mac=mac, gateways=gateways, mtu=mtu, routes=routes)
