"""The example scenarios as data, shared by tests/lab and scripts/demo.

    servers = example_servers()              # echo servers the examples' backends need
    start_servers(lab, servers)
    for check in CHECKS:                     # client -> target, expected backends and source
        row = run_check(lab, check)          # real requests; row.ok, row.cells() for a table

SERVERS come from manifests/examples: every containerPort of every Pod (the server answers
with the pod's name), plus EXTRA_SERVERS for what the manifests do not declare (the Vnic
vm-1 and the external host ext1, the egress target). CHECKS are the four scenarios of the
README and the paths around them (isolation, egress, pods reaching EIPs).

`InProcessController` runs the controller on a MemoryStore of the examples in a thread, for
tests that change objects (through `.backend`: create/patch/delete) and read status back.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from topology import naming
from ycloud_lab.ovsdb import as_list, rows
from ycloud_lab.proc import LabError
from ycloud_lab.workload import Reply, Server

if TYPE_CHECKING:
    from ycloud_controller.memkube.backend import MemoryBackend
    from ycloud_lab.lab import Lab

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests" / "examples"
POOL = "pool1"  # the examples' EIP pool
EXT_HOST = "ext1"
T = TypeVar("T")


# -- servers ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServerSpec:
    target: str  # lab target: an NB port name (pod / vnic) or an external host
    name: str  # what the server answers with (the pod / Vnic / host name)
    proto: str  # tcp | udp
    port: int


# Backends the manifests do not declare ports for. vm-1 is the ysvc1 Vnic (both its IPs,
# 10.1.1.6 and the extra 10.1.1.200, are backends: one server bound to 0.0.0.0 answers both);
# ext1 is the external host the egress checks reach.
EXTRA_SERVERS = (
    ServerSpec(naming.vnic_port("ns-vpc1", "vm-1"), "vm-1", "tcp", 5001),
    ServerSpec(EXT_HOST, EXT_HOST, "tcp", 9000),
)


def _docs(directory: Path) -> Iterable[dict[str, Any]]:
    for path in sorted(directory.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                yield doc


def example_servers(directory: str | Path = EXAMPLES) -> tuple[ServerSpec, ...]:
    """One server per containerPort of every Pod of the manifests, then EXTRA_SERVERS."""
    out = []
    for doc in _docs(Path(directory)):
        if doc.get("kind") != "Pod":
            continue
        md = doc["metadata"]
        port_name = naming.pod_port(md.get("namespace") or "default", md["name"])
        for container in (doc.get("spec") or {}).get("containers") or []:
            for p in container.get("ports") or []:
                out.append(ServerSpec(port_name, md["name"],
                                      str(p.get("protocol", "TCP")).lower(),
                                      int(p["containerPort"])))
    return (*out, *EXTRA_SERVERS)


SERVERS = example_servers()


def start_servers(lab: Lab, specs: Iterable[ServerSpec] = SERVERS) -> dict[ServerSpec, Server]:
    """Start every server whose target is plugged (or is a host); returns their handles."""
    return {s: lab.start_server(s.target, s.name, s.proto, s.port) for s in specs}


def server_target(name: str, specs: Iterable[ServerSpec] = SERVERS) -> str:
    """The lab target (port) serving `name`."""
    for s in specs:
        if s.name == name:
            return s.target
    raise LabError(f"no server named {name!r} in the scenario table")


# -- expectations -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """The source address a backend must see.

    client: the client's own address (a pod's IP, a node's port on the join subnet, an
    external host's address); ip: a fixed address; svcgw-link: the service gateway's link
    address toward the answering backend's VPC; transit: the transit address of VPC `value`.
    """

    kind: str
    value: str = ""

    def describe(self) -> str:
        return {"client": "client address", "ip": self.value,
                "svcgw-link": "svcgw link to the backend's VPC",
                "transit": f"transit address of {self.value}"}[self.kind]


CLIENT = Source("client")
SVCGW_LINK = Source("svcgw-link")


def fixed(ip: str) -> Source:
    return Source("ip", ip)


def transit(vpc: str) -> Source:
    return Source("transit", vpc)


@dataclass(frozen=True)
class Target:
    """A literal IP, the VIP of an NB Load_Balancer (by name, for allocated ClusterIPs), or
    the address of a plugged port (pod isolation checks)."""

    ip: str | None = None
    lb: str | None = None
    port_of: str | None = None

    def describe(self) -> str:
        return self.ip or (f"VIP of {self.lb}" if self.lb else f"IP of {self.port_of}")


@dataclass(frozen=True)
class Check:
    id: str
    scenario: str
    client: str  # lab target: a port name, a chassis (its node port) or an external host
    target: Target
    proto: str
    port: int
    backends: tuple[str, ...] = ()  # server names expected to answer; () = must not answer
    source: Source = CLIENT
    limit: str | None = None  # a documented limit: reported, never counted as a failure
    note: str = ""

    @property
    def blocked(self) -> bool:
        return not self.backends


S1, S2, S3, S4 = ("1 ClusterIP in a VPC", "2 node -> ClusterIP", "3 EIP, one VPC",
                  "4 EIP, several VPCs")
YSVC, ISO, EGRESS, POD_EIP = ("ysvc1 (reference)", "isolation", "egress", "pod -> EIP")
WEB, NGINX, MULTI = ("web-1", "web-2"), ("nginx-1", "nginx-2"), ("multi-1", "multi-2")
CLIENT1, CLIENT2 = naming.pod_port("ns-vpc1", "client-1"), naming.pod_port("ns-vpc2", "client-2")
NGINX1 = naming.pod_port("default", "nginx-1")
WEB_VIP, NGINX_VIP, WEB_EIP, MULTI_EIP = "10.96.10.10", "10.96.20.20", "172.18.0.50", "172.18.0.60"
UPLINK = "172.18.0.2"  # pool1's EIP gateway uplink (EipPool pool1 spec.uplinkIP)
YSVC1_LB = naming.service_lb("default", "ysvc1", "TCP")
EXT_IP = "172.18.0.100"

CHECKS: tuple[Check, ...] = (
    Check("s1-tcp", S1, CLIENT1, Target(WEB_VIP), "tcp", 80, WEB,
          note="client in subnet2, backends in subnet1 on node1 and node2"),
    Check("s1-udp", S1, CLIENT1, Target(WEB_VIP), "udp", 53, WEB),
    Check("s2-node1", S2, "node1", Target(NGINX_VIP), "tcp", 80, NGINX),
    Check("s2-node2", S2, "node2", Target(NGINX_VIP), "tcp", 80, NGINX),
    Check("s3", S3, EXT_HOST, Target(WEB_EIP), "tcp", 80, WEB,
          note="on-link EIP: ext1 has no route to it"),
    Check("s4", S4, EXT_HOST, Target(MULTI_EIP), "tcp", 80, MULTI, SVCGW_LINK),
    Check("ysvc1", YSVC, CLIENT1, Target(lb=YSVC1_LB), "tcp", 5001, ("iperf-1", "vm-1"),
          note="a pod and a Vnic with two IPs; ClusterIP allocated"),
    Check("iso-vip", ISO, CLIENT2, Target(WEB_VIP), "tcp", 80,
          note="vpc2 pod -> vpc1 ClusterIP"),
    Check("iso-pod", ISO, CLIENT2, Target(port_of=naming.pod_port("ns-vpc1", "web-1")), "tcp",
          8080, note="vpc2 pod -> vpc1 pod IP"),
    Check("egress-vpc1", EGRESS, CLIENT1, Target(EXT_IP), "tcp", 9000, (EXT_HOST,),
          fixed(UPLINK)),
    Check("egress-vpc2", EGRESS, CLIENT2, Target(EXT_IP), "tcp", 9000, (EXT_HOST,),
          fixed(UPLINK)),
    Check("egress-default", EGRESS, NGINX1, Target(EXT_IP), "tcp", 9000, (EXT_HOST,),
          fixed(UPLINK)),
    Check("eip-other-vpc", POD_EIP, CLIENT2, Target(WEB_EIP), "tcp", 80, WEB, transit("vpc2"),
          note="vpc2 pod -> vpc1's EIP"),
    Check("eip-own-vpc", POD_EIP, CLIENT1, Target(WEB_EIP), "tcp", 80, WEB,
          note="hairpin: vpc1 pod -> vpc1's EIP"),
    Check("multi-from-vpc1", POD_EIP, CLIENT1, Target(MULTI_EIP), "tcp", 80, MULTI,
          SVCGW_LINK, note="backend VPC -> multi-VPC EIP over its svcgw link"),
    Check("multi-from-vpc2", POD_EIP, CLIENT2, Target(MULTI_EIP), "tcp", 80, MULTI,
          SVCGW_LINK),
    Check("multi-from-default", POD_EIP, NGINX1, Target(MULTI_EIP), "tcp", 80, MULTI,
          SVCGW_LINK, note="a VPC attached to the pool, not a backend VPC: over its own "
          "svcgw link"),
)
CHECKS_BY_ID = {c.id: c for c in CHECKS}


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


# -- waiting ------------------------------------------------------------------------------------
def wait_until(predicate: Callable[[], T], timeout: float, what: str,
               interval: float = 0.1) -> T:
    """Poll until predicate() is truthy (returned); LabError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def service_monitors(lab: Lab) -> dict[str, str]:
    """SB Service_Monitor 'ip:port' -> status ('' before OVN's first result)."""
    out = {}
    for r in rows("ovn-sbctl", lab.sb_remote, "--columns=ip,port,status", "list",
                  "Service_Monitor", what="read SB Service_Monitor"):
        status = as_list(r["status"])
        out[f"{r['ip']}:{r['port']}"] = status[0] if status else ""
    return out


def expected_lbs_present(lab: Lab, checks: Iterable[Check] = CHECKS) -> bool:
    """Every VIP the checks expect an answer from is on some NB Load_Balancer (targets that
    are external hosts or pod addresses need none)."""
    vips: set[tuple[str, str]] = set()
    for r in rows("ovn-nbctl", lab.nb_remote, "--columns=name,vips", "list", "Load_Balancer",
                  what="read NB Load_Balancers"):
        vips |= {(r["name"], k) for k in r["vips"]}
    hosts = {h.ip for h in lab.external_hosts}
    for c in checks:
        if c.blocked or c.target.port_of or c.target.ip in hosts:
            continue
        if c.target.lb:
            found = any(n == c.target.lb and v.endswith(f":{c.port}") for n, v in vips)
        else:
            found = any(v == f"{c.target.ip}:{c.port}" for _, v in vips)
        if not found:
            return False
    return True


def prepare_examples(lab: Lab, servers: Iterable[ServerSpec] = SERVERS, *,
                     timeout: float = 60.0) -> dict[ServerSpec, Server]:
    """After the controller wrote the examples to NB: make the pods (lab.cni_sync: the
    cluster's runtimes and node agents), start the servers, wait
    until OVN's health checks found every backend online (a result for each: tests start
    from a settled SB)."""
    wait_until(lambda: expected_lbs_present(lab), timeout, "the examples' load balancers in NB")
    ports = lab.cni_sync()
    specs = list(servers)
    absent = [s.target for s in specs if s.target not in ports and
              s.target not in {h.name for h in lab.external_hosts}]
    if absent:
        raise LabError(f"ports not plugged: {', '.join(sorted(set(absent)))}")
    handles = start_servers(lab, specs)
    wait_until(lambda: service_monitors(lab) and set(service_monitors(lab).values()) ==
               {"online"}, timeout, "OVN health checks: every backend online")
    return handles


# -- the controller in-process (tests) ----------------------------------------------------------
class InProcessController:
    """ycloud-controller on a MemoryStore (manifests mode: derived ClusterIPs and
    EndpointSlices), an NbClient and an SbMonitor, its watch loop in a thread.

    `restart()` stops it and starts a new Controller on the same store and NB, like a process
    restart. Tests change objects through `backend` and read status from `store`."""

    def __init__(self, nb_remote: str, sb_remote: str | None,
                 manifests: str | Path = EXAMPLES, store: Any = None):
        """store: a MemoryStore already holding the objects (e.g. FakeKube's, which the
        node agents watch over HTTP); default: a new one loaded from `manifests`."""
        from ycloud_controller.memkube.backend import MemoryBackend
        from ycloud_controller.source import manifests_source

        self.nb_remote = nb_remote
        self.sb_remote = sb_remote
        self.backend: MemoryBackend = (
            MemoryBackend(store) if store is not None
            else manifests_source(str(manifests)).backend)  # type: ignore[assignment]
        self.store = self.backend.store
        self.ctl: Any = None
        self._parts: Any = None  # ycloud_controller.assemble.Assembly

    def start(self, timeout: float = 60.0) -> InProcessController:
        from ycloud_controller import config as config_mod
        from ycloud_controller.assemble import assemble

        cfg = config_mod.load(None, nb_remote=self.nb_remote, sb_remote=self.sb_remote)
        # object_ages=False as the CLI runs on a manifests directory: the timestamps are the
        # MemoryStore's own and decide no conflict (the holder in NB, then the name, do)
        self._parts = assemble(cfg, self.backend, emulate=True, object_ages=False)
        self.ctl = self._parts.ctl
        if not self._parts.start(wait=timeout):
            raise LabError("in-process controller: informers did not sync")
        self._parts.serve(name="ycloud-controller")
        return self

    def stop(self) -> None:
        parts, self._parts, self.ctl = self._parts, None, None
        if parts is not None and not parts.stop(join=10):
            raise LabError("in-process controller: run loop did not stop within 10s")

    def restart(self, timeout: float = 60.0) -> InProcessController:
        self.stop()
        return self.start(timeout)

    def idle(self) -> bool:
        ctl = self.ctl
        return (ctl is not None and ctl.last_sync is not None and ctl.ready()
                and len(ctl.queue) == 0 and ctl.writer.idle())

    def wait_idle(self, timeout: float = 60.0, quiet: float = 0.3) -> None:
        """Until the first full sync is done and the queue and writer stay quiet `quiet` s."""
        deadline = time.monotonic() + timeout
        since = None
        while True:
            if self.idle():
                since = since or time.monotonic()
                if time.monotonic() - since >= quiet:
                    return
            else:
                since = None
            if time.monotonic() >= deadline:
                raise LabError(f"in-process controller not idle after {timeout:.0f}s")
            time.sleep(0.05)

    # -- objects --------------------------------------------------------------------------
    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.backend.get(self.resource(kind), name, namespace)

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.backend.list(self.resource(kind), namespace)[0]

    @staticmethod
    def resource(kind: str) -> Any:
        from ycloud_controller.kube import resources as res

        return {"Pod": res.PODS, "Service": res.SERVICES, "Vnic": res.VNICS,
                "YusurService": res.YUSURSERVICES, "NetworkProbe": res.NETWORKPROBES,
                "EndpointSlice": res.ENDPOINTSLICES}[kind]

    def probe_for(self, namespace: str, ip: str, port: int) -> dict[str, Any] | None:
        """The NetworkProbe of backend ip:port in namespace."""
        for probe in self.list("NetworkProbe", namespace):
            spec = probe.get("spec") or {}
            if spec.get("ip") == ip and int(spec.get("port") or 0) == port:
                return probe
        return None
