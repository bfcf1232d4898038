"""Tiny traffic tools for lab tests; standard library only, run inside a namespace:

    ip netns exec NS python3 -m ycloud_lab.traffic server --name web1 --proto tcp --port 8080
    ip netns exec NS python3 -m ycloud_lab.traffic client --proto udp 10.96.0.10 53 --count 5
    ip netns exec NS python3 -m ycloud_lab.traffic hold 10.96.0.10 80 --control /tmp/c.sock

server: TCP and/or UDP echo; every request (a TCP line or a UDP datagram) is answered with one
line `<server name> <source ip:port it saw>`. With --detach it binds, forks into the background
and writes --pidfile before the launching command returns, so the server is ready.
client: one request per new connection, --count times; prints one line per attempt, or one
JSON object per line with --json: {"ok", "server", "source", "error", "detail", "elapsed",
"at", "local"}, error being refused | reset | timeout | unreachable | closed | error, "at"
the wall clock (time.time()) when the attempt started, comparable across namespaces, "local"
the client's own ip:port (also after a failed connect: find it in conntrack).
hold: opens one TCP connection and keeps it; a unix control socket takes lines `send [text]`
(send through the held connection, answer with the JSON reply) and `close`.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _fmt_addr(addr: tuple) -> str:
    host, port = addr[0], addr[1]
    if host.startswith("::ffff:"):
        host = host[7:]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- server -------------------------------------------------------------------------------------
def _tcp_conn(conn: socket.socket, addr: tuple, name: str) -> None:
    answer = f"{name} {_fmt_addr(addr)}\n".encode()
    with conn:
        buf = b""
        try:
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    _, buf = buf.split(b"\n", 1)
                    conn.sendall(answer)
        except OSError:
            return


def _serve_tcp(sock: socket.socket, name: str) -> None:
    while True:
        conn, addr = sock.accept()
        threading.Thread(target=_tcp_conn, args=(conn, addr, name), daemon=True).start()


def _serve_udp(sock: socket.socket, name: str) -> None:
    while True:
        _, addr = sock.recvfrom(65535)
        sock.sendto(f"{name} {_fmt_addr(addr)}\n".encode(), addr)


def _bind(proto: str, bind: str, port: int) -> socket.socket:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(_family(bind), kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind, port))
    if proto == "tcp":
        sock.listen(128)
    return sock


def _detach(pidfile: str | None, logfile: str | None) -> None:
    """Double fork; the launching process returns once the daemon wrote its pidfile."""
    if pidfile:
        Path(pidfile).parent.mkdir(parents=True, exist_ok=True)
        Path(pidfile).unlink(missing_ok=True)
    first = os.fork()
    if first:
        os.waitpid(first, 0)
        deadline = time.monotonic() + 5
        while pidfile and not Path(pidfile).exists():
            if time.monotonic() > deadline:
                sys.stderr.write(f"traffic: daemon did not write {pidfile}\n")
                os._exit(1)
            time.sleep(0.01)
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    out = os.open(logfile or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    nul = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nul, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)


def _write_pidfile(pidfile: str | None) -> None:
    if pidfile:
        tmp = f"{pidfile}.tmp"
        Path(tmp).write_text(f"{os.getpid()}\n")
        os.replace(tmp, pidfile)


def cmd_server(args: argparse.Namespace) -> int:
    protos = ["tcp", "udp"] if args.proto == "both" else [args.proto]
    socks = [(p, _bind(p, args.bind, args.port)) for p in protos]
    if args.detach:
        _detach(args.pidfile, args.logfile)
    _write_pidfile(args.pidfile)
    threads = [threading.Thread(target=_serve_tcp if p == "tcp" else _serve_udp,
                                args=(s, args.name), daemon=True) for p, s in socks]
    for t in threads:
        t.start()
    sys.stdout.write(f"{args.name} serving {args.proto} on {args.bind}:{args.port}\n")
    sys.stdout.flush()
    for t in threads:
        t.join()
    return 0


# -- client -------------------------------------------------------------------------------------
def _classify(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return "reset"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return "error"


def _readline(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        data = sock.recv(4096)
        if not data:
            break
        buf += data
    return buf


def _since(started: float) -> dict:
    """elapsed since `started` (monotonic) and the wall clock when that was."""
    now = time.monotonic()
    return {"elapsed": round(now - started, 4), "at": round(time.time() - (now - started), 4)}


def _parse(line: bytes, started: float) -> dict:
    text = line.decode(errors="replace").strip()
    if not text:
        return {"ok": False, "server": None, "source": None, "error": "closed",
                "detail": "connection closed without a reply", **_since(started)}
    name, _, source = text.partition(" ")
    return {"ok": True, "server": name, "source": source, "error": None, "detail": "",
            **_since(started)}


def _failure(exc: BaseException, started: float) -> dict:
    return {"ok": False, "server": None, "source": None, "error": _classify(exc),
            "detail": f"{type(exc).__name__}: {exc}", **_since(started)}


def _local(sock: socket.socket) -> str | None:
    try:
        return _fmt_addr(sock.getsockname())
    except OSError:
        return None


def request_once(proto: str, host: str, port: int, timeout: float, payload: str = "hello",
                 sport: int = 0) -> dict:
    """One request on a new connection, from source port `sport` (0: the kernel's choice)."""
    started = time.monotonic()
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    family = _family(host)
    with socket.socket(family, kind) as sock:
        try:
            sock.settimeout(timeout)
            if sport:  # a port in TIME_WAIT from an earlier cycle may be bound again
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", sport))
            sock.connect((host, port))
            if proto == "tcp":
                sock.sendall(payload.encode() + b"\n")
                result = _parse(_readline(sock), started)
            else:
                sock.send(payload.encode() + b"\n")
                result = _parse(sock.recv(65535), started)
        except OSError as exc:
            result = _failure(exc, started)
        return {**result, "local": _local(sock)}


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    elif result["ok"]:
        sys.stdout.write(f"{result['server']} {result['source']}\n")
    else:
        sys.stdout.write(f"error {result['error']}: {result['detail']}\n")
    sys.stdout.flush()


def cmd_client(args: argparse.Namespace) -> int:
    failures = 0
    for i in range(args.count):
        result = request_once(args.proto, args.host, args.port, args.timeout,
                              sport=args.sport + i if args.sport else 0)
        failures += not result["ok"]
        _emit(result, args.json)
        if args.interval and i + 1 < args.count:
            time.sleep(args.interval)
    return 1 if failures == args.count else 0


# -- hold ---------------------------------------------------------------------------------------
def _hold_loop(conn: socket.socket, control: socket.socket, timeout: float) -> None:
    while True:
        ctl, _ = control.accept()
        with ctl:
            line = _readline(ctl).decode(errors="replace").strip()
            verb, _, text = line.partition(" ")
            if verb == "close":
                conn.close()
                ctl.sendall(b'{"ok": true, "closed": true}\n')
                return
            started = time.monotonic()
            try:
                conn.settimeout(timeout)
                conn.sendall((text or "ping").encode() + b"\n")
                result = _parse(_readline(conn), started)
            except OSError as exc:
                result = _failure(exc, started)
            ctl.sendall(json.dumps(result).encode() + b"\n")


def cmd_hold(args: argparse.Namespace) -> int:
    conn = socket.socket(_family(args.host), socket.SOCK_STREAM)
    conn.settimeout(args.timeout)
    try:
        conn.connect((args.host, args.port))
    except OSError as exc:
        _emit(_failure(exc, time.monotonic()), True)
        return 1
    Path(args.control).unlink(missing_ok=True)
    control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    control.bind(args.control)
    control.listen(8)
    if args.detach:
        _detach(args.pidfile, args.logfile)
    _write_pidfile(args.pidfile)
    try:
        _hold_loop(conn, control, args.timeout)
    finally:
        control.close()
        Path(args.control).unlink(missing_ok=True)
    return 0


def send_control(control: str, line: str, timeout: float = 10.0) -> dict:
    """Talk to a `hold` process from anywhere on the host (unix sockets cross namespaces)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(control)
        sock.sendall(line.encode() + b"\n")
        return json.loads(_readline(sock).decode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ycloud_lab.traffic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    srv = sub.add_parser("server", help="TCP/UDP echo server")
    srv.add_argument("--name", required=True, help="name reported in every answer")
    srv.add_argument("--proto", choices=["tcp", "udp", "both"], default="tcp")
    srv.add_argument("--port", type=int, required=True)
    srv.add_argument("--bind", default="0.0.0.0")
    cli = sub.add_parser("client", help="request(s) to IP PORT, a new connection each")
    hold = sub.add_parser("hold", help="keep one TCP connection; drive it via --control")
    for p in (cli, hold):
        p.add_argument("host")
        p.add_argument("port", type=int)
        p.add_argument("--timeout", type=float, default=2.0)
    cli.add_argument("--proto", choices=["tcp", "udp"], default="tcp")
    cli.add_argument("--count", type=int, default=1)
    cli.add_argument("--interval", type=float, default=0.0)
    cli.add_argument("--json", action="store_true")
    cli.add_argument("--sport", type=int, default=0,
                     help="source port of the first request, the next ones count up from it "
                          "(default: the kernel chooses each)")
    hold.add_argument("--control", required=True, help="unix socket path for send/close")
    for p in (srv, hold):
        p.add_argument("--detach", action="store_true", help="run in the background")
        p.add_argument("--pidfile")
        p.add_argument("--logfile")
    args = parser.parse_args(argv)
    handler = {"server": cmd_server, "client": cmd_client, "hold": cmd_hold}[args.cmd]
    try:
        return handler(args)
    except OSError as exc:
        sys.stderr.write(f"traffic {args.cmd}: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
