"""A request/response loop for `python -m bench --dataplane`; standard library only, run
inside a lab namespace (`ip netns exec NS python3 -m bench.rr ...`):

    server --port P --seconds S            one connection at a time; every byte read is echoed;
                                           the byte `c` is echoed and the connection closed
                                           (the server closes first: TIME_WAIT stays on the
                                           server, the client never runs out of ports)
    client latency IP P --count N          one TCP connection, N round trips of 1 byte (`p`),
                                           as netperf TCP_RR; prints JSON {"rtt_us": [...]}
    client crr IP P --seconds S            a new TCP connection per request (connect, 1 byte
           [--sports FIRST:COUNT]          `c`, 1 byte back, EOF), as netperf TCP_CRR, for S
                                           seconds, from source ports FIRST.. in turn if
                                           given (else the kernel's ephemeral ones); prints
                                           JSON {"requests", "seconds", "errors"}

The server exits after --seconds in any case (bounded), and is stopped by pid before that.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time


def serve(port: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    with socket.socket() as ls:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("0.0.0.0", port))
        ls.listen(128)
        ls.settimeout(1.0)
        while time.monotonic() < deadline:
            try:
                conn, _ = ls.accept()
            except TimeoutError:
                continue
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.settimeout(30.0)
                try:
                    while True:
                        b = conn.recv(1)
                        if not b:
                            break
                        conn.sendall(b)
                        if b == b"c":
                            break
                except OSError:
                    pass
    return 0


def latency(ip: str, port: int, count: int, timeout: float) -> dict[str, object]:
    out = []
    with socket.create_connection((ip, port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            t0 = time.perf_counter_ns()
            s.sendall(b"p")
            if s.recv(1) != b"p":
                raise OSError("short reply")
            out.append((time.perf_counter_ns() - t0) / 1000.0)
        s.sendall(b"c")
        s.recv(1)
    return {"rtt_us": out}


def _connect(ip: str, port: int, timeout: float, sport: int | None) -> socket.socket:
    if sport is None:
        return socket.create_connection((ip, port), timeout=timeout)
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.settimeout(timeout)
        s.bind(("0.0.0.0", sport))
        s.connect((ip, port))
    except OSError:
        s.close()
        raise
    return s


def crr(ip: str, port: int, seconds: float, timeout: float,
        sports: range | None = None) -> dict[str, object]:
    done = errors = 0
    start = time.monotonic()
    end = start + seconds
    while time.monotonic() < end:
        sport = sports[(done + errors) % len(sports)] if sports else None
        try:
            with _connect(ip, port, timeout, sport) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.sendall(b"c")
                if s.recv(1) != b"c":
                    raise OSError("short reply")
                s.recv(1)  # EOF: the server closed
            done += 1
        except OSError:
            errors += 1
    return {"requests": done, "seconds": time.monotonic() - start, "errors": errors}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m bench.rr")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--seconds", type=float, default=3600.0)
    c = sub.add_parser("client")
    c.add_argument("mode", choices=("latency", "crr"))
    c.add_argument("ip")
    c.add_argument("port", type=int)
    c.add_argument("--count", type=int, default=2000)
    c.add_argument("--seconds", type=float, default=5.0)
    c.add_argument("--timeout", type=float, default=2.0)
    c.add_argument("--sports", help="crr: FIRST:COUNT, the source ports to use in turn")
    a = p.parse_args(argv)
    if a.cmd == "server":
        return serve(a.port, a.seconds)
    sports = None
    if a.sports:
        first, count = (int(x) for x in a.sports.split(":"))
        sports = range(first, first + count)
    res = (latency(a.ip, a.port, a.count, a.timeout) if a.mode == "latency"
           else crr(a.ip, a.port, a.seconds, a.timeout, sports))
    sys.stdout.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
