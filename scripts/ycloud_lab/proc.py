"""Running commands (on the host or inside a lab namespace) and tracking the lab's processes.

Every command is an explicit argument list; a failure raises LabError naming what was being
done (which chassis, which port), the full command, its stderr and, when known, the log file
to read next.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ovn_sandbox import pid_alive, read_pid, stop_pid

log = logging.getLogger("ycloud_lab")


class LabError(RuntimeError):
    """A lab operation failed; the message says where and what to read next."""


def in_ns(ns: str | None, cmd: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)


def run(cmd: Sequence[str], *, ns: str | None = None, what: str = "",
        env: Mapping[str, str] | None = None, check: bool = True, timeout: float = 60.0,
        logfile: str | Path | None = None, input_text: str | None = None,
        ) -> subprocess.CompletedProcess[str]:
    """Run cmd (inside network namespace ns when given) and return the completed process."""
    full = in_ns(ns, cmd)
    where = f"{what}: " if what else ""
    see = f"; see {logfile}" if logfile else ""
    try:
        res = subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                             env=dict(env) if env is not None else None, input=input_text)
    except subprocess.TimeoutExpired:
        raise LabError(f"{where}`{shlex.join(full)}` timed out after {timeout:.0f}s{see}") from None
    except FileNotFoundError:
        raise LabError(f"{where}`{full[0]}` not found (is it installed?)") from None
    if check and res.returncode != 0:
        err = (res.stderr or res.stdout).strip()
        raise LabError(f"{where}`{shlex.join(full)}` failed ({res.returncode}): {err}{see}")
    return res


@dataclass
class ProcRecord:
    """A process the lab started: stopped only while its command line still holds marker."""

    name: str  # e.g. "node1/ovs-vswitchd", "server/web1"
    pid: int
    marker: str  # substring of /proc/<pid>/cmdline proving it is still our process
    namespace: str | None = None
    logfile: str | None = None
    pidfile: str | None = None

    def current_pid(self) -> int:
        if self.pidfile:
            pid = read_pid(Path(self.pidfile))
            if pid is not None:
                return pid
        return self.pid

    def alive(self) -> bool:
        return pid_alive(self.current_pid(), self.marker)

    def stop(self, timeout: float = 5.0) -> bool:
        pid = self.current_pid()
        stopped = stop_pid(pid, self.marker, timeout=timeout)
        if stopped:
            log.debug("stopped %s (pid %d)", self.name, pid)
        return stopped


def daemon_record(name: str, pidfile: Path, marker: str, namespace: str | None,
                  logfile: Path) -> ProcRecord:
    """Record of a daemon started with --detach --pidfile: read its pid from the pidfile."""
    pid = read_pid(pidfile)
    if pid is None:
        raise LabError(f"{name}: no pid in {pidfile}; see {logfile}")
    return ProcRecord(name=name, pid=pid, marker=marker, namespace=namespace,
                      logfile=str(logfile), pidfile=str(pidfile))


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def netns_pids(ns: str) -> list[int]:
    """Pids running inside the named network namespace (empty if it does not exist)."""
    res = run(["ip", "netns", "pids", ns], check=False, timeout=10)
    if res.returncode != 0:
        return []
    return [int(p) for p in res.stdout.split() if p.isdigit() and int(p) != os.getpid()]
