"""Reading what a reconciler returns, for the unit tests of reconcilers: an owner's rows, the
one status effect, the one row of a class, and the load balancers and VIPs of a Service's
rows (default/web unless told).
"""

from __future__ import annotations

from topology import naming
from topology.model import LoadBalancer, Owner
from ycloud_controller.reconcilers.base import Outcome, StatusEffect


def rows_of(outcome: Outcome, owner: Owner) -> list:
    rows = outcome.rows[owner]
    assert rows is not None, outcome
    return list(rows)


def status(outcome: Outcome) -> StatusEffect:
    (eff,) = [e for e in outcome.effects if isinstance(e, StatusEffect)]
    return eff


def only(rows: list, cls: type):
    (row,) = [r for r in rows if isinstance(r, cls)]
    return row


# The Service the tests reconcile unless told otherwise.
SVC = Owner("Service", "default/web")


def lbs(out: Outcome, owner: Owner = SVC) -> dict[str, LoadBalancer]:
    return {r.name: r for r in rows_of(out, owner) if isinstance(r, LoadBalancer)}


def vips(out: Outcome, proto: str = "TCP", owner: Owner = SVC) -> dict[str, str]:
    name = naming.service_lb(*owner.name.split("/"), proto)
    return dict(lbs(out, owner)[name].vips)
