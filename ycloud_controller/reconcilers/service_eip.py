"""EIPs of LoadBalancer services (scenarios 3 and 4). Filled in by the EIP work."""

from __future__ import annotations

from typing import Any

from topology.model import Row
from ycloud_controller.api.service import ServiceView
from ycloud_controller.reconcilers.base import Context


def eip_lbs(ctx: Context, svc: ServiceView, vpc: str | None,
            slices: list[dict[str, Any]]) -> tuple[list[Row], dict[str, Any]]:
    return [], {}


def release(ctx: Context, key: str) -> None:
    return None
