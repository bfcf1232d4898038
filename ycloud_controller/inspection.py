"""`ycloud-controller inspect KIND/[NS/]NAME`: the NB rows one object owns, found by
external_ids, and for a service its VIPs, backends and where its LBs are attached."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from topology import model, naming
from topology.nbsync.client import NbClient

KINDS = {k.lower(): k for k in ("Vpc", "Subnet", "Pod", "Node", "Service", "EipPool", "Vnic",
                                "YusurService", "NetworkProbe")}
KINDS.update({"svc": "Service", "ysvc": "YusurService", "eip": "EipPool", "np": "NetworkProbe"})
SHOWN = {
    "Logical_Router": ("options",), "Logical_Router_Port": ("mac", "networks", "options"),
    "Logical_Switch": (), "Logical_Switch_Port": ("type", "addresses", "options"),
    "Logical_Router_Static_Route": ("ip_prefix", "nexthop", "policy"),
    "NAT": ("type", "external_ip", "logical_ip"), "Load_Balancer": ("protocol", "vips",
                                                                    "options"),
    "Load_Balancer_Health_Check": ("vip", "options"), "Gateway_Chassis": ("chassis_name",
                                                                          "priority"),
    "HA_Chassis_Group": (), "HA_Chassis": ("chassis_name", "priority"), "Load_Balancer_Group": (),
}


def parse_target(target: str) -> tuple[str, str]:
    kind, _, rest = target.partition("/")
    if not rest or kind.lower() not in KINDS:
        raise ValueError(f"target must be KIND/[NAMESPACE/]NAME with KIND one of "
                         f"{', '.join(sorted(set(KINDS)))}; got {target!r}")
    return KINDS[kind.lower()], rest


def _name(row: Any) -> str:
    return getattr(row, "name", "") or row.external_ids.get(naming.KEY, str(row.uuid))


def collect(nb: NbClient, kind: str, owner: str) -> dict[str, Any]:
    """Rows of (kind, owner) per table, plus attachments of its load balancers."""
    def read() -> dict[str, Any]:
        idl = nb.idl
        out: dict[str, Any] = {"kind": kind, "owner": owner, "rows": [], "attachments": []}
        lbs = []
        for table in model.TABLES:
            if table in model.OWNED_BY_NAME:
                continue
            for row in idl.tables[table].rows.values():
                ids = row.external_ids
                if ids.get(naming.KIND) != kind or ids.get(naming.OWNER) != owner:
                    continue
                entry = {"table": table, "name": _name(row), "uuid": str(row.uuid)}
                for col in SHOWN.get(table, ()):
                    entry[col] = _plain(getattr(row, col))
                out["rows"].append(entry)
                if table == "Load_Balancer":
                    lbs.append(row)
        for lb in lbs:
            for group in idl.tables["Load_Balancer_Group"].rows.values():
                if lb in group.load_balancer:
                    switches = [s.name for s in idl.tables["Logical_Switch"].rows.values()
                                if group in s.load_balancer_group]
                    routers = [r.name for r in idl.tables["Logical_Router"].rows.values()
                               if group in r.load_balancer_group]
                    out["attachments"].append({"lb": lb.name, "group": group.name,
                                               "switches": sorted(switches),
                                               "routers": sorted(routers)})
            for router in idl.tables["Logical_Router"].rows.values():
                if lb in router.load_balancer:
                    out["attachments"].append({"lb": lb.name, "router": router.name})
        return out
    return nb.read(read)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(sorted(value.items()))
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def find_command(kind: str, owner: str, table: str = "Load_Balancer") -> str:
    return (f"ovn-nbctl find {table} external_ids:{naming.KIND}={kind} "
            f"external_ids:{naming.OWNER}={owner}")


def inspect_command(args: argparse.Namespace, nb: NbClient) -> int:
    try:
        kind, owner = parse_target(args.target)
        data = collect(nb, kind, owner)
    finally:
        nb.stop()
    tables = sorted({r["table"] for r in data["rows"]}) or ["Logical_Switch_Port"]
    data["commands"] = [find_command(kind, owner, t) for t in tables]
    if args.format == "json":
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return 0 if data["rows"] else 1
    if not data["rows"]:
        sys.stdout.write(f"no NB rows owned by {kind} {owner}\n")
    for row in data["rows"]:
        sys.stdout.write(f"{row['table']:28} {row['name']}\n")
        for col in SHOWN.get(row["table"], ()):
            value = row.get(col)
            if col == "vips" and isinstance(value, dict):
                for vip, backends in value.items():
                    shown = backends or "(no backends: rejects)"
                    sys.stdout.write(f"{'':30}vip {vip} -> {shown}\n")
            elif value not in (None, "", [], {}):
                sys.stdout.write(f"{'':30}{col}: {value}\n")
    for att in data["attachments"]:
        if "group" in att:
            sys.stdout.write(f"attached: {att['lb']} in group {att['group']} on switches "
                             f"{', '.join(att['switches']) or '-'} routers "
                             f"{', '.join(att['routers']) or '-'}\n")
        else:
            sys.stdout.write(f"attached: {att['lb']} on router {att['router']}\n")
    sys.stdout.write("same rows with ovn-nbctl:\n")
    for cmd in data["commands"]:
        sys.stdout.write(f"  {cmd}\n")
    return 0 if data["rows"] else 1
