"""Links, addresses and routes, through iproute2 and ethtool (no new dependency: the node
image ships iproute2, ethtool and util-linux's nsenter, the tools kubelet's own CNI plugins
assume). A pod's netns is a path (CNI_NETNS: /var/run/netns/cni-..., /proc/PID/ns/net):
commands inside it run under `nsenter --net=PATH`; links move into it with `ip link set
netns PATH`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass


class NetlinkError(RuntimeError):
    """A command failed; the message holds the command and its stderr."""


def run(cmd: Sequence[str], netns: str | None = None, check: bool = True,
        timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    full = ["nsenter", f"--net={netns}", *cmd] if netns else list(cmd)
    try:
        res = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetlinkError(f"`{' '.join(full)}`: {exc}") from None
    if check and res.returncode != 0:
        raise NetlinkError(f"`{' '.join(full)}` failed ({res.returncode}): "
                           f"{(res.stderr or res.stdout).strip()}")
    return res


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


def create_veth(host: str, peer: str, mtu: int) -> None:
    """A veth pair in this netns (the peer moves to the pod next)."""
    run(["ip", "link", "add", "name", host, "mtu", str(mtu), "type", "veth",
         "peer", "name", peer, "mtu", str(mtu)])


def delete_link(name: str, netns: str | None = None) -> bool:
    """Delete; False when it did not exist."""
    if netns is not None and not netns_exists(netns):
        return False
    return run(["ip", "link", "del", "dev", name], netns, check=False).returncode == 0


def move_to_netns(name: str, netns: str, from_netns: str | None = None) -> None:
    run(["ip", "link", "set", "dev", name, "netns", netns], from_netns)


def configure_link(name: str, *, netns: str | None = None, new_name: str | None = None,
                   mac: str | None = None, mtu: int | None = None, up: bool = True) -> None:
    if new_name and new_name != name:
        run(["ip", "link", "set", "dev", name, "down"], netns)
        run(["ip", "link", "set", "dev", name, "name", new_name], netns)
        name = new_name
    cmd = ["ip", "link", "set", "dev", name]
    if mac:
        cmd += ["address", mac]
    if mtu:
        cmd += ["mtu", str(mtu)]
    if len(cmd) > 5:
        run(cmd, netns)
    if up:
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


def flush_addresses(name: str, netns: str | None = None) -> None:
    run(["ip", "addr", "flush", "dev", name], netns, check=False)


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
