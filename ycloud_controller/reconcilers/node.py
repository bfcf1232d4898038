"""Node -> its port `node-<node>` on the join subnet (scenario 2: nodes reach ClusterIPs).

The port's address, MAC, gateway, CIDR, MTU and the CIDRs the node routes through it are also
written as annotations on the Node (`keys.ANN_*`, the contract pods have): the node agent
creates the node interface from them, reading Kubernetes only, never NB.
"""

from __future__ import annotations

from typing import Any

from topology import naming
from topology.builders.port import PortSpec, build_port
from ycloud_controller import keys
from ycloud_controller.api.common import meta
from ycloud_controller.ipam import IpamError
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import (
    Context,
    EventEffect,
    Outcome,
    PatchEffect,
    PortReconciler,
)
from ycloud_controller.reconcilers.pod import cni_annotations


class NodeReconciler(PortReconciler):
    RESOURCE = res.NODES

    def reconcile(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> Outcome:
        net = ctx.network()
        join = net.subnets[net.join_subnet]
        try:
            alloc = ctx.ipam.allocate(self.ipam_key(key), join.name)
        except IpamError as exc:
            return Outcome(rows={self.owner(key): None}, retry=exc.message,
                           effects=[EventEffect(obj or {}, "Warning", exc.reason, exc.message)])
        routes = [ctx.config.service_cidr] + [
            c for s in sorted(net.subnets_of(net.default_vpc), key=lambda s: s.name)
            if s.name != join.name for c in s.cidr_strs]
        rows = build_port(PortSpec(
            name=naming.node_port(key), switch=join.name, owner=self.owner(key), vpc=join.vpc,
            mac=alloc.mac, ips=tuple(str(ip) for ip in alloc.ips), role=naming.ROLE_NODE,
            node=key, gateways=join.gateway_strs, cidrs=join.cidr_strs, mtu=ctx.config.mtu,
            routes=tuple(routes)))
        wanted = {**cni_annotations(join, alloc, ctx.config.mtu),
                  keys.ANN_ROUTES: ",".join(routes)}
        ann = meta(obj or {}).get("annotations") or {}
        effects = []
        if any(ann.get(k) != v for k, v in wanted.items()):
            effects.append(PatchEffect(res.NODES, key, None,
                                       {"metadata": {"annotations": wanted}}))
        return Outcome(rows={self.owner(key): rows}, effects=effects)


reconcile_node = NodeReconciler()
