"""Helpers of the sync loop that shape what the settle pass hands on (sync_support)."""

from __future__ import annotations

from ycloud_controller.kube.resources import PODS, SERVICES
from ycloud_controller.reconcilers.base import (
    EventEffect,
    Outcome,
    PatchEffect,
    StatusEffect,
    UpsertEffect,
)
from ycloud_controller.sync_support import for_reuse, not_ready

SVC = {"metadata": {"name": "web", "namespace": "ns"}}


def test_a_plan_only_pass_claims_no_readiness_and_drops_writes_left_with_nothing() -> None:
    bare = StatusEffect(SERVICES, SVC, {}, True, "Reconciled")
    with_fields = StatusEffect(SERVICES, SVC, {"vpc": "v1"}, True, "Reconciled")
    refused = StatusEffect(SERVICES, SVC, {}, False, "Invalid", "bad port")
    event = EventEffect(SVC, "Warning", "Invalid", "bad port")
    out = not_ready([bare, with_fields, refused, event])
    assert out == [StatusEffect(SERVICES, SVC, {"vpc": "v1"}, None, "Reconciled"),
                   refused, event]


def test_a_reused_outcome_leaves_out_the_kubernetes_writes_already_handed_on() -> None:
    status = StatusEffect(PODS, SVC, {}, True, "Reconciled")
    patch = PatchEffect(PODS, "p", "ns", {"metadata": {"annotations": {"a": "1"}}})
    upsert = UpsertEffect(SERVICES, SVC)
    outcome = Outcome(effects=[status, patch, upsert])
    assert for_reuse(outcome).effects == [status]
    assert outcome.effects == [status, patch, upsert]  # the settle pass's own is unchanged
    plain = Outcome(effects=[status])
    assert for_reuse(plain) is plain
