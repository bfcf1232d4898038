"""ycloud_controller.ipam.Ipam: allocation order, reservations, conflicts, restore, threads."""

from __future__ import annotations

import re
import threading
from ipaddress import ip_address

import pytest

from ycloud_controller.api.subnet import SubnetView, parse_subnet
from ycloud_controller.ipam import Allocation, Ipam, IpamError, mac_for


def view(cidr: str, name: str = "s1", **spec) -> SubnetView:
    return parse_subnet({"metadata": {"name": name}, "spec": {"cidrBlock": cidr, **spec}},
                        "ovn-cluster")


def ips(*values: str):
    return tuple(ip_address(v) for v in values)


def ipam_with(*views: SubnetView) -> Ipam:
    ipam = Ipam()
    for v in views:
        ipam.set_subnet(v)
    return ipam


def drain(ipam: Ipam, subnet: str, prefix: str = "o") -> list[str]:
    out = []
    for i in range(1 << 16):
        try:
            out.append(str(ipam.allocate(f"{prefix}{i}", subnet).ips[0]))
        except IpamError as exc:
            assert exc.reason == "SubnetFull"
            return out
    raise AssertionError("never full")


def reason(fn, *args, **kw) -> str:
    with pytest.raises(IpamError) as info:
        fn(*args, **kw)
    return info.value.reason


# -- order and reservations ------------------------------------------------------------------------
def test_allocation_skips_network_gateway_probe_source_and_broadcast():
    # /29: .0 network, .1 gateway, .6 probe source, .7 broadcast
    ipam = ipam_with(view("10.0.0.0/29"))
    assert drain(ipam, "s1") == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]


def test_allocation_skips_excludes_and_custom_gateway():
    ipam = ipam_with(view("10.0.0.0/28", gateway="10.0.0.14",
                          excludeIps=["10.0.0.3..10.0.0.5", "10.0.0.9"]))
    got = drain(ipam, "s1")
    # .14 gateway, .13 probe source (highest usable that is not the gateway), .15 broadcast
    assert got == ["10.0.0.1", "10.0.0.2", "10.0.0.6", "10.0.0.7", "10.0.0.8", "10.0.0.10",
                   "10.0.0.11", "10.0.0.12"]


def test_ipv6_allocation():
    # fd00::/125: ::1 gateway, ::7 probe source (v6 has no broadcast)
    ipam = ipam_with(view("fd00::/125"))
    assert drain(ipam, "s1") == ["fd00::2", "fd00::3", "fd00::4", "fd00::5", "fd00::6"]


def test_usage():
    ipam = ipam_with(view("10.0.0.0/29"))
    assert ipam.usage("s1") == {4: (0, 4)}
    ipam.allocate("a", "s1")
    assert ipam.usage("s1") == {4: (1, 3)}
    assert ipam.usage("nope") == {}


def test_released_address_is_reused_after_the_others():
    ipam = ipam_with(view("10.0.0.0/24"))
    a = ipam.allocate("a", "s1")
    ipam.allocate("b", "s1")
    ipam.release("a")
    assert ipam.get("a") is None
    assert ipam.owner_of("s1", a.ips[0]) is None
    c = ipam.allocate("c", "s1")
    assert c.ips[0] != a.ips[0]  # the cursor moves on: a freed address is not reused at once
    assert ipam.allocate("a", "s1", ips=a.ips).ips == a.ips  # but it is free


def test_unknown_subnet():
    assert reason(Ipam().allocate, "a", "nope") == "SubnetNotReady"


# -- requested addresses ---------------------------------------------------------------------------
def test_requested_ip_honored():
    ipam = ipam_with(view("10.0.0.0/24"))
    alloc = ipam.allocate("a", "s1", ips=ips("10.0.0.77"))
    assert alloc == Allocation("s1", ips("10.0.0.77"), "0a:58:0a:00:00:4d")
    assert ipam.owner_of("s1", ip_address("10.0.0.77")) == "a"
    # asking again is idempotent
    assert ipam.allocate("a", "s1", ips=ips("10.0.0.77")) is alloc


@pytest.mark.parametrize("ip,why", [
    ("10.0.0.5", "AddressInUse"),
    ("10.0.0.1", "AddressReserved"),  # gateway
    ("10.0.0.254", "AddressReserved"),  # probe source
    ("10.0.0.20", "AddressReserved"),  # excluded
    ("10.0.0.0", "AddressOutsideSubnet"),  # network
    ("10.0.0.255", "AddressOutsideSubnet"),  # broadcast
    ("10.0.1.5", "AddressOutsideSubnet"),
    ("fd00::5", "AddressOutsideSubnet"),  # family the subnet does not have
])
def test_requested_ip_refused(ip, why):
    ipam = ipam_with(view("10.0.0.0/24", excludeIps=["10.0.0.20..10.0.0.30"]))
    ipam.allocate("holder", "s1", ips=ips("10.0.0.5"))
    assert reason(ipam.allocate, "a", "s1", ips=ips(ip)) == why
    assert ipam.get("a") is None
    assert ipam.usage("s1")[4][0] == 1  # nothing leaked


def test_two_requested_ips_of_one_family():
    ipam = ipam_with(view("10.0.0.0/24"))
    assert reason(ipam.allocate, "a", "s1", ips=ips("10.0.0.5", "10.0.0.6")) == \
        "AddressOutsideSubnet"
    assert ipam.usage("s1")[4][0] == 0


def test_subnet_full():
    ipam = ipam_with(view("10.0.0.0/29"))
    drain(ipam, "s1")
    assert reason(ipam.allocate, "late", "s1") == "SubnetFull"
    assert ipam.get("late") is None


def test_changing_requested_ip_frees_the_old_one():
    ipam = ipam_with(view("10.0.0.0/24"))
    ipam.allocate("a", "s1", ips=ips("10.0.0.5"))
    alloc = ipam.allocate("a", "s1", ips=ips("10.0.0.6"))
    assert alloc.ips == ips("10.0.0.6")
    assert alloc.mac == "0a:58:0a:00:00:05"  # the MAC stays with the owner
    assert ipam.owner_of("s1", ip_address("10.0.0.5")) is None
    assert ipam.allocate("b", "s1", ips=ips("10.0.0.5")).ips == ips("10.0.0.5")


def test_failed_change_keeps_the_current_allocation():
    ipam = ipam_with(view("10.0.0.0/24"))
    ipam.allocate("b", "s1", ips=ips("10.0.0.6"))
    before = ipam.allocate("a", "s1", ips=ips("10.0.0.5"))
    assert reason(ipam.allocate, "a", "s1", ips=ips("10.0.0.6")) == "AddressInUse"
    assert ipam.get("a") == before
    assert ipam.owner_of("s1", ip_address("10.0.0.5")) == "a"


def test_moving_to_another_subnet_frees_the_old_address():
    ipam = ipam_with(view("10.0.0.0/24"), view("10.1.0.0/24", name="s2"))
    old = ipam.allocate("a", "s1")
    new = ipam.allocate("a", "s2")
    assert new.subnet == "s2" and str(new.ips[0]).startswith("10.1.0.")
    assert ipam.owner_of("s1", old.ips[0]) is None


# -- extra addresses -------------------------------------------------------------------------------
def test_extra_ips_and_count():
    ipam = ipam_with(view("10.0.0.0/24"))
    alloc = ipam.allocate("vm", "s1", ips=ips("10.0.0.10"), extra=ips("10.0.0.20"),
                          extra_count=2)
    assert alloc.ips[:2] == ips("10.0.0.10", "10.0.0.20")
    assert len(alloc.ips) == 4 and len(set(alloc.ips)) == 4
    for ip in alloc.ips:
        assert ipam.owner_of("s1", ip) == "vm"
    # the same request keeps the same addresses
    assert ipam.allocate("vm", "s1", ips=ips("10.0.0.10"), extra=ips("10.0.0.20"),
                         extra_count=2) is alloc
    # fewer extras: the dropped ones are freed
    smaller = ipam.allocate("vm", "s1", ips=ips("10.0.0.10"))
    assert smaller.ips == ips("10.0.0.10")
    assert ipam.usage("s1")[4][0] == 1


def test_extra_ip_conflict_rolls_back():
    ipam = ipam_with(view("10.0.0.0/24"))
    ipam.allocate("b", "s1", ips=ips("10.0.0.20"))
    assert reason(ipam.allocate, "vm", "s1", extra=ips("10.0.0.20")) == "AddressInUse"
    assert ipam.usage("s1")[4][0] == 1
    assert reason(ipam.allocate, "vm", "s1", extra=ips("10.9.0.1")) == "AddressOutsideSubnet"
    assert reason(ipam.allocate, "vm", "s1", extra=ips("fd00::1")) == "AddressOutsideSubnet"
    assert ipam.usage("s1")[4][0] == 1


def test_extra_count_when_full_rolls_back():
    ipam = ipam_with(view("10.0.0.0/29"))  # 4 usable
    assert reason(ipam.allocate, "vm", "s1", extra_count=4) == "SubnetFull"
    assert ipam.usage("s1") == {4: (0, 4)}


# -- MACs ------------------------------------------------------------------------------------------
def test_mac_derived_from_ipv4():
    assert mac_for(ip_address("10.16.0.5")) == "0a:58:0a:10:00:05"
    ipam = ipam_with(view("10.0.0.0/24"))
    assert ipam.allocate("a", "s1").mac == "0a:58:0a:00:00:02"


def test_mac_without_ipv4_is_local_unicast():
    for _ in range(20):
        mac = mac_for(ip_address("fd00::5"))
        assert re.match(r"^0a(:[0-9a-f]{2}){5}$", mac)
    assert re.match(r"^0a(:[0-9a-f]{2}){5}$", mac_for(None))


def test_requested_mac_and_conflicts():
    ipam = ipam_with(view("10.0.0.0/24"))
    a = ipam.allocate("a", "s1", mac="0a:00:00:00:00:aa")
    assert a.mac == "0a:00:00:00:00:aa"
    assert reason(ipam.allocate, "b", "s1", mac="0a:00:00:00:00:aa") == "MacInUse"
    assert ipam.usage("s1")[4][0] == 1  # b's address was rolled back
    # an address whose derived MAC someone holds still gets a MAC of its own
    c = ipam.allocate("c", "s1", ips=ips("10.0.0.50"), mac=mac_for(ip_address("10.0.0.60")))
    d = ipam.allocate("d", "s1", ips=ips("10.0.0.60"))
    assert d.mac != c.mac
    assert reason(ipam.allocate, "e", "s1", mac=c.mac) == "MacInUse"
    # releasing frees the MAC
    ipam.release("a")
    assert ipam.allocate("b", "s1", mac="0a:00:00:00:00:aa").mac == "0a:00:00:00:00:aa"


def test_changing_mac():
    ipam = ipam_with(view("10.0.0.0/24"))
    first = ipam.allocate("a", "s1")
    second = ipam.allocate("a", "s1", mac="0a:00:00:00:00:01")
    assert second.ips == first.ips and second.mac == "0a:00:00:00:00:01"
    assert ipam.allocate("b", "s1", mac=first.mac).mac == first.mac  # old MAC is free


# -- dual stack ------------------------------------------------------------------------------------
def test_dual_stack():
    ipam = ipam_with(view("10.0.0.0/24,fd00::/120"))
    a = ipam.allocate("a", "s1")
    assert a.ips == ips("10.0.0.2", "fd00::2")
    assert a.mac == "0a:58:0a:00:00:02"
    b = ipam.allocate("b", "s1", ips=ips("fd00::50"))
    assert b.ips == ips("10.0.0.3", "fd00::50")
    assert ipam.usage("s1") == {4: (2, 250), 6: (2, 251)}
    assert reason(ipam.allocate, "c", "s1", ips=ips("10.0.0.9", "fd00::50")) == "AddressInUse"
    assert ipam.owner_of("s1", ip_address("10.0.0.9")) is None


def test_ipv6_only_subnet_mac():
    ipam = ipam_with(view("fd00::/120"))
    a = ipam.allocate("a", "s1")
    assert a.ips == ips("fd00::2")
    assert re.match(r"^0a(:[0-9a-f]{2}){5}$", a.mac)
    assert ipam.allocate("a", "s1").mac == a.mac  # stable while allocated


# -- restore ---------------------------------------------------------------------------------------
def test_restore_is_idempotent():
    ipam = ipam_with(view("10.0.0.0/24"))
    assert ipam.restore("a", "s1", ips("10.0.0.9"), "0a:58:0a:00:00:09")
    assert ipam.restore("a", "s1", ips("10.0.0.9"), "0a:58:0a:00:00:09")
    assert ipam.get("a") == Allocation("s1", ips("10.0.0.9"), "0a:58:0a:00:00:09")
    assert ipam.usage("s1")[4][0] == 1


def test_restore_refuses_conflicts():
    ipam = ipam_with(view("10.0.0.0/24"), view("10.1.0.0/24", name="s2"))
    assert ipam.restore("a", "s1", ips("10.0.0.9"), "0a:58:0a:00:00:09")
    assert not ipam.restore("b", "s1", ips("10.0.0.9"), "0a:00:00:00:00:01")  # IP taken
    assert not ipam.restore("c", "s1", ips("10.0.0.10"), "0a:58:0a:00:00:09")  # MAC taken
    assert not ipam.restore("d", "s1", ips("10.0.0.1"), "0a:00:00:00:00:02")  # gateway
    assert not ipam.restore("a", "s2", ips("10.1.0.9"), "0a:58:0a:00:00:09")  # other subnet
    assert not ipam.restore("a", "s1", ips("10.0.0.10"), "0a:58:0a:00:00:09")  # other IP
    assert not ipam.restore("e", "nope", ips("10.0.0.11"), "0a:00:00:00:00:03")
    assert set(ipam.owners()) == {"a"}


def test_restore_with_extra_addresses():
    ipam = ipam_with(view("10.0.0.0/24,fd00::/120"))
    assert ipam.restore("vm", "s1", ips("10.0.0.9", "fd00::9", "10.0.0.10"), "0a:00:00:00:00:09")
    alloc = ipam.get("vm")
    assert set(alloc.ips) == set(ips("10.0.0.9", "fd00::9", "10.0.0.10"))
    assert ipam.owner_of("s1", ip_address("10.0.0.10")) == "vm"


def test_restore_then_allocate_never_hands_out_a_restored_ip():
    ipam = ipam_with(view("10.0.0.0/29"))
    assert ipam.restore("old", "s1", ips("10.0.0.2"), "0a:58:0a:00:00:02")
    assert "10.0.0.2" not in drain(ipam, "s1")


# -- subnet changes --------------------------------------------------------------------------------
def test_set_subnet_keeps_allocations_that_still_fit():
    ipam = ipam_with(view("10.0.0.0/24"))
    keep = ipam.allocate("keep", "s1", ips=ips("10.0.0.10"))
    ipam.allocate("excluded", "s1", ips=ips("10.0.0.20"))
    ipam.allocate("outside", "s1", ips=ips("10.0.0.200"))
    ipam.allocate("probe", "s1", ips=ips("10.0.0.126"))
    ipam.set_subnet(view("10.0.0.0/25", excludeIps=["10.0.0.20"]))
    assert set(ipam.owners()) == {"keep"}
    assert ipam.get("keep") == keep
    assert ipam.owner_of("s1", ip_address("10.0.0.10")) == "keep"
    # the dropped owners' MACs are free again and they get new addresses on request
    again = ipam.allocate("outside", "s1")
    assert ip_address("10.0.0.2") <= again.ips[0] <= ip_address("10.0.0.125")
    assert again.ips[0] not in ips("10.0.0.10", "10.0.0.20")


def test_set_subnet_same_view_is_a_no_op():
    ipam = ipam_with(view("10.0.0.0/24"))
    a = ipam.allocate("a", "s1")
    ipam.set_subnet(view("10.0.0.0/24"))
    assert ipam.get("a") == a
    assert ipam.allocate("b", "s1").ips != a.ips


def test_set_subnet_adding_a_family():
    ipam = ipam_with(view("10.0.0.0/24"))
    a = ipam.allocate("a", "s1")
    ipam.set_subnet(view("10.0.0.0/24,fd00::/120"))
    assert ipam.get("a") == a
    dual = ipam.allocate("a", "s1")
    assert dual.ips[0] == a.ips[0] and dual.ips[1].version == 6
    assert dual.mac == a.mac


def test_set_subnet_dropping_a_family_drops_owners_holding_it():
    ipam = ipam_with(view("10.0.0.0/24,fd00::/120"))
    ipam.allocate("a", "s1")
    ipam.set_subnet(view("10.0.0.0/24"))
    assert ipam.get("a") is None
    assert ipam.usage("s1") == {4: (0, 252)}


def test_remove_subnet_drops_its_owners_only():
    ipam = ipam_with(view("10.0.0.0/24"), view("10.1.0.0/24", name="s2"))
    ipam.allocate("a", "s1")
    b = ipam.allocate("b", "s2")
    ipam.remove_subnet("s1")
    assert ipam.subnet("s1") is None
    assert set(ipam.owners()) == {"b"} and ipam.get("b") == b
    assert reason(ipam.allocate, "a", "s1") == "SubnetNotReady"


# -- never twice -----------------------------------------------------------------------------------
def test_many_owners_get_unique_addresses():
    ipam = ipam_with(view("10.0.0.0/18", excludeIps=["10.0.1.0..10.0.1.255"]))
    allocs = [ipam.allocate(f"pod{i}", "s1") for i in range(5000)]
    addrs = [a.ips[0] for a in allocs]
    assert len(set(addrs)) == 5000
    assert len({a.mac for a in allocs}) == 5000
    for ip in addrs:
        assert not ip_address("10.0.1.0") <= ip <= ip_address("10.0.1.255")
        assert ip not in ips("10.0.0.0", "10.0.0.1", "10.0.63.254", "10.0.63.255")
    # churn: release every third and allocate again, still unique
    for i in range(0, 5000, 3):
        ipam.release(f"pod{i}")
    for i in range(0, 5000, 3):
        ipam.allocate(f"new{i}", "s1")
    held = [a.ips[0] for a in ipam.owners().values()]
    assert len(held) == len(set(held)) == 5000
    assert ipam.usage("s1")[4][0] == 5000


def test_concurrent_allocations_are_unique():
    ipam = ipam_with(view("10.0.0.0/18"))
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for i in range(400):
                ipam.allocate(f"t{t}-{i}", "s1")
                if i % 5 == 0:
                    ipam.release(f"t{t}-{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    owners = ipam.owners()
    assert len(owners) == 8 * 320
    addrs = [a.ips[0] for a in owners.values()]
    assert len(set(addrs)) == len(addrs)
    for owner, alloc in owners.items():
        assert ipam.owner_of("s1", alloc.ips[0]) == owner
    assert ipam.usage("s1")[4][0] == len(addrs)


def test_same_address_in_two_vpcs():
    """Subnets of different VPCs may share a CIDR: the same IP twice must not fail on its
    derived MAC (MACs stay unique: the second owner gets another one)."""
    ipam = ipam_with(view("10.1.0.0/24", name="a", vpc="v1"),
                     view("10.1.0.0/24", name="b", vpc="v2"))
    first = ipam.allocate("pa", "a")
    second = ipam.allocate("pb", "b")
    assert first.ips == second.ips == ips("10.1.0.2")
    assert first.mac == "0a:58:0a:01:00:02"
    assert second.mac != first.mac
    assert re.match(r"^0a(:[0-9a-f]{2}){5}$", second.mac)
    assert ipam.allocate("pb", "b") is second  # stable


def test_free_address_whose_derived_mac_is_kept_by_its_previous_holder():
    ipam = ipam_with(view("10.0.0.0/24"))
    ipam.allocate("a", "s1", ips=ips("10.0.0.5"))
    moved = ipam.allocate("a", "s1", ips=ips("10.0.0.6"))  # keeps 0a:58:0a:00:00:05
    b = ipam.allocate("b", "s1", ips=ips("10.0.0.5"))
    assert b.ips == ips("10.0.0.5") and b.mac != moved.mac


def test_subnets_whose_usage_changed_since_their_status_read_it() -> None:
    """take_changed: what a subnet's (or pool's) status must report again once the batch
    that took or gave back its addresses is done; reading usage (the status) clears it."""
    ipam = ipam_with(view("10.0.0.0/24"), view("10.1.0.0/24", name="s2"))
    assert ipam.take_changed() == set()
    ipam.allocate("pod-a", "s1")
    ipam.allocate("pod-a", "s1")  # the allocation it has: nothing changed
    assert ipam.take_changed() == {"s1"}
    assert ipam.take_changed() == set()
    ipam.allocate("pod-a", "s2")  # moved: both counts changed
    assert ipam.take_changed() == {"s1", "s2"}
    ipam.release("pod-a")
    ipam.usage("s2")  # the status counted it already
    assert ipam.take_changed() == set()
    ipam.allocate("pod-b", "s1")
    ipam.remove_subnet("s1")  # no status left to write
    assert ipam.take_changed() == set()
