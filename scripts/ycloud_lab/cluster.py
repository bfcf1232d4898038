"""The product on the lab: a Kubernetes API (FakeKube, real HTTP list/watch) holding the
manifests, and on every chassis what a node of a cluster runs: `ycloud-controller install-cni`
into <chassis dir>/cni/{bin,net.d}, the node agent (`ycloud-controller node`, in the chassis
netns, against that chassis' OVS) and a private containerd (runtime.py) that calls the
installed ycloud-cni for every pod sandbox.

    cluster = Cluster(lab, EXAMPLES).start()     # API, agents, runtimes
    ports = cluster.sync()                       # kubelet: sandboxes for the store's pods
    cluster.stop()

`sync` is the lab's kubelet: every Pod of the store whose spec.nodeName is a lab chassis gets
a sandbox by RunPodSandbox (name, namespace, metadata.uid), its netns named
`<lab id>-p-<port>` in /run/netns so the lab's traffic tools run there; a Pod gone from the
store (or recreated with a new uid) has its sandbox stopped and removed (CNI DEL). Vnics of
type vm/baremetal are guests the lab plays behind their spec.hostInterface, which the node
agent plugs (guests.py; the lab names the interface when the manifest does not). The
chassis' node port (node-<chassis>) is the agent's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from topology import naming
from ycloud_lab.guests import pod_namespace, sync_guests, unplug_guest, wait_installed
from ycloud_lab.netns import ifname
from ycloud_lab.pods import Pod, create_pod, delete_pod
from ycloud_lab.proc import LabError, ProcRecord, run
from ycloud_lab.runtime import Containerd, chassis_runtime, cni_bin_dir
from ycloud_lab.state import LabState, PortBinding

if TYPE_CHECKING:
    from fakekube.server import FakeKube

    from ycloud_lab.lab import Lab

log = logging.getLogger("ycloud_lab")
ROOT = Path(__file__).resolve().parents[2]
API_IF = "api0"  # chassis end of the link to the API server
AGENT = "node-agent"
NODE_IF = "ycloud0"  # the agent's node interface (--node-interface default)
AGENT_HTTP_PORT = 10666  # in the chassis netns: one per chassis, no clash


def api_addresses(lab_id: str, index: int) -> tuple[str, str]:
    """(host end, chassis end) of chassis `index`'s /30 to the API server: link-local, derived
    from the lab id so two labs on one machine do not collide."""
    digest = int(hashlib.blake2b(lab_id.encode(), digest_size=2).hexdigest(), 16)
    a, b = 1 + digest % 253, (index * 4 + (digest >> 8) % 8 * 32) % 256
    return f"169.254.{a}.{b + 1}", f"169.254.{a}.{b + 2}"


class Cluster:
    def __init__(self, lab: Lab, manifests: str | Path | None = None):
        self.lab = lab
        self.manifests = Path(manifests) if manifests else None
        self.fake: FakeKube | None = None  # the API, when served by this process
        self.api: Any = None  # a Backend (list/get/create/delete) on the API
        self.kubeconfig: dict[str, Any] = {}
        self.pods: dict[str, Pod] = {}  # NB port -> the sandbox made for it
        self.pod_nodes: dict[str, str] = {}  # NB port -> the chassis it runs on
        self.runtimes: dict[str, Containerd] = {}
        self.add_seconds: dict[str, float] = {}  # NB port -> RunPodSandbox (CNI ADD) time

    # -- bring-up ---------------------------------------------------------------------------
    def start(self) -> Cluster:
        """The API in this process (FakeKube, on the manifests if any), then the nodes."""
        from ycloud_controller.memkube.backend import MemoryBackend

        self.fake = serve_api(self.manifests)
        self.api = MemoryBackend(self.fake.store)
        return self._start_nodes(self.fake.kubeconfig())

    def attach(self, kubeconfig: Path) -> Cluster:
        """The nodes, on an API served elsewhere (the demo's `python -m ycloud_lab.apiserver`)."""
        import yaml

        from ycloud_controller.kube.apibackend import ApiBackend
        from ycloud_controller.kube.client import make_api_client

        self.api = ApiBackend(make_api_client(str(kubeconfig), False, None))
        return self._start_nodes(yaml.safe_load(kubeconfig.read_text()))

    @property
    def store(self) -> Any:
        """The in-process API's MemoryStore (controllers in-process run on it)."""
        assert self.fake is not None, "cluster not started in this process"
        return self.fake.store

    def _start_nodes(self, kubeconfig: dict[str, Any]) -> Cluster:
        st = self.lab.store.load()
        self.kubeconfig = kubeconfig
        port = int(kubeconfig["clusters"][0]["cluster"]["server"].rsplit(":", 1)[1])
        started: list[ProcRecord] = []  # list.append is atomic: the threads share it
        try:
            with ThreadPoolExecutor(max_workers=len(st.chassis)) as pool:
                list(pool.map(lambda i_c: self._start_node(st, i_c[0], i_c[1], port, started),
                              enumerate(sorted(st.chassis))))
        except BaseException:
            self._record(started)  # what did start, so stop() (and teardown) find it
            self.stop()
            raise
        self._record(started)
        return self

    def _record(self, recs: list[ProcRecord]) -> None:
        with self.lab.store.locked():
            cur = self.lab.store.load()
            names = {r.name for r in recs}
            cur.processes = [p for p in cur.processes if p.name not in names] + recs
            self.lab.store.save(cur)

    def _start_node(self, st: LabState, index: int, name: str, api_port: int,
                    started: list[ProcRecord]) -> None:
        ch = self.lab.chassis(st, name)
        host_ip, node_ip = api_addresses(st.lab_id, index)
        host_if = ifname("k", f"{st.lab_id}/{name}")
        run(["ip", "-n", ch.ns, "link", "del", API_IF], check=False)
        run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", API_IF, "netns",
             ch.ns], what=f"chassis {name}: API link")
        run(["ip", "addr", "add", f"{host_ip}/30", "dev", host_if], what="API link")
        run(["ip", "link", "set", host_if, "up"], what="API link")
        run(["ip", "-n", ch.ns, "addr", "add", f"{node_ip}/30", "dev", API_IF], what="API link")
        run(["ip", "-n", ch.ns, "link", "set", API_IF, "up"], what="API link")
        kubeconfig = ch.dir / "kubeconfig"
        self._write_kubeconfig(kubeconfig, f"http://{host_ip}:{api_port}")
        bin_dir, conf_dir, sock = ch.dir / "cni" / "bin", ch.dir / "cni" / "net.d", \
            ch.dir / "cni.sock"
        run([sys.executable, "-m", "ycloud_controller.cli", "install-cni", "--bin-dir",
             str(bin_dir), "--conf-dir", str(conf_dir), "--socket", str(sock)],
            env=self._env(), what=f"chassis {name}: install-cni")
        cni_bin_dir(bin_dir)  # the stock loopback the CRI plugin runs for the pod's lo
        started.append(self._start_agent(st, name, kubeconfig, sock))
        runtime = chassis_runtime(ch.dir, ch.ns)
        self.runtimes[name] = runtime
        started.append(runtime.start())

    def _write_kubeconfig(self, path: Path, url: str) -> None:
        import yaml

        cfg = json.loads(json.dumps(self.kubeconfig))
        cfg["clusters"][0]["cluster"]["server"] = url
        path.write_text(yaml.safe_dump(cfg))

    @staticmethod
    def _env() -> dict[str, str]:
        return dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'scripts'}")

    def agent_argv(self, st: LabState, name: str) -> list[str]:
        ch = self.lab.chassis(st, name)
        shape = self.lab.shape
        return ["nsenter", f"--net=/run/netns/{ch.ns}", sys.executable, "-m",
                "ycloud_controller.cli", "node", "--node", name,
                "--kubeconfig", str(ch.dir / "kubeconfig"), "--ovs-db", ch.db,
                "--ovn-sb-db", st.sb_remote, "--encap-ip", ch.st.tunnel_ip,
                "--datapath-type", "netdev",
                "--provider-bridge", f"{shape.provider}={shape.provider_bridge}",
                "--socket", str(ch.dir / "cni.sock"), "--http-port", str(AGENT_HTTP_PORT),
                "--resync", "5", "--log-format", "json"]

    def _start_agent(self, st: LabState, name: str, kubeconfig: Path, sock: Path,
                     ) -> ProcRecord:
        ch = self.lab.chassis(st, name)
        logfile = ch.dir / f"{AGENT}.log"
        sock.unlink(missing_ok=True)
        with open(logfile, "ab") as out:
            proc = subprocess.Popen(self.agent_argv(st, name), env=self._env(),
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    start_new_session=True)
        pidfile = ch.dir / f"{AGENT}.pid"
        pidfile.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + 60
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-10:])
                raise LabError(f"chassis {name}: node agent not serving {sock}:\n{tail}")
            time.sleep(0.1)
        return ProcRecord(name=f"{name}/{AGENT}", pid=proc.pid, marker=str(sock),
                          namespace=ch.ns, logfile=str(logfile), pidfile=str(pidfile))

    def restart_agent(self, name: str) -> ProcRecord:
        """Start chassis `name`'s agent again (after a kill); recorded in the lab state."""
        st = self.lab.store.load()
        ch = self.lab.chassis(st, name)
        rec = self._start_agent(st, name, ch.dir / "kubeconfig", ch.dir / "cni.sock")
        self._record([rec])
        return rec

    def wait_node_port(self, name: str, timeout: float = 30.0) -> None:
        """Until the agent gave chassis `name`'s node interface the address its Node's
        annotations name (again after ovs-vswitchd restarted and made the internal port
        anew) and ovn-controller installed it."""
        from ycloud_controller import keys
        from ycloud_controller.kube import resources as res

        node = self.api.get(res.NODES, name) or {}
        want = ((node.get("metadata") or {}).get("annotations") or {}).get(keys.ANN_IP, "")
        ips = [ip.strip() for ip in want.split(",") if ip.strip()]
        if not ips:
            return  # no node port asked for (yet)
        ch = self.lab.chassis(self.lab.store.load(), name)
        deadline = time.monotonic() + timeout

        def ready() -> bool:
            shown = run(["ip", "-n", ch.ns, "addr", "show", NODE_IF], check=False).stdout
            return (all(f" {ip}/" in shown for ip in ips)
                    and NODE_IF in ch.installed_interfaces())

        while not ready():
            if time.monotonic() > deadline:
                raise LabError(f"chassis {name}: the node agent did not make {NODE_IF} "
                               f"({', '.join(ips)}, ovn-installed) within "
                               f"{timeout:.0f}s; see {ch.dir / (AGENT + '.log')}")
            time.sleep(0.2)

    def agent_add_seconds(self) -> dict[str, float]:
        """NB port -> the node agent's time for the pod's last ADD (annotations, veth, OVS
        port, until ovn-installed), from the agents' `cni_add` log lines."""
        out: dict[str, float] = {}
        st = self.lab.store.load()
        for name in st.chassis:
            logfile = self.lab.chassis(st, name).dir / f"{AGENT}.log"
            for line in logfile.read_text(errors="replace").splitlines() if logfile.exists() \
                    else ():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "cni_add" and "seconds" in event:
                    out[event["port"]] = float(event["seconds"])
        return out

    def agent_record(self, name: str) -> ProcRecord:
        return next(p for p in self.lab.store.load().processes if p.name == f"{name}/{AGENT}")

    def stop(self) -> None:
        """Remove the sandboxes (CNI DEL through the agents), stop the runtimes and agents,
        stop the API."""
        for port in list(self.pods):
            self._delete(port)
        for runtime in self.runtimes.values():
            runtime.purge()
        with self.lab.store.locked():
            cur = self.lab.store.load()
            for rec in [p for p in cur.processes if p.name.endswith(f"/{AGENT}")
                        or p.name.endswith("/containerd")]:
                rec.stop()
                cur.processes.remove(rec)
            for b in list(cur.ports.values()):
                if b.role == naming.ROLE_VNIC:
                    unplug_guest(self.lab, cur, b)
            self.lab.store.save(cur)
        if self.fake is not None:
            self.fake.stop()
        self.runtimes.clear()

    # -- the kubelet ------------------------------------------------------------------------
    def desired(self, st: LabState) -> dict[str, dict[str, Any]]:
        """NB port -> Pod of the store bound to a lab chassis."""
        from ycloud_controller.kube import resources as res

        out = {}
        for pod in _items(self.api.list(res.PODS)):
            node = (pod.get("spec") or {}).get("nodeName")
            if node in st.chassis:
                md = pod["metadata"]
                out[naming.pod_port(md.get("namespace") or "default", md["name"])] = pod
        return out

    def sync(self, *, wait: bool = True) -> dict[str, str]:
        """Sandboxes for the store's pods, none for pods gone; guests for Vnics. Returns
        {port: namespace} of everything plugged."""
        from ycloud_controller.kube import resources as res

        st = self.lab.store.load()
        want = self.desired(st)
        for port, pod in list(self.pods.items()):
            if port not in want or want[port]["metadata"]["uid"] != pod.uid:
                self._delete(port)
        new = [p for p in want if p not in self.pods  # a stopped chassis' kubelet waits
               and not st.chassis[want[p]["spec"]["nodeName"]].stopped]
        errors: list[str] = []

        def create(port: str) -> None:
            obj = want[port]
            md, node = obj["metadata"], obj["spec"]["nodeName"]
            netns = pod_namespace(st, port)
            run(["ip", "netns", "del", netns], check=False)  # a name left by a killed run
            try:
                pod = create_pod(self.runtimes[node], md["name"], md.get("namespace") or
                                 "default", md["uid"], netns_name=netns)
            except Exception as exc:  # noqa: BLE001 - CriError/LabError: reported per pod
                errors.append(f"pod {port} on {node}: {exc}")
                return
            self.pods[port] = pod
            self.pod_nodes[port] = node
            self.add_seconds[port] = pod.create_seconds
            log.info("pod %s on %s: RunPodSandbox %.2fs, %s", port, node,
                     pod.create_seconds, " ".join(pod.ips))

        with ThreadPoolExecutor(max_workers=max(1, min(8, len(new)))) as pool:
            list(pool.map(create, new))
        with self.lab.store.locked():
            cur = self.lab.store.load()
            for port in new:
                if port in self.pods:
                    pod, node = self.pods[port], want[port]["spec"]["nodeName"]
                    cur.record_ns(pod.netns_name or "")
                    cur.ports[port] = PortBinding(
                        port=port, role=naming.ROLE_POD, chassis=node,
                        namespace=pod.netns_name or "", ifname="", fingerprint=pod.uid,
                        mac="", ips=list(pod.ips))
            guests = sync_guests(self.lab, _items(self.api.list(res.VNICS)), cur, errors)
            self.lab.store.save(cur)
            mapping = {p: b.namespace for p, b in sorted(cur.ports.items())}
            nodes = self.node_ports(cur)
        if errors:
            raise LabError("cluster: " + "\n  ".join(errors))
        if wait:
            for node in nodes.values():
                self.wait_node_port(node)
            for node, host_if in guests:
                wait_installed(self.lab, node, host_if)
        if wait and new:
            self.lab.wait_hv()
        return {**mapping, **{port: cur.chassis[node].namespace
                              for port, node in nodes.items()}}

    def node_ports(self, st: LabState) -> dict[str, str]:
        """node-<chassis> -> chassis, for running lab chassis whose Node the controller (or a
        test) gave its node-port annotations: the agent's ycloud0."""
        from ycloud_controller import keys
        from ycloud_controller.kube import resources as res

        return {naming.node_port(name): name for node in _items(self.api.list(res.NODES))
                for name in [node["metadata"]["name"]]
                if name in st.chassis and not st.chassis[name].stopped
                and (node["metadata"].get("annotations") or {}).get(keys.ANN_IP)}

    def _delete(self, port: str) -> None:
        pod, node = self.pods.pop(port), self.pod_nodes.pop(port)
        with self.lab.store.locked():
            cur = self.lab.store.load()
            self.lab.stop_processes(cur, namespace=pod.netns_name or "")
            cur.ports.pop(port, None)
            cur.forget_ns(pod.netns_name or "")
            self.lab.store.save(cur)
        delete_pod(self.runtimes[node], pod)
        log.info("pod %s deleted", port)

def serve_api(manifests: str | Path | None = None, host: str = "0.0.0.0", port: int = 0,
              ) -> FakeKube:
    """FakeKube on every address (each chassis reaches it over its own link), holding the
    manifests if given (see load_manifests)."""
    from fakekube.server import FakeKube

    fake = FakeKube(host=host, port=port).start()
    if manifests:
        load_manifests(fake.store, manifests)
    return fake


def load_manifests(store: Any, manifests: str | Path) -> int:
    """The manifests into the API's store; a vm/baremetal Vnic without spec.hostInterface
    gets the tap the lab makes for its guest."""
    from ycloud_controller.kube import resources as res
    from ycloud_controller.memkube.manifests import ManifestSource

    count = ManifestSource(str(manifests), store).load()
    for vnic in _items(store.list(res.VNICS)):
        spec = vnic.get("spec") or {}
        if spec.get("hostInterface") or spec.get("type", "vm") not in ("vm", "baremetal"):
            continue
        md = vnic["metadata"]
        port_name = naming.vnic_port(md.get("namespace") or "default", md["name"])
        vnic["spec"] = {**spec, "hostInterface": ifname("v", port_name)}
        store.update(res.VNICS, vnic)
    return count


def _items(listed: Any) -> list[dict[str, Any]]:
    """MemoryStore.list answers (items, resourceVersion)."""
    return listed[0] if isinstance(listed, tuple) else listed
