"""ycloud_controller.api.common: the object helpers, parsing CIDRs, IPs, ranges, lists and
scalar fields, overlaps, selectors, and the reason each bad input is refused.
"""

from __future__ import annotations

from ipaddress import ip_address, ip_network

from tests.unit.api_objects import obj, reason
from ycloud_controller.api import common


def test_object_helpers():
    o = obj("a", {}, namespace="ns")
    assert common.name_of(o) == "a" and common.namespace_of(o) == "ns"
    assert common.key_of(o) == "ns/a"
    assert common.key_of(obj("c", {})) == "c"
    assert common.spec({"metadata": {}}) == {}
    assert reason(common.spec, {"spec": "x"}) == "InvalidSpec"


def test_parse_cidrs():
    assert common.parse_cidrs("10.0.0.0/24", "f") == (ip_network("10.0.0.0/24"),)
    assert common.parse_cidrs(" 10.0.0.0/24 , fd00::/64", "f") == (
        ip_network("10.0.0.0/24"), ip_network("fd00::/64"))
    for bad in ("", None, 5, "10.0.0.1/24", "10.0.0.0/33", "banana", "10.0.0.0/24,10.1.0.0/24",
                "fd00::/64,fd01::/64", "10.0.0.0/31"):
        assert reason(common.parse_cidrs, bad, "f") == "InvalidCIDR", bad
    assert common.parse_cidrs("10.0.0.1/32", "f", 1) == (ip_network("10.0.0.1/32"),)


def test_parse_ip_and_ranges():
    assert common.parse_ip(" 10.0.0.1 ", "f") == ip_address("10.0.0.1")
    for text in ("0.0.0.0", "255.255.255.255", "10.96.0.10", "fd00::10", "::ffff:10.0.0.1"):
        parsed = common.parse_ip(text, "f")
        assert (type(parsed), parsed, str(parsed)) == (type(ip_address(text)), ip_address(text),
                                                       str(ip_address(text)))
    for bad in ("10.0.0.01", "1.2.3.4/32", "1.2.3", "", None):
        assert reason(common.parse_ip, bad, "f") == "InvalidIP", bad
    assert reason(common.parse_ip, "10.0.0.256", "f") == "InvalidIP"
    assert common.parse_ranges(["10.0.0.1", "10.0.0.5..10.0.0.9"], "f") == [
        (ip_address("10.0.0.1"), ip_address("10.0.0.1")),
        (ip_address("10.0.0.5"), ip_address("10.0.0.9"))]
    assert reason(common.parse_ranges, ["10.0.0.9..10.0.0.5"], "f") == "InvalidRange"
    assert reason(common.parse_ranges, ["10.0.0.1..fd00::1"], "f") == "InvalidRange"
    assert reason(common.parse_ranges, ["x..10.0.0.1"], "f") == "InvalidIP"


def test_str_list_and_scalar_fields():
    assert common.str_list("a, b,,c", "f") == ("a", "b", "c")
    assert common.str_list(["a", "b"], "f") == ("a", "b")
    assert common.str_list(None, "f") == ()
    assert reason(common.str_list, [1], "f") == "InvalidSpec"
    assert common.bool_field(None, "f", True) is True
    assert reason(common.bool_field, "yes", "f") == "InvalidSpec"
    assert common.int_field(5, "f", 1, 10) == 5
    assert common.int_field(None, "f", 1, 10, 7) == 7
    for bad in (0, 11, True, "5", 5.0):
        assert reason(common.int_field, bad, "f", 1, 10) == "InvalidSpec", bad


def test_overlaps_and_net_of():
    a, b = ip_network("10.0.0.0/16"), ip_network("10.0.1.0/24")
    assert common.overlaps([a], [b])
    assert not common.overlaps([a], [ip_network("10.1.0.0/24")])
    assert not common.overlaps([a], [ip_network("fd00::/64")])  # families never overlap
    assert common.net_of(ip_address("10.0.1.5"), [ip_network("fd00::/64"), b]) == b
    assert common.net_of(ip_address("10.9.0.1"), [a, b]) is None


def test_selector_matches():
    assert common.selector_matches({"app": "web"}, {"app": "web", "tier": "x"})
    assert not common.selector_matches({"app": "web"}, {"app": "db"})
    assert not common.selector_matches({"app": "web"}, None)
    assert common.selector_matches((("app", "web"),), {"app": "web"})
    assert common.selector_matches({}, {})
