"""Subnet -> switch, router port and switch port to its VPC router; registers its IPAM."""

from __future__ import annotations

from typing import Any

from topology.builders.subnet import SubnetSpec, build_subnet
from ycloud_controller.api.subnet import SubnetView
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import (
    Context,
    ModelReconciler,
    Outcome,
    invalid_effects,
)


class SubnetReconciler(ModelReconciler):
    RESOURCE = res.SUBNETS
    MODEL = "subnets"

    def gone(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> Outcome:
        ctx.ipam.remove_subnet(key)
        return super().gone(ctx, key, obj)

    def reconcile(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> Outcome:
        net = ctx.network()
        err = net.error(self.RESOURCE.kind, key)
        view = net.subnets.get(key)
        if err is not None and key in net.config_subnets and view is not None:
            # an object named like a subnet of the configuration (ovn-default, subnet0) is
            # refused; the configuration's subnet itself must still be built
            outcome = self._build(ctx, key, view, None)
            outcome.effects = invalid_effects(res.SUBNETS, obj, err)
            outcome.invalid = err
            return outcome
        if err is not None:
            raise err
        assert view is not None  # not absent
        return self._build(ctx, key, view, obj)

    def _build(self, ctx: Context, key: str, view: SubnetView,
               obj: dict[str, Any] | None) -> Outcome:
        ctx.ipam.set_subnet(view)
        rows = build_subnet(SubnetSpec(
            name=key, vpc=view.vpc, owner=self.owner(key), cidrs=view.cidr_strs,
            gateways=view.gateway_strs, mtu=view.mtu or ctx.config.mtu))
        usage = ctx.ipam.usage(key)
        status = {"switch": key}
        for family, label in ((4, "v4"), (6, "v6")):
            if family in usage:
                status[f"{label}UsingIPs"], status[f"{label}AvailableIPs"] = usage[family]
        return self.ready(key, obj, rows, status)


reconcile_subnet = SubnetReconciler()
