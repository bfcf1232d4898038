"""What the settle pass hands the full sync after it (sync.settle)."""

from __future__ import annotations

from ycloud_controller.kube.resources import PODS, SERVICES
from ycloud_controller.reconcilers.base import Outcome, PatchEffect, StatusEffect, UpsertEffect
from ycloud_controller.sync.settle import for_reuse

SVC = {"metadata": {"name": "web", "namespace": "ns"}}


def test_a_reused_outcome_leaves_out_the_kubernetes_writes_already_handed_on() -> None:
    status = StatusEffect(PODS, SVC, {}, True, "Reconciled")
    patch = PatchEffect(PODS, "p", "ns", {"metadata": {"annotations": {"a": "1"}}})
    upsert = UpsertEffect(SERVICES, SVC)
    outcome = Outcome(effects=[status, patch, upsert])
    assert for_reuse(outcome).effects == [status]
    assert outcome.effects == [status, patch, upsert]  # the settle pass's own is unchanged
    plain = Outcome(effects=[status])
    assert for_reuse(plain) is plain
