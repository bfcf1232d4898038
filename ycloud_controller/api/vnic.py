"""Vnic (iaas.yusur.io/v1, namespaced): a VM or bare-metal NIC, a backend like a pod."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ycloud_controller.api.common import (
    Invalid,
    IPAddress,
    int_field,
    meta,
    name_of,
    namespace_of,
    parse_ip,
    spec,
    str_list,
)

MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
# a Linux interface name: 1-15 bytes, no '/', ':' or whitespace, not . or ..
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.@+-]{1,15}$")


@dataclass(frozen=True)
class VnicView:
    name: str
    namespace: str
    subnet: str
    node: str
    type: str
    ip: IPAddress | None
    mac: str | None
    extra_ips: tuple[IPAddress, ...]
    extra_count: int
    labels: tuple[tuple[str, str], ...]
    host_interface: str | None = None  # the netdev the node agent plugs (tap, NIC, VF rep)


def parse_mac(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not MAC_RE.match(value):
        raise Invalid("InvalidMAC", f"{field}: {value!r} is not a MAC address")
    if int(value[:2], 16) & 1:
        raise Invalid("InvalidMAC", f"{field}: {value} is a multicast MAC")
    return value.lower()


def parse_vnic(obj: dict[str, Any]) -> VnicView:
    s = spec(obj)
    subnet, node = s.get("subnet"), s.get("node")
    if not subnet or not isinstance(subnet, str):
        raise Invalid("InvalidSpec", "subnet is required")
    if not node or not isinstance(node, str):
        raise Invalid("InvalidSpec", "node is required")
    vtype = s.get("type", "vm")
    if vtype not in ("vm", "baremetal"):
        raise Invalid("InvalidSpec", f"type must be vm or baremetal, got {vtype!r}")
    ip = parse_ip(s["ip"], "ip") if s.get("ip") else None
    extra = tuple(parse_ip(v, "extraIPs") for v in str_list(s.get("extraIPs"), "extraIPs"))
    labels = meta(obj).get("labels") or {}
    host_if = s.get("hostInterface") or None
    if host_if is not None and (not isinstance(host_if, str) or not IFNAME_RE.match(host_if)
                                or host_if in (".", "..")):
        raise Invalid("InvalidSpec", f"hostInterface {host_if!r} is not a Linux interface "
                                     "name (1-15 characters, no '/', ':' or spaces)")
    return VnicView(
        name=name_of(obj), namespace=namespace_of(obj) or "default", subnet=subnet, node=node,
        type=vtype, ip=ip, mac=parse_mac(s.get("mac"), "mac"), extra_ips=extra,
        extra_count=int_field(s.get("extraIPCount"), "extraIPCount", 0, 64, 0) or 0,
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        host_interface=host_if)
