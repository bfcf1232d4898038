"""A node for the node agent's functional tests and for `python -m bench --cni`: a private
network namespace with its own ovsdb-server and ovs-vswitchd (netdev; started by the lab's
Chassis), a FakeKube API server reachable from it over a veth, the agent as a child process
inside it (`ycloud-controller node`, killable), pod network namespaces, and the `ycloud-cni`
plugin invoked exactly as a runtime does (an executable, CNI_* environment, config on
stdin)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fakekube.server import FakeKube

from topology.nbsync.client import NbClient
from ycloud_controller import keys
from ycloud_controller.config import Config
from ycloud_controller.controller import Controller
from ycloud_controller.kube import resources as res
from ycloud_controller.kube.backend import ApiBackend
from ycloud_controller.node.install import install
from ycloud_lab.chassis import Chassis
from ycloud_lab.state import ChassisState

ROOT = Path(__file__).resolve().parents[2]
NODE = "node1"
CNI_VERSION = "1.0.0"


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res_ = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check and res_.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {res_.stderr}")
    return res_


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "node agent tests need root (network namespaces, veth, OVS)"
    missing = [b for b in ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ip", "ethtool",
                           "nsenter") if shutil.which(b) is None]
    return f"missing {', '.join(missing)}" if missing else None


def eventually(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """The first truthy value of check(); fails naming `what` at the bound (a witness, not a
    timed assertion: the bound only turns a hang into a failure)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class NodeEnv:
    def __init__(self, directory: Path):
        self.dir = directory
        tag = f"{os.getpid() % 10000}{random.randrange(1000):03d}"
        self.ns = f"ycn-{tag}"
        self.host_link = f"ykh{tag}"
        a, b = random.randrange(1, 254), random.randrange(0, 63) * 4
        self.api_ip, self.node_ip = f"169.254.{a}.{b + 1}", f"169.254.{a}.{b + 2}"
        self.fake: FakeKube | None = None
        self.chassis: Chassis | None = None
        self.procs: list[Any] = []
        self.agent: subprocess.Popen[bytes] | None = None
        self._stop_controller: Callable[[], None] | None = None
        self.pod_netns: list[str] = []
        self.socket = str(directory / "cni.sock")
        self.plugin = directory / "bin" / "ycloud-cni"

    # -- bring-up ---------------------------------------------------------------------------
    def start(self) -> NodeEnv:
        sh("ip", "netns", "add", self.ns)
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", self.host_link, "type", "veth", "peer", "name", "api0",
           "netns", self.ns)
        sh("ip", "addr", "add", f"{self.api_ip}/30", "dev", self.host_link)
        sh("ip", "link", "set", self.host_link, "up")
        sh("ip", "-n", self.ns, "addr", "add", f"{self.node_ip}/30", "dev", "api0")
        sh("ip", "-n", self.ns, "link", "set", "api0", "up")
        self.fake = FakeKube(host=self.api_ip).start()
        self.fake.write_kubeconfig(self.dir / "kubeconfig")
        self.chassis = Chassis(ChassisState(name=NODE, role="worker", namespace=self.ns,
                                            dir=str(self.dir / "ovs"), tunnel_ip=self.node_ip),
                               shape=None, sb_remote="")  # type: ignore[arg-type]
        self.procs.append(self.chassis.start_ovsdb())
        # vswitchd alone: the lab's start_vswitchd also configures the lab's underlay
        self.procs.append(self.chassis._daemon("ovs-vswitchd", [self.chassis.db]))
        self._write_plugin()
        self.create(res.NODES, {"metadata": {"name": NODE}, "status": {"addresses": [
            {"type": "InternalIP", "address": self.node_ip}]}})
        return self

    def _write_plugin(self) -> None:
        """`ycloud-cni` as the DaemonSet's init container installs it on a host (the host's
        python3 runs it), and its conflist."""
        install(self.plugin.parent, self.dir / "net.d", self.socket, "/usr/bin/env python3")

    def agent_args(self, *extra: str) -> list[str]:
        # nsenter --net, not `ip netns exec`: no private mount namespace, so network
        # namespaces a runtime bind-mounts later (containerd's) are visible to the agent, as
        # with the DaemonSet's HostToContainer mount
        return ["nsenter", f"--net=/run/netns/{self.ns}", sys.executable, "-m",
                "ycloud_controller.cli",
                "node", "--node", NODE, "--kubeconfig", str(self.dir / "kubeconfig"),
                "--ovs-db", self.chassis.db if self.chassis else "",
                "--ovn-sb-db", "tcp:192.0.2.1:6642", "--datapath-type", "netdev",
                "--socket", self.socket, "--annotation-timeout", "2",
                "--ovn-installed-timeout", "0", "--http-port", "10666", "--resync", "2",
                "--log-format", "json", "--log-level", "debug", *extra]

    def start_agent(self, *extra: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'scripts'}")
        log = open(self.dir / "agent.log", "ab")  # noqa: SIM115 - the child holds it
        self.agent = subprocess.Popen(self.agent_args(*extra), env=env, stdout=log,
                                      stderr=log)
        eventually(self._agent_listening, f"the node agent's socket (see {self.dir}/agent.log)",
                   timeout=60)
        return self.agent

    def start_ycloud_controller(self, nb_remote: str) -> Controller:
        """ycloud-controller in this process, on this node's FakeKube (through ApiBackend and
        the kubernetes client) and the NB at nb_remote; stop_ycloud_controller() (or stop())
        shuts it down."""
        assert self.fake is not None
        client = self.fake.api_client()
        nb = NbClient(nb_remote, timeout=30).start()
        ctl = Controller(Config(nb_remote=nb_remote), ApiBackend(client), nb)
        ctl.start()
        loop = threading.Thread(target=ctl.run, name="controller-loop", daemon=True)
        loop.start()

        def stop() -> None:
            ctl.shutdown()
            loop.join(timeout=10)
            nb.stop()
            client.close()
        self._stop_controller = stop
        return ctl

    def _agent_listening(self) -> bool:
        assert self.agent is not None
        if self.agent.poll() is not None:
            raise AssertionError(f"node agent exited {self.agent.returncode}: "
                                 f"{(self.dir / 'agent.log').read_text()[-3000:]}")
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(self.socket)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def kill_agent(self, sig: int = signal.SIGKILL) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(sig)
            self.agent.wait(timeout=30)
        self.agent = None

    def stop_ycloud_controller(self) -> None:
        if self._stop_controller is not None:
            self._stop_controller()
            self._stop_controller = None

    def stop(self) -> None:
        self.stop_ycloud_controller()
        self.kill_agent(signal.SIGTERM)
        for ns in self.pod_netns:
            sh("ip", "netns", "del", ns, check=False)
        for proc in reversed(self.procs):
            proc.stop()
        if self.fake is not None:
            self.fake.stop()
        sh("ip", "netns", "del", self.ns, check=False)
        sh("ip", "link", "del", self.host_link, check=False)

    # -- Kubernetes -------------------------------------------------------------------------
    def create(self, resource: Any, obj: dict[str, Any]) -> dict[str, Any]:
        assert self.fake is not None
        return self.fake.store.create(resource, obj)

    @staticmethod
    def pod_annotations(ip: str = "10.16.0.5", mac: str = "0a:58:0a:10:00:05"
                        ) -> dict[str, str]:
        """What the controller writes for a pod of the default subnet."""
        return {keys.ANN_IP: ip, keys.ANN_MAC: mac, keys.ANN_GATEWAY: "10.16.0.1",
                keys.ANN_CIDR: "10.16.0.0/16", keys.ANN_MTU: "1400",
                keys.ANN_SWITCH: "ovn-default"}

    def pod(self, name: str, ip: str | None = "10.16.0.5", mac: str = "0a:58:0a:10:00:05",
            namespace: str = "default") -> dict[str, Any]:
        annotations = self.pod_annotations(ip, mac) if ip else {}
        return self.create(res.PODS, {"metadata": {"name": name, "namespace": namespace,
                                                   "annotations": annotations},
                                      "spec": {"nodeName": NODE, "containers": []}})

    # -- pods and the plugin ----------------------------------------------------------------
    def netns(self, name: str) -> str:
        ns = f"{self.ns}-{name}"[:40]
        sh("ip", "netns", "add", ns)
        self.pod_netns.append(ns)
        return f"/var/run/netns/{ns}"

    def cni(self, command: str, container: str = "", netns: str = "", pod: str = "",
            ifname: str = "eth0", conf: dict[str, Any] | str | None = None,
            env: dict[str, str] | None = None, drop: tuple[str, ...] = (),
            namespace: str = "default") -> tuple[int, dict[str, Any] | None, str]:
        """Run the plugin: (exit code, parsed stdout or None, raw stdout)."""
        if conf is None:  # what libcni hands the plugin from the installed conflist
            listed = json.loads((self.dir / "net.d" / "10-ycloud.conflist").read_text())
            conf = {**listed["plugins"][0], "cniVersion": listed["cniVersion"],
                    "name": listed["name"]}
        stdin = conf if isinstance(conf, str) else json.dumps(conf)
        full = {"PATH": os.environ.get("PATH", ""), "CNI_COMMAND": command,
                "CNI_CONTAINERID": container, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
                "CNI_PATH": str(self.plugin.parent),
                "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};"
                            f"K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID={container}",
                **(env or {})}
        for key in drop:
            full.pop(key, None)
        out = subprocess.run([str(self.plugin)], input=stdin, env=full, capture_output=True,
                             text=True, timeout=120)
        parsed = json.loads(out.stdout) if out.stdout.strip() else None
        return out.returncode, parsed, out.stdout

    def plugged_pod(self, name: str, container: str, ip: str, mac: str
                    ) -> tuple[str, dict[str, Any], str]:
        """A pod annotated as the controller does, its netns and a successful ADD:
        (netns, result, the host end's name)."""
        self.pod(name, ip=ip, mac=mac)
        netns = self.netns(name)
        code, result, raw = self.cni("ADD", container, netns, name)
        assert code == 0 and result is not None, raw
        return netns, result, result["interfaces"][0]["name"]

    # -- what is on the node ----------------------------------------------------------------
    def vsctl(self, *args: str) -> str:
        assert self.chassis is not None
        return self.chassis.vsctl(*args)

    def interfaces(self) -> dict[str, dict[str, str]]:
        """{name: external_ids} of every Interface of the node's OVS."""
        out = json.loads(self.vsctl("--format=json", "--columns=name,external_ids", "list",
                                    "Interface"))
        return {row[0]: dict(row[1][1]) for row in out["data"]}

    def ports_of(self, bridge: str) -> set[str]:
        return set(self.vsctl("list-ports", bridge).split())

    def links(self, netns: str | None = None) -> dict[str, dict[str, Any]]:
        cmd = ["ip", "-j", "addr", "show"]
        where = ["nsenter", f"--net={netns}"] if netns else ["ip", "netns", "exec", self.ns]
        return {i["ifname"]: i for i in json.loads(sh(*where, *cmd).stdout)}
