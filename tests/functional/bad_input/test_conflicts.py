"""Bad input, found by the corpus and reproduced on its own: objects that want one NB row
name, address, MAC or EIP, on the real controller (FakeKube, a real NB). The older object
keeps it, on a running controller and on a cold start; the younger is refused with a
condition and gets it once the holder is gone.
"""

from __future__ import annotations

from typing import Any

import pytest
from fakekube.server import FakeKube
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional.bad_input.support import (
    DATA,
    DEADLINE,
    FIRST_COME,
    condition,
    converge,
    create,
    expectation,
    ident,
    label,
    live,
    load,
    mismatches,
    next_second,
    ok,
    settled,
    tiers,
)
from tests.functional.conftest import find
from tests.functional.test_controller import running
from topology import naming
from topology.nbsync.client import NbClient
from ycloud_controller.kube import resources as res

COLLISIONS = DATA / "name_collisions.yaml"


def test_name_collisions_refuse_the_younger_object(fake: FakeKube, sandbox: Sandbox,
                                                   nb: NbClient,
                                                   examples: list[dict[str, Any]]) -> None:
    collisions = load(COLLISIONS)
    create(fake, examples)
    with running(fake, sandbox, emulate=True, wait_synced=True) as ctl:
        wait_for(lambda: not mismatches(fake, [ok(o) for o in examples], events=False),
                 timeout=DEADLINE, what="examples ready")

        def older_rows() -> dict[str, Any]:
            return {
                "vnic x": [(p["addresses"], p["external_ids"][naming.OWNER]) for p in find(
                    sandbox, "Logical_Switch_Port", "name=vnic.x.bad")],
                "cx-y-z": [(p["networks"], p["external_ids"][naming.OWNER]) for p in find(
                    sandbox, "Logical_Router_Port", "name=cx-y-z")],
                "web-1": [p["external_ids"][naming.OWNER] for p in find(
                    sandbox, "Logical_Switch_Port", "name=web-1.ns-vpc1")]}
        before: dict[str, Any] = {}
        for i, tier in enumerate(tiers(collisions)):
            if i:
                converge(fake, tiers(collisions)[0])
                settled(fake, ctl)
                before = older_rows()  # the rows of the older objects, before the younger
                next_second()
            create(fake, tier)
        # the younger objects had their chance to take the rows: each was refused (the
        # controller looked at it), and the controller handled everything that caused
        wait_for(lambda: all(condition(live(fake, o)).get("status") == "False"
                             for o in tiers(collisions)[1]),
                 timeout=DEADLINE, what="the younger objects refused")
        settled(fake, ctl)
        after = older_rows()
        assert after == before
        assert after["vnic x"][0][1] == "bad/x"
        assert after["cx-y-z"] == [("10.77.0.1/24", "y-z")]
        assert after["web-1"] == ["ns-vpc1/web-1"]
        for obj in tiers(collisions)[1]:
            got = condition(live(fake, obj))
            assert got.get("status") == "False" and got.get("reason") in (
                "NameConflict", "NBRefused"), (label(obj), got)


def test_cold_start_gives_a_requested_address_to_the_older_object(
        fake: FakeKube, sandbox: Sandbox, nb: NbClient, examples: list[dict[str, Any]],
        corpus: list[dict[str, Any]]) -> None:
    contenders = [o for o in corpus if ident(o) in FIRST_COME or o["kind"] == "Namespace"]
    create(fake, examples)
    for tier in tiers(contenders):
        next_second()
        create(fake, tier)
    with running(fake, sandbox, emulate=True, wait_synced=True):
        wait_for(lambda: all(condition(live(fake, o)) for o in contenders
                             if expectation(o) is not None), timeout=DEADLINE)

        def left() -> list[str]:
            return mismatches(fake, contenders, events=False) + mismatches(
                fake, [ok(o) for o in examples], events=False)
        try:
            wait_for(lambda: not left(), timeout=DEADLINE, what="contenders and examples")
        except AssertionError:
            raise AssertionError("\n".join(left())) from None


@pytest.mark.parametrize("loser,winner", [
    pytest.param(("Pod", "ns-vpc1", "ip-in-use"), (res.VNICS, "vm-1", "ns-vpc1"), id="ip"),
    pytest.param(("Service", "ns-vpc1", "eip-taken"), (res.SERVICES, "web-eip", "ns-vpc1"),
                 id="eip"),
])
def test_the_loser_of_a_conflict_gets_the_address_when_the_winner_goes(
        fake: FakeKube, sandbox: Sandbox, nb: NbClient, examples: list[dict[str, Any]],
        corpus: list[dict[str, Any]], loser: tuple[str, str, str],
        winner: tuple[res.Resource, str, str]) -> None:
    """A refused address or EIP is not refused forever: once its holder is gone, the
    younger object gets it."""
    losers = [o for o in corpus if ident(o) == loser]
    create(fake, examples)
    with running(fake, sandbox, emulate=True, wait_synced=True) as ctl:
        wait_for(lambda: not mismatches(fake, [ok(o) for o in examples], events=False),
                 timeout=DEADLINE, what="examples ready")
        create(fake, losers)
        converge(fake, losers)
        settled(fake, ctl)
        fake.store.delete(*winner)
        wait_for(lambda: not mismatches(fake, [ok(o) for o in losers], events=False),
                 timeout=10, what="the loser ready once the winner is gone")
