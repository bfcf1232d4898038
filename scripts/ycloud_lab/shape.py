"""The lab's shape (tests/lab/shape.yaml) as validated, frozen dataclasses."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ycloud_lab.proc import LabError

ROLES = ("worker", "gateway")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")


@dataclass(frozen=True)
class ChassisShape:
    name: str  # Kubernetes node name = OVN system-id
    role: str  # worker | gateway
    tunnel_ip: str

    @property
    def is_gateway(self) -> bool:
        return self.role == "gateway"


@dataclass(frozen=True)
class ExternalHost:
    name: str
    ip: str


@dataclass(frozen=True)
class Shape:
    name: str
    path: str
    pod_mtu: int
    service_cidr: str
    ovn_monitor_all: bool
    underlay_cidr: str
    underlay_mtu: int
    external_cidr: str
    external_gateway: str
    provider: str
    provider_bridge: str
    hosts: tuple[ExternalHost, ...]
    chassis: tuple[ChassisShape, ...]

    @property
    def underlay_prefix(self) -> int:
        return ipaddress.ip_network(self.underlay_cidr).prefixlen

    @property
    def external_prefix(self) -> int:
        return ipaddress.ip_network(self.external_cidr).prefixlen

    def chassis_named(self, name: str) -> ChassisShape:
        for ch in self.chassis:
            if ch.name == name:
                return ch
        raise LabError(f"no chassis {name!r} in shape {self.path} "
                       f"(chassis: {', '.join(c.name for c in self.chassis)})")

    @property
    def gateways(self) -> tuple[ChassisShape, ...]:
        return tuple(c for c in self.chassis if c.is_gateway)

    @property
    def workers(self) -> tuple[ChassisShape, ...]:
        return tuple(c for c in self.chassis if not c.is_gateway)


def _req(data: dict[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise LabError(f"shape: {where} needs `{key}`")
    return data[key]


def _ip_in(ip: str, cidr: str, what: str) -> str:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError as exc:
        raise LabError(f"shape: {what}: {exc}") from None
    if addr not in ipaddress.ip_network(cidr):
        raise LabError(f"shape: {what} {ip} is not in {cidr}")
    return str(addr)


def _cidr(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise LabError(f"shape: {what}: {exc}") from None


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise LabError(f"shape: {what} {value!r} must be a lowercase DNS label of <= 32 chars")
    return value


def load_shape(path: str | Path) -> Shape:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LabError(f"cannot read shape {path}: {exc}") from None
    if not isinstance(data, dict):
        raise LabError(f"shape {path}: expected a mapping at top level")
    underlay = _req(data, "underlay", "the shape")
    external = _req(data, "external", "the shape")
    ul_cidr = _cidr(_req(underlay, "cidr", "underlay"), "underlay.cidr")
    ext_cidr = _cidr(_req(external, "cidr", "external"), "external.cidr")
    chassis: list[ChassisShape] = []
    for i, raw in enumerate(_req(data, "chassis", "the shape")):
        where = f"chassis[{i}]"
        role = _req(raw, "role", where)
        if role not in ROLES:
            raise LabError(f"shape: {where}.role {role!r} must be one of {ROLES}")
        chassis.append(ChassisShape(
            name=_name(_req(raw, "name", where), f"{where}.name"), role=role,
            tunnel_ip=_ip_in(str(_req(raw, "tunnel_ip", where)), ul_cidr, f"{where}.tunnel_ip")))
    hosts = tuple(
        ExternalHost(name=_name(_req(h, "name", "external host"), "external host name"),
                     ip=_ip_in(str(_req(h, "ip", "external host")), ext_cidr, "external host ip"))
        for h in external.get("hosts", []))
    names = [c.name for c in chassis] + [h.name for h in hosts]
    reserved = {"underlay", "extnet"}
    dupes = {n for n in names if names.count(n) > 1} | (set(names) & reserved)
    if dupes:
        raise LabError(f"shape {path}: duplicate or reserved names: {', '.join(sorted(dupes))}")
    ips = [c.tunnel_ip for c in chassis]
    if len(set(ips)) != len(ips):
        raise LabError(f"shape {path}: duplicate tunnel IPs")
    if not chassis:
        raise LabError(f"shape {path}: no chassis")
    return Shape(
        name=str(data.get("name", "lab")), path=str(path.resolve()),
        pod_mtu=int(data.get("pod_mtu", 1400)),
        service_cidr=_cidr(data.get("service_cidr", "10.96.0.0/12"), "service_cidr"),
        ovn_monitor_all=bool(data.get("ovn_monitor_all", True)),
        underlay_cidr=ul_cidr, underlay_mtu=int(underlay.get("mtu", 1500)),
        external_cidr=ext_cidr,
        external_gateway=_ip_in(str(_req(external, "gateway", "external")), ext_cidr,
                                "external.gateway"),
        provider=str(_req(external, "provider", "external")),
        provider_bridge=str(external.get("bridge", "br-ex")),
        hosts=hosts, chassis=tuple(chassis),
    )
