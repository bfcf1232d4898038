"""Running the example scenarios' checks against the lab: `Resolver` finds the addresses a
check needs (lab state and NB), `run_check` sends real requests until every expected backend
answered and checks the source address each backend saw, `format_table` prints the rows
(scripts/demo's table). The checks themselves are data in ycloud_lab.scenarios."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from topology import naming
from ycloud_lab.ovsdb import as_list, rows
from ycloud_lab.proc import LabError
from ycloud_lab.scenarios import CHECKS, POOL, Check, Target, server_target
from ycloud_lab.workload import Reply

if TYPE_CHECKING:
    from ycloud_lab.lab import Lab


# -- resolving names to addresses ---------------------------------------------------------------
def _ip(cidr_or_ip: str) -> str:
    return cidr_or_ip.split("/", 1)[0]


class Resolver:
    """Addresses the checks need, read from the lab state and NB (cached; `refresh()` after
    the topology changed)."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self._lsp: dict[str, dict[str, Any]] | None = None
        self._lrp: dict[str, dict[str, Any]] | None = None

    def refresh(self) -> None:
        self._lsp = self._lrp = None

    def _ports(self) -> dict[str, dict[str, Any]]:
        if self._lsp is None:
            self._lsp = {r["name"]: r for r in rows(
                "ovn-nbctl", self.lab.nb_remote, "--columns=name,addresses,external_ids",
                "list", "Logical_Switch_Port", what="read NB ports")}
        return self._lsp

    def _router_ports(self) -> dict[str, dict[str, Any]]:
        if self._lrp is None:
            self._lrp = {r["name"]: r for r in rows(
                "ovn-nbctl", self.lab.nb_remote, "--columns=name,networks", "list",
                "Logical_Router_Port", what="read NB router ports")}
        return self._lrp

    def port_ips(self, port: str) -> list[str]:
        row = self._ports().get(port)
        if row is None:
            raise LabError(f"no NB port {port!r}")
        for entry in as_list(row["addresses"]):
            parts = entry.split()
            if len(parts) > 1:
                return parts[1:]
        raise LabError(f"NB port {port!r} has no address")

    def port_vpc(self, port: str) -> str:
        row = self._ports().get(port)
        vpc = (row or {}).get("external_ids", {}).get(naming.VPC)
        if not vpc:
            raise LabError(f"NB port {port!r} has no {naming.VPC}")
        return vpc

    def router_port_ip(self, name: str) -> str:
        row = self._router_ports().get(name)
        if row is None:
            raise LabError(f"no NB router port {name!r}")
        return _ip(as_list(row["networks"])[0])

    def client_ip(self, client: str) -> str:
        for host in self.lab.external_hosts:
            if host.name == client:
                return host.ip
        if any(c.name == client for c in self.lab.shape.chassis):
            return self.port_ips(naming.node_port(client))[0]
        return self.port_ips(client)[0]

    def target_ip(self, target: Target, port: int) -> str:
        if target.ip:
            return target.ip
        if target.port_of:
            return self.port_ips(target.port_of)[0]
        assert target.lb is not None
        found = rows("ovn-nbctl", self.lab.nb_remote, "--columns=vips", "find",
                     "Load_Balancer", f"name={target.lb}", what=f"read LB {target.lb}")
        for row in found:
            for vip in row["vips"]:
                host, _, vport = vip.rpartition(":")
                if vport == str(port):
                    return host.strip("[]")
        raise LabError(f"no Load_Balancer {target.lb!r} with a VIP on port {port}")

    def expected_source(self, check: Check, server: str) -> str:
        src = check.source
        if src.kind == "client":
            return self.client_ip(check.client)
        if src.kind == "ip":
            return src.value
        if src.kind == "transit":
            return self.router_port_ip(naming.vpc_transit_port(src.value, POOL))
        vpc = self.port_vpc(server_target(server))
        return self.router_port_ip(naming.svcgw_link_port(POOL, vpc))


# -- running a check ----------------------------------------------------------------------------
@dataclass
class Row:
    check: Check
    target: str  # "ip:port/proto"
    answered: Counter[str] = field(default_factory=Counter)  # server -> replies
    sources: dict[str, set[str]] = field(default_factory=dict)  # server -> sources seen
    ok: bool = False
    detail: str = ""
    requests: int = 0
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        if self.check.limit:
            return "LIMIT" if not self.ok else "PASS (limit)"
        return "PASS" if self.ok else "FAIL"

    @property
    def counted_failure(self) -> bool:
        return not self.ok and not self.check.limit

    def cells(self) -> list[str]:
        c = self.check
        if c.blocked:
            backends = "(none)" if not self.answered else ",".join(sorted(self.answered))
            seen = "-"
        else:
            backends = ", ".join(f"{n} x{k}" for n, k in sorted(self.answered.items())) or "-"
            seen = ", ".join(sorted({s for v in self.sources.values() for s in v})) or "-"
        return [c.scenario, c.client, self.target, backends, seen, self.verdict]

    def __str__(self) -> str:
        return f"[{self.check.id}] {' | '.join(self.cells())}: {self.detail}"


def run_check(lab: Lab, check: Check, resolver: Resolver | None = None, *, batch: int = 10,
              most: int = 60, timeout: float = 2.0, blocked_timeout: float = 1.5) -> Row:
    """Send requests on new connections until every expected backend answered (batches of
    `batch`, at most `most` requests), checking every reply's server and source. A blocked
    check sends one request and passes when it is not answered; a check of a known limit
    first sends one request and stops there when it fails."""
    resolver = resolver or Resolver(lab)
    started = time.monotonic()
    try:
        ip = resolver.target_ip(check.target, check.port)
    except LabError as exc:
        return Row(check, f"{check.target.describe()}:{check.port}/{check.proto}",
                   detail=f"target not resolved: {exc}")
    row = Row(check, f"{ip}:{check.port}/{check.proto}")
    try:
        if check.blocked:
            replies = lab.requests(check.client, check.proto, ip, check.port, count=1,
                                   timeout=blocked_timeout)
            _tally(row, replies)
            errors = sorted({r.error or "" for r in replies if not r.ok})
            row.ok = not row.answered
            row.detail = (f"blocked ({', '.join(errors)})" if row.ok else
                          f"answered by {', '.join(sorted(row.answered))}: must not be")
        elif check.limit and not _first_answer(lab, check, ip, row, blocked_timeout):
            pass  # a known limit that still holds: one quick try is enough
        else:
            _run_answered(lab, check, ip, row, resolver, batch, most, timeout)
    except LabError as exc:
        row.ok, row.detail = False, f"lab error: {exc}"
    row.seconds = round(time.monotonic() - started, 2)
    return row


def _first_answer(lab: Lab, check: Check, ip: str, row: Row, timeout: float) -> bool:
    reply = lab.request(check.client, check.proto, ip, check.port, timeout=timeout)
    if reply.ok:
        return True
    row.requests += 1
    row.detail = f"{reply.error}: {reply.detail}"
    return False


def _tally(row: Row, replies: Sequence[Reply]) -> None:
    row.requests += len(replies)
    for r in replies:
        if r.ok and r.server:
            row.answered[r.server] += 1
            row.sources.setdefault(r.server, set()).add(r.source_ip or "")


def _run_answered(lab: Lab, check: Check, ip: str, row: Row, resolver: Resolver, batch: int,
                  most: int, timeout: float) -> None:
    expected = set(check.backends)
    while True:
        replies = lab.requests(check.client, check.proto, ip, check.port, count=batch,
                               timeout=timeout)
        _tally(row, replies)
        failed = [r for r in replies if not r.ok]
        if failed:
            kinds = Counter(r.error for r in failed)
            row.detail = (f"{len(failed)}/{len(replies)} requests failed "
                          f"({', '.join(f'{k} x{n}' for k, n in kinds.items())}): "
                          f"{failed[0].detail}")
            return
        unexpected = set(row.answered) - expected
        if unexpected:
            row.detail = f"answered by unexpected {', '.join(sorted(unexpected))}"
            return
        if expected <= set(row.answered) or row.requests >= most:
            break
    missing = expected - set(row.answered)
    if missing:
        row.detail = f"{', '.join(sorted(missing))} never answered in {row.requests} requests"
        return
    wrong = []
    for server, seen in sorted(row.sources.items()):
        want = resolver.expected_source(check, server)
        if seen != {want}:
            wrong.append(f"{server} saw {', '.join(sorted(seen))}, expected {want} "
                         f"({check.source.describe()})")
    if wrong:
        row.detail = "; ".join(wrong)
        return
    row.ok = True
    row.detail = f"{row.requests} requests, all answered"


def run_checks(lab: Lab, checks: Iterable[Check] = CHECKS) -> list[Row]:
    resolver = Resolver(lab)
    return [run_check(lab, c, resolver) for c in checks]


def wait_check(lab: Lab, check: Check, within: float, *, interval: float = 0.2,
               resolver: Resolver | None = None, **kwargs: Any) -> Row:
    """Re-run `check` until it passes or `within` seconds passed; returns the last row."""
    deadline = time.monotonic() + within
    while True:
        row = run_check(lab, check, resolver, **kwargs)
        if row.ok or time.monotonic() >= deadline:
            return row
        time.sleep(interval)


def format_table(rows_: Sequence[Row]) -> str:
    head = ["scenario", "client", "target", "backend(s) that answered", "source seen",
            "result"]
    table = [head, *(r.cells() for r in rows_)]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]

    def fmt(line: list[str]) -> str:
        return " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()

    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([fmt(head), sep, *(fmt(line) for line in table[1:])])
