"""Patch algorithms and selector parsing."""

from __future__ import annotations

import pytest

from ycloud_controller.kube.errors import ApiError
from ycloud_controller.kube.patch import (
    create_merge_patch,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from ycloud_controller.kube.resources import PODS, VPCS, by_kind, split_key
from ycloud_controller.memkube.labelsel import field_matcher, label_matcher, parse_label_selector

RFC7386_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC7386_CASES)
def test_merge_patch_rfc7386_examples(target, patch, result) -> None:
    assert merge_patch(target, patch) == result


def test_merge_patch_does_not_modify_arguments() -> None:
    target = {"a": {"b": 1}}
    merge_patch(target, {"a": {"b": 2}})
    assert target == {"a": {"b": 1}}


def test_create_merge_patch_round_trips() -> None:
    original = {"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2], "gone": True}
    modified = {"a": 1, "b": {"c": 5}, "l": [3], "new": {"x": 1}}
    patch = create_merge_patch(original, modified)
    assert patch == {"gone": None, "b": {"c": 5, "d": None}, "l": [3], "new": {"x": 1}}
    assert merge_patch(original, patch) == modified
    assert create_merge_patch(modified, modified) == {}


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "d"}
    result = json_patch(doc, [
        {"op": "add", "path": "/a/b/1", "value": 9},
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "replace", "path": "/c", "value": "e"},
        {"op": "copy", "from": "/c", "path": "/f"},
        {"op": "move", "from": "/f", "path": "/g~1h"},
        {"op": "test", "path": "/g~1h", "value": "e"},
        {"op": "remove", "path": "/a/b/0"},
    ])
    assert result == {"a": {"b": [9, 2, 3]}, "c": "e", "g/h": "e"}
    assert doc == {"a": {"b": [1, 2]}, "c": "d"}
    with pytest.raises(ApiError) as exc:
        json_patch(doc, [{"op": "test", "path": "/c", "value": "x"}])
    assert exc.value.code == 422
    with pytest.raises(ApiError):
        json_patch(doc, [{"op": "replace", "path": "/missing", "value": 1}])


def test_strategic_merge_merges_named_lists() -> None:
    target = {"ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53}]}
    patch = {"ports": [{"name": "dns", "port": 5353}, {"name": "new", "port": 1},
                       {"name": "http", "$patch": "delete"}]}
    assert strategic_merge_patch(target, patch) == {
        "ports": [{"name": "dns", "port": 5353}, {"name": "new", "port": 1}]}
    assert strategic_merge_patch({"l": [1, 2]}, {"l": [3]}) == {"l": [3]}


def test_label_selector_syntax() -> None:
    match = label_matcher("env in (prod, staging),tier!=db,!legacy,app")
    assert match({"metadata": {"labels": {"env": "prod", "app": "x"}}})
    assert not match({"metadata": {"labels": {"env": "prod", "app": "x", "legacy": "1"}}})
    assert not match({"metadata": {"labels": {"env": "dev", "app": "x"}}})
    assert not match({"metadata": {"labels": {"env": "prod"}}})
    assert not match({"metadata": {"labels": {"env": "prod", "app": "x", "tier": "db"}}})
    assert label_matcher("")({"metadata": {}})
    assert len(parse_label_selector("a==b, c notin (d)")) == 2
    assert label_matcher("example.com/role=gw")({"metadata": {"labels": {
        "example.com/role": "gw"}}})
    for bad in ("a in ()", "=b", "a=b c"):
        with pytest.raises(ApiError):
            parse_label_selector(bad)


def test_field_selector() -> None:
    obj = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1",
                                                                  "hostNetwork": True}}
    assert field_matcher("metadata.name=p,spec.nodeName==n1")(obj)
    assert field_matcher("spec.hostNetwork=true")(obj)
    assert not field_matcher("spec.nodeName!=n1")(obj)
    assert field_matcher("status.phase=")(obj)


def test_resource_paths_and_keys() -> None:
    assert PODS.path() == "/api/v1/pods"
    assert PODS.path("ns") == "/api/v1/namespaces/ns/pods"
    assert PODS.path("ns", "p", "status") == "/api/v1/namespaces/ns/pods/p/status"
    assert VPCS.path("ignored", "v") == "/apis/iaas.yusur.io/v1/vpcs/v"
    assert VPCS.api_version == "iaas.yusur.io/v1" and PODS.api_version == "v1"
    assert PODS.key_of({"metadata": {"name": "p", "namespace": "ns"}}) == "ns/p"
    assert VPCS.key_of({"metadata": {"name": "v"}}) == "v"
    assert split_key("ns/p") == ("ns", "p") and split_key("v") == (None, "v")
    assert by_kind("YusurService").plural == "yusurservices"
    with pytest.raises(KeyError):
        by_kind("Nope")
