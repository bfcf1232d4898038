"""The block `pipeline` of bench/RESULTS.md (see bench/pipeline.py)."""

from __future__ import annotations

import time
from typing import Any

KIND_NAMES = {"service": "new Service", "endpoint": "endpoint change", "pod": "new Pod"}
TARGET = 10.0  # the controller adds under 10% to the pipeline's own latency


def _ms(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:.0f}"


def _s(x: float | None) -> str:
    return "-" if x is None else f"{max(0.0, x):.2f} s"


def _fig(v: Any) -> str:
    if isinstance(v, list):
        return ", ".join(_fig(x) for x in v)
    return "-" if v is None else (f"{v:.0f}" if isinstance(v, float) else str(v))


def overhead(ctl: float, floor: float) -> float:
    return (ctl - floor) / floor * 100 if floor else float("nan")


def events_table(r: dict[str, Any]) -> list[str]:
    lines = [
        "| event | controller p50 / p99 (ms) | floor p50 / p99 (ms) | overhead p50 / p99 | "
        "to NB: controller / floor p50 (ms) | to SB: controller / floor p50 (ms) | "
        "controller's own share | NB txns per event | met (<10%) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    txns = r.get("transactions_per_event", {})
    for kind, name in KIND_NAMES.items():
        c, f = r["events"][kind]["controller"], r["events"][kind]["floor"]
        o50 = overhead(c["hv"]["p50_ms"], f["hv"]["p50_ms"])
        o99 = overhead(c["hv"]["p99_ms"], f["hv"]["p99_ms"])
        own = (c["nb"]["p50_ms"] - f["nb"]["p50_ms"]) / f["hv"]["p50_ms"] * 100
        missed = c["missed"] + f["missed"]
        lines.append(
            f"| {name} | {_ms(c['hv']['p50_ms'])} / {_ms(c['hv']['p99_ms'])} | "
            f"{_ms(f['hv']['p50_ms'])} / {_ms(f['hv']['p99_ms'])} | {o50:+.0f}% / {o99:+.0f}% | "
            f"{c['nb']['p50_ms']:.1f} / {f['nb']['p50_ms']:.1f} | "
            f"{_ms(c['sb']['p50_ms'])} / {_ms(f['sb']['p50_ms'])} | {own:+.1f}% | "
            f"{txns.get(kind, float('nan')):.1f} | "
            f"{'yes' if o50 < TARGET else 'no'}{f' ({missed} missed)' if missed else ''} |")
    return lines


def verdict(r: dict[str, Any]) -> str:
    ev = r["events"]
    met = [k for k in KIND_NAMES if overhead(ev[k]["controller"]["hv"]["p50_ms"],
                                             ev[k]["floor"]["hv"]["p50_ms"]) < TARGET]
    own = max((ev[k]["controller"]["nb"]["p50_ms"] - ev[k]["floor"]["nb"]["p50_ms"])
              / ev[k]["floor"]["hv"]["p50_ms"] * 100 for k in KIND_NAMES)
    return (f"Target (controller adds < {TARGET:.0f}%): end to end at p50, met for "
            f"{len(met)} of {len(KIND_NAMES)} kinds; what the controller adds before NB is "
            f"at most {own:+.1f}% of the pipeline (p50), the rest of each difference is "
            "northd's and the chassis' variance on a shared two-CPU machine.")


def topology_table(t: dict[str, Any]) -> list[str]:
    g, s = t["group"], t["per_switch"]
    rows = [("SB Logical_Flow rows", "logical_flows", None),
            ("SB Logical_DP_Group rows", "dp_groups", None),
            (f"northd full recompute, ovnnb_db_run (ms, median of {len(g['recompute_runs_ms'])}"
             f" / {len(s['recompute_runs_ms'])} runs)", "recompute_median_ms", None),
            ("... every run (ms)", "recompute_runs_ms", None),
            ("... of which build_lflows (ms, median of the first round)", "recompute_ms",
             "build_lflows"),
            ("... of which lflows_lbs (ms)", "recompute_ms", "lflows_lbs"),
            ("northd RSS (MB)", "northd_rss_mb", None),
            ("OpenFlow flows on one chassis", "openflow_flows", None),
            ("LB references of the switches: through groups", "placed", "via_groups"),
            ("LB references of the switches: direct", "placed", "direct")]
    lines = ["| | LB group per VPC (this project) | LBs per switch (kube-ovn) |",
             "|---|---:|---:|"]
    for label, key, sub in rows:
        a, b = g.get(key), s.get(key)
        if sub is not None:
            a, b = (a or {}).get(sub), (b or {}).get(sub)
        lines.append(f"| {label} | {_fig(a)} | {_fig(b)} |")
    to, back = t["to_per_switch"], t["to_group"]
    lines += ["", f"Moving the {t['lbs']} LBs from the groups onto the switches (one raw "
              f"transaction): northd wrote SB after {_s(to['to_sb_s'])}, every chassis had it "
              f"after {_s(to['to_every_chassis_s'])}; moving them back into the groups: "
              f"{_s(back['to_sb_s'])} and {_s(back['to_every_chassis_s'])}."]
    return lines


def render(results: list[dict[str, Any]], info: dict[str, str], command: str,
           elapsed: float, lab_up: float) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = [f"### Event to dataplane (`--pipeline`), {when}", "",
           f"`{command}` — wall {elapsed / 60:.1f} min (lab up in {lab_up:.1f} s). "
           f"{info['cpu']}, {info['memory']}, {info['ovn']}, Python {info['python']}.", "",
           "Time from the Kubernetes event (the store write) until every chassis applied it: "
           "NB_Global.hv_cfg (the minimum of the chassis' Chassis_Private.nb_cfg) reached "
           "the nb_cfg of the transaction that carried the change (the controller runs with "
           "`--bump-nb-cfg`). Floor: the same NB change as one raw transaction with the same "
           "nb_cfg bump, timed from its send, interleaved event by event with the "
           "controller's. Overhead = (controller - floor) / floor, end to end. After NB "
           "has the change the rest of the pipeline is the same for both, so most of the "
           "end-to-end difference is northd's and the chassis' own variance; the "
           "controller's own share is what it adds before NB: (controller to NB - floor to "
           "NB) / floor end to end, at p50. Events run one at a time (each waited for "
           "before the next); p99 is by nearest rank: with fewer than 100 samples, the "
           "largest. All chassis, northd, the NB/SB servers and the controller share this "
           "machine's two CPUs.", ""]
    for r in results:
        st = r["startup"]
        out += [f"**{r['services']} services, {r['pods']} pods, {r['chassis']} chassis** "
                f"({r['events']['service']['controller']['n']} events of each kind per side). "
                f"Controller startup sync {_s(st['process_to_quiet_s'])} to quiet; every "
                f"chassis caught up {_s(st['quiet_to_every_chassis_s'])} later; controller "
                f"peak RSS {r.get('controller_peak_rss_mb', 0):.0f} MB.", ""]
        out += events_table(r)
        out += ["", verdict(r), ""]
        eng = r.get("engine_per_event")
        if eng:
            out += ["Incremental engines per event (both sides, all kinds): " + "; ".join(
                f"{name} {v[0]:.1f} full recomputes, {v[1]:.1f} incremental"
                for name, v in eng.items()) + ".", ""]
        if "topology" in r:
            out += [f"LB placement at {r['services']} services (5 VPCs x 10 switches, the "
                    "controller's NB; then the same LBs moved per switch):", ""]
            out += topology_table(r["topology"])
            out.append("")
    return "\n".join(out) + "\n"
