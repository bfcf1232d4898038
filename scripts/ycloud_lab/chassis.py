"""One chassis: ovsdb-server, ovs-vswitchd (netdev) and ovn-controller inside its namespace.

Every daemon gets OVS_/OVN_ RUNDIR, LOGDIR and DBDIR pointing at DIR/chassis/<name>/, so
nothing touches /var/run; their unixctl sockets keep the default names (`<daemon>.<pid>.ctl`
in that directory), so the stock tools find them with those variables exported. The tunnel
IP lives on br-phy (an OVS netdev bridge holding the underlay veth `eth0`): the userspace
datapath routes Geneve through it. Gateways also get br-ex
holding `ext0`, a veth to the external L2 segment, mapped as <provider>:br-ex.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from ovn_sandbox import pid_alive, read_pid

from ycloud_lab.netns import add_address, wait_link
from ycloud_lab.proc import LabError, ProcRecord, daemon_record, run
from ycloud_lab.shape import Shape
from ycloud_lab.state import ChassisState

log = logging.getLogger("ycloud_lab")

VSWITCH_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
UNDERLAY_IF = "eth0"  # chassis end of the underlay veth, a port of br-phy
EXTERNAL_IF = "ext0"  # gateway end of the external veth, a port of br-ex
TUNNEL_BRIDGE = "br-phy"
INTEGRATION_BRIDGE = "br-int"
DAEMONS = ("ovsdb-server", "ovs-vswitchd", "ovn-controller")


def tunnel_mac(tunnel_ip: str) -> str:
    """br-phy's MAC, derived from the tunnel IP so neighbour entries can be set statically."""
    a, b, c, d = (int(x) for x in tunnel_ip.split("."))
    return f"02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}"


class Chassis:
    def __init__(self, st: ChassisState, shape: Shape, sb_remote: str):
        self.st = st
        self.shape = shape
        self.sb_remote = sb_remote
        self.dir = Path(st.dir)
        self.ns = st.namespace
        self.name = st.name

    # -- plumbing -------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for var in ("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVN_RUNDIR", "OVN_LOGDIR",
                    "OVN_DBDIR"):
            env[var] = str(self.dir)
        return env

    @property
    def db(self) -> str:
        return f"unix:{self.dir / 'db.sock'}"

    def logfile(self, daemon: str) -> Path:
        return self.dir / f"{daemon}.log"

    def pidfile(self, daemon: str) -> Path:
        return self.dir / f"{daemon}.pid"

    def vsctl(self, *args: str, wait: bool = False, timeout: float = 20.0) -> str:
        cmd = ["ovs-vsctl", f"--db={self.db}", f"--timeout={int(timeout)}"]
        if not wait:
            cmd.append("--no-wait")
        res = run([*cmd, *args], env=self.env, what=f"chassis {self.name}",
                  timeout=timeout + 5, logfile=self.logfile("ovs-vswitchd"))
        return res.stdout

    def control_socket(self, daemon: str) -> Path:
        """A daemon's unixctl socket: `<daemon>.<pid>.ctl` in its RUNDIR, the default name,
        so that plain `ovs-appctl` / `ovn-appctl -t <daemon>` with the chassis' OVS_RUNDIR /
        OVN_RUNDIR (`scripts/lab exec <chassis>` exports them) find it. Labs started before
        this naming used `<daemon>.ctl`."""
        current = self.dir / f"{daemon}.{read_pid(self.pidfile(daemon))}.ctl"
        legacy = self.dir / f"{daemon}.ctl"
        return legacy if not current.exists() and legacy.exists() else current

    def appctl(self, *args: str, check: bool = True) -> str:
        res = run(["ovs-appctl", "-t", str(self.control_socket("ovs-vswitchd")), *args],
                  env=self.env, check=check, what=f"chassis {self.name}",
                  logfile=self.logfile("ovs-vswitchd"))
        return res.stdout + (res.stderr if not check else "")

    def controller_appctl(self, *args: str) -> str:
        """ovn-appctl to ovn-controller (23.03 names its socket ovn-controller.<pid>.ctl)."""
        res = run(["ovn-appctl", "-t", str(self.control_socket("ovn-controller")), *args],
                  env=self.env,
                  what=f"chassis {self.name}", logfile=self.logfile("ovn-controller"))
        return res.stdout

    def _daemon(self, daemon: str, args: list[str]) -> ProcRecord:
        pidfile, logfile = self.pidfile(daemon), self.logfile(daemon)
        pidfile.unlink(missing_ok=True)
        cmd = [daemon, *args, f"--pidfile={pidfile}", f"--log-file={logfile}",
               "--detach", "--no-chdir"]
        run(cmd, ns=self.ns, env=self.env, what=f"chassis {self.name}: start {daemon}",
            logfile=logfile)
        return daemon_record(f"{self.name}/{daemon}", pidfile, str(pidfile), self.ns, logfile)

    # -- bring-up -------------------------------------------------------------------------
    def start_ovsdb(self) -> ProcRecord:
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "conf.db"
        conf.unlink(missing_ok=True)
        run(["ovsdb-tool", "create", str(conf), VSWITCH_SCHEMA], env=self.env,
            what=f"chassis {self.name}: create conf.db")
        rec = self._daemon("ovsdb-server", [
            str(conf), f"--remote=punix:{self.dir / 'db.sock'}",
            "--remote=db:Open_vSwitch,Open_vSwitch,manager_options"])
        self.vsctl("init")
        return rec

    def configure(self) -> None:
        """Open_vSwitch external_ids and the br-phy / br-ex bridges, before vswitchd starts."""
        ch = self.shape.chassis_named(self.name)
        ids = {
            "system-id": self.name, "hostname": self.name, "ovn-remote": self.sb_remote,
            "ovn-encap-type": "geneve", "ovn-encap-ip": ch.tunnel_ip,
            "ovn-bridge-datapath-type": "netdev",
            "ovn-monitor-all": "true" if self.shape.ovn_monitor_all else "false",
        }
        if ch.is_gateway:
            ids["ovn-bridge-mappings"] = f"{self.shape.provider}:{self.shape.provider_bridge}"
            ids["ovn-cms-options"] = "enable-chassis-as-gw"
        args = ["set", "Open_vSwitch", ".", *(f'external_ids:{k}="{v}"' for k, v in ids.items()),
                "--", "--may-exist", "add-br", TUNNEL_BRIDGE,
                "--", "set", "Bridge", TUNNEL_BRIDGE, "datapath_type=netdev",
                f'other-config:hwaddr="{tunnel_mac(ch.tunnel_ip)}"',
                "--", "--may-exist", "add-port", TUNNEL_BRIDGE, UNDERLAY_IF]
        if ch.is_gateway:
            br = self.shape.provider_bridge
            args += ["--", "--may-exist", "add-br", br,
                     "--", "set", "Bridge", br, "datapath_type=netdev",
                     "--", "--may-exist", "add-port", br, EXTERNAL_IF]
        self.vsctl(*args)

    def start_vswitchd(self) -> ProcRecord:
        rec = self._daemon("ovs-vswitchd", [self.db])
        self.configure_tunnel_ip()
        return rec

    def configure_tunnel_ip(self) -> None:
        """br-phy is a tap that vswitchd creates (again after each restart): give it the IP."""
        what = f"chassis {self.name}: tunnel IP"
        wait_link(self.ns, TUNNEL_BRIDGE, what=what, logfile=str(self.logfile("ovs-vswitchd")))
        add_address(self.ns, TUNNEL_BRIDGE, f"{self.st.tunnel_ip}/{self.shape.underlay_prefix}",
                    what=what)
        run(["ip", "-n", self.ns, "link", "set", TUNNEL_BRIDGE, "up"], what=what)

    def start_controller(self) -> ProcRecord:
        return self._daemon("ovn-controller", [self.db])

    def wait_integration_bridge(self, timeout: float = 30.0) -> None:
        """ovn-controller creates br-int (netdev); ports can be added once it exists."""
        deadline = time.monotonic() + timeout
        while True:
            res = run(["ovs-vsctl", f"--db={self.db}", "--no-wait", "br-exists",
                       INTEGRATION_BRIDGE], check=False, env=self.env, timeout=10)
            if res.returncode == 0 and run(["ip", "-n", self.ns, "link", "show",
                                            INTEGRATION_BRIDGE], check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise LabError(f"chassis {self.name}: br-int not created by ovn-controller "
                               f"within {timeout:.0f}s; see {self.logfile('ovn-controller')}")
            time.sleep(0.1)

    def set_tunnel_neighbors(self, peers: dict[str, str]) -> None:
        """Static tunnel neighbour entries (peer tunnel IP -> br-phy MAC) in vswitchd."""
        self.appctl("tnl/neigh/aging", "3600")
        for ip, mac in peers.items():
            self.appctl("tnl/neigh/set", TUNNEL_BRIDGE, ip, mac)

    def ping(self, ip: str, timeout: float = 2.0) -> bool:
        res = run(["ping", "-c", "1", "-W", str(int(timeout)), ip], ns=self.ns, check=False,
                  timeout=timeout + 5)
        return res.returncode == 0

    def vswitchd_alive(self) -> bool:
        pid = read_pid(self.pidfile("ovs-vswitchd"))
        return pid is not None and pid_alive(pid, str(self.pidfile("ovs-vswitchd")))

    def installed_interfaces(self) -> set[str]:
        """Interfaces on which ovn-controller has installed the flows of their port."""
        res = run(["ovs-vsctl", f"--db={self.db}", "--no-wait", "--bare", "--columns=name",
                   "find", "Interface", 'external_ids:ovn-installed="true"'],
                  env=self.env, what=f"chassis {self.name}", check=False, timeout=10)
        return set(res.stdout.split())
