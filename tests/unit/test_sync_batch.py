"""ycloud_controller.sync.batch.Waiters: who is woken when an address comes back."""

from __future__ import annotations

from ycloud_controller.api.common import Invalid
from ycloud_controller.ipam import IpamError
from ycloud_controller.reconcilers.base import Outcome
from ycloud_controller.sync.batch import Waiters

from .test_ipam import ipam_with, ips, view


def test_a_release_by_another_object_wakes_the_refused_one() -> None:
    ipam = ipam_with(view("10.0.0.0/24"))
    waiters = Waiters([ipam])

    def want(key: str) -> Outcome:
        try:
            ipam.allocate(key, "s1", ips=ips("10.0.0.10"))
        except IpamError as exc:
            return Outcome(invalid=Invalid(exc.reason, exc.message))
        return Outcome()

    def gone(key: str) -> Outcome:
        ipam.release(key)
        return Outcome()

    assert waiters.reconcile("holder", want) == (Outcome(), False)
    outcome, freed = waiters.reconcile("loser", want)
    assert outcome.invalid is not None and outcome.invalid.reason == "AddressInUse"
    assert not freed and waiters.keys == {"loser"}
    # the waiter's own retry frees nothing and wakes nobody
    assert waiters.reconcile("loser", want)[1] is False
    assert waiters.reconcile("holder", gone) == (Outcome(), True)
    assert waiters.reconcile("loser", want) == (Outcome(), False)
    assert waiters.keys == set()


def test_other_refusals_do_not_wait() -> None:
    waiters = Waiters([ipam_with(view("10.0.0.0/24"))])
    waiters.reconcile("bad", lambda k: Outcome(invalid=Invalid("InvalidCIDR", "no")))
    assert waiters.keys == set()
