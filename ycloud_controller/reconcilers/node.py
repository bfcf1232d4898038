"""Node -> its port `node-<node>` on the join subnet (scenario 2: nodes reach ClusterIPs).

The port's address, MAC, gateway, CIDR, MTU and the CIDRs the node routes through it are also
written as annotations on the Node (`keys.ANN_*`, the contract pods have): the node agent
creates the node interface from them, reading Kubernetes only, never NB.

The node's chassis also gets its template variables (Chassis_Template_Var): for every Service
with a traffic policy Local, the backends on this node of each node-local VIP
(lb_config.template_values; empty where the node has none, so that the VIP rejects there).
"""

from __future__ import annotations

from typing import Any

from topology import naming
from topology.builders.port import PortSpec, build_port
from topology.model import ChassisTemplateVar, Owner, Row, fmap
from ycloud_controller import keys
from ycloud_controller.api.common import Invalid, meta
from ycloud_controller.api.service import parse_service
from ycloud_controller.ipam import IpamError
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import (
    Context,
    EventEffect,
    Outcome,
    PatchEffect,
    PortReconciler,
)
from ycloud_controller.reconcilers.lb_config import LOCAL_INDEX, template_values
from ycloud_controller.reconcilers.pod import cni_annotations
from ycloud_controller.reconcilers.service import SLICE_INDEX


def template_rows(ctx: Context, node: str, owner: Owner) -> list[Row]:
    """The node's Chassis_Template_Var (the chassis is named after the node), when any
    Service has a traffic policy Local, and once NB holds it, for as long as the Node
    exists (with no variables when no Service needs one): ovn-controller 23.03.1 asserts
    (`smap_count(local_templates) == 0` in template_vars_update) and exits when the row of
    its chassis is deleted and another one is inserted later."""
    variables: dict[str, str] = {}
    for obj in ctx.store("Service").by_index(LOCAL_INDEX, LOCAL_INDEX):
        try:
            svc = parse_service(obj)
        except Invalid:
            continue
        if not svc.has_lb:
            continue
        slices = ctx.store("EndpointSlice").by_index(SLICE_INDEX, svc.key)
        for var, by_node in template_values(svc, slices).items():
            variables[var] = by_node.get(node, "")
    if not variables and not ctx.precedence.holdings.holds(owner, ChassisTemplateVar.TABLE):
        return []
    return [ChassisTemplateVar(chassis=node, variables=fmap(variables), owner=owner)]


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
        return Outcome(rows={self.owner(key): rows + template_rows(ctx, key, self.owner(key))},
                       effects=effects)


reconcile_node = NodeReconciler()
