"""The CRI client's wire format, pure (no root, no containerd): what RunPodSandbox carries, in
the CRI API's field numbers, and decoding of what containerd answers."""

from __future__ import annotations

import pytest

pytest.importorskip("grpc")

from ycloud_lab.cri import PodSpec  # noqa: E402
from ycloud_lab.protowire import Fields, WireError, field, map_entries, message, varint  # noqa: E402


def test_varint_and_fields() -> None:
    assert varint(0) == b"\x00"
    assert varint(300) == b"\xac\x02"
    assert varint(-1) == b"\xff" * 9 + b"\x01"  # int64 -1: ten bytes, as protobuf sends it
    assert field(1, "ab") == b"\x0a\x02ab"
    assert field(4, 3) == b"\x20\x03"
    assert field(2, True) == b"\x10\x01"
    assert field(5, None) == b""
    assert field(2, b"") == b"\x12\x00"  # an empty sub-message is still sent


def test_decode_round_trip() -> None:
    data = message([(1, "id-1"), (3, 1), (4, -5), (2, message([(1, "p"), (4, 7)]))]) \
        + map_entries(7, {"b": "2", "a": "1"})
    f = Fields(data)
    assert f.str(1) == "id-1"
    assert f.int(3) == 1
    assert f.int(4) == -5
    assert f.msg(2).str(1) == "p" and f.msg(2).int(4) == 7
    assert f.map(7) == {"a": "1", "b": "2"}
    assert f.str(9) == "" and f.int(9) == 0 and f.msgs(9) == []


def test_decode_rejects_truncated() -> None:
    with pytest.raises(WireError, match="truncated"):
        Fields(b"\x0a\x05ab")


def test_run_pod_sandbox_request_fields() -> None:
    """RunPodSandboxRequest.config (1): metadata (1: name 1, uid 2, namespace 3, attempt 4),
    hostname (2), log_directory (3), labels (6), annotations (7), linux (8: cgroup_parent 1,
    security_context 2: namespace_options 1: network 1, pid 2, ipc 3)."""
    pod = PodSpec(name="web1", namespace="demo", uid="u-1", attempt=2,
                  log_directory="/logs/web1", labels={"app": "web"},
                  annotations={"note": "x"}, cgroup_parent="/lab/podu-1")
    config = Fields(pod.encode()).msg(1)
    meta = config.msg(1)
    assert (meta.str(1), meta.str(2), meta.str(3), meta.int(4)) == ("web1", "u-1", "demo", 2)
    assert config.str(2) == "web1"  # hostname defaults to the pod name, as kubelet sets it
    assert config.str(3) == "/logs/web1"
    assert config.map(6) == {"app": "web"}
    assert config.map(7) == {"note": "x"}
    linux = config.msg(8)
    assert linux.str(1) == "/lab/podu-1"
    ns = linux.msg(2).msg(1)
    assert (ns.int(1), ns.int(2), ns.int(3)) == (0, 1, 0)  # network POD, pid CONTAINER, ipc POD
    host = Fields(PodSpec(name="h", namespace="d", uid="u", host_network=True).encode())
    host_ns = host.msg(1).msg(8).msg(2).msg(1)
    assert (host_ns.int(1), host_ns.int(3)) == (2, 2)  # NODE network and ipc
