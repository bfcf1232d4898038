"""Who keeps a contested resource (ycloud_controller.precedence), through build_network, and
the order a full sync reconciles keys in (registry.order_keys)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from tests.unit import factories as f
from topology.model import Owner
from ycloud_controller.api.common import IPNetwork, overlaps
from ycloud_controller.config import Config
from ycloud_controller.kube.informer import Store
from ycloud_controller.network import build_network
from ycloud_controller.precedence import Precedence
from ycloud_controller.reconcilers.registry import order_keys


class Recorded:
    """Holdings as NB would record them: owner -> the ranges of its router ports."""

    def __init__(self, **ranges: str):
        self.ranges = {Owner("Subnet", k): [ipaddress.ip_network(v)] for k, v in ranges.items()}

    def holds_owner(self, owner: Owner) -> bool:
        return owner in self.ranges

    def held(self, owners: Iterable[Owner]) -> set[Owner]:
        return {o for o in owners if o in self.ranges}

    def records(self, owner: Owner, cidrs: Sequence[IPNetwork]) -> bool:
        return overlaps(self.ranges[owner], cidrs)


def _errors(subnets: list[dict], precedence: Precedence) -> set[str]:
    net = build_network([f.vpc("v")], subnets, [], Config(), precedence=precedence)
    return {name for (kind, name) in net.errors if kind == "Subnet"}


def test_the_holder_keeps_its_cidr_against_an_older_newcomer_of_a_smaller_name() -> None:
    established = f.subnet("late", "10.77.0.0/24", vpc="v", age=5)
    newcomer = f.subnet("aaa", "10.77.0.0/26", vpc="v", age=1)
    held = Precedence(Recorded(late="10.77.0.0/24"), ages=True)
    assert _errors([established, newcomer], held) == {"aaa"}
    # with nothing held, cluster mode goes by age, manifests mode by name
    assert _errors([established, newcomer], Precedence(ages=True)) == {"late"}
    young_first = f.subnet("aaa", "10.77.0.0/26", vpc="v", age=9)
    assert _errors([established, young_first], Precedence(ages=True)) == {"aaa"}
    assert _errors([established, young_first], Precedence(ages=False)) == {"late"}


def test_an_edit_onto_another_holders_range_does_not_make_the_editor_the_holder() -> None:
    """Both hold rows; `aaa` moved its cidrBlock onto `late`'s range: `late` keeps it."""
    held = Precedence(Recorded(late="10.77.0.0/24", aaa="10.99.0.0/24"), ages=False)
    subnets = [f.subnet("late", "10.77.0.0/24", vpc="v"), f.subnet("aaa", "10.77.0.0/25", vpc="v")]
    assert _errors(subnets, held) == {"aaa"}


def test_order_keys_puts_what_nb_holds_first_then_ages_then_names() -> None:
    subnets = Store()
    for name, age in (("aaa", 1), ("late", 5), ("mid", 3)):
        subnets.upsert(name, f.subnet(name, "10.77.0.0/24", vpc="v", age=age))
    stores = {"Subnet": subnets}
    keys = [("Endpoints", "ns/s"), ("Subnet", "aaa"), ("Subnet", "mid"), ("Subnet", "late"),
            ("Vpc", "v")]
    held = Precedence(Recorded(late="10.77.0.0/24"), ages=True)
    assert order_keys(keys, stores, held) == [
        ("Vpc", "v"), ("Subnet", "late"), ("Subnet", "aaa"), ("Subnet", "mid"),
        ("Endpoints", "ns/s")]
    # manifests mode: no ages, so the name decides among those NB does not hold
    assert order_keys(keys, stores, Precedence(ages=False)) == [
        ("Vpc", "v"), ("Subnet", "aaa"), ("Subnet", "late"), ("Subnet", "mid"),
        ("Endpoints", "ns/s")]
