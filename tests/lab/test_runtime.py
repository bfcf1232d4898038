"""The lab's container runtime, for real: a private containerd inside a chassis-like network
namespace, driven through its CRI API as kubelet drives it, calling CNI plugins from a bin dir
and conflist of the test's own (a recording plugin, or Debian's bridge + host-local).

Skipped with the reason when not root or when containerd, runc, the CNI plugins, nsenter or
busybox-static are missing (apt-get install containerd runc containernetworking-plugins
busybox-static).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("grpc")

from ycloud_lab.cri import CriError  # noqa: E402
from ycloud_lab.image import SANDBOX_IMAGE  # noqa: E402
from ycloud_lab.netns import create_ns, delete_ns, list_ns  # noqa: E402
from ycloud_lab.pods import (  # noqa: E402
    NETNS_DIR,
    create_pod,
    delete_pod,
    pod_exec,
    remove_failed,
    sandbox_exists,
)
from ycloud_lab.proc import cmdline, run  # noqa: E402
from ycloud_lab.runtime import (  # noqa: E402
    CNI_BIN_DIR,
    SHIM_SOCKET_DIR,
    Containerd,
    RuntimeConfig,
    cni_bin_dir,
    missing_tools,
    shim_socket,
    write_conflist,
)
from ycloud_lab.scenarios import wait_until  # noqa: E402

pytestmark = pytest.mark.lab


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the runtime tests need root (network namespaces, containerd, runc)"
    missing = missing_tools() + [p for p in ("bridge", "host-local", "loopback")
                                 if not (CNI_BIN_DIR / p).exists()]
    if missing or shutil.which("ip") is None:
        return (f"the runtime tests need {', '.join(missing) or 'ip'} (apt-get install "
                "containerd runc containernetworking-plugins busybox-static iproute2)")
    return None


RECORDER = """#!{python}
# A CNI plugin that records each call (CNI_* env and stdin) as one JSON line in {log}.
import json, os, sys
conf = sys.stdin.read()
env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
with open({log!r}, "a") as f:
    f.write(json.dumps({{"env": env, "stdin": conf}}) + "\\n")
cmd = env.get("CNI_COMMAND")
if cmd == "ADD" and os.path.exists({fail!r}):
    print(json.dumps({{"cniVersion": "1.0.0", "code": 11, "msg": "try again later",
                      "details": "recorder told to fail"}}))
    sys.exit(1)
if cmd == "ADD":
    print(json.dumps({{"cniVersion": "1.0.0",
                      "interfaces": [{{"name": env["CNI_IFNAME"],
                                      "sandbox": env["CNI_NETNS"]}}],
                      "ips": [{{"address": "10.99.0.5/24", "interface": 0}}]}}))
elif cmd == "VERSION":
    print(json.dumps({{"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]}}))
"""


@pytest.fixture
def chassis() -> Iterator[str]:
    """A network namespace standing for a chassis (its containerd runs there)."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    ns = f"ycri-{uuid.uuid4().hex[:8]}"
    create_ns(ns)
    yield ns
    delete_ns(ns)


def _recording_runtime(tmp_path: Path, ns: str) -> tuple[Containerd, Path]:
    log = tmp_path / "calls.jsonl"
    plugin = tmp_path / "recorder"
    plugin.write_text(RECORDER.format(python=sys.executable, log=str(log),
                                      fail=str(tmp_path / "fail")))
    plugin.chmod(0o755)
    bindir = cni_bin_dir(tmp_path / "cni-bin", {"recorder": plugin})
    write_conflist(tmp_path / "cni-conf", "recnet", [{"type": "recorder", "mtu": 1400}])
    cfg = RuntimeConfig(directory=tmp_path / "ctd", cni_conf_dir=tmp_path / "cni-conf",
                        cni_bin_dir=bindir, netns=ns)
    return Containerd(cfg, "chassis"), log


def _calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _cni_args(call: dict) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in call["env"]["CNI_ARGS"].split(";"))


def _host_mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def _netns_inode(path: str) -> int:
    return os.stat(path).st_ino


def test_containerd_private_and_stops_leaving_nothing(chassis: str, tmp_path: Path) -> None:
    runtime, _ = _recording_runtime(tmp_path, chassis)
    namespaces, mounts = list_ns(), _host_mounts()
    shim_sockets = set(os.listdir(SHIM_SOCKET_DIR)) if SHIM_SOCKET_DIR.exists() else set()
    runtime.start()
    pid = runtime.pid()
    assert pid is not None
    # its own root, state and socket, in the chassis namespace; CNI dirs from its config
    config = runtime.config_path.read_text()
    for line in config.splitlines():
        if line.startswith(("root", "state", "address = \"/")):
            assert str(tmp_path) in line, line
    assert "/var/lib/containerd" not in config and "/run/containerd" not in config
    assert f'bin_dir = "{tmp_path / "cni-bin"}"' in config
    assert f'conf_dir = "{tmp_path / "cni-conf"}"' in config
    assert f'sandbox_image = "{SANDBOX_IMAGE}"' in config
    assert _netns_inode(f"/proc/{pid}/ns/net") == _netns_inode(f"/run/netns/{chassis}")
    with runtime.cri() as client:
        version = client.version()
    assert version["runtime_name"] == "containerd"
    assert version["runtime_api_version"] == "v1"
    assert SANDBOX_IMAGE in runtime.ctr("images", "list", "--quiet").split()

    # a running pod: a shim, mounts (rootfs, netns, shm) and cgroups for stop() to clean
    pod = create_pod(runtime, "web1", "demo")
    assert runtime.shim_pids() and runtime.mounts() and runtime.cgroups()
    assert sandbox_exists(runtime, pod.sandbox_id)

    assert runtime.stop() == []  # everything went through CRI and containerd's own shutdown
    assert cmdline(pid) == "" or str(runtime.config_path) not in cmdline(pid)
    assert runtime.shim_pids() == []
    assert runtime.mounts() == []
    new = _host_mounts() - mounts  # other engineers' labs mount namespaces meanwhile
    assert [m for m in new if m.startswith((str(tmp_path), "/run/netns/cni-"))] == []
    assert runtime.cgroups() == []
    # the pod's netns was containerd's, under its state dir, never in /run/netns (other labs
    # on this machine add and remove namespaces there meanwhile: only cni-* would be ours)
    assert not [n for n in list_ns() - namespaces if n.startswith("cni-")]
    netns_dir = runtime.dir / "state" / "io.containerd.grpc.v1.cri" / "netns"
    assert not netns_dir.exists() or list(netns_dir.iterdir()) == []
    left = set(os.listdir(SHIM_SOCKET_DIR)) if SHIM_SOCKET_DIR.exists() else set()
    assert left - shim_sockets == set()
    assert not runtime.socket.exists()


def test_run_pod_sandbox_calls_cni_add_and_del(chassis: str, tmp_path: Path) -> None:
    runtime, log = _recording_runtime(tmp_path, chassis)
    runtime.start()
    try:
        uid = str(uuid.uuid4())
        pod = create_pod(runtime, "web1", "demo", uid, labels={"app": "web"})
        assert pod.ips == ("10.99.0.5",)  # PodSandboxStatus reports the plugin's result
        (add,) = [c for c in _calls(log) if c["env"]["CNI_COMMAND"] == "ADD"]
        env = add["env"]
        assert env["CNI_CONTAINERID"] == pod.sandbox_id
        assert env["CNI_NETNS"] == pod.netns_path
        assert env["CNI_IFNAME"] == "eth0"
        assert env["CNI_PATH"] == str(tmp_path / "cni-bin")
        args = _cni_args(add)
        assert args["K8S_POD_NAMESPACE"] == "demo"
        assert args["K8S_POD_NAME"] == "web1"
        assert args["K8S_POD_INFRA_CONTAINER_ID"] == pod.sandbox_id
        assert args["K8S_POD_UID"] == uid
        conf = json.loads(add["stdin"])  # the conflist's plugin entry, as libcni hands it
        assert conf["cniVersion"] == "1.0.0" and conf["name"] == "recnet"
        assert conf["type"] == "recorder" and conf["mtu"] == 1400
        assert _netns_inode(pod.netns_path) == _netns_inode(f"/proc/{pod.pid}/ns/net")
        with runtime.cri() as client:
            (listed,) = client.list_pod_sandbox()
        assert (listed.id, listed.name, listed.namespace, listed.uid, listed.state) == \
            (pod.sandbox_id, "web1", "demo", uid, "SANDBOX_READY")
        assert listed.labels == {"app": "web"}

        with runtime.cri() as client:
            client.stop_pod_sandbox(pod.sandbox_id)
            dels = [c for c in _calls(log) if c["env"]["CNI_COMMAND"] == "DEL"]
            assert len(dels) >= 1
            assert client.pod_sandbox_status(pod.sandbox_id).state == "SANDBOX_NOTREADY"
            client.remove_pod_sandbox(pod.sandbox_id)
            client.remove_pod_sandbox(pod.sandbox_id)  # idempotent, as the CRI says
            assert client.list_pod_sandbox() == []
        assert not sandbox_exists(runtime, pod.sandbox_id)
        dels = [c for c in _calls(log) if c["env"]["CNI_COMMAND"] == "DEL"]
        for call in dels:
            assert call["env"]["CNI_CONTAINERID"] == pod.sandbox_id
            assert _cni_args(call)["K8S_POD_UID"] == uid
            assert json.loads(call["stdin"])["name"] == "recnet"
        # the first DEL (Stop) has the netns and ADD's cached result; a later one (Remove)
        # comes after containerd removed the netns (CNI_NETNS empty) and libcni dropped its
        # cache (no prevResult): a plugin's DEL must succeed without either (CNI spec)
        assert dels[0]["env"]["CNI_NETNS"] == pod.netns_path
        assert all(c["env"].get("CNI_NETNS", "") == "" for c in dels[1:])
        prev = json.loads(dels[0]["stdin"])["prevResult"]
        assert prev["ips"][0]["address"] == "10.99.0.5/24"
        with pytest.raises(CriError) as err, runtime.cri() as client:
            client.pod_sandbox_status(pod.sandbox_id)
        assert err.value.code == "NOT_FOUND"
    finally:
        runtime.stop()


def test_bridge_pod_gets_an_ip_and_answers_ping(chassis: str, tmp_path: Path) -> None:
    """Debian's bridge + host-local: the pod's eth0 gets an address of the range, the chassis
    (containerd's network namespace) pings it, and deleting the pod releases it."""
    ipam = tmp_path / "ipam"
    bindir = cni_bin_dir(tmp_path / "cni-bin", {p: CNI_BIN_DIR / p
                                                for p in ("bridge", "host-local")})
    write_conflist(tmp_path / "cni-conf", "labnet", [{
        "type": "bridge", "bridge": "cni0", "isGateway": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/24"}]],
                 "dataDir": str(ipam)}}])
    runtime = Containerd(RuntimeConfig(directory=tmp_path / "ctd", cni_bin_dir=bindir,
                                       cni_conf_dir=tmp_path / "cni-conf", netns=chassis))
    runtime.start()
    name = f"{chassis}-p-web1"
    try:
        pod = create_pod(runtime, "web1", "demo", netns_name=name)
        assert pod.ip.startswith("10.88.0.") and pod.ip != "10.88.0.1"
        print(f"RunPodSandbox (bridge + host-local) took {pod.create_seconds * 1000:.0f} ms")
        addrs = pod_exec(pod, "ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout
        assert f"inet {pod.ip}/24" in addrs
        # by name, as the lab's traffic tools enter it
        named = run(["ip", "-o", "-4", "addr", "show", "dev", "eth0"], ns=name).stdout
        assert f"inet {pod.ip}/24" in named
        ping = run(["ping", "-c", "1", "-W", "5", pod.ip], ns=chassis, check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        back = pod_exec(pod, "ping", "-c", "1", "-W", "5", "10.88.0.1", check=False)
        assert back.returncode == 0, back.stdout + back.stderr
        assert (ipam / "labnet" / pod.ip).exists()

        delete_pod(runtime, pod)
        assert not (NETNS_DIR / name).exists()
        assert not (ipam / "labnet" / pod.ip).exists()  # host-local DEL released it
        links = subprocess.run(["ip", "-n", chassis, "-o", "link"], capture_output=True,
                               text=True, check=True).stdout
        assert "veth" not in links  # the bridge plugin's host end went with DEL
        gone = run(["ping", "-c", "1", "-W", "1", pod.ip], ns=chassis, check=False)
        assert gone.returncode != 0
    finally:
        assert runtime.stop() == []


def test_failed_cni_add_fails_run_pod_sandbox_and_leaves_nothing(chassis: str,
                                                                 tmp_path: Path) -> None:
    """A plugin's error (CNI error JSON, exit 1) reaches the CRI caller with its message;
    containerd calls DEL to clean up and keeps no sandbox, mount or netns."""
    runtime, log = _recording_runtime(tmp_path, chassis)
    runtime.start()
    try:
        (tmp_path / "fail").touch()
        with pytest.raises(CriError) as err:
            create_pod(runtime, "web1", "demo", "uid-fail")
        assert "try again later" in err.value.detail
        assert "recorder told to fail" in err.value.detail
        commands = [c["env"]["CNI_COMMAND"] for c in _calls(log)]
        assert commands[0] == "ADD" and "DEL" in commands[1:]
        with runtime.cri() as client:
            assert client.list_pod_sandbox() == []
        assert runtime.mounts() == []
        netns_dir = runtime.dir / "state" / "io.containerd.grpc.v1.cri" / "netns"
        assert not netns_dir.exists() or list(netns_dir.iterdir()) == []

        (tmp_path / "fail").unlink()  # kubelet's next attempt works
        pod = create_pod(runtime, "web1", "demo", "uid-fail")
        assert pod.ip == "10.99.0.5"
    finally:
        assert runtime.stop() == []


def test_stop_cleans_up_after_a_killed_containerd(chassis: str, tmp_path: Path) -> None:
    """containerd SIGKILLed with a pod running (as deleting its chassis namespace would do):
    stop() finds the pod's processes by cgroup and the shim by command line, ends them and
    removes the shim's socket, the mounts and the cgroups; it reports what it cleaned."""
    runtime, _ = _recording_runtime(tmp_path, chassis)
    runtime.start()
    pod = create_pod(runtime, "web1", "demo")
    (shim,) = runtime.shim_pids()
    sock = shim_socket(runtime.socket, cmdline(shim))
    assert sock is not None and sock.exists()  # where containerd 1.6 puts it
    pid = runtime.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    leftovers = runtime.stop()
    assert any(item.startswith("pod process") for item in leftovers), leftovers
    assert any(item.startswith("shim pid") for item in leftovers), leftovers
    assert cmdline(pod.pid) == ""
    assert runtime.shim_pids() == [] and runtime.pod_pids() == []
    assert not sock.exists()
    assert runtime.mounts() == [] and runtime.cgroups() == []


def test_conflist_installed_after_start_is_picked_up(chassis: str, tmp_path: Path) -> None:
    """As on a node where the CNI DaemonSet installs its plugin and conflist after containerd
    started: no conflist, no pod (the CRI says why, and keeps a NOTREADY sandbox that cannot
    be stopped without CNI); once written, kubelet's clean-up (DEL) and next attempt (ADD)
    work."""
    runtime, log = _recording_runtime(tmp_path, chassis)
    conflist = tmp_path / "cni-conf" / "10-recnet.conflist"
    saved = conflist.read_text()
    conflist.unlink()
    runtime.start()
    try:
        with pytest.raises(CriError) as err:
            create_pod(runtime, "web1", "demo", "uid-early")
        assert "cni plugin not initialized" in err.value.detail
        with runtime.cri() as client:
            (stale,) = client.list_pod_sandbox()
        assert stale.state == "SANDBOX_NOTREADY"
        assert not remove_failed(runtime, "web1", "demo", "uid-early")
        assert _calls(log) == []

        conflist.write_text(saved)
        wait_until(lambda: remove_failed(runtime, "web1", "demo", "uid-early"), 20,
                   "the CRI plugin loads the new conflist and the stale sandbox goes")
        pod = create_pod(runtime, "web1", "demo", "uid-early")
        assert pod.ip == "10.99.0.5"
        calls = _calls(log)
        assert [c["env"]["CNI_COMMAND"] for c in calls][-1] == "ADD"
        assert {(c["env"]["CNI_COMMAND"], c["env"]["CNI_CONTAINERID"]) for c in calls[:-1]} \
            == {("DEL", stale.id)}
    finally:
        assert runtime.stop() == []
