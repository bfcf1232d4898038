"""ClusterIps (manifests mode's ClusterIP allocator): the first free address, holes reused,
one holder per address, and claims, releases and restores that keep its two maps agreeing."""

from __future__ import annotations

import pytest

from ycloud_controller.cluster_ips import ClusterIps, spec_cluster_ips
from ycloud_controller.ipam import IpamError


def test_allocation_takes_the_first_free_address_and_reuses_holes() -> None:
    ips = ClusterIps("10.96.0.0/28")
    got = [ips.allocate(f"ns/s{i}") for i in range(4)]
    assert got == ["10.96.0.2", "10.96.0.3", "10.96.0.4", "10.96.0.5"]  # .1 is never given
    assert ips.allocate("ns/s1") == "10.96.0.3"  # a key keeps what it holds
    ips.release("ns/s1")
    ips.release("ns/s0")
    assert ips.allocate("ns/new") == "10.96.0.2"  # the lowest hole first
    assert ips.allocate("ns/newer") == "10.96.0.3"
    assert ips.allocate("ns/next") == "10.96.0.6"


def test_allocation_skips_addresses_others_ask_for_and_fails_when_full() -> None:
    ips = ClusterIps("10.96.0.0/29")  # .2 .. .6
    assert ips.allocate("ns/a", avoid=lambda ip: ip in {"10.96.0.2", "10.96.0.3"}) == "10.96.0.4"
    assert ips.allocate("ns/b") == "10.96.0.2"
    for key in ("ns/c", "ns/d", "ns/e"):
        ips.allocate(key)
    with pytest.raises(RuntimeError, match="full"):
        ips.allocate("ns/f")


def test_claims_are_unique_and_replace_what_a_key_held() -> None:
    ips = ClusterIps("10.96.0.0/16,fd00:96::/112")
    ips.claim("ns/a", ["10.96.0.10", "fd00:96::10"])
    with pytest.raises(IpamError, match="already used by Service ns/a"):
        ips.claim("ns/b", ["10.96.0.10"])
    assert ips.holder("10.96.0.10") == "ns/a"
    ips.claim("ns/a", ["10.96.0.11"])  # the file changed its clusterIP
    assert ips.holder("10.96.0.10") is None and ips.holder("fd00:96::10") is None
    assert ips.allocate("ns/a", family=4) == "10.96.0.11"
    assert ips.allocate("ns/a", family=6) == "fd00:96::2"
    releases = ips.releases
    ips.release("ns/a")
    assert ips.used == {} and ips.releases == releases + 1
    assert ips.restore("ns/c", "10.96.0.11") and not ips.restore("ns/d", "10.96.0.11")
    assert not ips.restore("ns/d", "192.168.0.1")  # outside the service CIDRs


def test_a_claim_of_what_a_key_holds_changes_nothing_and_a_new_one_replaces_it() -> None:
    ips = ClusterIps("10.96.0.0/16,fd00:96::/112")
    ips.claim("ns/a", ["10.96.0.10", "fd00:96::10"])
    ips.claim("ns/a", ["fd00:96::10", "10.96.0.10"])  # every reconcile claims again
    assert ips.used == {"10.96.0.10": "ns/a", "fd00:96::10": "ns/a"} and ips.releases == 0
    ips.claim("ns/a", ["10.96.0.10"])  # one family dropped
    assert ips.used == {"10.96.0.10": "ns/a"} and ips.releases == 1
    ips.claim("ns/b", ["10.96.0.11"])
    with pytest.raises(IpamError, match="already used by Service ns/b"):
        ips.claim("ns/a", ["10.96.0.11"])
    assert ips.used == {"10.96.0.10": "ns/a", "10.96.0.11": "ns/b"}


@pytest.mark.parametrize(("spec", "named"), [
    ({}, []),
    ({"clusterIP": "None"}, []),
    ({"clusterIP": "None", "clusterIPs": ["None"]}, []),
    ({"clusterIP": "", "clusterIPs": [""]}, []),
    ({"clusterIP": "10.96.0.1"}, ["10.96.0.1"]),
    ({"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"]}, ["10.96.0.1"]),
    ({"clusterIPs": ["10.96.0.1"]}, ["10.96.0.1"]),
    ({"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1", "fd00::1"]},
     ["10.96.0.1", "fd00::1"]),
    # a file's change of clusterIP left an older clusterIPs behind: clusterIP wins
    ({"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.2", "fd00::2"]}, ["10.96.0.1"]),
])
def test_the_cluster_ips_a_spec_names(spec: dict, named: list[str]) -> None:
    assert spec_cluster_ips(spec) == named
