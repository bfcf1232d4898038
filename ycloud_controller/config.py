"""Controller configuration: a YAML file (the ConfigMap's config.yaml) plus CLI flags.

Keys of config.yaml (all optional):

    defaultVpc: ovn-cluster
    joinSubnet: {name: subnet0, cidr: 100.64.0.0/16}
    defaultSubnet: {name: ovn-default, cidr: 10.16.0.0/16}
    serviceCidr: 10.96.0.0/12
    internalCidr: 100.88.0.0/16
    mtu: 1400
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from topology import naming
from ycloud_controller.kube.throttle import DEFAULT_BURST, DEFAULT_QPS


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class SubnetConfig:
    name: str
    cidr: str


@dataclass(frozen=True)
class Config:
    default_vpc: str = naming.DEFAULT_VPC
    join_subnet: SubnetConfig = SubnetConfig(naming.JOIN_SUBNET, "100.64.0.0/16")
    default_subnet: SubnetConfig = SubnetConfig("ovn-default", "10.16.0.0/16")
    service_cidr: str = "10.96.0.0/12"
    internal_cidr: str = "100.88.0.0/16"
    mtu: int = 1400
    # connection and runtime settings (flags)
    nb_remote: str = ""
    sb_remote: str = ""
    ssl_key: str | None = None
    ssl_cert: str | None = None
    ssl_ca: str | None = None
    batch_size: int = 500
    resync_seconds: float = 600.0
    kube_api_qps: float = DEFAULT_QPS  # client-side limit of Kubernetes writes (0: none)
    kube_api_burst: int = DEFAULT_BURST
    bump_nb_cfg: bool = False  # every NB transaction increments NB_Global.nb_cfg
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> Config:
        for label, cidr in (("joinSubnet.cidr", self.join_subnet.cidr),
                            ("defaultSubnet.cidr", self.default_subnet.cidr),
                            ("serviceCidr", self.service_cidr),
                            ("internalCidr", self.internal_cidr)):
            for part in cidr.split(","):
                try:
                    ipaddress.ip_network(part.strip(), strict=True)
                except ValueError as exc:
                    raise ConfigError(f"{label}: {part!r} is not a CIDR ({exc})") from exc
        named = {"joinSubnet": self.join_subnet.cidr, "defaultSubnet": self.default_subnet.cidr,
                 "serviceCidr": self.service_cidr, "internalCidr": self.internal_cidr}
        nets = [(k, ipaddress.ip_network(c.strip())) for k, v in named.items()
                for c in v.split(",")]
        for i, (ka, a) in enumerate(nets):
            for kb, b in nets[i + 1:]:
                if ka != kb and a.version == b.version and a.overlaps(b):
                    raise ConfigError(f"{ka} {a} overlaps {kb} {b}")
        if not 576 <= self.mtu <= 9000:
            raise ConfigError(f"mtu {self.mtu} out of range 576..9000")
        if self.join_subnet.name == self.default_subnet.name:
            raise ConfigError("joinSubnet and defaultSubnet need different names")
        if self.kube_api_qps < 0 or self.kube_api_burst < 1:
            raise ConfigError(f"--kube-api-qps {self.kube_api_qps} must be 0 (no limit) or "
                              f"more, --kube-api-burst {self.kube_api_burst} 1 or more")
        return self


def _subnet(raw: Any, default: SubnetConfig, label: str) -> SubnetConfig:
    if raw is None:
        return default
    if not isinstance(raw, dict):
        raise ConfigError(f"{label} must be a mapping with name and cidr")
    return SubnetConfig(str(raw.get("name", default.name)), str(raw.get("cidr", default.cidr)))


def load(path: str | None, **overrides: Any) -> Config:
    """Config from a YAML file (may be None) with flag overrides (None values are ignored)."""
    raw: dict[str, Any] = {}
    if path:
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"config {path} must be a YAML mapping")
    base = Config()
    try:
        mtu = int(raw.get("mtu", base.mtu))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"mtu {raw.get('mtu')!r} is not an integer") from exc
    known = {"defaultVpc", "joinSubnet", "defaultSubnet", "serviceCidr", "internalCidr", "mtu"}
    cfg = replace(
        base,
        default_vpc=str(raw.get("defaultVpc", base.default_vpc)),
        join_subnet=_subnet(raw.get("joinSubnet"), base.join_subnet, "joinSubnet"),
        default_subnet=_subnet(raw.get("defaultSubnet"), base.default_subnet, "defaultSubnet"),
        service_cidr=str(raw.get("serviceCidr", base.service_cidr)),
        internal_cidr=str(raw.get("internalCidr", base.internal_cidr)),
        mtu=mtu,
        extra={k: v for k, v in raw.items() if k not in known},
    )
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    return cfg.validate()
