"""IP and MAC allocation per subnet, for pods, Vnics and node ports.

Allocations are keyed by owner (e.g. "Pod/ns/name"); an owner holds addresses in exactly one
subnet. Nothing is persisted here: after a restart the controller restores allocations from
pod annotations and from the addresses of the ports it owns in NB before it allocates
anything new, so an address is never handed out twice. Reserved and never allocated: network
and broadcast addresses, the gateway, excludeIps and the subnet's health-check source.
"""

from __future__ import annotations

import ipaddress
import random
import threading
from dataclasses import dataclass

from ycloud_controller.api.common import IPAddress, IPNetwork
from ycloud_controller.api.subnet import SubnetView


class IpamError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Allocation:
    subnet: str
    ips: tuple[IPAddress, ...]  # primary address per family first, then extra addresses
    mac: str


class _Range:
    """Free-address bookkeeping for one CIDR, with a moving cursor for O(1) typical allocs."""

    def __init__(self, net: IPNetwork, reserved: set[int], excluded: list[tuple[int, int]]):
        self.net = net
        self.excluded = excluded
        self.first = int(net.network_address) + (1 if net.version == 4 else 1)
        self.last = int(net.broadcast_address) - (1 if net.version == 4 else 0)
        self.reserved = reserved
        self.used: dict[int, str] = {}
        self.cursor = self.first

    def size(self) -> int:
        spans = sorted((max(a, self.first), min(b, self.last)) for a, b in self.excluded
                       if b >= self.first and a <= self.last)
        spans += [(r, r) for r in self.reserved if self.first <= r <= self.last]
        blocked, end = 0, self.first - 1
        for a, b in sorted(spans):  # merge overlapping spans so nothing counts twice
            a = max(a, end + 1)
            if b >= a:
                blocked += b - a + 1
                end = b
        return max(0, self.last - self.first + 1 - blocked)

    def blocked(self, value: int) -> bool:
        return value in self.reserved or any(a <= value <= b for a, b in self.excluded)

    def take(self, owner: str, ip: IPAddress | None = None) -> IPAddress:
        if ip is not None:
            value = int(ip)
            if ip not in self.net or not self.first <= value <= self.last:
                raise IpamError("AddressOutsideSubnet", f"{ip} is not usable in {self.net}")
            if self.blocked(value):
                raise IpamError("AddressReserved", f"{ip} is reserved in {self.net}")
            holder = self.used.get(value)
            if holder is not None and holder != owner:
                raise IpamError("AddressInUse", f"{ip} is already used by {holder}")
            self.used[value] = owner
            return ip
        span = self.last - self.first + 1
        for step in range(span):
            value = self.first + (self.cursor - self.first + step) % span
            if value not in self.used and not self.blocked(value):
                self.used[value] = owner
                self.cursor = value + 1 if value < self.last else self.first
                return ipaddress.ip_address(value) if self.net.version == 4 else \
                    ipaddress.IPv6Address(value)
        raise IpamError("SubnetFull", f"no free address left in {self.net}")

    def free(self, ip: IPAddress, owner: str) -> None:
        if self.used.get(int(ip)) == owner:
            del self.used[int(ip)]


def mac_for(ip: IPAddress | None) -> str:
    """0a:58:<IPv4 bytes> like ovn-kubernetes, random locally administered otherwise."""
    if ip is not None and ip.version == 4:
        return "0a:58:" + ":".join(f"{b:02x}" for b in ip.packed)
    return "0a:" + ":".join(f"{random.randrange(256):02x}" for _ in range(5))


class Ipam:
    """Every subnet's allocator. Thread-safe; the controller calls it from one worker."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._subnets: dict[str, SubnetView] = {}
        self._ranges: dict[str, list[_Range]] = {}
        self._owners: dict[str, Allocation] = {}
        self._macs: dict[str, str] = {}  # mac -> owner
        # how many times an owner gave addresses back: objects refused an address another
        # object held are retried when this moves (see ycloud_controller.sync.batch Waiters)
        self.releases = 0
        # subnets whose usage changed since `usage` last reported it (see take_changed)
        self._changed: set[str] = set()

    # -- subnets ------------------------------------------------------------------------------
    def set_subnet(self, view: SubnetView) -> None:
        """Add or change a subnet, keeping the allocations that still fit it."""
        with self._lock:
            if self._subnets.get(view.name) == view:
                return
            reserved = {int(ip) for ip in (*view.gateways, *view.probe_sources())}
            ranges = [_Range(net, {r for r in reserved if int(net.network_address) <= r
                                   <= int(net.broadcast_address)},
                             [(int(a), int(b)) for a, b in view.excludes
                              if a.version == net.version])
                      for net in view.cidrs]
            self._subnets[view.name] = view
            self._ranges[view.name] = ranges
            for owner, alloc in list(self._owners.items()):
                if alloc.subnet != view.name:
                    continue
                try:
                    for ip in alloc.ips:
                        self._range_for(view.name, ip).take(owner, ip)
                except IpamError:
                    self._forget(owner)

    def remove_subnet(self, name: str) -> None:
        with self._lock:
            self._subnets.pop(name, None)
            self._ranges.pop(name, None)
            for owner in [o for o, a in self._owners.items() if a.subnet == name]:
                self._forget(owner)
            self._changed.discard(name)

    def subnet(self, name: str) -> SubnetView | None:
        return self._subnets.get(name)

    def usage(self, name: str) -> dict[int, tuple[int, int]]:
        """family -> (used, available), as the subnet's (or pool's) status reports it: the
        subnet is no longer among those `take_changed` returns."""
        with self._lock:
            self._changed.discard(name)
            out = {}
            for r in self._ranges.get(name, []):
                out[r.net.version] = (len(r.used), r.size() - len(r.used))
            return out

    def _range_for(self, subnet: str, ip: IPAddress) -> _Range:
        for r in self._ranges.get(subnet, []):
            if r.net.version == ip.version:
                return r
        raise IpamError("AddressOutsideSubnet", f"{ip} does not fit subnet {subnet}")

    def take_changed(self) -> set[str]:
        """The subnets whose usage (or holders) changed since their status last read it,
        forgotten: the status of a subnet or pool is reconciled before the pods, Vnics and
        Services of the same batch that take or give back its addresses, so the controller
        queues these once the batch is done (a deleted Service's EIP leaves its pool's
        status, a deleted pod's address its subnet's count)."""
        with self._lock:
            changed, self._changed = self._changed, set()
            return changed

    # -- owners -------------------------------------------------------------------------------
    def get(self, owner: str) -> Allocation | None:
        return self._owners.get(owner)

    def allocate(self, owner: str, subnet: str, ips: tuple[IPAddress, ...] = (),
                 mac: str | None = None, extra: tuple[IPAddress, ...] = (),
                 extra_count: int = 0) -> Allocation:
        """Addresses for owner in subnet: requested `ips` (else one per family), `extra` and
        `extra_count` more; keeps an existing allocation that matches the request."""
        with self._lock:
            current = self._owners.get(owner)
            if current is not None and current.subnet == subnet and self._satisfies(
                    current, ips, mac, extra, extra_count):
                return current
            if subnet not in self._ranges:
                raise IpamError("SubnetNotReady", f"subnet {subnet} is unknown or not ready")
            taken: list[tuple[_Range, IPAddress]] = []
            try:
                primary: list[IPAddress] = []
                for r in self._ranges[subnet]:
                    want = next((ip for ip in ips if ip.version == r.net.version), None)
                    if want is None and current is not None and current.subnet == subnet:
                        want = next((ip for ip in current.ips if ip.version == r.net.version),
                                    None)
                    got = r.take(owner, want)
                    taken.append((r, got))
                    primary.append(got)
                stray = [ip for ip in ips if ip not in primary]
                if stray:
                    raise IpamError("AddressOutsideSubnet",
                                    f"{stray[0]} does not fit subnet {subnet}")
                extras: list[IPAddress] = []
                for ip in extra:
                    r = self._range_for(subnet, ip)
                    taken.append((r, r.take(owner, ip)))
                    extras.append(ip)
                for _ in range(extra_count):
                    r = self._ranges[subnet][0]
                    got = r.take(owner)
                    taken.append((r, got))
                    extras.append(got)
                chosen_mac = mac or (current.mac if current else None)
                if chosen_mac is None:
                    chosen_mac = mac_for(next((ip for ip in primary if ip.version == 4), None))
                    while self._macs.get(chosen_mac, owner) != owner:
                        chosen_mac = mac_for(None)  # same IP in another VPC: derived MAC taken
                holder = self._macs.get(chosen_mac)
                if holder is not None and holder != owner:
                    raise IpamError("MacInUse", f"MAC {chosen_mac} is already used by {holder}")
            except IpamError:
                for r, ip in taken:
                    if current is None or ip not in current.ips:
                        r.free(ip, owner)
                raise
            if current is not None:
                self._release_unused(owner, current, {ip for _, ip in taken})
            alloc = Allocation(subnet, tuple(primary + extras), chosen_mac)
            self._owners[owner] = alloc
            self._changed.add(subnet)
            self._macs[chosen_mac] = owner
            return alloc

    def _satisfies(self, cur: Allocation, ips: tuple[IPAddress, ...], mac: str | None,
                   extra: tuple[IPAddress, ...], extra_count: int) -> bool:
        if mac and cur.mac != mac:
            return False
        if any(ip not in cur.ips for ip in (*ips, *extra)):
            return False
        families = len(self._ranges.get(cur.subnet, []))
        return len(cur.ips) == families + len(extra) + extra_count

    def _release_unused(self, owner: str, current: Allocation, keep: set[IPAddress]) -> None:
        self.releases += 1
        self._changed.add(current.subnet)
        for ip in current.ips:
            if ip not in keep and current.subnet in self._ranges:
                self._range_for(current.subnet, ip).free(ip, owner)
        if self._macs.get(current.mac) == owner:
            del self._macs[current.mac]

    def restore(self, owner: str, subnet: str, ips: tuple[IPAddress, ...], mac: str) -> bool:
        """Re-assign a known allocation (annotations, NB). False if it conflicts."""
        with self._lock:
            if owner in self._owners:
                return self._owners[owner].subnet == subnet and set(ips) <= set(
                    self._owners[owner].ips)
            if subnet not in self._ranges:
                return False
            families = {r.net.version for r in self._ranges[subnet]}
            primary = tuple(ip for ip in ips if ip.version in families)
            try:
                self.allocate(owner, subnet, ips=tuple(_first_per_family(primary)), mac=mac,
                              extra=tuple(ip for ip in primary
                                          if ip not in _first_per_family(primary)))
            except IpamError:
                return False
            return True

    def release(self, owner: str) -> None:
        with self._lock:
            self._forget(owner)

    def _forget(self, owner: str) -> None:
        alloc = self._owners.pop(owner, None)
        if alloc is None:
            return
        self.releases += 1
        self._changed.add(alloc.subnet)
        for ip in alloc.ips:
            for r in self._ranges.get(alloc.subnet, []):
                if r.net.version == ip.version:
                    r.free(ip, owner)
        if self._macs.get(alloc.mac) == owner:
            del self._macs[alloc.mac]

    def owner_of(self, subnet: str, ip: IPAddress) -> str | None:
        for r in self._ranges.get(subnet, []):
            if r.net.version == ip.version:
                return r.used.get(int(ip))
        return None

    def owners(self) -> dict[str, Allocation]:
        return dict(self._owners)


def _first_per_family(ips: tuple[IPAddress, ...]) -> list[IPAddress]:
    seen: dict[int, IPAddress] = {}
    for ip in ips:
        seen.setdefault(ip.version, ip)
    return list(seen.values())
