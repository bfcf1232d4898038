"""Where a VPC's ClusterIP LBs are placed, measured (`python -m bench --pipeline`).

On the NB the controller built (its own builders: a Load_Balancer_Group per VPC, on every
switch of the VPC; the controller stopped), then on the same LBs placed per switch as
kube-ovn places them (every switch of the VPC lists every LB of the VPC in
Logical_Switch.load_balancer; no groups), changed in one raw transaction:

- SB Logical_Flow and Logical_DP_Group counts;
- ovn-northd's full recompute (`inc-engine/recompute`, then its stopwatches: ovnnb_db_run is
  the whole NB-to-SB run, build_lflows the logical flow build), RECOMPUTES times; the
  project's placement is measured before and after kube-ovn's (moved there and back), so
  neither is only first or only last;
- ovn-northd's RSS, and the OpenFlow flows one chassis installed (ovs-ofctl dump-aggregate);
- each move from one placement to the other: from the transaction to sb_cfg (northd) and to
  hv_cfg (every chassis);
- as a check of the move, the LB references the switches hold through groups and directly.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from ovn_sandbox import SandboxState, read_pid

from bench import ovsdb
from bench.witness import Witness

RECOMPUTES = 5
WATCHES = ("ovnnb_db_run", "build_lflows", "lflows_lbs", "lflows_to_sb")


def appctl(ctl: Path, *args: str) -> str:
    return subprocess.run(["ovn-appctl", "--timeout=120", "-t", str(ctl), *args],
                          capture_output=True, text=True, check=True).stdout


def stopwatch_max(text: str) -> dict[str, tuple[int, float]]:
    """stopwatch/show: name -> (samples, maximum msec)."""
    out = {}
    for block in text.split("Statistics for '")[1:]:
        name = block.split("'", 1)[0]
        samples = re.search(r"Total samples: (\d+)", block)
        top = re.search(r"Maximum: ([\d.]+) msec", block)
        if samples and top:
            out[name] = (int(samples.group(1)), float(top.group(1)))
    return out


def engine_stats(text: str) -> dict[str, tuple[int, int]]:
    """inc-engine/show-stats: node -> (recomputes, incremental computes)."""
    return {m.group(1): (int(m.group(2)), int(m.group(3))) for m in re.finditer(
        r"Node: (\S+)\n- recompute:\s+(\d+)\n- compute:\s+(\d+)", text)}


def engine_counts(central: SandboxState, lab) -> dict[str, tuple[int, int]]:  # noqa: ANN001
    """Recomputes and incremental computes so far of ovn-northd's `northd` and `lflow`
    nodes and of one chassis' ovn-controller `logical_flow_output` node."""
    northd = engine_stats(appctl(Path(central.directory) / "northd.ctl",
                                 "inc-engine/show-stats"))
    st = lab.store.load()
    chassis = engine_stats(lab.chassis(st, sorted(st.chassis)[0]).controller_appctl(
        "inc-engine/show-stats"))
    return {"northd": northd.get("northd", (0, 0)), "northd lflow": northd.get("lflow", (0, 0)),
            "ovn-controller logical_flow_output": chassis.get("logical_flow_output", (0, 0))}


def northd_quiet(central: SandboxState, timeout: float = 30.0, still: float = 0.3) -> None:
    """Wait until ovn-northd has run no engine iteration for `still` seconds (the runs that
    follow a change, its own writes and the chassis' acknowledgements, are over)."""
    ctl = Path(central.directory) / "northd.ctl"
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        runs = sum(engine_stats(appctl(ctl, "inc-engine/show-stats")).get("northd", (0, 0)))
        if runs != last:
            last, since = runs, time.monotonic()
        elif time.monotonic() - since >= still:
            return
        time.sleep(0.1)


def recompute(ctl: Path, timeout: float = 300.0) -> dict[str, float]:
    """One forced full recompute of ovn-northd: its stopwatches' time (msec)."""
    appctl(ctl, "stopwatch/reset")
    appctl(ctl, "inc-engine/recompute")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = stopwatch_max(appctl(ctl, "stopwatch/show"))
        if got.get("ovnnb_db_run", (0, 0))[0] >= 1:
            time.sleep(0.5)  # a run northd makes of its own writes may follow: take the max
            got = stopwatch_max(appctl(ctl, "stopwatch/show"))
            return {k: got[k][1] for k in WATCHES if k in got}
        time.sleep(0.1)
    raise RuntimeError("ovn-northd did not recompute")


def count(client: ovsdb.Client, db: str, table: str) -> int:
    (res,) = client.call("transact", [db, {"op": "select", "table": table, "where": [],
                                           "columns": ["_uuid"]}])
    return len(res["rows"])


def openflow_flows(lab, chassis: str) -> int | None:  # noqa: ANN001 - ycloud_lab.Lab
    res = lab.exec(chassis, "ovs-ofctl", "dump-aggregate", "br-int")
    found = re.search(r"flow_count=(\d+)", res.stdout)
    return int(found.group(1)) if found else None


def figures(central: SandboxState, lab, log) -> dict[str, Any]:  # noqa: ANN001
    ctl = Path(central.directory) / "northd.ctl"
    sb = ovsdb.Client(central.sb_socket)
    try:
        out: dict[str, Any] = {
            "logical_flows": count(sb, "OVN_Southbound", "Logical_Flow"),
            "dp_groups": count(sb, "OVN_Southbound", "Logical_DP_Group"),
            "load_balancers_sb": count(sb, "OVN_Southbound", "Load_Balancer"),
        }
    finally:
        sb.close()
    runs = [recompute(ctl) for _ in range(RECOMPUTES)]
    out["recompute_ms"] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    out["recompute_runs_ms"] = [r.get("ovnnb_db_run") for r in runs]
    pid = read_pid(Path(central.directory) / "northd.pid")
    out["northd_rss_mb"] = rss_mb(pid) if pid else None
    first = sorted(lab.store.load().chassis)[0]
    out["openflow_flows"] = openflow_flows(lab, first)
    log(f"placement: {out['logical_flows']} logical flows, recompute "
        f"{out['recompute_ms'].get('ovnnb_db_run')} ms, {out['openflow_flows']} OpenFlow flows")
    return out


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def placement_ops(client: ovsdb.Client) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                 int]:
    """The transaction that moves every group's LBs onto the switches carrying the group
    (and empties the groups): kube-ovn's placement; the one that moves them back; and the
    number of LBs moved."""
    groups_res, switches_res = client.transact([
        {"op": "select", "table": "Load_Balancer_Group", "where": [],
         "columns": ["_uuid", "load_balancer"]},
        {"op": "select", "table": "Logical_Switch", "where": [],
         "columns": ["_uuid", "load_balancer_group"]}])
    members = {g["_uuid"][1]: _uuids(g["load_balancer"]) for g in groups_res["rows"]}
    forward: list[dict[str, Any]] = []
    back: list[dict[str, Any]] = []
    for sw in switches_res["rows"]:
        groups = _uuids(sw["load_balancer_group"])
        if not groups:
            continue
        lbs = sorted({lb for g in groups for lb in members.get(g, [])})
        where = [["_uuid", "==", ["uuid", sw["_uuid"][1]]]]
        forward.append({"op": "update", "table": "Logical_Switch", "where": where,
                        "row": {"load_balancer_group": ["set", []],
                                "load_balancer": ["set", [["uuid", u] for u in lbs]]}})
        back.append({"op": "update", "table": "Logical_Switch", "where": where,
                     "row": {"load_balancer_group": ["set", [["uuid", g] for g in groups]],
                             "load_balancer": ["set", []]}})
    for g, lbs in members.items():
        where = [["_uuid", "==", ["uuid", g]]]
        forward.append({"op": "update", "table": "Load_Balancer_Group", "where": where,
                        "row": {"load_balancer": ["set", []]}})
        back.append({"op": "update", "table": "Load_Balancer_Group", "where": where,
                     "row": {"load_balancer": ["set", [["uuid", u] for u in lbs]]}})
    return forward, back, sum(len(v) for v in members.values())


def placed(client: ovsdb.Client) -> dict[str, int]:
    """How the switches reach their LBs now: LB references through groups, and direct."""
    # with _uuid: ovsdb-server answers a select with distinct rows of the columns asked for
    (switches,) = client.transact([{"op": "select", "table": "Logical_Switch", "where": [],
                                    "columns": ["_uuid", "load_balancer_group",
                                                "load_balancer"]}])
    (groups,) = client.transact([{"op": "select", "table": "Load_Balancer_Group",
                                  "where": [], "columns": ["_uuid", "load_balancer"]}])
    size = {g["_uuid"][1]: len(_uuids(g["load_balancer"])) for g in groups["rows"]}
    return {"via_groups": sum(size.get(g, 0) for sw in switches["rows"]
                              for g in _uuids(sw["load_balancer_group"])),
            "direct": sum(len(_uuids(sw["load_balancer"])) for sw in switches["rows"])}


def _uuids(value: Any) -> list[str]:
    if value[0] == "uuid":
        return [value[1]]
    return [u[1] for u in value[1]]


def move(client: ovsdb.Client, ops: list[dict[str, Any]], witness: Witness,
         timeout: float) -> dict[str, float | None]:
    """Commit `ops` with an nb_cfg bump: seconds until northd (sb_cfg) and every chassis
    (hv_cfg) had it."""
    t0 = time.monotonic()
    result = client.transact([*ops, *BUMP_AND_READ])
    sb, hv = witness.caught_up(timeout, result[-1]["rows"][0]["nb_cfg"])
    return {"to_sb_s": sb - t0 if sb else None, "to_every_chassis_s": hv - t0 if hv else None}


BUMP_AND_READ = [{"op": "mutate", "table": "NB_Global", "where": [],
                  "mutations": [["nb_cfg", "+=", 1]]},
                 {"op": "select", "table": "NB_Global", "where": [], "columns": ["nb_cfg"]}]


def compare(central: SandboxState, lab, witness: Witness, log,  # noqa: ANN001
            timeout: float) -> dict[str, Any]:
    """The project's placement, kube-ovn's, and the project's again (so that neither is
    measured only first or only last)."""
    client = ovsdb.Client(central.nb_sockets[0])
    try:
        out: dict[str, Any] = {"group": figures(central, lab, log)}
        out["group"]["placed"] = placed(client)
        forward, back, moved = placement_ops(client)
        out["lbs"] = moved
        out["to_per_switch"] = move(client, forward, witness, timeout)
        log(f"placement: per switch now ({moved} LBs moved): {out['to_per_switch']}")
        out["per_switch"] = figures(central, lab, log)
        out["per_switch"]["placed"] = placed(client)
        out["to_group"] = move(client, back, witness, timeout)
        log(f"placement: groups again: {out['to_group']}")
        again = figures(central, lab, log)
        out["group"]["recompute_runs_ms"] += again["recompute_runs_ms"]
        out["group_again"] = again
    finally:
        client.close()
    runs = {k: [r for r in out[k]["recompute_runs_ms"] if r is not None]
            for k in ("group", "per_switch")}
    for k, v in runs.items():
        out[k]["recompute_median_ms"] = statistics.median(v) if v else None
    return out
