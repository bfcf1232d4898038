"""SCTP with raw sockets, for kernels without SCTP (the lab's may have no sctp module).

`probe HOST PORT` sends an SCTP INIT from a raw socket and waits for the INIT ACK;
`responder --name N --port P` answers every INIT to port P with an INIT ACK whose State
Cookie says `<name> <source ip>` (as the TCP/UDP echo servers answer `<name> <src>`). That is
the first round trip of an SCTP association, enough to see a packet go through a load
balancer and its reply come back un-NATed. The kernel delivers SCTP packets to raw sockets
whether or not it has an SCTP stack.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import struct
import sys
import time

IPPROTO_SCTP = 132
INIT, INIT_ACK = 1, 2
STATE_COOKIE = 7


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def packet(src_port: int, dst_port: int, vtag: int, chunk_type: int, tag: int,
           params: bytes = b"") -> bytes:
    """An SCTP packet of one INIT or INIT ACK chunk (RFC 9260 3.3.2, 3.3.3)."""
    body = struct.pack("!IIHHI", tag, 65535, 1, 1, random.getrandbits(32)) + params
    chunk = struct.pack("!BBH", chunk_type, 0, 4 + len(body)) + body
    chunk += b"\0" * (-len(chunk) % 4)
    header = struct.pack("!HHII", src_port, dst_port, vtag, 0)
    crc = crc32c(header + chunk)
    return header[:8] + struct.pack("<I", crc) + chunk  # the CRC32c goes little-endian


def parse(data: bytes, family: int) -> tuple[str, int, int, int, int, bytes] | None:
    """(source ip, source port, dest port, chunk type, initiate tag, params) of a received
    raw datagram (IPv4 raw sockets include the IP header), or None."""
    if family == socket.AF_INET:
        data = data[(data[0] & 0x0F) * 4:]
    if len(data) < 32:
        return None
    sport, dport, _vtag, _crc = struct.unpack("!HHII", data[:12])
    ctype, _flags, length = struct.unpack("!BBH", data[12:16])
    tag = struct.unpack("!I", data[16:20])[0]
    return "", sport, dport, ctype, tag, data[32:12 + length]


def _socket(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.socket(family, socket.SOCK_RAW, IPPROTO_SCTP)


def probe(host: str, port: int, timeout: float, tries: int = 3) -> dict:
    """INIT, retransmitted as SCTP's T1-init timer does (here every timeout/tries seconds),
    until an INIT ACK answers; `sent` says how many INITs it took."""
    started = time.monotonic()
    sock = _socket(host)
    sport, tag = random.randint(20000, 60000), random.getrandbits(32) or 1
    init = packet(sport, port, 0, INIT, tag)
    deadline, sent, next_send = started + timeout, 0, started
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_send and sent < tries:
            sock.sendto(init, (host, 0))
            sent, next_send = sent + 1, now + timeout / tries
        sock.settimeout(max(0.01, min(next_send, deadline) - time.monotonic()))
        try:
            data, addr = sock.recvfrom(65535)
        except TimeoutError:
            continue
        got = parse(data, sock.family)
        if got is None or got[1] != port or got[2] != sport or got[3] != INIT_ACK:
            continue
        params = got[5]
        while len(params) >= 4:
            ptype, plen = struct.unpack("!HH", params[:4])
            if ptype == STATE_COOKIE:
                name, _, source = params[4:plen].decode().partition(" ")
                return {"ok": True, "server": name, "source": source, "from": addr[0],
                        "sent": sent, "elapsed": time.monotonic() - started}
            params = params[plen + (-plen % 4):]
    return {"ok": False, "error": "timeout", "sent": sent,
            "detail": f"no INIT ACK from {host}:{port}", "elapsed": time.monotonic() - started}


def respond(name: str, port: int, bind: str) -> None:
    sock = _socket(bind)
    while True:
        data, addr = sock.recvfrom(65535)
        got = parse(data, sock.family)
        if got is None or got[2] != port or got[3] != INIT:
            continue
        cookie = f"{name} {addr[0]}".encode()
        param = struct.pack("!HH", STATE_COOKIE, 4 + len(cookie)) + cookie
        param += b"\0" * (-len(param) % 4)
        sock.sendto(packet(port, got[1], got[4], INIT_ACK, random.getrandbits(32) or 1,
                           param), (addr[0], 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ycloud_lab.sctp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("probe", help="send INIT to HOST PORT, print the INIT ACK as JSON")
    pr.add_argument("host")
    pr.add_argument("port", type=int)
    pr.add_argument("--timeout", type=float, default=3.0)
    pr.add_argument("--tries", type=int, default=3, help="INITs sent at most")
    rs = sub.add_parser("responder", help="answer INITs to --port (until killed)")
    rs.add_argument("--name", required=True)
    rs.add_argument("--port", type=int, required=True)
    rs.add_argument("--bind", default="0.0.0.0", help="'::' for IPv6")
    rs.add_argument("--pidfile")
    args = parser.parse_args(argv)
    if args.cmd == "probe":
        print(json.dumps(probe(args.host, args.port, args.timeout, args.tries)))
        return 0
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")
    respond(args.name, args.port, args.bind)
    return 0


if __name__ == "__main__":
    sys.exit(main())
