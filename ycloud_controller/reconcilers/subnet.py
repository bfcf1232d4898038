"""Subnet -> switch, router port and switch port to its VPC router; registers its IPAM."""

from __future__ import annotations

from typing import Any

from topology.builders.subnet import SubnetSpec, build_subnet
from topology.model import Owner
from ycloud_controller.api.subnet import SubnetView
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import (
    Context,
    Outcome,
    invalid_effects,
    ready_effects,
    refused_effects,
)

KIND = "Subnet"


def owner(name: str) -> Owner:
    return Owner(KIND, name)


def reconcile_subnet(ctx: Context, key: str) -> Outcome:
    net = ctx.network()
    obj = ctx.store(KIND).get(key)
    err = net.error(KIND, key)
    view = net.subnets.get(key)
    if err is not None and key in net.config_subnets and view is not None:
        # an object named like a subnet of the configuration (ovn-default, subnet0) is
        # refused; the configuration's subnet itself must still be built
        outcome = _build(ctx, key, view, None)
        outcome.effects = invalid_effects(res.SUBNETS, obj, err)
        outcome.invalid = err
        return outcome
    if err is not None:
        return Outcome(rows={owner(key): None}, effects=invalid_effects(res.SUBNETS, obj, err),
                       invalid=err)
    if view is None:
        ctx.ipam.remove_subnet(key)
        return Outcome(rows={owner(key): []})
    return _build(ctx, key, view, obj)


def _build(ctx: Context, key: str, view: SubnetView, obj: dict[str, Any] | None) -> Outcome:
    ctx.ipam.set_subnet(view)
    rows = build_subnet(SubnetSpec(
        name=key, vpc=view.vpc, owner=owner(key), cidrs=view.cidr_strs,
        gateways=view.gateway_strs, mtu=view.mtu or ctx.config.mtu))
    usage = ctx.ipam.usage(key)
    status = {"switch": key}
    for family, label in ((4, "v4"), (6, "v6")):
        if family in usage:
            status[f"{label}UsingIPs"], status[f"{label}AvailableIPs"] = usage[family]
    return Outcome(rows={owner(key): rows}, effects=ready_effects(res.SUBNETS, obj, status),
                   on_refused=refused_effects(res.SUBNETS, obj))
