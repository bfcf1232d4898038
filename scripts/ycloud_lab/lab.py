"""The Python API of the lab, used by scripts/lab, tests/lab and the demo.

    lab = Lab("tests/lab/shape.yaml", ".lab")
    lab.up()
    lab.cluster = Cluster(lab).start()             # API, node agents, ycloud-cni, containerd
    lab.nbctl("ls-add", "sw0")                    # NB rows: by hand or by the controller
    ports = lab.cni_sync()                         # sandboxes for the API's pods: {port: ns}
    lab.start_server("web1.default", "web1", "tcp", 8080)
    reply = lab.request("ext1", "tcp", "172.18.0.50", 80)
    lab.down()
"""

from __future__ import annotations

import logging
import random
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ovn_sandbox import Sandbox, SandboxState

from ycloud_lab import workload
from ycloud_lab.bringup import (
    Builder,
    check_paths,
    registered_chassis,
    teardown,
    wait_registered,
    warm_tunnels,
)
from ycloud_lab.chassis import Chassis
from ycloud_lab.netns import route
from ycloud_lab.ovsdb import rows
from ycloud_lab.proc import LabError, in_ns, run
from ycloud_lab.shape import ExternalHost, Shape, load_shape
from ycloud_lab.state import LabState, StateStore, lab_id_for

if TYPE_CHECKING:
    from ycloud_lab.cluster import Cluster  # grpc (the CRI client): imported where used

log = logging.getLogger("ycloud_lab")
# what ovs-vswitchd logs when it aborts (an EMER line: a failed assertion, such as OVS 3.1's
# userspace conntrack's conntrack.c:1063 "assertion conn->conn_type == CT_CONN_TYPE_DEFAULT
# failed in conn_update_state()") or dies of a fatal signal; a SIGKILL logs neither
DATAPATH_ABORT = ("|EMER|", "terminating with signal")
# source ports of the lab's requests, below the kernel's ephemeral range (32768-60999)
SOURCE_PORTS = (10000, 30000)
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SHAPE = ROOT / "tests" / "lab" / "shape.yaml"
DEFAULT_DIR = ROOT / ".lab"

Reply = workload.Reply
Server = workload.Server
HeldConnection = workload.HeldConnection


class Lab:
    def __init__(self, shape_path: str | Path | None = None,
                 directory: str | Path | None = None):
        self.dir = Path(directory or DEFAULT_DIR).resolve()
        self.shape: Shape = load_shape(shape_path or DEFAULT_SHAPE)
        self.store = StateStore(self.dir)
        self.lab_id = lab_id_for(self.dir)
        self.cluster: Cluster | None = None  # the product (API, node agents, runtimes)
        self._sports = threading.Lock()
        self._next_sport = random.randrange(*SOURCE_PORTS)

    def source_ports(self, count: int) -> int:
        """The first of `count` source ports no request of this Lab object used lately
        (SOURCE_PORTS, in turn). A kernel-chosen port comes again for other destinations:
        a new connection whose (DNATed) tuple is one an earlier NATed connection still holds
        in conntrack is the clash after which OVS 3.1's userspace conntrack aborts
        ovs-vswitchd (conntrack.c:1063, as bench/dataplane.py found)."""
        with self._sports:
            first = self._next_sport
            if first + count > SOURCE_PORTS[1]:
                first = SOURCE_PORTS[0]
            self._next_sport = first + count
            return first

    # -- lifecycle ------------------------------------------------------------------------
    def up(self) -> dict[str, Any]:
        """Build the lab; on a running lab only report it. Returns {already, seconds, ...}."""
        started = time.monotonic()
        check_paths(self)
        with self.store.locked(create=True):
            old = self.store.load_or_none()
            if old is not None and old.phase == "up" and not self.unhealthy(old):
                try:  # refresh tunnel neighbour entries (they age out after an idle hour)
                    warm_tunnels(self, old)
                except LabError as exc:
                    log.warning("lab %s is up but its underlay is not: %s", old.lab_id, exc)
                return {"already": True, "seconds": 0.0, "lab_id": old.lab_id}
            if old is not None or self._stray_namespaces():
                log.warning("lab in %s is %s: tearing it down first", self.dir,
                            "unhealthy" if old else "half-removed")
                teardown(self, old, keep_dir=True)
            st = LabState(lab_id=self.lab_id, directory=str(self.dir),
                          shape_path=self.shape.path)
            self.store.save(st)
            try:
                Builder(self, st).build()
            except BaseException:
                st.phase = "failed"
                self.store.save(st)
                raise
            st.phase = "up"
            st.up_seconds = round(time.monotonic() - started, 2)
            self.store.save(st)
            return {"already": False, "seconds": st.up_seconds, "lab_id": st.lab_id}

    def down(self) -> dict[str, list[str]]:
        """Stop every process and delete every namespace/link/file the lab created."""
        if not self.dir.is_dir():  # nothing to lock; still remove stray namespaces
            return teardown(self, None)
        with self.store.locked():
            return teardown(self, self.store.load_or_none())

    def _stray_namespaces(self) -> list[str]:
        from ycloud_lab.netns import list_ns

        return [ns for ns in list_ns() if ns.startswith(f"{self.lab_id}-")]

    def unhealthy(self, st: LabState) -> list[str]:
        """Names of processes that should run but do not (stopped chassis excepted)."""
        stopped = {n for n, c in st.chassis.items() if c.stopped}
        dead = [p.name for p in st.processes
                if p.name.split("/")[0] not in stopped and not p.alive()]
        central = Sandbox(self.dir / "central").status()
        dead += [f"central/{n}" for n, s in central.items() if not s.startswith("running")]
        return dead + (["central"] if not central else [])

    def status(self) -> dict[str, Any]:
        st = self.store.load()
        out: dict[str, Any] = {"dir": str(self.dir), "lab_id": st.lab_id, "phase": st.phase,
                               "up_seconds": st.up_seconds, "nb": st.nb_remote,
                               "sb": st.sb_remote,
                               "central": Sandbox(self.dir / "central").status(),
                               "chassis": {}, "ports": {}, "hosts": dict(st.hosts),
                               "processes": {p.name: p.alive() for p in st.processes}}
        try:
            sb = registered_chassis(self, st)
            bindings = rows("ovn-sbctl", st.sb_remote, "--columns=logical_port,chassis,up",
                            "list", "Port_Binding", what="read SB Port_Binding")
        except LabError as exc:
            sb, bindings = {}, []
            out["error"] = str(exc)
        uuid_name = {u: n for n, u in sb.items()}
        bound: dict[str, list[str]] = {}
        for b in bindings:
            chassis = b.get("chassis")
            if isinstance(chassis, str) and chassis in uuid_name:
                bound.setdefault(uuid_name[chassis], []).append(b["logical_port"])
        for name, cst in st.chassis.items():
            out["chassis"][name] = {
                "role": cst.role, "namespace": cst.namespace, "tunnel_ip": cst.tunnel_ip,
                "stopped": cst.stopped, "registered": name in sb,
                "processes": {p.name.split("/", 1)[1]: p.alive() for p in st.processes
                              if p.name.startswith(f"{name}/")},
                "bound": sorted(bound.get(name, [])),
            }
        out["ports"] = {p: {"namespace": b.namespace, "chassis": b.chassis, "role": b.role,
                            "ips": b.ips} for p, b in sorted(st.ports.items())}
        return out

    # -- access ---------------------------------------------------------------------------
    def chassis(self, st: LabState, name: str) -> Chassis:
        if name not in st.chassis:
            raise LabError(f"no chassis {name!r} (lab chassis: {', '.join(st.chassis)})")
        return Chassis(st.chassis[name], self.shape, st.sb_remote)

    @property
    def nb_remote(self) -> str:
        return self.store.load().nb_remote

    @property
    def sb_remote(self) -> str:
        return self.store.load().sb_remote

    def central(self) -> Sandbox:
        box = Sandbox(self.dir / "central")
        box.state = SandboxState.load(box.dir)
        return box

    def nbctl(self, *args: str, check: bool = True) -> str:
        return self.central().nbctl(*args, check=check)

    def sbctl(self, *args: str, check: bool = True) -> str:
        return self.central().sbctl(*args, check=check)

    @property
    def external_hosts(self) -> list[ExternalHost]:
        return list(self.shape.hosts)

    def namespace_of(self, target: str, st: LabState | None = None) -> str:
        """Namespace of a chassis, port, external host, infra name (underlay, extnet) or a
        namespace name itself."""
        st = st or self.store.load()
        if target in st.ports:
            return st.ports[target].namespace
        if target in st.chassis:
            return st.chassis[target].namespace
        for table in (st.hosts, st.infra):
            if target in table:
                return table[target]
        if target in st.namespaces:
            return target
        raise LabError(f"unknown lab target {target!r}: not a chassis ({', '.join(st.chassis)}),"
                       f" host ({', '.join(st.hosts)}), plugged port or lab namespace")

    def exec(self, target: str, *cmd: str, check: bool = False, timeout: float = 60.0,
             ) -> subprocess.CompletedProcess[str]:
        """Run cmd inside target's namespace (on a chassis with its OVS_/OVN_ directories
        exported, see exec_env); output captured as text."""
        st = self.store.load()
        ns = self.namespace_of(target, st)
        return run(list(cmd), ns=ns, check=check, timeout=timeout, what=f"exec in {target}",
                   env=self.exec_env(target, st))

    def exec_env(self, target: str, st: LabState | None = None) -> dict[str, str] | None:
        """For a chassis: the environment with its OVS_RUNDIR, OVN_RUNDIR, *_LOGDIR and
        *_DBDIR, so ovs-vsctl, ovs-appctl, ovs-ofctl and ovn-appctl -t ovn-controller reach
        that chassis' daemons without -t/--db. None (inherit) for other targets."""
        st = st or self.store.load()
        if target not in st.chassis:
            return None
        return self.chassis(st, target).env

    def exec_argv(self, target: str, *cmd: str) -> list[str]:
        return in_ns(self.namespace_of(target), cmd)

    def add_route(self, target: str, prefix: str, via: str) -> None:
        """A route in any lab namespace, e.g. an external host's route to a pod CIDR."""
        route(self.namespace_of(target), prefix, via, what=f"route on {target}")

    # -- chassis failure ------------------------------------------------------------------
    def stop_chassis(self, name: str) -> None:
        """Stop name's ovn-controller and ovs-vswitchd (namespace and ovsdb-server stay)."""
        with self.store.locked():
            st = self.store.load()
            self.chassis(st, name)
            for daemon in ("ovn-controller", "ovs-vswitchd"):
                for rec in st.processes:
                    if rec.name == f"{name}/{daemon}":
                        rec.stop()
            st.chassis[name].stopped = True
            self.store.save(st)
        log.info("chassis %s stopped", name)

    def start_chassis(self, name: str) -> None:
        """Restart ovs-vswitchd and ovn-controller of a stopped chassis; restore its tunnel
        IP and tunnel neighbours (the node agent restores its node port: waited for)."""
        with self.store.locked():
            st = self.store.load()
            ch = self.chassis(st, name)
            recs = {r.name: r for r in st.processes}
            for daemon, start in (("ovs-vswitchd", ch.start_vswitchd),
                                  ("ovn-controller", ch.start_controller)):
                key = f"{name}/{daemon}"
                if key in recs and recs[key].alive():
                    continue
                rec = start()
                st.processes = [p for p in st.processes if p.name != key] + [rec]
                self.store.save(st)
            st.chassis[name].stopped = False
            self.store.save(st)
            wait_registered(self, [name])
            ch.wait_integration_bridge()
            warm_tunnels(self, st, only=name)
        if self.cluster is not None:
            self.cluster.wait_node_port(name)
        self.wait_hv()
        log.info("chassis %s started", name)

    def last_words(self, dead: list[str], lines: int = 1) -> dict[str, str]:
        """For each of the `dead` processes (Lab.unhealthy's names): the last `lines` lines
        of its log, joined by " | ", or "(no log)" (an abort's assertion is there:
        ovs-vswitchd logs it EMER before it dies)."""
        logs = {rec.name: Path(rec.logfile) for rec in self.store.load().processes
                if rec.name in dead and rec.logfile}
        out = {}
        for name in dead:
            path = logs.get(name)
            tail = path.read_text(errors="replace").strip().splitlines()[-lines:] \
                if path is not None and path.exists() else []
            out[name] = " | ".join(tail) or "(no log)"
        return out

    def revive_chassis(self) -> dict[str, str]:
        """Stop and start again every chassis with a daemon that should run and does not
        (ovs-vswitchd aborting, say; stopped chassis excepted). Returns each dead process
        with the end of its log (Lab.last_words), read before the restart."""
        return self._revive(self.last_words(self.unhealthy(self.store.load()), lines=3))

    def revive_after_datapath_abort(self) -> dict[str, str]:
        """revive_chassis, when every dead daemon is an ovs-vswitchd whose log ends in an
        abort (DATAPATH_ABORT: OVS's own failure, such as OVS 3.1's userspace conntrack
        asserting after a new connection took the tuple an earlier NATed one had; the
        controller writes NB rows, never a flow). Nothing is restarted, and {} returned,
        when nothing died or anything else did: that stays a failure."""
        words = self.last_words(self.unhealthy(self.store.load()), lines=3)
        if not all(name.endswith("/ovs-vswitchd") and any(mark in end for mark in DATAPATH_ABORT)
                   for name, end in words.items()):
            return {}
        return self._revive(words)

    def _revive(self, words: dict[str, str]) -> dict[str, str]:
        """Stop and start the chassis of the dead processes `words` names (central aside)."""
        for name in sorted({p.split("/", 1)[0] for p in words} - {"central"}):
            self.stop_chassis(name)
            self.start_chassis(name)
            log.warning("chassis %s restarted: %s", name, "; ".join(
                f"{p} died, its log ended: {w}" for p, w in words.items()
                if p.startswith(f"{name}/")))
        return words

    def warm_tunnels(self) -> None:
        warm_tunnels(self, self.store.load())

    def wait_hv(self, timeout: float = 30.0) -> bool:
        """Wait until every running ovn-controller has caught up with NB (ovn-nbctl
        --wait=hv sync). Skipped (False) while a chassis is stopped: it would never answer."""
        st = self.store.load()
        stopped = [n for n, c in st.chassis.items() if c.stopped]
        if stopped:
            log.debug("wait_hv skipped: chassis %s stopped", ", ".join(stopped))
            return False
        run(["ovn-nbctl", f"--db={st.nb_remote}", f"--timeout={int(timeout)}", "--wait=hv",
             "sync"], what="wait for every chassis to catch up with NB", timeout=timeout + 5)
        return True

    # -- pods -----------------------------------------------------------------------------
    def cni_sync(self, *, wait: bool = True) -> dict[str, str]:
        """The attached cluster's kubelet: a sandbox (containerd, ycloud-cni, the node agent)
        for every pod of its API, none for pods gone (see Cluster.sync); returns
        {port: namespace} of pods, Vnic guests and node ports."""
        if self.cluster is None:
            raise LabError("no cluster attached: pods are made by the chassis' runtimes "
                           "(lab.cluster = Cluster(lab).start())")
        return self.cluster.sync(wait=wait)

    def stop_processes(self, st: LabState, *, namespace: str) -> None:
        """Stop recorded processes running in namespace (servers in a pod being unplugged)."""
        for rec in [p for p in st.processes if p.namespace == namespace]:
            rec.stop()
            st.processes.remove(rec)

    # -- traffic --------------------------------------------------------------------------
    def start_server(self, target: str, name: str, proto: str = "tcp", port: int = 8080,
                     bind: str = "0.0.0.0") -> Server:
        """Echo server (tcp, udp or both) in target's namespace answering `<name> <src>`."""
        return workload.start_server(self, target, name, proto, port, bind)

    def stop_server(self, server: Server | str) -> bool:
        return workload.stop_server(self, server)

    def request(self, target: str, proto: str, ip: str, port: int, *,
                timeout: float = 2.0) -> Reply:
        """One request on a new connection from target's namespace."""
        return workload.request(self, target, proto, ip, port, timeout=timeout)[0]

    def requests(self, target: str, proto: str, ip: str, port: int, *, count: int,
                 timeout: float = 2.0, interval: float = 0.0) -> list[Reply]:
        """count requests, each on a new connection (new source port)."""
        return workload.request(self, target, proto, ip, port, timeout=timeout, count=count,
                                interval=interval)

    def open_connection(self, target: str, ip: str, port: int, *,
                        timeout: float = 2.0) -> HeldConnection:
        """A TCP connection held open by a background process; .send() / .close()."""
        return workload.open_connection(self, target, ip, port, timeout=timeout)
