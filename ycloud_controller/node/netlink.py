"""Links, addresses and routes, through iproute2 and ethtool (no new dependency: the node
image ships iproute2, ethtool and util-linux's nsenter, the tools kubelet's own CNI plugins
assume). A pod's netns is a path (CNI_NETNS: /var/run/netns/cni-..., /proc/PID/ns/net):
commands inside it run under `nsenter --net=PATH`; links move into it with `ip link set
netns PATH`. Why not pyroute2 (netlink from Python, no processes): one more dependency in the
image for what `ip -batch` already gives, a handful of processes per ADD (see `batch`).
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import os
import socket
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

SIOCGIFHWADDR = 0x8927


class NetlinkError(RuntimeError):
    """A command failed; the message holds the command and its stderr."""


def run(cmd: Sequence[str], netns: str | None = None, check: bool = True,
        timeout: float = 30.0, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    full = ["nsenter", f"--net={netns}", *cmd] if netns else list(cmd)
    try:
        res = subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                             input=stdin)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetlinkError(f"`{' '.join(full)}`: {exc}") from None
    if check and res.returncode != 0:
        raise NetlinkError(f"`{' '.join(full)}` failed ({res.returncode}): "
                           f"{(res.stderr or res.stdout).strip()}")
    return res


def batch(lines: Sequence[str], netns: str | None = None) -> None:
    """Several `ip` commands in one process (`ip -batch -`), stopping at the first that
    fails: an ADD spawns a handful of processes, not twenty (a batch of pods on a busy node is
    bound by process creation). Families come from the addresses (0.0.0.0/0, ::/0)."""
    if lines:
        run(["ip", "-batch", "-"], netns, stdin="\n".join(lines) + "\n")


def exists(name: str) -> bool:
    """A link of the agent's own netns, asked of the kernel directly (no process; not sysfs,
    which shows the netns it was mounted in, not necessarily the agent's)."""
    try:
        socket.if_nametoindex(name)
        return True
    except OSError:
        return False


def mac_of(name: str) -> str:
    """The link's MAC (SIOCGIFHWADDR), "" when it does not exist."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            raw = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, struct.pack("256s", name.encode()))
        except OSError:
            return ""
    return ":".join(f"{b:02x}" for b in raw[18:24])


def host_ifname(prefix: str, *keys: str) -> str:
    """A stable interface name (15 chars at most) for keys."""
    digest = hashlib.blake2b("|".join(keys).encode(), digest_size=8).hexdigest()
    return (prefix + digest)[:15]


def netns_exists(netns: str) -> bool:
    return bool(netns) and os.path.exists(netns)


@dataclass(frozen=True)
class Link:
    name: str
    mac: str
    mtu: int
    up: bool
    addresses: tuple[str, ...]  # ip/prefix


def link(name: str, netns: str | None = None) -> Link | None:
    """The link, or None when it does not exist (or the netns is gone)."""
    if netns is not None and not netns_exists(netns):
        return None
    res = run(["ip", "-j", "addr", "show", "dev", name], netns, check=False)
    if res.returncode != 0:
        return None
    found = json.loads(res.stdout or "[]")
    if not found:
        return None
    info = found[0]
    addrs = tuple(f"{a['local']}/{a['prefixlen']}" for a in info.get("addr_info", ())
                  if a.get("scope") != "link")
    return Link(name=info["ifname"], mac=info.get("address", ""), mtu=int(info.get("mtu", 0)),
                up="UP" in info.get("flags", ()), addresses=addrs)


def link_names(netns: str | None = None) -> set[str]:
    res = run(["ip", "-j", "link", "show"], netns)
    return {i["ifname"] for i in json.loads(res.stdout or "[]")}


def delete_link(name: str, netns: str | None = None) -> bool:
    """Delete; False when it did not exist."""
    if netns is not None and not netns_exists(netns):
        return False
    return run(["ip", "link", "del", "dev", name], netns, check=False).returncode == 0


def link_up(name: str, netns: str | None = None) -> None:
    run(["ip", "link", "set", "dev", name, "up"], netns)


def tx_checksum_off(name: str, netns: str | None = None) -> None:
    """The userspace (netdev) datapath drops packets whose checksum the kernel left to the
    NIC: veths under it need tx checksum offload off."""
    run(["ethtool", "-K", name, "tx", "off"], netns)


def family(address: str) -> str:
    return "-6" if ":" in address else "-4"


def add_address(name: str, address: str, netns: str | None = None) -> None:
    """ip/prefix on the link (IPv6 without duplicate address detection); idempotent."""
    cmd = ["ip", family(address), "addr", "replace", address, "dev", name]
    if ":" in address:
        cmd.append("nodad")
    run(cmd, netns)


def replace_route(dst: str, via: str, dev: str, netns: str | None = None,
                  mtu: int | None = None) -> None:
    cmd = ["ip", family(via), "route", "replace", dst, "via", via, "dev", dev]
    if mtu:
        cmd += ["mtu", str(mtu)]
    run(cmd, netns)


def routes(dev: str, netns: str | None = None) -> set[tuple[str, str]]:
    """(dst, gateway) of the routes through dev, both families."""
    out: set[tuple[str, str]] = set()
    for fam in ("-4", "-6"):
        res = run(["ip", "-j", fam, "route", "show", "dev", dev], netns, check=False)
        for r in json.loads(res.stdout or "[]") if res.returncode == 0 else ():
            if r.get("gateway"):
                dst = r.get("dst", "")
                if dst == "default":
                    dst = "0.0.0.0/0" if fam == "-4" else "::/0"
                elif "/" not in dst:
                    dst = str(ipaddress.ip_network(dst))
                out.add((dst, r["gateway"]))
    return out


def default_route(gateway: str) -> str:
    return "0.0.0.0/0" if ipaddress.ip_address(gateway).version == 4 else "::/0"
