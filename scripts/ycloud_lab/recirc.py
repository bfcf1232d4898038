"""Recirculations per path: how deep a real packet nests in each chassis' datapath.

    count = measure(lab, "nginx-1.default", "tcp", "172.18.0.60", 80)
    count.worst              # deepest nesting on any chassis (tunnel pops and recirculations)
    count.dropped            # packets ovs-vswitchd dropped at the limit during the request
    print(count.describe())  # per chassis: each step of the request's deepest chain

The userspace datapath (lib/dpif-netdev.c, OVS 3.1) executes a `recirc` action, and the
`tnl_pop` of a Geneve packet, only while the packet's nesting depth is below
MAX_RECIRC_DEPTH (6); deeper, it drops the packet and logs "Max recirculation depth
exceeded" (coverage counter datapath_drop_recirc_error). Each conntrack action of an OVN
pipeline that continues in a later table (ct_next, ct_dnat, ct_lb_mark, ct_snat, ...) is one
`ct(...),recirc(...)`; a load balancer's select group adds `hash(l4(0)),recirc(...)`.

`ofproto/trace` cannot follow a select group's dp_hash recirculation (its recirculation
context is gone when the trace resumes), so this measures the datapath itself: it empties
every chassis' datapath flow table, sends one request with real packets, dumps the datapath
flows it installed (`dpctl/dump-flows`) and follows their `recirc(id)` -> `recirc_id(id)`
chains from the request's first flow. A chain that reaches the limit ends where the
datapath dropped the packet (no flow for its next recirculation id). Each step is named by
the conntrack zone it uses (`ovn-appctl -t ovn-controller ct-zone-list`: a router's
`<datapath>_dnat`/`_snat` zone, or a switch port's zone).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ycloud_lab.ovsdb import rows

if TYPE_CHECKING:
    from ycloud_lab.lab import Lab

MAX_RECIRC_DEPTH = 6  # lib/dpif-netdev.c (OVS 3.1): recirc and tnl_pop run while depth < 6
DROP_COUNTER = "datapath_drop_recirc_error"

_RECIRC_ID = re.compile(r"(?:^|[,(])recirc_id\((0x[0-9a-f]+|\d+)\)")
_RECIRC = re.compile(r"(?:^|[,:])recirc\((0x[0-9a-f]+|\d+)\)")
_IPV4 = re.compile(r"ipv4\(([^)]*)\)")
_ZONE = re.compile(r"zone=(\d+)")


def split_top(text: str) -> list[str]:
    """'a(b,c),d' -> ['a(b,c)', 'd']: split at commas outside parentheses."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return [t for t in out if t]


@dataclass(frozen=True)
class DpFlow:
    """One datapath flow of `ovs-appctl dpctl/dump-flows`."""

    match: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, line: str) -> DpFlow | None:
        if ", actions:" not in line:
            return None
        match, _, actions = line.strip().partition(", actions:")
        return cls(match, tuple(split_top(actions)))

    @property
    def recirc_id(self) -> int:
        found = _RECIRC_ID.search(self.match)
        return int(found.group(1), 0) if found else 0

    @property
    def tunneled(self) -> bool:
        """Matched after a tnl_pop (one level deeper than the packet's arrival)."""
        return self.match.startswith("tunnel(")

    @property
    def next_ids(self) -> list[int]:
        return [int(m.group(1), 0) for a in self.actions if (m := _RECIRC.match(a))]

    @property
    def pops(self) -> bool:
        return any(a.startswith("tnl_pop(") for a in self.actions)

    def matches(self, src: str, dst: str) -> bool:
        """Could the packet src -> dst hit this flow (its ipv4 src/dst, masked)?"""
        found = _IPV4.search(self.match)
        if not found:
            return False
        fields = dict(f.split("=", 1) for f in found.group(1).split(",") if "=" in f)
        for name, ip in (("src", src), ("dst", dst)):
            if name in fields:
                addr, _, mask = fields[name].partition("/")
                net = ipaddress.ip_network(f"{addr}/{mask or '255.255.255.255'}", strict=False)
                if ipaddress.ip_address(ip) not in net:
                    return False
        return True

    def steps(self) -> list[str]:
        """What this flow does before it recirculates: its ct and hash actions."""
        return [a for a in self.actions if a.startswith(("ct(", "hash("))]


@dataclass
class Step:
    depth: int  # nesting depth at which the flow ran
    actions: list[str]  # its ct/hash actions, zones named
    recirculates: bool


@dataclass
class ChassisCount:
    chassis: str
    depth: int  # deepest nesting the request reached (tnl_pop and recirc both count)
    steps: list[Step] = field(default_factory=list)
    dropped: int = 0  # packets dropped at the limit while the request ran
    any_depth: int = 0  # deepest nesting of any packet of the exchange (replies too)


@dataclass
class PathCount:
    client: str
    target: str
    answered: bool
    chassis: list[ChassisCount]
    server: str = ""  # the server that answered

    @property
    def worst(self) -> int:
        """The deepest nesting of the request, or of any packet of the exchange (replies)."""
        return max((max(c.depth, c.any_depth) for c in self.chassis), default=0)

    @property
    def request_depth(self) -> int:
        return max((c.depth for c in self.chassis), default=0)

    @property
    def dropped(self) -> int:
        return sum(c.dropped for c in self.chassis)

    @property
    def within_budget(self) -> bool:
        return self.worst <= MAX_RECIRC_DEPTH and not self.dropped

    def describe(self) -> str:
        answer = f"answered by {self.server}" if self.answered else "NOT answered"
        head = (f"{self.client} -> {self.target}: {answer}"
                f", request {self.request_depth}, any packet {self.worst} of {MAX_RECIRC_DEPTH}"
                f"{f', {self.dropped} dropped at the limit' if self.dropped else ''}")
        lines = [head]
        for c in self.chassis:
            if not c.steps:
                continue
            lines.append(f"  {c.chassis}: request depth {c.depth} (any packet {c.any_depth})"
                         f"{f' ({c.dropped} dropped)' if c.dropped else ''}")
            for s in c.steps:
                lines.append(f"    {s.depth}: {' '.join(s.actions) or '-'}"
                             f"{' -> recirc' if s.recirculates else ''}")
        return "\n".join(lines)


def _zone_names(lab: Lab, chassis: str, datapaths: dict[str, str]) -> dict[str, str]:
    out = lab.exec(chassis, "ovn-appctl", "-t", "ovn-controller", "ct-zone-list").stdout
    names = {}
    for line in out.splitlines():
        name, _, zone = line.rpartition(" ")
        uuid, _, kind = name.partition("_")
        names[zone] = f"{datapaths[uuid]} {kind}" if uuid in datapaths else name
    return names


def _name_zones(action: str, zones: dict[str, str]) -> str:
    return _ZONE.sub(lambda m: f"zone={m.group(1)}[{zones.get(m.group(1), '?')}]", action)


def _drops(lab: Lab, chassis: str) -> int:
    out = lab.exec(chassis, "ovs-appctl", "coverage/read-counter", DROP_COUNTER).stdout
    return int(out.strip() or 0)


def _chain(flows: list[DpFlow], start: DpFlow) -> tuple[int, list[DpFlow]]:
    """The deepest chain of recirculations from `start`: (depth reached, its flows)."""
    by_id: dict[int, list[DpFlow]] = {}
    for f in flows:
        by_id.setdefault(f.recirc_id, []).append(f)

    def walk(flow: DpFlow, depth: int, seen: frozenset[int]) -> tuple[int, list[DpFlow]]:
        best = (depth + (1 if flow.next_ids else 0), [flow])
        for nid in flow.next_ids:
            if nid in seen:
                continue
            for nxt in by_id.get(nid, []):
                d, path = walk(nxt, depth + 1, seen | {nid})
                if d > best[0]:
                    best = (d, [flow, *path])
        return best

    return walk(start, 1 if start.tunneled else 0, frozenset())


def measure(lab: Lab, client: str, proto: str, ip: str, port: int, *,
            client_ip: str | None = None, timeout: float = 2.0) -> PathCount:
    """Send one request client -> ip:port with real packets and count, on every running
    chassis, how deep the request nests in the datapath (see the module docstring)."""
    from ycloud_lab.checkrun import Resolver

    st = lab.store.load()
    chassis = [n for n, c in st.chassis.items() if not c.stopped]
    src = client_ip or Resolver(lab).client_ip(client)
    before = {c: _drops(lab, c) for c in chassis}
    for c in chassis:
        lab.exec(c, "ovs-appctl", "dpctl/del-flows", check=True)
    reply = lab.request(client, proto, ip, port, timeout=timeout)
    datapaths = {r["_uuid"]: r["external_ids"].get("name", r["_uuid"]) for r in rows(
        "ovn-sbctl", lab.sb_remote, "--columns=_uuid,external_ids", "list",
        "Datapath_Binding", what="read SB datapaths")}
    counts = []
    for c in chassis:
        dump = lab.exec(c, "ovs-appctl", "dpctl/dump-flows", check=True).stdout
        flows = [f for f in map(DpFlow.parse, dump.splitlines()) if f is not None]
        starts = [f for f in flows if f.recirc_id == 0 and not f.pops]
        best: tuple[int, list[DpFlow]] = (0, [])
        any_depth = 0
        for start in starts:
            found = _chain(flows, start)
            any_depth = max(any_depth, found[0])
            if found[0] > best[0] and start.matches(src, ip):
                best = found
        zones = _zone_names(lab, c, datapaths) if best[1] else {}
        base = 1 if best[1] and best[1][0].tunneled else 0
        steps = [Step(base + i, [_name_zones(a, zones) for a in f.steps()], bool(f.next_ids))
                 for i, f in enumerate(best[1])]
        counts.append(ChassisCount(c, best[0], steps, _drops(lab, c) - before[c], any_depth))
    return PathCount(client, f"{ip}:{port}/{proto}", reply.ok, counts, reply.server or "")
