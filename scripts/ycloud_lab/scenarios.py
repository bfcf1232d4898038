"""The example scenarios as data, shared by tests/lab and scripts/demo.

    servers = example_servers()              # echo servers the examples' backends need
    start_servers(lab, servers)
    for check in CHECKS:                     # client -> target, expected backends and source
        row = run_check(lab, check)          # real requests; row.ok, row.cells() for a table

SERVERS come from manifests/examples: every containerPort of every Pod (the server answers
with the pod's name), plus EXTRA_SERVERS for what the manifests do not declare (the Vnic
vm-1 and the external host ext1, the egress target). CHECKS are the four scenarios of the
README and the paths around them (isolation, egress, pods reaching EIPs).

Running the checks is ycloud_lab.checkrun's; the controller in-process for tests is
ycloud_lab.inprocess's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from topology import naming
from ycloud_lab.ovsdb import as_list, rows
from ycloud_lab.proc import LabError
from ycloud_lab.workload import Server

if TYPE_CHECKING:
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
