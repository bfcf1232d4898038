"""NetworkProbe -> status read back from OVN's own health checks (SB Service_Monitor).

The probe itself is realized by the service reconciler (Load_Balancer_Health_Check plus
ip_port_mappings on the Service's LB); this reconciler only reports what OVN concluded:
Online, Offline or Unknown (no result yet), since when, and why.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from topology.naming import monitor_key
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import Context, Outcome, Reconciler, StatusEffect

PROBE_INDEX = "monitor"
STATES = {"online": ("Online", True, "HealthCheckPassed", "the backend answers OVN's probes"),
          "offline": ("Offline", False, "HealthCheckFailed", "the backend stopped answering "
                                                               "OVN's probes"),
          "error": ("Offline", False, "HealthCheckError", "OVN could not probe the backend")}


def probe_index(obj: dict) -> list[str]:
    spec = obj.get("spec") or {}
    if not spec.get("ip") or not spec.get("port"):
        return []
    return [monitor_key(spec["ip"], int(spec["port"]), str(spec.get("protocol", "TCP")))]


class ProbeReconciler(Reconciler):
    RESOURCE = res.NETWORKPROBES
    HAS_ROWS = False

    def __init__(self, monitors: Callable[[], dict[str, str]]):
        self.monitors = monitors  # SB health-check results by monitor key

    def reconcile(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> Outcome:
        obj = obj or {}
        keys = probe_index(obj)
        result = self.monitors().get(keys[0], "") if keys else ""
        state, healthy, reason, message = STATES.get(
            result, ("Unknown", False, "NoResultYet", "OVN has not probed the backend yet"))
        current = obj.get("status") or {}
        since = current.get("since") if current.get("state") == state else None
        status = {"healthy": healthy, "state": state, "reason": reason,
                  "since": since or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        if {k: current.get(k) for k in status} == status:
            return Outcome()
        return Outcome(effects=[StatusEffect(res.NETWORKPROBES, obj, status, healthy, reason,
                                             message)])
