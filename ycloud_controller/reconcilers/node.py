"""Node -> its port `node-<node>` on the join subnet (scenario 2: nodes reach ClusterIPs)."""

from __future__ import annotations

from typing import Any

from topology import naming
from topology.builders.port import PortSpec, build_port
from ycloud_controller.ipam import IpamError
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import Context, EventEffect, Outcome, PortReconciler


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
        return Outcome(rows={self.owner(key): rows})


reconcile_node = NodeReconciler()
