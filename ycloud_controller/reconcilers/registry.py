"""The reconciler of each queue-key kind, and the order a full sync visits kinds in."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ycloud_controller import cluster_ips
from ycloud_controller.api.common import meta
from ycloud_controller.cluster_ips import ClusterIps
from ycloud_controller.keys import YSVC_LABEL
from ycloud_controller.precedence import Precedence
from ycloud_controller.reconcilers.base import (
    BACKEND_INDEX,
    Context,
    Outcome,
    backend_address_index,
)
from ycloud_controller.reconcilers.eip_state import MULTI_VPC_INDEX, multi_vpc_index
from ycloud_controller.reconcilers.eippool import reconcile_eippool
from ycloud_controller.reconcilers.endpoints import reconcile_endpoints
from ycloud_controller.reconcilers.lb_config import LOCAL_INDEX, local_policy_index
from ycloud_controller.reconcilers.network_probe import PROBE_INDEX, ProbeReconciler, probe_index
from ycloud_controller.reconcilers.node import reconcile_node
from ycloud_controller.reconcilers.pod import reconcile_pod
from ycloud_controller.reconcilers.selection import (
    LABEL_INDEX,
    SELECTOR_INDEX,
    label_index,
    selector_index,
)
from ycloud_controller.reconcilers.service import SLICE_INDEX, reconcile_service, slice_service_key
from ycloud_controller.reconcilers.subnet import reconcile_subnet
from ycloud_controller.reconcilers.vnic import reconcile_vnic
from ycloud_controller.reconcilers.vpc import reconcile_vpc
from ycloud_controller.reconcilers.ysvc import OWNED_INDEX, owned_index, reconcile_yusur_service

# infrastructure first, then ports (IPAM), then what selects ports, then services
ORDER = ("Vpc", "Subnet", "EipPool", "Node", "Pod", "Vnic", "YusurService", "NetworkProbe",
         "Endpoints", "Service")

# kinds that compete for the same addresses (IPs, MACs): ranked together, oldest first
_RANK = {kind: i for i, kind in enumerate(ORDER)} | {"Vnic": ORDER.index("Pod")}

__all__ = ["ORDER", "PROBE_INDEX", "build", "no_monitors", "order_keys", "probe_index",
           "slice_service_key"]


def order_keys(keys: Iterable[tuple[str, str]], stores: dict[str, Any],
               precedence: Precedence = Precedence()) -> list[tuple[str, str]]:
    """Keys in the order to reconcile them: by kind (ORDER), then by `precedence` (the
    holder NB records, the older in cluster mode, the name), so that when two objects ask
    for one address, MAC or EIP, the same one gets it in every process. A Service made for
    a YusurService has the age of its YusurService."""
    keys = list(keys)
    ranking = precedence.ranking(keys)  # a (kind, name) key equals its Owner
    ysvcs = stores.get("YusurService") if precedence.ages else None
    last = len(ORDER)

    def rank(key: tuple[str, str]) -> tuple:
        kind, name = key
        store = stores.get(kind)
        obj = store.get(name) if store is not None else None
        if obj is None:
            return (_RANK.get(kind, last), (1, "", name), kind)
        owner = None
        if ysvcs is not None and kind == "Service":  # ages count (cluster mode)
            md = meta(obj)
            ysvc = (md.get("labels") or {}).get(YSVC_LABEL)
            owner = ysvcs.get(f"{md.get('namespace')}/{ysvc}") if ysvc else None
        return (_RANK.get(kind, last), ranking.rank(kind, obj, age_of=owner, key=name), kind)
    return sorted(keys, key=rank)


def no_monitors() -> dict[str, str]:
    return {}


def add_indexes(stores: dict[str, Any]) -> None:
    """Every index the reconcilers and triggers read, on the stores of the watched kinds."""
    # what a YusurService made (ysvc._owned)
    for kind in ("EndpointSlice", "NetworkProbe"):
        stores[kind].add_index(OWNED_INDEX, owned_index)
    stores["EndpointSlice"].add_index(SLICE_INDEX, slice_service_key)
    # the slices a deleted pod's or Vnic's port waits to leave (reconcilers/base.PortReconciler)
    stores["EndpointSlice"].add_index(BACKEND_INDEX, backend_address_index)
    stores["Service"].add_index(cluster_ips.INDEX, cluster_ips.index)
    # a pool's service-gateway users, read by the EipPool and Service reconcilers
    stores["Service"].add_index(MULTI_VPC_INDEX, multi_vpc_index)
    # the Services with a traffic policy Local, read by the Node reconciler
    stores["Service"].add_index(LOCAL_INDEX, local_policy_index)
    stores["NetworkProbe"].add_index(PROBE_INDEX, probe_index)
    # pods and Vnics by each label (selection.selected: a YusurService's backends, the pods of
    # an emulated EndpointSlice)
    for kind in ("Pod", "Vnic"):
        stores[kind].add_index(LABEL_INDEX, label_index)
    # the Services and YusurServices a pod's or Vnic's labels may concern (triggers)
    for kind in ("Service", "YusurService"):
        stores[kind].add_index(SELECTOR_INDEX, selector_index)


def build(ctx: Context, emulate: bool,
          monitors: Callable[[], dict[str, str]] = no_monitors,
          ) -> dict[str, Callable[[str], Outcome]]:
    reconcile_probe = ProbeReconciler(monitors)
    table: dict[str, Callable[[str], Outcome]] = {
        "Vpc": lambda key: reconcile_vpc(ctx, key),
        "Subnet": lambda key: reconcile_subnet(ctx, key),
        "Node": lambda key: reconcile_node(ctx, key),
        "Pod": lambda key: reconcile_pod(ctx, key),
        "Service": lambda key: reconcile_service(ctx, key),
        "Vnic": lambda key: reconcile_vnic(ctx, key),
        "EipPool": lambda key: reconcile_eippool(ctx, key),
        "YusurService": lambda key: reconcile_yusur_service(ctx, key),
        "NetworkProbe": lambda key: reconcile_probe(ctx, key),
    }
    if emulate:
        if ctx.cluster_ips is None:
            ctx.cluster_ips = ClusterIps(ctx.config.service_cidr)
        allocator = ctx.cluster_ips
        table["Endpoints"] = lambda key: reconcile_endpoints(ctx, key, allocator)
    return table
