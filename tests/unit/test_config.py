"""ycloud_controller.config.load: defaults, YAML keys, flag overrides and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from ycloud_controller.config import Config, ConfigError, SubnetConfig, load


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_defaults():
    cfg = load(None)
    assert cfg == Config()
    assert cfg.default_vpc == "ovn-cluster"
    assert cfg.join_subnet == SubnetConfig("subnet0", "100.64.0.0/16")
    assert cfg.default_subnet == SubnetConfig("ovn-default", "10.16.0.0/16")
    assert cfg.service_cidr == "10.96.0.0/12"
    assert cfg.internal_cidr == "100.88.0.0/16"
    assert cfg.mtu == 1400
    assert cfg.extra == {}


def test_empty_file_gives_defaults(tmp_path):
    assert load(write(tmp_path, "")) == Config()


def test_yaml_keys(tmp_path):
    cfg = load(write(tmp_path, """
defaultVpc: main
joinSubnet: {name: join, cidr: 100.65.0.0/16}
defaultSubnet: {cidr: "10.200.0.0/16,fd20::/64"}
serviceCidr: 10.100.0.0/16
internalCidr: 100.89.0.0/16
mtu: 1300
somethingElse: {a: 1}
"""))
    assert cfg.default_vpc == "main"
    assert cfg.join_subnet == SubnetConfig("join", "100.65.0.0/16")
    assert cfg.default_subnet == SubnetConfig("ovn-default", "10.200.0.0/16,fd20::/64")
    assert cfg.service_cidr == "10.100.0.0/16"
    assert cfg.internal_cidr == "100.89.0.0/16"
    assert cfg.mtu == 1300
    assert cfg.extra == {"somethingElse": {"a": 1}}


def test_overrides_win_and_none_is_ignored(tmp_path):
    cfg = load(write(tmp_path, "mtu: 1300\n"), mtu=1500, nb_remote="tcp:127.0.0.1:6641",
               sb_remote=None, batch_size=None)
    assert cfg.mtu == 1500
    assert cfg.nb_remote == "tcp:127.0.0.1:6641"
    assert cfg.sb_remote == "" and cfg.batch_size == 500


@pytest.mark.parametrize("text,words", [
    ("joinSubnet: {cidr: 100.64.0.1/16}", "joinSubnet.cidr"),
    ("defaultSubnet: {cidr: banana}", "defaultSubnet.cidr"),
    ("serviceCidr: 10.96.0.0/33", "serviceCidr"),
    ("internalCidr: '100.88.0.0/16,nope'", "internalCidr"),
    ("mtu: 100", "mtu"),
    ("mtu: 9001", "mtu"),
    ("mtu: lots", "mtu"),
    ("joinSubnet: {name: ovn-default}", "different names"),
    ("joinSubnet: 100.64.0.0/16", "joinSubnet"),
    ("- a\n- b", "mapping"),
    ("a: [", "cannot read"),
])
def test_errors(tmp_path, text, words):
    with pytest.raises(ConfigError, match=words):
        load(write(tmp_path, text))


def test_bad_override_is_refused():
    with pytest.raises(ConfigError, match="mtu"):
        load(None, mtu=10)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(str(tmp_path / "absent.yaml"))
