"""The node's chassis in its local OVS (the Open_vSwitch row ovn-controller reads).

system-id and hostname = the node name; ovn-remote (SB), ovn-encap-type/ovn-encap-ip; on a
gateway node of an EipPool (spec.gatewayNodes), ovn-bridge-mappings <providerNetwork>:<bridge>
(the bridge is created; attaching the uplink NIC to it is the operator's part) and
ovn-cms-options enable-chassis-as-gw; with --hw-offload other_config:hw-offload=true. Mappings
of providers the agent did not map (recorded in external_ids naming.OVS_OWNED_MAPPINGS) and no
EipPool names are kept as the operator wrote them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from topology import naming
from ycloud_controller.api.common import Invalid
from ycloud_controller.api.eippool import parse_eippool
from ycloud_controller.node.ovs import Ovs

log = structlog.get_logger(__name__)
GATEWAY_CMS_OPTION = "enable-chassis-as-gw"


@dataclass(frozen=True)
class ChassisSettings:
    node: str
    sb_remote: str | None = None
    encap_type: str = "geneve"
    encap_ip: str | None = None
    datapath_type: str | None = None  # br-int's and the provider bridges' (netdev, system)
    hw_offload: bool = False
    provider_bridges: Mapping[str, str] = field(default_factory=dict)  # provider -> bridge
    bridge: str = "br-int"

    def provider_bridge(self, provider: str) -> str:
        return self.provider_bridges.get(provider) or f"br-{provider}"[:15]


def gateway_providers(node: str, pools: Iterable[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """(providers this node is a gateway of, every provider an EipPool names)."""
    mine, named = set(), set()
    for obj in pools:
        try:
            pool = parse_eippool(obj)
        except Invalid:
            continue  # the controller reports it; an invalid pool maps nothing
        named.add(pool.provider)
        if node in pool.gateway_nodes:
            mine.add(pool.provider)
    return mine, named


def merged_mappings(current: str, ours: Mapping[str, str], managed: set[str]) -> str:
    keep = [m for m in (x.strip() for x in current.split(",")) if m
            and m.partition(":")[0] not in managed]
    return ",".join(keep + [f"{p}:{b}" for p, b in sorted(ours.items())])


class ChassisSetup:
    def __init__(self, settings: ChassisSettings, ovs: Ovs):
        self.settings = settings
        self.ovs = ovs

    def apply(self, pools: Iterable[dict[str, Any]]) -> dict[str, str]:
        """Make the Open_vSwitch row what it should be; returns the external_ids set."""
        s = self.settings
        ids = {"system-id": s.node, "hostname": s.node, "ovn-encap-type": s.encap_type}
        if s.encap_ip:
            ids["ovn-encap-ip"] = s.encap_ip
        if s.sb_remote:
            ids["ovn-remote"] = s.sb_remote
        if s.datapath_type:
            ids["ovn-bridge-datapath-type"] = s.datapath_type
        mine, named = gateway_providers(s.node, pools)
        ours = {p: s.provider_bridge(p) for p in mine}
        current = self.ovs.system_ids()
        owned = set(filter(None, current.get(naming.OVS_OWNED_MAPPINGS, "").split(",")))
        mappings = merged_mappings(current.get("ovn-bridge-mappings", ""), ours,
                                   named | owned | set(ours))
        ids[naming.OVS_OWNED_MAPPINGS] = ",".join(sorted(ours))
        remove: list[str] = []
        if mappings:
            ids["ovn-bridge-mappings"] = mappings
        elif "ovn-bridge-mappings" in current:
            remove.append("ovn-bridge-mappings")
        cms = [o for o in current.get("ovn-cms-options", "").split(",")
               if o and o != GATEWAY_CMS_OPTION] + ([GATEWAY_CMS_OPTION] if ours else [])
        if cms:
            ids["ovn-cms-options"] = ",".join(cms)
        elif "ovn-cms-options" in current:
            remove.append("ovn-cms-options")
        for bridge in sorted(set(ours.values()) | {s.bridge}):
            self.ovs.ensure_bridge(bridge, s.datapath_type)
        self.ovs.set_system(ids, tuple(remove),
                            {"hw-offload": "true"} if s.hw_offload else None)
        log.info("chassis_configured", node=s.node, gateway_of=sorted(mine),
                 bridge_mappings=mappings, hw_offload=s.hw_offload)
        return ids
