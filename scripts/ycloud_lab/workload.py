"""Test traffic from the Python side: echo servers, requests and held connections, each run
inside a lab namespace with `python -m ycloud_lab.traffic` (see traffic.py for the protocol).
Servers and held connections are recorded like daemons (pidfiles under DIR/run) so `down`
and unplugging a pod stop them."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ovn_sandbox import read_pid

from ycloud_lab.proc import LabError, ProcRecord, run
from ycloud_lab.traffic import send_control

if TYPE_CHECKING:
    from ycloud_lab.lab import Lab

SCRIPTS_DIR = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Reply:
    """One request's outcome: the answering server and the source it saw, or an error
    (refused | reset | timeout | unreachable | closed | error) with detail; `at` is the wall
    clock (time.time()) when it started, `elapsed` how long it took, `local` the client's own
    ip:port."""

    ok: bool
    server: str | None = None
    source: str | None = None  # "ip:port" (IPv6: "[ip]:port") as the server saw it
    error: str | None = None
    detail: str = ""
    elapsed: float = 0.0
    at: float = 0.0
    local: str | None = None  # the client's ip:port (new connections of `request`)

    @property
    def source_ip(self) -> str | None:
        if not self.source:
            return None
        host = self.source.rsplit(":", 1)[0]
        return host.strip("[]")

    @property
    def server_name(self) -> str | None:
        return self.server

    @property
    def seen_source(self) -> str | None:
        return self.source

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        return cls(ok=bool(data.get("ok")), server=data.get("server"),
                   source=data.get("source"), error=data.get("error"),
                   detail=data.get("detail", ""), elapsed=float(data.get("elapsed", 0.0)),
                   at=float(data.get("at", 0.0)), local=data.get("local"))

    def __str__(self) -> str:
        return f"{self.server} saw {self.source}" if self.ok else f"{self.error}: {self.detail}"


@dataclass(frozen=True)
class Server:
    name: str
    namespace: str
    proto: str
    port: int
    pidfile: str


def traffic_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ycloud_lab.traffic", *args]


def traffic_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SCRIPTS_DIR),
                                                      env.get("PYTHONPATH")]))
    return env


def _spawn(lab: Lab, target: str, kind: str, label: str,
           make_args: Callable[[Path], list[str]]) -> tuple[str, ProcRecord, Any]:
    """Start a detached traffic process in target's namespace, recorded before it starts."""
    with lab.store.locked():
        st = lab.store.load()
        ns = lab.namespace_of(target, st)
        tag = st.next_tag(kind)
        run_dir = lab.dir / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        pidfile, logfile = run_dir / f"{tag}.pid", run_dir / f"{tag}.log"
        rec = ProcRecord(name=f"{kind}/{label}", pid=0, marker=str(pidfile), namespace=ns,
                         logfile=str(logfile), pidfile=str(pidfile))
        st.processes.append(rec)
        lab.store.save(st)
        args = make_args(run_dir / tag)
        res = run(traffic_cmd(*args, "--detach", "--pidfile", str(pidfile), "--logfile",
                              str(logfile)), ns=ns, env=traffic_env(), check=False, timeout=20)
        rec.pid = read_pid(pidfile) or 0
        if res.returncode != 0 or not rec.alive():
            st.processes.remove(rec)
            lab.store.save(st)
            return ns, rec, res
        lab.store.save(st)
        return ns, rec, None


def start_server(lab: Lab, target: str, name: str, proto: str = "tcp", port: int = 8080,
                 bind: str = "0.0.0.0") -> Server:
    args = ["server", "--name", name, "--proto", proto, "--port", str(port), "--bind", bind]
    ns, rec, failed = _spawn(lab, target, "server", name, lambda _: args)
    if failed is not None:
        raise LabError(f"server {name} ({proto}/{port}) in {ns} did not start: "
                       f"{(failed.stderr or failed.stdout).strip()}; see {rec.logfile}")
    return Server(name=name, namespace=ns, proto=proto, port=port, pidfile=str(rec.pidfile))


def stop_server(lab: Lab, server: Server | str) -> bool:
    """Stop a server started by start_server (by handle or by name); True if it ran."""
    with lab.store.locked():
        st = lab.store.load()
        if isinstance(server, Server):
            recs = [p for p in st.processes if p.pidfile == server.pidfile]
        else:
            recs = [p for p in st.processes if p.name == f"server/{server}"]
        stopped = False
        for rec in recs:
            stopped |= rec.stop()
            st.processes.remove(rec)
        lab.store.save(st)
        return stopped


def request(lab: Lab, target: str, proto: str, ip: str, port: int, *, timeout: float = 2.0,
            count: int = 1, interval: float = 0.0) -> list[Reply]:
    ns = lab.namespace_of(target)
    res = run(traffic_cmd("client", ip, str(port), "--proto", proto, "--timeout", str(timeout),
                          "--count", str(count), "--interval", str(interval), "--json",
                          "--sport", str(lab.source_ports(count))),
              ns=ns, env=traffic_env(), check=False,
              timeout=count * (timeout + interval) + 15)
    replies = [Reply.from_dict(json.loads(line)) for line in res.stdout.splitlines()
               if line.startswith("{")]
    if len(replies) != count:
        raise LabError(f"client in {ns} ({proto} {ip}:{port}) failed: "
                       f"{res.stderr.strip() or res.stdout.strip()}")
    return replies


class HeldConnection:
    """One TCP connection kept open by a `traffic hold` process inside a namespace."""

    def __init__(self, lab: Lab, namespace: str, control: str, pidfile: str, peer: str):
        self.lab = lab
        self.namespace = namespace
        self.control = control
        self.pidfile = pidfile
        self.peer = peer

    def send(self, text: str = "ping", timeout: float = 10.0) -> Reply:
        """Send one line through the held connection and return the server's answer."""
        try:
            return Reply.from_dict(send_control(self.control, f"send {text}", timeout))
        except (OSError, ValueError) as exc:
            return Reply(ok=False, error="closed", detail=f"hold process gone: {exc}")

    def close(self) -> None:
        try:
            send_control(self.control, "close", 5.0)
        except (OSError, ValueError):
            pass
        with self.lab.store.locked():
            st = self.lab.store.load()
            for rec in [p for p in st.processes if p.pidfile == self.pidfile]:
                rec.stop()
                st.processes.remove(rec)
            self.lab.store.save(st)

    def __enter__(self) -> HeldConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_connection(lab: Lab, target: str, ip: str, port: int, *,
                    timeout: float = 2.0) -> HeldConnection:
    peer = f"{ip}:{port}"

    def args(base: Path) -> list[str]:
        return ["hold", ip, str(port), "--control", f"{base}.sock", "--timeout", str(timeout)]

    ns, rec, failed = _spawn(lab, target, "hold", peer, args)
    if failed is not None:
        lines = [line for line in failed.stdout.splitlines() if line.startswith("{")]
        reason = Reply.from_dict(json.loads(lines[0])) if lines else failed.stderr.strip()
        raise LabError(f"cannot open TCP connection {ns} -> {ip}:{port}: {reason}")
    control = str(Path(str(rec.pidfile)).with_suffix(".sock"))
    return HeldConnection(lab, ns, control, str(rec.pidfile), peer)
