"""What a commit makes of outcomes (sync.commit): the verdict an outcome and NB's answer come
to, and what a plan-only pass hands the writer."""

from __future__ import annotations

from topology.model import LoadBalancer, Owner
from ycloud_controller.api.common import Invalid
from ycloud_controller.kube.resources import SERVICES
from ycloud_controller.reconcilers.base import EventEffect, Outcome, StatusEffect
from ycloud_controller.sync.commit import not_ready, same_rows, verdict
from ycloud_controller.sync.report import Verdict

SVC = {"metadata": {"name": "web", "namespace": "ns"}}


def test_a_plan_only_pass_claims_no_readiness_and_drops_writes_left_with_nothing() -> None:
    bare = StatusEffect(SERVICES, SVC, {}, True, "Reconciled")
    with_fields = StatusEffect(SERVICES, SVC, {"vpc": "v1"}, True, "Reconciled")
    refused = StatusEffect(SERVICES, SVC, {}, False, "Invalid", "bad port")
    event = EventEffect(SVC, "Warning", "Invalid", "bad port")
    out = not_ready([bare, with_fields, refused, event])
    assert out == [StatusEffect(SERVICES, SVC, {"vpc": "v1"}, None, "Reconciled"),
                   refused, event]


def test_nb_refusing_an_owner_decides_the_verdict_before_the_outcome_does() -> None:
    a, b = Owner("Service", "ns/a"), Owner("Service", "ns/b")
    rows = {a: [LoadBalancer(name="lb-a", protocol="tcp", owner=a)], b: None}
    assert verdict(Outcome(rows=rows), {}) == Verdict("ok")
    assert verdict(Outcome(rows=rows), {b: "no", a: "dup"}) == Verdict("refused", "dup")
    assert verdict(Outcome(rows=rows, retry="later"), {b: "no"}) == Verdict("refused", "no")
    retrying = verdict(Outcome(rows=rows, retry="later"), {Owner("Pod", "x"): "no"})
    assert retrying == Verdict("retrying", "later")
    assert (retrying.result, retrying.done) == ("retry", False)
    invalid = verdict(Outcome(invalid=Invalid("Bad", "bad port")), {})
    assert invalid == Verdict("invalid", "bad port") and invalid.done
    assert verdict(Outcome(invalid=Invalid("Bad", "x"), retry="later"), {}).state == "retrying"


def test_rows_compare_by_value() -> None:
    a = Owner("Service", "ns/a")
    rows = [LoadBalancer(name="lb-a", protocol="tcp", owner=a)]
    assert same_rows(rows, tuple(rows)) and same_rows(rows, rows)
    assert not same_rows(None, rows)
    assert not same_rows(rows, [LoadBalancer(name="lb-a", protocol="udp", owner=a)])
