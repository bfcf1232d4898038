"""The reconciler of each queue-key kind, and the order a full sync visits kinds in."""

from __future__ import annotations

from collections.abc import Callable

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
from ycloud_controller.reconcilers.yusur_service import reconcile_yusur_service

# infrastructure first, then ports (IPAM), then what selects ports, then services
ORDER = ("Vpc", "Subnet", "EipPool", "Node", "Pod", "Vnic", "YusurService", "NetworkProbe",
         "Endpoints", "Service")

__all__ = ["ORDER", "PROBE_INDEX", "build", "no_monitors", "probe_index", "slice_service_key"]


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
