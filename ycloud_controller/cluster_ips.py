"""Manifests mode only: ClusterIPs, as the API server hands them out and keeps them unique.

A Service that names its ClusterIP(s) holds them unless another Service holds one already;
the Service reconciler then refuses it (AddressInUse), as the API server refuses a
duplicate. A Service without one is given the first free address of the service CIDR that
no Service asks for. Holders are decided by state that lasts (ycloud_controller.precedence):
a restart restores each Service's VIPs from its Load_Balancer rows in NB before anything
is allocated (ycloud_controller.restore), and keys are reconciled in precedence order.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any

from ycloud_controller.ipam import IpamError


def spec_cluster_ips(spec: dict[str, Any]) -> list[str]:
    """The ClusterIPs a Service spec names. clusterIPs[0] is clusterIP, as the API server
    validates; where a file's change of clusterIP left an older clusterIPs behind (a merge
    patch of the file's difference), clusterIP wins."""
    first = spec.get("clusterIP")
    listed = spec.get("clusterIPs")
    if not listed or listed == [first]:  # the common case: one family, as the API server wrote
        return [str(first)] if first and first != "None" else []
    ips = [str(ip) for ip in listed if ip]
    if first and (not ips or ips[0] != first):
        ips = [str(first)]
    return [ip for ip in ips if ip != "None"]


def consistent(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The spec fields to patch so that clusterIPs agrees with clusterIP (None: it does)."""
    first = spec.get("clusterIP")
    if not first or first == "None" or (spec.get("clusterIPs") or [first])[0] == first:
        return None
    return {"clusterIPs": spec_cluster_ips(spec)}


INDEX = "clusterIP"  # Service store index: the ClusterIPs each spec names


def index(obj: dict[str, Any]) -> list[str]:
    return spec_cluster_ips(obj.get("spec") or {})


def requested_elsewhere(ctx: Any, key: str) -> Callable[[str], bool]:
    """Whether the spec of another Service names a ClusterIP."""
    services = ctx.store("Service")
    return lambda ip: any(k != key for k in services.index_keys(INDEX, ip))


class ClusterIps:
    """Not thread-safe: used by the controller's single worker."""

    def __init__(self, cidrs: str):
        self.nets = [ipaddress.ip_network(c.strip()) for c in cidrs.split(",")]
        self._ranges = [(socket.AF_INET6 if n.version == 6 else socket.AF_INET,
                         int(n.network_address), int(n.broadcast_address)) for n in self.nets]
        self.used: dict[str, str] = {}  # address -> Service key
        self._held: dict[str, set[str]] = {}  # Service key -> its addresses (`used` inverted)
        self._floor = [0] * len(self.nets)  # per net: every host below this index is used
        self.releases = 0  # bumped when an address is given back (sync.batch.Waiters)

    def contains(self, ip: str) -> bool:
        """Whether `ip` is in a service CIDR (parsed by the socket module: a restart asks
        this of every Service's VIPs, and ipaddress parses an address in Python)."""
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        try:
            value = int.from_bytes(socket.inet_pton(family, ip), "big")
        except (OSError, ValueError):
            return False
        return any(f == family and lo <= value <= hi for f, lo, hi in self._ranges)

    def holder(self, ip: str) -> str | None:
        return self.used.get(ip)

    def restore(self, key: str, ip: str) -> bool:
        """What NB records for a Service (its LB VIPs in the service CIDR): held first."""
        holder = self.used.get(ip)
        if holder == key:
            return True  # restored already (every full sync restores)
        if holder is not None or not self.contains(ip):
            return False
        self._take(ip, key)
        return True

    def _take(self, ip: str, key: str) -> None:
        self.used[ip] = key
        self._held.setdefault(key, set()).add(ip)

    def claim(self, key: str, ips: Iterable[str]) -> None:
        """The Service asks for `ips`: it holds them, and no others, unless one is held by
        another Service (IpamError AddressInUse; nothing changes then)."""
        ips = list(ips)
        held = self._held.get(key)
        if held is not None and len(held) == len(ips) and held.issuperset(ips):
            return  # as held already (every reconcile of the Service claims)
        for ip in ips:
            other = self.used.get(ip)
            if other is not None and other != key:
                raise IpamError("AddressInUse", f"ClusterIP {ip} is already used by Service "
                                                f"{other}")
        self._drop(key, keep=set(ips))
        for ip in ips:
            self._take(ip, key)

    def allocate(self, key: str, avoid: Callable[[str], bool] = lambda ip: False,
                 family: int | None = None) -> str:
        """The key's address of `family` (default: the first service CIDR's), held or the
        first free one."""
        i = 0 if family is None else \
            next(i for i, n in enumerate(self.nets) if n.version == family)
        net = self.nets[i]
        held = next((ip for ip in sorted(self._held.get(key, ()))
                     if ipaddress.ip_address(ip).version == net.version), None)
        if held:
            return held
        # hosts from index 1 (index 0 is network + 1, never given); below the floor all are used
        first, size = net.network_address, net.num_addresses
        floor = max(self._floor[i], 2)
        for offset in range(floor, size - (1 if net.version == 4 else 0)):
            ip = str(first + offset)
            if ip in self.used:
                if offset == floor:
                    floor += 1
                continue
            if not avoid(ip):
                self._floor[i] = floor
                self._take(ip, key)
                return ip
        raise RuntimeError(f"service CIDR {net} is full")

    def families(self, spec: dict[str, Any]) -> list[int]:
        """The address families the API server gives a Service of this spec ClusterIPs in:
        its ipFamilies (else the cluster's first), one for SingleStack, every one of the
        cluster's for PreferDualStack and RequireDualStack (a family the service CIDRs lack
        is left out: this cluster cannot give it)."""
        have = [n.version for n in self.nets]
        asked = [6 if str(f) == "IPv6" else 4 for f in spec.get("ipFamilies") or []]
        order = [f for f in asked if f in have] + [f for f in have if f not in asked]
        if spec.get("ipFamilyPolicy") in ("PreferDualStack", "RequireDualStack"):
            return list(dict.fromkeys(order))
        return order[:1]

    def allocate_spec(self, key: str, spec: dict[str, Any],
                      avoid: Callable[[str], bool] = lambda ip: False) -> list[str]:
        """ClusterIPs for a Service spec that names none: one per family it asks for."""
        return [self.allocate(key, avoid, family) for family in self.families(spec)]

    def release(self, key: str) -> None:
        self._drop(key, keep=set())

    def _drop(self, key: str, keep: set[str]) -> None:
        held = self._held.get(key)
        gone = [ip for ip in held if ip not in keep] if held else []
        for ip in gone:
            del self.used[ip]
            held.discard(ip)
            addr = ipaddress.ip_address(ip)
            for i, net in enumerate(self.nets):
                if addr.version == net.version and addr in net:
                    self._floor[i] = min(self._floor[i], int(addr) - int(net.network_address))
        if held is not None and not held:
            del self._held[key]
        if gone:
            self.releases += 1
