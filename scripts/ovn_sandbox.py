"""A private OVN central: NB and SB ovsdb-servers plus ovn-northd in one directory.

Used by `scripts/ovn-sandbox`, the pytest fixtures, the lab and the benchmarks: one code path.
Everything (databases, sockets, pidfiles, logs, control sockets) lives under the directory
given; nothing is written to /var/run. `stop` ends only the pids recorded in that directory,
and only when their command line is the one this module started.

NB may run as a RAFT cluster of N members (`--cluster N`): members listen on 127.0.0.1 TCP
ports for RAFT and serve clients on their own unix sockets (with `--tcp`, each on its own
127.0.0.1 TCP port too, given on its command line so a relaunched member keeps it);
OVN_NB_DB (OVN_NB_DB_TCP) is then the comma-separated list of all members. For failover
tests a member can be found by role (`leader`), killed by its recorded pid (`kill`) and
relaunched on the same database file and ports (`relaunch`). Only the standard library is
used here, so the script works before the virtual environment exists.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

NB_SCHEMA = "/usr/share/ovn/ovn-nb.ovsschema"
SB_SCHEMA = "/usr/share/ovn/ovn-sb.ovsschema"
STATE_FILE = "sandbox.json"


class SandboxError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _daemon_env(rundir: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVN_RUNDIR", "OVN_LOGDIR", "OVN_DBDIR"):
        env[var] = str(rundir)
    return env


def _run(cmd: list[str], rundir: Path) -> None:
    res = subprocess.run(cmd, env=_daemon_env(rundir), capture_output=True, text=True)
    if res.returncode != 0:
        raise SandboxError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int, marker: str | None = None) -> bool:
    """True if pid runs and, when marker is given, its command line contains marker."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    state = ""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
    except (OSError, IndexError):
        pass
    if state == "Z":
        return False
    return marker is None or marker in cmdline


def stop_pid(pid: int, marker: str, timeout: float = 5.0) -> bool:
    """Terminate pid if it is still the process we started (its cmdline holds marker)."""
    if not pid_alive(pid, marker):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid, marker):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def wait_for_socket(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(str(path))
                    return
                except OSError:
                    pass
        time.sleep(0.02)
    raise SandboxError(f"timed out waiting for {path}")


@dataclass
class Process:
    name: str
    pidfile: str
    marker: str  # substring of the command line identifying our process
    cmd: list[str] = field(default_factory=list)  # how it was started (to relaunch it)

    def pid(self) -> int | None:
        return read_pid(Path(self.pidfile))

    def alive(self) -> bool:
        pid = self.pid()
        return pid is not None and pid_alive(pid, self.marker)


@dataclass
class SandboxState:
    directory: str
    nb_remote: str
    sb_remote: str
    nb_sockets: list[str]
    sb_socket: str
    nb_tcp: str | None = None  # a comma-separated list of members for a cluster
    sb_tcp: str | None = None
    cluster: int = 1
    processes: list[Process] = field(default_factory=list)

    @classmethod
    def load(cls, directory: Path) -> SandboxState:
        data = json.loads((directory / STATE_FILE).read_text())
        data["processes"] = [Process(**p) for p in data["processes"]]
        return cls(**data)

    def save(self) -> None:
        Path(self.directory, STATE_FILE).write_text(json.dumps(asdict(self), indent=2))

    def env_lines(self) -> list[str]:
        lines = [f"export OVN_NB_DB={self.nb_remote}", f"export OVN_SB_DB={self.sb_remote}"]
        if self.nb_tcp:
            lines.append(f"export OVN_NB_DB_TCP={self.nb_tcp}")
        if self.sb_tcp:
            lines.append(f"export OVN_SB_DB_TCP={self.sb_tcp}")
        return lines


class Sandbox:
    """NB + SB ovsdb-server and ovn-northd under one private directory."""

    def __init__(self, directory: str | os.PathLike[str], *, tcp: bool = False, cluster: int = 1):
        self.dir = Path(directory).resolve()
        self.tcp = tcp
        self.cluster = cluster
        self.state: SandboxState | None = None
        self._member_tcp: list[str] = []

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> SandboxState:
        if (self.dir / STATE_FILE).exists():
            existing = SandboxState.load(self.dir)
            if all(p.alive() for p in existing.processes):
                self.state = existing
                return existing
            self.stop()
        for tool in ("ovsdb-server", "ovsdb-tool", "ovn-northd"):
            if not shutil.which(tool):
                raise SandboxError(f"{tool} not found: run scripts/install-deps")
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob("*.db"):
            stale.unlink()
        procs: list[Process] = []
        nb_sockets = self._start_nb(procs)
        sb_sock = self._start_db("sb", SB_SCHEMA, procs)
        nb_remote = ",".join(f"unix:{s}" for s in nb_sockets)
        sb_remote = f"unix:{sb_sock}"
        nb_tcp = sb_tcp = None
        if self.tcp:
            nb_tcp = (",".join(self._member_tcp) if self.cluster > 1
                      else self._add_tcp(nb_sockets[0], "nb"))
            sb_tcp = self._add_tcp(sb_sock, "sb")
        self._start_northd(nb_remote, sb_remote, procs)
        self.state = SandboxState(
            directory=str(self.dir), nb_remote=nb_remote, sb_remote=sb_remote,
            nb_sockets=[str(s) for s in nb_sockets], sb_socket=str(sb_sock),
            nb_tcp=nb_tcp, sb_tcp=sb_tcp, cluster=self.cluster, processes=procs,
        )
        self.state.save()
        return self.state

    def _ovsdb_server(self, name: str, db: Path, sock: Path, procs: list[Process],
                      extra: list[str] = ()) -> None:
        pidfile = self.dir / f"{name}.pid"
        cmd = [
            "ovsdb-server", str(db), "--detach", "--no-chdir",
            f"--pidfile={pidfile}", f"--log-file={self.dir / (name + '.log')}",
            f"--unixctl={self.dir / (name + '.ctl')}", f"--remote=punix:{sock}",
            "--remote=db:OVN_Northbound,NB_Global,connections" if "nb" in name else
            "--remote=db:OVN_Southbound,SB_Global,connections", *extra,
        ]
        _run(cmd, self.dir)
        wait_for_socket(sock)
        procs.append(Process(name=name, pidfile=str(pidfile), marker=str(db), cmd=cmd))

    def _start_db(self, name: str, schema: str, procs: list[Process]) -> Path:
        db, sock = self.dir / f"{name}.db", self.dir / f"{name}.sock"
        _run(["ovsdb-tool", "create", str(db), schema], self.dir)
        self._ovsdb_server(name, db, sock, procs)
        return sock

    def _start_nb(self, procs: list[Process]) -> list[Path]:
        if self.cluster <= 1:
            return [self._start_db("nb", NB_SCHEMA, procs)]
        raft = [f"tcp:127.0.0.1:{free_port()}" for _ in range(self.cluster)]
        self._member_tcp = [f"tcp:127.0.0.1:{free_port()}" for _ in range(self.cluster)]
        sockets = []
        for i in range(self.cluster):
            name, db = f"nb{i + 1}", self.dir / f"nb{i + 1}.db"
            if i == 0:
                _run(["ovsdb-tool", "create-cluster", str(db), NB_SCHEMA, raft[0]], self.dir)
            else:
                _run(["ovsdb-tool", "join-cluster", str(db), "OVN_Northbound", raft[i], raft[0]],
                     self.dir)
            sock = self.dir / f"{name}.sock"
            port = self._member_tcp[i].rsplit(":", 1)[1]
            self._ovsdb_server(name, db, sock, procs,
                               [f"--remote=ptcp:{port}:127.0.0.1"] if self.tcp else [])
            sockets.append(sock)
        self._wait_cluster_joined([f"nb{i + 1}" for i in range(self.cluster)])
        return sockets

    def _wait_cluster_joined(self, members: list[str], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for name in members:
            while True:
                out = self.cluster_status(name)
                if "Status: cluster member" in out:
                    break
                if time.monotonic() > deadline:
                    raise SandboxError(f"{name} did not join the cluster:\n{out}")
                time.sleep(0.1)

    def _add_tcp(self, sock: Path, name: str) -> str:
        port = free_port()
        self.appctl(self.dir / f"{name}.ctl" if name == "sb" or self.cluster <= 1
                    else self.dir / "nb1.ctl", "ovsdb-server/add-remote", f"ptcp:{port}:127.0.0.1")
        return f"tcp:127.0.0.1:{port}"

    def _start_northd(self, nb: str, sb: str, procs: list[Process]) -> None:
        pidfile = self.dir / "northd.pid"
        _run([
            "ovn-northd", "--detach", "--no-chdir", f"--pidfile={pidfile}",
            f"--log-file={self.dir / 'northd.log'}", f"--unixctl={self.dir / 'northd.ctl'}",
            f"--ovnnb-db={nb}", f"--ovnsb-db={sb}",
        ], self.dir)
        procs.append(Process(name="northd", pidfile=str(pidfile), marker=str(self.dir)))

    def stop(self) -> list[str]:
        """Stop the processes recorded in this directory; returns the names stopped."""
        stopped = []
        try:
            state = SandboxState.load(self.dir)
        except (OSError, ValueError):
            return stopped
        for proc in reversed(state.processes):
            pid = proc.pid()
            if pid is not None and stop_pid(pid, proc.marker):
                stopped.append(proc.name)
        (self.dir / STATE_FILE).unlink(missing_ok=True)
        self.state = None
        return stopped

    def status(self) -> dict[str, str]:
        try:
            state = SandboxState.load(self.dir)
        except (OSError, ValueError):
            return {}
        return {p.name: (f"running pid {p.pid()}" if p.alive() else "stopped")
                for p in state.processes}

    # -- RAFT members (failover tests) ------------------------------------------------------
    def members(self) -> list[str]:
        """Names of the NB cluster members: nb1 .. nbN."""
        return [f"nb{i + 1}" for i in range(self.cluster)] if self.cluster > 1 else []

    def member_remote(self, name: str, tcp: bool = True) -> str:
        """A member's client remote: its TCP port (with `tcp`) or its unix socket."""
        assert self.state is not None
        i = self.members().index(name)
        if tcp:
            assert self.state.nb_tcp, "sandbox started without tcp"
            return self.state.nb_tcp.split(",")[i]
        return f"unix:{self.state.nb_sockets[i]}"

    def cluster_status(self, name: str) -> str:
        return self.appctl(self.dir / f"{name}.ctl", "cluster/status", "OVN_Northbound")

    def leader(self, timeout: float = 20.0) -> str:
        """The member that reports `Role: leader` (waits for an election to end)."""
        deadline = time.monotonic() + timeout
        while True:
            for name in self.members():
                if self.process(name).alive() and "Role: leader" in self.cluster_status(name):
                    return name
            if time.monotonic() > deadline:
                raise SandboxError(f"no NB leader within {timeout}s")
            time.sleep(0.05)

    def kill(self, name: str) -> int:
        """SIGKILL one of our processes (by its recorded pid, only while its command line
        is ours); returns the pid once it is gone."""
        proc = self.process(name)
        pid = proc.pid()
        if pid is None or not pid_alive(pid, proc.marker):
            raise SandboxError(f"{name} is not running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(pid, proc.marker):
            if time.monotonic() > deadline:
                raise SandboxError(f"{name} (pid {pid}) survived SIGKILL")
            time.sleep(0.02)
        return pid

    def relaunch(self, name: str) -> None:
        """Start a killed process again with its own command line: the same database file,
        sockets and ports; a cluster member then rejoins (waited for)."""
        proc = self.process(name)
        if proc.alive() or not proc.cmd:
            raise SandboxError(f"{name} is still running or cannot be relaunched")
        _run(proc.cmd, self.dir)
        wait_for_socket(self.dir / f"{name}.sock")
        if name in self.members():
            self._wait_cluster_joined([name])

    # -- helpers --------------------------------------------------------------------------
    def appctl(self, ctl: Path, *args: str) -> str:
        res = subprocess.run(["ovs-appctl", "--timeout=10", "-t", str(ctl), *args],
                             capture_output=True, text=True, env=_daemon_env(self.dir))
        return res.stdout + res.stderr

    def process(self, name: str) -> Process:
        assert self.state is not None
        return next(p for p in self.state.processes if p.name == name)

    def nbctl(self, *args: str, check: bool = True) -> str:
        assert self.state is not None
        res = subprocess.run(["ovn-nbctl", f"--db={self.state.nb_remote}", *args],
                             capture_output=True, text=True, env=_daemon_env(self.dir))
        if check and res.returncode != 0:
            raise SandboxError(f"ovn-nbctl {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout

    def sbctl(self, *args: str, check: bool = True) -> str:
        assert self.state is not None
        res = subprocess.run(["ovn-sbctl", f"--db={self.state.sb_remote}", *args],
                             capture_output=True, text=True, env=_daemon_env(self.dir))
        if check and res.returncode != 0:
            raise SandboxError(f"ovn-sbctl {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ovn-sandbox",
        description="A private OVN central (NB, SB, ovn-northd) in one directory.")
    parser.add_argument("action", choices=["start", "stop", "status", "env"])
    parser.add_argument("--dir", default=os.environ.get("YCLOUD_SANDBOX_DIR", ".sandbox"),
                        help="directory for databases, sockets, pids and logs "
                             "(default: $YCLOUD_SANDBOX_DIR or ./.sandbox)")
    parser.add_argument("--tcp", action="store_true",
                        help="also listen on 127.0.0.1 TCP ports (printed by `env`)")
    parser.add_argument("--cluster", type=int, default=1, metavar="N",
                        help="run NB as a RAFT cluster of N members (default 1: standalone)")
    args = parser.parse_args(argv)
    box = Sandbox(args.dir, tcp=args.tcp, cluster=args.cluster)
    try:
        if args.action == "start":
            state = box.start()
            sys.stdout.write("\n".join(state.env_lines()) + "\n")
        elif args.action == "stop":
            stopped = box.stop()
            sys.stdout.write(f"stopped: {', '.join(stopped) or 'nothing'}\n")
        elif args.action == "status":
            status = box.status()
            if not status:
                sys.stdout.write(f"no sandbox in {box.dir}\n")
                return 1
            for name, st in status.items():
                sys.stdout.write(f"{name:10} {st}\n")
            return 0 if all(s.startswith("running") for s in status.values()) else 1
        else:
            sys.stdout.write("\n".join(SandboxState.load(box.dir).env_lines()) + "\n")
    except SandboxError as exc:
        sys.stderr.write(f"ovn-sandbox: {exc}\n")
        return 1
    except FileNotFoundError:
        sys.stderr.write(f"ovn-sandbox: no sandbox in {box.dir}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
