"""Building and tearing down a lab: central, namespaces, links, chassis daemons, tunnels.

Every namespace is recorded in the state (and saved) before it is created, and every daemon as
soon as it runs, so `teardown` cleans a half-built lab as well as a complete one.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from ovn_sandbox import Sandbox

from ycloud_lab.chassis import EXTERNAL_IF, UNDERLAY_IF, tunnel_mac
from ycloud_lab.netns import (
    add_address,
    bridge,
    create_ns,
    delete_ns,
    enslave,
    ifname,
    list_ns,
    veth,
)
from ycloud_lab.ovsdb import rows
from ycloud_lab.proc import LabError, ProcRecord, cmdline
from ycloud_lab.state import LOCK_FILE, OWNED_ENTRIES, ChassisState, LabState

if TYPE_CHECKING:
    from ycloud_lab.lab import Lab

log = logging.getLogger("ycloud_lab")
UNDERLAY_BRIDGE = "br-ul"
EXTERNAL_BRIDGE = "br-ext"
HOST_IF = "eth0"


def _peer(prefix: str, name: str) -> str:
    full = f"{prefix}-{name}"
    return full if len(full) <= 15 else ifname(prefix, name)


class Builder:
    def __init__(self, lab: Lab, st: LabState):
        self.lab = lab
        self.shape = lab.shape
        self.st = st
        self._mu = threading.Lock()

    def save(self) -> None:
        with self._mu:
            self.lab.store.save(self.st)

    def _ns(self, name: str) -> str:
        ns = self.st.ns(name)
        with self._mu:
            self.st.record_ns(ns)
            self.lab.store.save(self.st)
        if ns in list_ns():
            raise LabError(f"namespace {ns} already exists (a previous lab in "
                           f"{self.lab.dir} was not torn down: run `scripts/lab down`)")
        create_ns(ns)
        return ns

    def build(self) -> None:
        t0 = time.monotonic()
        central = Sandbox(self.lab.dir / "central").start()
        self.st.nb_remote, self.st.sb_remote = central.nb_remote, central.sb_remote
        self.save()
        self.fabric()
        t1 = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(self.shape.chassis)) as pool:
            list(pool.map(self.start_chassis, self.st.chassis.values()))
        t2 = time.monotonic()
        wait_registered(self.lab, list(self.st.chassis))
        with ThreadPoolExecutor(max_workers=len(self.shape.chassis)) as pool:
            list(pool.map(lambda c: self.lab.chassis(self.st, c).wait_integration_bridge(),
                          self.st.chassis))
        t3 = time.monotonic()
        warm_tunnels(self.lab, self.st)
        log.info("lab %s up: fabric %.1fs, chassis %.1fs, registration %.1fs, tunnels %.1fs",
                 self.st.lab_id, t1 - t0, t2 - t1, t3 - t2, time.monotonic() - t3)

    def fabric(self) -> None:
        """Underlay and external L2 segments (Linux bridges), hosts, chassis namespaces."""
        shape, st = self.shape, self.st
        underlay = self._ns("underlay")
        extnet = self._ns("extnet")
        st.infra.update(underlay=underlay, extnet=extnet)
        bridge(underlay, UNDERLAY_BRIDGE)
        bridge(extnet, EXTERNAL_BRIDGE,
               address=f"{shape.external_gateway}/{shape.external_prefix}")
        for host in shape.hosts:
            ns = self._ns(host.name)
            st.hosts[host.name] = ns
            peer = _peer("h", host.name)
            veth(ns, HOST_IF, extnet, peer, what=f"external host {host.name}")
            enslave(extnet, peer, EXTERNAL_BRIDGE)
            add_address(ns, HOST_IF, f"{host.ip}/{shape.external_prefix}",
                        what=f"external host {host.name}")
        for ch in shape.chassis:
            ns = self._ns(ch.name)
            st.chassis[ch.name] = ChassisState(
                name=ch.name, role=ch.role, namespace=ns, tunnel_ip=ch.tunnel_ip,
                dir=str(self.lab.dir / "chassis" / ch.name))
            peer = _peer("u", ch.name)
            veth(ns, UNDERLAY_IF, underlay, peer, mtu=shape.underlay_mtu,
                 what=f"chassis {ch.name}: underlay link")
            enslave(underlay, peer, UNDERLAY_BRIDGE)
            if ch.is_gateway:
                peer = _peer("g", ch.name)
                veth(ns, EXTERNAL_IF, extnet, peer, what=f"chassis {ch.name}: external link")
                enslave(extnet, peer, EXTERNAL_BRIDGE)
        self.save()

    def start_chassis(self, cst: ChassisState) -> None:
        ch = self.lab.chassis(self.st, cst.name)
        self._record(ch.start_ovsdb())
        ch.configure()
        self._record(ch.start_vswitchd())
        self._record(ch.start_controller())

    def _record(self, rec: ProcRecord) -> None:
        with self._mu:
            self.st.processes = [p for p in self.st.processes if p.name != rec.name]
            self.st.processes.append(rec)
            self.lab.store.save(self.st)


def check_paths(lab: Lab) -> None:
    """Unix socket paths that Python binds or connects to are limited to 107 bytes; fail
    before creating anything. (OVS daemons and tools shorten long paths via /proc/self/fd.)"""
    d = lab.dir
    paths = [d / "central" / "northd.ctl", d / "run" / f"{lab.lab_id}-hold99999.sock"]
    longest = max(paths, key=lambda p: len(str(p)))
    if len(str(longest)) > 107:
        raise LabError(f"lab directory {d} is too deep: unix socket {longest} would exceed "
                       f"107 bytes; use a shorter --dir")


def registered_chassis(lab: Lab, st: LabState) -> dict[str, str]:
    """SB Chassis name -> uuid."""
    return {r["name"]: r["_uuid"] for r in rows("ovn-sbctl", st.sb_remote,
                                                 "--columns=_uuid,name", "list", "Chassis",
                                                 what="read SB Chassis")}


def wait_registered(lab: Lab, names: list[str], timeout: float = 60.0) -> None:
    st = lab.store.load()
    deadline = time.monotonic() + timeout
    while True:
        missing = set(names) - set(registered_chassis(lab, st))
        if not missing:
            return
        if time.monotonic() > deadline:
            logs = ", ".join(str(lab.chassis(st, n).logfile("ovn-controller"))
                             for n in sorted(missing))
            raise LabError(f"chassis {', '.join(sorted(missing))} not in SB Chassis after "
                           f"{timeout:.0f}s; see {logs}")
        time.sleep(0.1)


def warm_tunnels(lab: Lab, st: LabState, only: str | None = None) -> None:
    """Static tunnel neighbour entries plus one ping to every other chassis' tunnel IP.

    The userspace datapath resolves a remote tunnel MAC only from ARP and drops the packet that
    triggered the lookup; static entries avoid that, the pings prove the underlay works."""
    running = [c for c in st.chassis.values() if not c.stopped]
    peers = {c.tunnel_ip: tunnel_mac(c.tunnel_ip) for c in st.chassis.values()}

    def warm(cst: ChassisState) -> list[str]:
        ch = lab.chassis(st, cst.name)
        others = {ip: mac for ip, mac in peers.items() if ip != cst.tunnel_ip}
        ch.set_tunnel_neighbors(others)
        targets = [c for c in running if c.name != cst.name
                   and (only is None or only in (c.name, cst.name))]
        return [f"{cst.name} -> {c.name} ({c.tunnel_ip})" for c in targets
                if not ch.ping(c.tunnel_ip)]

    with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
        failed = [f for fs in pool.map(warm, running) for f in fs]
    if failed:
        raise LabError(f"underlay pings failed: {'; '.join(failed)} "
                       f"(see the chassis' ovs-vswitchd.log under {lab.dir}/chassis)")


def teardown(lab: Lab, st: LabState | None, *, keep_dir: bool = False,
             ) -> dict[str, list[str]]:
    """Stop every recorded process, delete every lab namespace, remove the lab's files
    (keep_dir: keep DIR and its lock, for an `up` that rebuilds at once)."""
    done: dict[str, list[str]] = {"processes": [], "namespaces": [], "files": []}
    if st is not None:  # sandboxes first (CNI DEL while the agents still answer)
        for cst in st.chassis.values():
            if (Path(cst.dir) / "containerd" / "config.toml").exists():
                from ycloud_lab.runtime import chassis_runtime  # grpc: only where it ran

                chassis_runtime(cst.dir, cst.namespace).stop()
    records = list(st.processes) if st else []
    known = {p.pidfile for p in records}
    for pidfile in sorted((lab.dir / "run").glob("*.pid")) + sorted(
            (lab.dir / "chassis").glob("*/*.pid")):
        if str(pidfile) not in known:  # a state file lost or written late: trust the pidfiles
            records.append(ProcRecord(name=pidfile.stem, pid=0, marker=str(pidfile),
                                      pidfile=str(pidfile)))
    for rec in sorted(records, key=_stop_order):
        pid = rec.current_pid()
        info = cmdline(pid) if pid else ""
        if rec.stop():
            done["processes"].append(f"{rec.name} ({pid}: {info[:80]})")
    done["processes"] += [f"central/{n}" for n in Sandbox(lab.dir / "central").stop()]
    for pidfile in sorted((lab.dir / "central").glob("*.pid")):  # killed before sandbox.json
        rec = ProcRecord(name=f"central/{pidfile.stem}", pid=0, marker=str(pidfile),
                         pidfile=str(pidfile))
        if rec.stop():
            done["processes"].append(rec.name)
    namespaces = set(st.namespaces if st else [])
    namespaces |= {ns for ns in list_ns() if ns.startswith(f"{lab.lab_id}-")}
    for ns in sorted(namespaces):
        delete_ns(ns)
        done["namespaces"].append(ns)
    for entry in OWNED_ENTRIES:
        if keep_dir and entry == LOCK_FILE:
            continue
        path = lab.dir / entry
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
        else:
            continue
        done["files"].append(str(path))
    if not keep_dir:
        _rmdir_if_empty(lab.dir)
    return done


def _stop_order(rec: ProcRecord) -> int:
    """Traffic processes first, then ovn-controller, ovs-vswitchd, ovsdb-server."""
    for rank, daemon in enumerate(("ovn-controller", "ovs-vswitchd", "ovsdb-server"), 1):
        if rec.name.endswith(daemon):
            return rank
    return 0


def _rmdir_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
