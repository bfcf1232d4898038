"""Leader election on Leases through ApiBackend and FakeKube."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from fakekube import FakeKube
from fakekube.util import wait_for
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ycloud_controller.kube.backend import ApiBackend
from ycloud_controller.kube.errors import Conflict
from ycloud_controller.kube.leader import LeaderElector
from ycloud_controller.kube.objects import parse_time
from ycloud_controller.kube.resources import LEASES

LEASE = {"lease_duration": 1.0, "renew_deadline": 0.6, "retry_period": 0.1}
# a lease that cannot expire while a test runs: whoever takes it over was handed it
LONG = {"lease_duration": 600.0, "renew_deadline": 300.0}


class Candidate:
    def __init__(self, backend: ApiBackend, identity: str, **kw) -> None:
        self.log: list[str] = []
        self.stop = threading.Event()
        self.elector = LeaderElector(
            backend, name="ycloud-controller", namespace="kube-system", identity=identity,
            on_started_leading=lambda: self.log.append("started"),
            on_stopped_leading=lambda: self.log.append("stopped"), **{**LEASE, **kw},
        )
        self.thread = threading.Thread(target=self.elector.run, args=(self.stop,), daemon=True)

    def start(self) -> Candidate:
        self.thread.start()
        return self

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()


@pytest.fixture
def candidates(backend: ApiBackend):
    made: list[Candidate] = []

    def make(identity: str, **kw) -> Candidate:
        candidate = Candidate(backend, identity, **kw)
        made.append(candidate)
        return candidate.start()

    yield make
    for candidate in made:
        candidate.halt()


def lease(fake: FakeKube) -> dict:
    return fake.store.get(LEASES, "ycloud-controller", "kube-system")


def leaders(*cands: Candidate) -> list[str]:
    return [c.elector.identity for c in cands if c.elector.is_leader]


def expiry(spec: dict) -> datetime:
    """When a lease record runs out if its holder renews it no more."""
    renewed = parse_time(spec["renewTime"])
    assert renewed is not None
    return renewed + timedelta(seconds=spec["leaseDurationSeconds"])


def test_exactly_one_leads_and_takes_over_after_renewals_stop(fake: FakeKube, candidates):
    a = candidates("a", release_on_cancel=False)
    b = candidates("b", release_on_cancel=False)
    wait_for(lambda: len(leaders(a, b)) == 1, what="a leader")
    renewals: set[str] = set()

    def one_leader_through_renewals() -> bool:
        assert len(leaders(a, b)) == 1
        renewals.add(lease(fake)["spec"]["renewTime"])
        return len(renewals) > 5
    # stays exactly one over several renewals (the lease's renewTime is the witness)
    wait_for(one_leader_through_renewals, what="five renewals of the lease")
    first, second = (a, b) if a.elector.is_leader else (b, a)
    spec = lease(fake)["spec"]
    assert spec["holderIdentity"] == first.elector.identity
    assert spec["leaseDurationSeconds"] == 1 and spec["leaseTransitions"] == 0
    renew = parse_time(spec["renewTime"])
    assert renew is not None and "." in spec["renewTime"]  # MicroTime
    first.halt()  # crash: no release
    last = lease(fake)["spec"]  # the crashed holder's last renewal
    assert last["holderIdentity"] == first.elector.identity
    wait_for(lambda: second.elector.is_leader, timeout=30, what="takeover after lease expiry")
    spec = lease(fake)["spec"]
    assert spec["holderIdentity"] == second.elector.identity
    assert spec["leaseTransitions"] == 1
    # it did wait for the lease to expire: taken no sooner than the last renewal's expiry
    assert parse_time(spec["acquireTime"]) >= expiry(last), (last, spec)
    assert second.log == ["started"] and first.log == ["started", "stopped"]


def test_release_on_clean_stop_hands_over_immediately(fake: FakeKube, candidates):
    a = candidates("a", **LONG)
    wait_for(lambda: a.elector.is_leader, what="a leads")
    b = candidates("b", **LONG)
    wait_for(lambda: b.elector.holder == "a", what="b has read a's lease")
    assert not b.elector.is_leader and b.elector.holder == "a"
    held = lease(fake)["spec"]
    a.halt()  # release_on_cancel=True
    assert a.log == ["started", "stopped"]
    assert lease(fake)["spec"]["holderIdentity"] in ("", "b")
    wait_for(lambda: b.elector.is_leader, timeout=30, what="b takes the released lease")
    spec = lease(fake)["spec"]
    assert spec["holderIdentity"] == "b"
    # before the lease could have expired: a's 600 s lease was handed over, not waited out
    assert parse_time(spec["acquireTime"]) < expiry(held), (held, spec)


def test_leader_steps_down_when_it_cannot_renew(fake: FakeKube, candidates):
    a = candidates("a", release_on_cancel=False)
    wait_for(lambda: a.elector.is_leader, what="a leads")
    fake.inject("PUT", r"/leases/ycloud-controller$", 500, count=100)
    wait_for(lambda: not a.elector.is_leader, timeout=30, what="a steps down")
    assert a.log == ["started", "stopped"]
    fake.clear_faults()
    wait_for(lambda: a.elector.is_leader, timeout=30, what="a leads again")


def test_stale_lease_update_is_409(fake: FakeKube, backend: ApiBackend, api_client) -> None:
    body = {"metadata": {"name": "l", "namespace": "default"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
    created = backend.create(LEASES, body)
    backend.update(LEASES, dict(created, spec=dict(created["spec"], holderIdentity="b")))
    with pytest.raises(Conflict) as exc:
        backend.update(LEASES, dict(created, spec=dict(created["spec"], holderIdentity="c")))
    assert exc.value.code == 409
    coordination = client.CoordinationV1Api(api_client)
    stale = coordination.read_namespaced_lease("l", "default")
    stale.spec.holder_identity = "d"
    coordination.replace_namespaced_lease("l", "default", stale)  # bumps resourceVersion
    with pytest.raises(ApiException) as official:
        coordination.replace_namespaced_lease("l", "default", stale)
    assert official.value.status == 409
