"""What the dataplane runs on, to show that something (a controller restart) left it alone:
the SB rows the chassis act on and every running chassis' OpenFlow table on br-int.

Flow counters and ages are dropped, and so are flows with an idle or hard timeout (learned at
run time, e.g. for session affinity): what remains changes only when ovn-controller installs
or removes flows."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ycloud_lab import Lab
from ycloud_lab.ovsdb import rows

SB_COLUMNS = {
    "Port_Binding": "_uuid,logical_port,chassis,up",
    "Service_Monitor": "_uuid,ip,port,logical_port,status",
    "MAC_Binding": "_uuid,ip,mac,logical_port",
    "Chassis_Private": "_uuid,name,nb_cfg",
    "SB_Global": "_uuid,nb_cfg",
}
COUNTERS = re.compile(r"\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]+,?\s*")


def flows(lab: Lab, chassis: str) -> frozenset[str]:
    dump = lab.exec(chassis, "ovs-ofctl", "dump-flows", "br-int", check=True).stdout
    return frozenset(COUNTERS.sub("", line).strip() for line in dump.splitlines()
                     if "cookie=" in line and "idle_timeout" not in line
                     and "hard_timeout" not in line)


@dataclass(frozen=True)
class Dataplane:
    sb: dict[str, frozenset[str]]  # table -> its rows (JSON) with the columns above
    flows: dict[str, frozenset[str]]  # chassis -> its br-int flows

    def changes(self, later: Dataplane) -> dict[str, dict[str, list[str]]]:
        """What differs in `later`, per SB table and per chassis: gone / new (5 of each)."""
        out = {}
        for what, mine, theirs in (
                *((f"SB {t}", self.sb[t], later.sb.get(t, frozenset())) for t in self.sb),
                *((f"flows of {c}", self.flows[c], later.flows.get(c, frozenset()))
                  for c in self.flows)):
            if mine != theirs:
                out[what] = {"gone": sorted(mine - theirs)[:5],
                             "new": sorted(theirs - mine)[:5]}
        return out

    def summary(self) -> dict[str, int]:
        return {**{f"SB {t}": len(r) for t, r in self.sb.items()},
                **{f"flows of {c}": len(f) for c, f in self.flows.items()}}


def dataplane(lab: Lab) -> Dataplane:
    sb = {table: frozenset(json.dumps(r, sort_keys=True) for r in rows(
        "ovn-sbctl", lab.sb_remote, f"--columns={columns}", "list", table))
        for table, columns in SB_COLUMNS.items()}
    running = [name for name, ch in lab.store.load().chassis.items() if not ch.stopped]
    return Dataplane(sb, {name: flows(lab, name) for name in sorted(running)})
