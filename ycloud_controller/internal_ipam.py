"""Transit and link addresses from the configured internal range (internalCidr).

The first half of the range is cut into /24 transit blocks, one per EIP pool: .1 is the EIP
gateway, .2 the service gateway, VPC routers get the next free addresses. The second half is
cut into /30 links between a pool's service gateway and a VPC router. Allocations are stable:
after a restart they are restored from the router ports the controller owns in NB before
anything new is handed out.
"""

from __future__ import annotations

import ipaddress
import threading

IPv4Network = ipaddress.IPv4Network

RESERVED_HOSTS = 2  # .1 eipgw, .2 svcgw


class InternalIpamError(RuntimeError):
    pass


class InternalIpam:
    def __init__(self, cidr: str):
        net = ipaddress.ip_network(cidr)
        if net.version != 4 or net.prefixlen > 22:
            raise InternalIpamError(f"internalCidr {cidr} must be an IPv4 /22 or larger")
        self._transit_area, self._link_area = net.subnets(prefixlen_diff=1)
        self._lock = threading.Lock()
        self.blocks: dict[str, IPv4Network] = {}
        self.transit: dict[tuple[str, str], str] = {}
        self.links: dict[tuple[str, str], IPv4Network] = {}

    # -- pool blocks --------------------------------------------------------------------------
    def block(self, pool: str) -> IPv4Network:
        with self._lock:
            if pool not in self.blocks:
                used = set(self.blocks.values())
                free = next((b for b in self._transit_area.subnets(new_prefix=24)
                             if b not in used), None)
                if free is None:
                    raise InternalIpamError("no transit block left in internalCidr")
                self.blocks[pool] = free
            return self.blocks[pool]

    def transit_ip(self, pool: str, owner: str) -> str:
        block = self.block(pool)
        with self._lock:
            key = (pool, owner)
            if key not in self.transit:
                used = {ip for (p, _), ip in self.transit.items() if p == pool}
                hosts = list(block.hosts())[RESERVED_HOSTS:]
                free = next((str(h) for h in hosts if str(h) not in used), None)
                if free is None:
                    raise InternalIpamError(f"transit block {block} of pool {pool} is full")
                self.transit[key] = free
            return self.transit[key]

    def link(self, pool: str, vpc: str) -> IPv4Network:
        with self._lock:
            key = (pool, vpc)
            if key not in self.links:
                used = set(self.links.values())
                free = next((n for n in self._link_area.subnets(new_prefix=30)
                             if n not in used), None)
                if free is None:
                    raise InternalIpamError("no link network left in internalCidr")
                self.links[key] = free
            return self.links[key]

    # -- release ------------------------------------------------------------------------------
    def release_pool(self, pool: str) -> None:
        with self._lock:
            self.blocks.pop(pool, None)
            for key in [k for k in self.transit if k[0] == pool]:
                del self.transit[key]
            for key in [k for k in self.links if k[0] == pool]:
                del self.links[key]

    def release_owner(self, owner: str) -> None:
        with self._lock:
            for key in [k for k in self.transit if k[1] == owner]:
                del self.transit[key]

    def release_link(self, pool: str, vpc: str) -> None:
        with self._lock:
            self.links.pop((pool, vpc), None)

    # -- restore ------------------------------------------------------------------------------
    def restore_block(self, pool: str, network: str) -> bool:
        net = ipaddress.ip_network(network, strict=False)
        with self._lock:
            if pool in self.blocks or net in self.blocks.values() or \
                    not net.subnet_of(self._transit_area):
                return self.blocks.get(pool) == net
            self.blocks[pool] = net
            return True

    def restore_transit(self, pool: str, owner: str, ip: str) -> bool:
        with self._lock:
            block = self.blocks.get(pool)
            taken = {v for (p, _), v in self.transit.items() if p == pool}
            if block is None or ipaddress.ip_address(ip) not in block or ip in taken:
                return self.transit.get((pool, owner)) == ip
            self.transit[(pool, owner)] = ip
            return True

    def restore_link(self, pool: str, vpc: str, network: str) -> bool:
        net = ipaddress.ip_network(network, strict=False)
        with self._lock:
            if (pool, vpc) in self.links or net in self.links.values() or \
                    not net.subnet_of(self._link_area):
                return self.links.get((pool, vpc)) == net
            self.links[(pool, vpc)] = net
            return True
