"""The RESULTS.md block of `python -m bench --dataplane` (block `dataplane`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from bench import dptable
from bench.dataplane import BASELINE, PATHS, SERVICES, Settings

ORIGINAL = """The original design's table (its section 3.2, offloaded / not offloaded, physical
servers with DPUs): bandwidth 163 / 166 Gbit/s node-to-node baseline, 152 / 130 node ->
Service with a remote backend, 151 / 138 pod -> Service; packet rate 45 / 45, 25.5 / 12.1,
24.5 / 12.2 Mpps; latency 32 / 32, 33 / 48, 33 / 44 us; requests/s 15999 baseline, 15139 /
11040 pod -> Service across nodes. Offloaded, its Service paths were 0.93x (bandwidth),
0.54-0.57x (packet rate), 1.03x (latency) and 0.95x (requests/s) of its baseline. Here
the rows are the same (node and pod -> Service with a remote backend, against traffic
without a Service), plus the design's two external scenarios, on OVS's userspace datapath
in network namespaces on one machine: absolute numbers are small, the ratios are the
figure.
"""

WHERE = """Where a Service path adds work (the datapath work per request above, one request's
recirculations below): on the chassis where the load balancer runs (the client's for a
ClusterIP, the gateway chassis for an EIP) the first packet of a connection takes the backend
choice (`hash(l4(0))`) and a conntrack commit with DNAT (`ct(commit,...,nat(dst=backend))`):
two recirculations and a userspace conntrack entry with NAT per connection, which the direct
path does not make (it only looks its packets up: `ct(zone,nat)`, no commit). The multi-VPC
EIP's service gateway also commits an SNAT in a second zone, and its established packets
pass both zones: its extra work is per packet, not per connection. Requests/s with a new
connection per request pays the per-connection part in full; a TCP stream only the
per-packet part.
"""

CRASH = """Lab daemons that died during the run (each time the round was dropped, the chassis
restarted with the lab's stop/start-chassis, and the round run again). An abort of
ovs-vswitchd in `conntrack.c:1063` (`conn->conn_type == CT_CONN_TYPE_DEFAULT` in
`conn_update_state()`) is OVS's userspace conntrack (Debian 12's openvswitch 3.1), not the
controller: seen in the direct path's requests/s loop while it took kernel-chosen source
ports, i.e. when a new direct connection took the tuple an earlier Service connection of the
same client had been DNATed to (each path's loop now has its own source ports). "during"
names the measurement that was running:
"""


def render(result: Mapping[str, Any], info: Mapping[str, str], command: str, label: str,
           s: Settings) -> str:
    labels = {p.id: p.label for p in PATHS}
    table = dptable.aggregate(result["rounds"], BASELINE)
    services = [p for p in SERVICES if p in table]
    load = " ".join(f"{x:.2f}" for x in result.get("load") or os.getloadavg())
    out = [f"### {label}: the dataplane table (issue 19 part 4)\n",
           f"`{command}`; {info.get('cpu', '?')}, {info.get('memory', '?')}, "
           f"{info.get('ovn', '?')}; {len(result['rounds'])} of {s.rounds} rounds done, "
           f"{s.seconds:g} s per iperf3 run and "
           f"requests/s loop, {s.round_trips} round trips per latency run; "
           f"{result.get('seconds', '?')} s wall in all (lab up and down included); load "
           f"average {load} at the end\n",
           dptable.render_table(table, labels, BASELINE, services),
           "Values: median over rounds; (Nx, a-b): median and quartiles over rounds of the "
           "path's value / the direct pod-to-pod value of the same round (latency: above 1 "
           "is slower). "
           f"Target: every Service path >= {dptable.TARGET}x direct on bandwidth and "
           "requests/s.\n"]
    node = dptable.aggregate(result["rounds"], "node-direct").get("node-clusterip")
    if node and "node-direct" in table:
        out.append("node -> ClusterIP against node -> pod (the node's own direct path): " +
                   ", ".join(f"{dptable.METRICS[m][0]} {c.ratio:.2f}x" for m, c in node.items()
                             if c.ratio is not None) + ".\n")
    work = []
    for p in PATHS:
        per = [dptable.median([v for r in result["rounds"]
                               if (v := (r.get(p.id) or {}).get(k)) is not None])
               for k in ("dp_packets_per_req", "recirc_per_req")]
        if per[0] is not None and per[1] is not None:
            work.append(f"{p.id} {per[0]:.1f} packets, {per[1]:.1f} recirculations")
    if work:
        out.append("Datapath work per request of the requests/s loop (all chassis together, "
                   "`dpif-netdev/pmd-stats-show` before and after; median over rounds): " +
                   "; ".join(work) + ". Unlike the rates, these counts do not depend on the "
                   "machine's load.\n")
    ips = result.get("ips") or {}
    out.append("Paths: " + "; ".join(
        f"{p.id} = {p.label}, {p.client} -> {ips.get(p.id, '?')}" for p in PATHS) + ".\n")
    if result.get("skipped"):
        out.append("Left out (no request/response got through before measuring): " + "; ".join(
            f"{k}: {v}" for k, v in result["skipped"].items()) + ".\n")
    if result.get("crashes"):
        out.append(CRASH + "\n".join(f"- {c}" for c in result["crashes"]) + "\n")
    if result.get("errors"):
        out.append("Failed measurements: " + "; ".join(result["errors"]) + ".\n")
    below = dptable.below_target(table, services)
    out.append(("Below target: " + ", ".join(below) + "." if below else
                "Every Service path meets the target.") + "\n")
    rec = result.get("recirc") or {}
    if rec:
        out.append(WHERE)
        out.append("One request's datapath recirculations per chassis (`ycloud_lab.recirc`, "
                   "the `scripts/lab recirc` tool; a request/response on port "
                   "5202):\n")
        out.append("```\n" + "\n".join(rec[p] for p in rec) + "\n```\n")
    out.append(ORIGINAL)
    return "\n".join(out)
