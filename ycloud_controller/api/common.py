"""Shared parsing for the typed views: errors, names, addresses."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from topology.builders.common import is_ipv4

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Invalid(ValueError):
    """Bad input in an object: becomes a Ready=False condition and a Warning event."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def name_of(obj: dict[str, Any]) -> str:
    return str(meta(obj).get("name", ""))


def namespace_of(obj: dict[str, Any]) -> str | None:
    return meta(obj).get("namespace")


def key_of(obj: dict[str, Any]) -> str:
    md = obj.get("metadata") or {}  # one read of each (every event and reconcile keys)
    ns, name = md.get("namespace"), str(md.get("name", ""))
    return f"{ns}/{name}" if ns else name


def spec(obj: dict[str, Any]) -> dict[str, Any]:
    value = obj.get("spec")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid("InvalidSpec", "spec must be an object")
    return value


def str_list(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid("InvalidSpec", f"{field} must be a list of strings")
    return tuple(value)


def parse_cidrs(value: Any, field: str, min_addresses: int = 4) -> tuple[IPNetwork, ...]:
    """'10.0.0.0/24' or '10.0.0.0/24,fd00::/64' (one per family) -> networks."""
    if not value or not isinstance(value, str):
        raise Invalid("InvalidCIDR", f"{field} is required (a CIDR, or 'v4,v6')")
    nets = []
    for part in value.split(","):
        try:
            nets.append(ipaddress.ip_network(part.strip(), strict=True))
        except ValueError as exc:
            raise Invalid("InvalidCIDR", f"{field}: {part.strip()!r} is not a valid CIDR "
                                         f"({exc})") from exc
    families = [n.version for n in nets]
    if len(set(families)) != len(families):
        raise Invalid("InvalidCIDR", f"{field}: at most one CIDR per IP family")
    for net in nets:
        if net.num_addresses < min_addresses:
            raise Invalid("InvalidCIDR", f"{field}: {net} is too small (needs at least "
                                         f"{min_addresses} addresses)")
    return tuple(nets)


def parse_ip(value: Any, field: str) -> IPAddress:
    text = str(value).strip()
    if is_ipv4(text):  # the common case: the same address, without ipaddress' string parser
        return ipaddress.IPv4Address(int.from_bytes(map(int, text.split(".")), "big"))
    try:
        return ipaddress.ip_address(text)
    except ValueError as exc:
        raise Invalid("InvalidIP", f"{field}: {value!r} is not an IP address") from exc


def parse_ranges(values: Iterable[str], field: str) -> list[tuple[IPAddress, IPAddress]]:
    """['10.0.0.1', '10.0.0.5..10.0.0.9'] -> inclusive (first, last) pairs."""
    out = []
    for item in values:
        first, sep, last = item.partition("..")
        a = parse_ip(first, field)
        b = parse_ip(last, field) if sep else a
        if a.version != b.version or int(b) < int(a):
            raise Invalid("InvalidRange", f"{field}: {item!r} is not a valid range")
        out.append((a, b))
    return out


def net_of(ip: IPAddress, nets: Iterable[IPNetwork]) -> IPNetwork | None:
    return next((n for n in nets if ip.version == n.version and ip in n), None)


def overlaps(a: Iterable[IPNetwork], b: Iterable[IPNetwork]) -> bool:
    return any(x.version == y.version and x.overlaps(y) for x in a for y in b)


def bool_field(value: Any, field: str, default: bool | None = None) -> bool | None:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise Invalid("InvalidSpec", f"{field} must be true or false")
    return value


def int_field(value: Any, field: str, lo: int, hi: int, default: int | None = None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise Invalid("InvalidSpec", f"{field} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def selector_matches(selector: dict[str, Any] | tuple[tuple[str, str], ...],
                     labels: dict[str, Any] | None) -> bool:
    """Equality-based label selector (a Service's or YusurService's `selector` map)."""
    items = selector.items() if isinstance(selector, dict) else selector
    labels = labels or {}
    return all(labels.get(k) == v for k, v in items)
