"""The reconciler of each queue-key kind, and the order a full sync visits kinds in."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ycloud_controller.api.common import meta
from ycloud_controller.reconcilers.base import Context, Outcome
from ycloud_controller.reconcilers.eippool import reconcile_eippool
from ycloud_controller.reconcilers.endpoints import ServiceIpAllocator, reconcile_endpoints
from ycloud_controller.reconcilers.node import reconcile_node
from ycloud_controller.reconcilers.pod import reconcile_pod
from ycloud_controller.reconcilers.probe import PROBE_INDEX, probe_index, reconcile_probe
from ycloud_controller.reconcilers.service import reconcile_service, slice_service_key
from ycloud_controller.reconcilers.subnet import reconcile_subnet
from ycloud_controller.reconcilers.vnic import reconcile_vnic
from ycloud_controller.reconcilers.vpc import reconcile_vpc
from ycloud_controller.reconcilers.yusur_service import LABEL as YSVC_LABEL
from ycloud_controller.reconcilers.yusur_service import reconcile_yusur_service

# infrastructure first, then ports (IPAM), then what selects ports, then services
ORDER = ("Vpc", "Subnet", "EipPool", "Node", "Pod", "Vnic", "YusurService", "NetworkProbe",
         "Endpoints", "Service")

# kinds that compete for the same addresses (IPs, MACs): ranked together, oldest first
_RANK = {kind: i for i, kind in enumerate(ORDER)} | {"Vnic": ORDER.index("Pod")}

__all__ = ["ORDER", "PROBE_INDEX", "build", "no_monitors", "order_keys", "probe_index",
           "slice_service_key"]


def order_keys(keys: Iterable[tuple[str, str]], stores: dict[str, Any],
               ) -> list[tuple[str, str]]:
    """Keys in the order to reconcile them: by kind (ORDER), then oldest object first, so
    that when two objects ask for one address, MAC or EIP, the older gets it, whatever their
    names. A Service made for a YusurService has the age of its YusurService."""
    def age(key: tuple[str, str]) -> str:
        kind, name = key
        store = stores.get(kind)
        obj = store.get(name) if store is not None else None
        if obj is None:
            return ""
        md = meta(obj)
        ysvc = (md.get("labels") or {}).get(YSVC_LABEL) if kind == "Service" else None
        ysvcs = stores.get("YusurService")
        owner = ysvcs.get(f"{md.get('namespace')}/{ysvc}") if ysvc and ysvcs else None
        return str(meta(owner if owner is not None else obj).get("creationTimestamp") or "")
    return sorted(keys, key=lambda k: (_RANK.get(k[0], len(ORDER)), age(k), k[1], k[0]))


def no_monitors() -> dict[str, str]:
    return {}


def build(ctx: Context, emulate: bool,
          monitors: Callable[[], dict[str, str]] = no_monitors,
          ) -> dict[str, Callable[[str], Outcome]]:
    table: dict[str, Callable[[str], Outcome]] = {
        "Vpc": lambda key: reconcile_vpc(ctx, key),
        "Subnet": lambda key: reconcile_subnet(ctx, key),
        "Node": lambda key: reconcile_node(ctx, key),
        "Pod": lambda key: reconcile_pod(ctx, key),
        "Service": lambda key: reconcile_service(ctx, key),
        "Vnic": lambda key: reconcile_vnic(ctx, key),
        "EipPool": lambda key: reconcile_eippool(ctx, key),
        "YusurService": lambda key: reconcile_yusur_service(ctx, key),
        "NetworkProbe": lambda key: reconcile_probe(ctx, key, monitors),
    }
    if emulate:
        allocator = ServiceIpAllocator(ctx.config.service_cidr)
        table["Endpoints"] = lambda key: reconcile_endpoints(ctx, key, allocator)
    return table
