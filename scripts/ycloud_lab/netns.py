"""Network namespaces and links. Every link is created directly inside a lab namespace, never
in the host namespace, so deleting the lab's namespaces removes every link it made."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import signal
import time

from ycloud_lab.proc import LabError, cmdline, netns_pids, run

log = logging.getLogger("ycloud_lab")


def list_ns() -> set[str]:
    res = run(["ip", "netns", "list"], what="list namespaces")
    return {line.split()[0] for line in res.stdout.splitlines() if line.strip()}


def create_ns(ns: str) -> None:
    run(["ip", "netns", "add", ns], what=f"create namespace {ns}")
    run(["ip", "-n", ns, "link", "set", "lo", "up"], what=f"namespace {ns}: lo up")


def delete_ns(ns: str, *, kill_leftovers: bool = True) -> None:
    """Delete ns; processes still inside it (ours, since the namespace is the lab's) end first,
    otherwise the namespace and its links would outlive `ip netns del`."""
    if kill_leftovers:
        for pid in netns_pids(ns):
            log.warning("namespace %s: ending leftover process %d (%s)", ns, pid, cmdline(pid))
            _terminate(pid)
    res = run(["ip", "netns", "del", ns], check=False, what=f"delete namespace {ns}")
    if res.returncode != 0 and ns in list_ns():
        raise LabError(f"cannot delete namespace {ns}: {res.stderr.strip()}")


def _terminate(pid: int, timeout: float = 3.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not cmdline(pid):
                return
            time.sleep(0.05)


def ifname(prefix: str, key: str) -> str:
    """A stable interface name (<= 15 chars) for key."""
    return prefix + hashlib.blake2b(key.encode(), digest_size=5).hexdigest()[: 14 - len(prefix)]


_NS_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def sanitize(name: str, limit: int = 64) -> str:
    """A namespace-safe form of name; a hash suffix keeps distinct names distinct."""
    clean = _NS_SAFE.sub("-", name).strip(".-") or "x"
    if clean != name or len(clean) > limit:
        clean = f"{clean[: limit - 9]}-{hashlib.blake2b(name.encode(), digest_size=4).hexdigest()}"
    return clean


def veth(ns_a: str, name_a: str, ns_b: str, name_b: str, *, mtu: int | None = None,
         address_b: str | None = None, what: str = "") -> None:
    """A veth pair with one end in each namespace, both up, tx offload off on both ends."""
    cmd = ["ip", "link", "add", "name", name_a, "netns", ns_a, "type", "veth",
           "peer", "name", name_b, "netns", ns_b]
    if address_b:
        cmd[-2:-2] = ["address", address_b]
    run(cmd, what=what or f"veth {ns_a}/{name_a}")
    for ns, name in ((ns_a, name_a), (ns_b, name_b)):
        if mtu:
            run(["ip", "-n", ns, "link", "set", name, "mtu", str(mtu)], what=what)
        tx_off(ns, name, what=what)
        run(["ip", "-n", ns, "link", "set", name, "up"], what=what)


def tx_off(ns: str, name: str, *, what: str = "") -> None:
    """The userspace datapath drops packets whose checksum the kernel left to the NIC."""
    run(["ethtool", "-K", name, "tx", "off"], ns=ns, what=what or f"{ns}: ethtool {name}")


def bridge(ns: str, name: str, *, address: str | None = None) -> None:
    """A Linux bridge in ns (optionally with an address), up."""
    run(["ip", "-n", ns, "link", "add", name, "type", "bridge"], what=f"{ns}: bridge {name}")
    if address:
        run(["ip", "-n", ns, "addr", "add", address, "dev", name], what=f"{ns}: address {name}")
    run(["ip", "-n", ns, "link", "set", name, "up"], what=f"{ns}: bridge {name} up")


def enslave(ns: str, name: str, bridge_name: str) -> None:
    run(["ip", "-n", ns, "link", "set", name, "master", bridge_name],
        what=f"{ns}: {name} into {bridge_name}")


def drop_link(ns: str, name: str) -> None:
    """Delete link `name` in ns if it is there. Deleting one end of a veth deletes its pair at
    once, whereas `ip netns del` leaves the pair to the kernel's deferred namespace cleanup
    (seconds, or as long as anything still references the namespace)."""
    if link_exists(ns, name):
        run(["ip", "-n", ns, "link", "del", name], check=False, what=f"delete {ns}/{name}")


def link_exists(ns: str, name: str) -> bool:
    return run(["ip", "-n", ns, "link", "show", name], check=False, timeout=10).returncode == 0


def wait_link(ns: str, name: str, timeout: float = 10.0, *, what: str = "",
              logfile: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not link_exists(ns, name):
        if time.monotonic() > deadline:
            see = f"; see {logfile}" if logfile else ""
            raise LabError(f"{what or ns}: interface {name} did not appear in {ns}{see}")
        time.sleep(0.05)


def ip_family(address: str) -> str:
    return "-6" if ":" in address else "-4"


def add_address(ns: str, dev: str, address: str, *, what: str = "") -> None:
    """Add ip/prefix to dev (IPv6 without duplicate address detection); idempotent."""
    cmd = ["ip", "-n", ns, ip_family(address), "addr", "replace", address, "dev", dev]
    if ":" in address:
        cmd.append("nodad")
    run(cmd, what=what or f"{ns}: address {address} on {dev}")


def route(ns: str, prefix: str, via: str, dev: str | None = None, *, what: str = "") -> None:
    cmd = ["ip", "-n", ns, ip_family(via), "route", "replace", prefix, "via", via]
    if dev:
        cmd += ["dev", dev]
    run(cmd, what=what or f"{ns}: route {prefix} via {via}")
