"""The report of `python -m bench`: the machine, the table and the details of a run, as a
block of bench/RESULTS.md (see bench.runner)."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any


def machine() -> dict[str, str]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass

    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return "?"
    try:
        import ovs._json  # noqa: F401
        cjson = "yes"
    except ImportError:
        cjson = "no"
    return {"cpu": f"{cpu} x{os.cpu_count()}", "memory": mem,
            "kernel": platform.release(), "python": platform.python_version(),
            "ovn": version(["ovn-nbctl", "--version"]),
            "ovsdb": version(["ovsdb-server", "--version"]), "ovs_c_json": cjson}


def ratio(x: float | None, raw: float) -> str:
    return f"{x / raw:.1f}x" if x is not None and raw else "-"


def name(r: dict[str, Any]) -> str:
    """A result's row name: the service count for the small shape, else the shape's name."""
    return str(r["services"]) if r.get("shape", "small") == "small" else r["shape"]


def who(r: dict[str, Any]) -> str:
    """A result in a sentence: "10000 services", "max, 180542 objects"."""
    if r.get("shape", "small") == "small":
        return f"{r['services']} services"
    return f"{r['shape']}, {r['objects']} objects"


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| services / shape | raw limit | cold sync e2e | cold sync NB phase | restart (nothing "
        "changed) | NB txns on restart | peak RSS | CPU per object |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        raw, c, s = r["raw"], r["cold"], r["restart"]
        txns = "0" if s["nb_bytes_written"] == 0 and s["observed_updates"] == 0 else \
            f">0 ({s['observed_updates']} updates, {s['nb_bytes_written']} bytes)"
        rss = max(c["peak_rss_mb"], s["peak_rss_mb"], r.get("run_peak_rss_mb", 0))
        cpu = 1000 * c.get("cpu_s", 0.0) / r.get("objects", 1)
        lines.append(
            f"| {name(r)} | {raw:.3f} s | {c['e2e']:.2f} s ({ratio(c['e2e'], raw)}) | "
            f"{c['nb_phase']:.2f} s ({ratio(c['nb_phase'], raw)}) | {s['e2e']:.2f} s "
            f"({ratio(s['e2e'], raw)}) | {txns} (controller: "
            f"{int(s['controller_transactions'])}) | {rss:.0f} MB | {cpu:.3f} ms |")
    churn = [(name(r), c) for r in results for c in r.get("churn", [])]
    if churn:
        lines += ["", "| churn vs services / shape | offered | achieved | commits/s | p50 | p99 |"
                      " max | pods p99 | queue max | queue mean by third | lost |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
        for n, c in churn:
            lines.append(
                f"| {n} | {c['rate']}/s x {c['seconds']:.0f} s | {c['achieved_rate']:.0f}/s | "
                f"{c['commit_rate']:.0f} | {c['p50_ms']:.1f} ms | {c['p99_ms']:.1f} ms | "
                f"{c['max_ms']:.1f} ms | {c.get('port_p99_ms', float('nan')):.1f} ms | "
                f"{c['queue_max']} | "
                f"{' / '.join(str(x) for x in c['queue_mean_by_third'])} | {c['lost']} |")
    return "\n".join(lines)


def details(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        c, s = r["cold"], r["restart"]
        if c.get("timers"):
            parts = ", ".join(f"{k} {v:.2f} s" for k, v in
                              sorted(c["timers"].items(), key=lambda kv: -kv[1]))
            lines.append(f"- {who(r)}, the full sync that writes NB "
                         f"({c.get('full_sync', c['nb_phase']):.2f} s) time in the main "
                         f"thread: {parts}.")
        rounds = r.get("cold_rounds") or []
        if len(rounds) > 1:
            each = "; ".join(f"{x['e2e']:.2f} s / {x['raw']:.3f} s = {x['e2e'] / x['raw']:.2f}x"
                             f" (NB phase {x['nb_phase'] / x['raw']:.2f}x)" for x in rounds)
            lines.append(f"- {who(r)}, cold sync in {len(rounds)} rounds "
                         f"(each its own raw limit, then a cold sync from an empty NB; the "
                         f"table shows the round of the median e2e ratio): {each}.")
        lines.append(
            f"- {who(r)} ({r['pods']} pods): raw runs "
            f"{', '.join(f'{x:.3f}' for x in r['raw_all'])} s; cold: process wall "
            f"{c['process_wall']:.2f} s, settling (plan-only) full sync "
            f"{c['settle_sync']:.2f} s, verification {c['verify_sync']:.2f} s, "
            f"NB phase took {c['reused']} settled outcomes as they were and wrote "
            f"{c['nb_phase_changes']} row ops in "
            f"{c['nb_phase_transactions']} transaction(s), check "
            f"{c['check']}; RSS after filling the store {c['rss_after_fill_mb']:.0f} MB, "
            f"peak {c['peak_rss_mb']:.0f} MB; restart first full sync {s['first_sync']:.2f} s, "
            f"restart peak RSS {s['peak_rss_mb']:.0f} MB.")
        if r.get("raw_tables"):
            rows = ", ".join(f"{t} {n}" for t, n in r["raw_tables"].items())
            lines.append(f"- {who(r)}: the raw transaction holds the {r.get('raw_rows')} rows "
                         f"captured from the converged NB ({rows}); CPU (user+sys) of the "
                         f"cold sync {c.get('cpu_s', 0):.2f} s, of the restart "
                         f"{s.get('cpu_s', 0):.2f} s; writes to the in-memory store: cold "
                         f"{c.get('kube_writes')}, restart {s.get('kube_writes')}.")
        if "cluster" in r:
            k = r["cluster"]
            lines.append(f"- {who(r)}, cluster mode (bench/cluster.py: the "
                         f"objects in a FakeKube in another process, `{k['command']}`, from "
                         f"an empty NB): peak RSS {k['peak_rss_mb']:.0f} MB (after imports "
                         f"{k['rss_imports_mb']:.0f} MB); first cold sync {k['e2e']:.1f} s; "
                         + "; ".join(f"{run} {k[run]['seconds']:.1f} s, {k[run]['writes']} "
                                     f"writes, requests {k[run]['requests']}"
                                     for run in ("cold", "restart", "cold_unlimited",
                                                 "cold_unlimited_latency") if run in k)
                         + ".")
        if "run_startup" in r:
            u = r["run_startup"]
            lines.append(f"- {who(r)}, `run` startup (a restart) before churn: "
                         f"{u['seconds']:.2f} s to ready, {int(u['transactions'])} controller "
                         f"transactions, {u['observed_updates_before_churn']} NB updates seen; "
                         f"peak RSS of the run process {r['run_peak_rss_mb']:.0f} MB.")
            for ch in r["churn"]:
                gc_s = sum(v for k, v in ch.get("timers", {}).items()
                           if k.startswith("garbage"))
                top = ", ".join(f"{k} {v:.2f} s" for k, v in sorted(
                    ch.get("timers", {}).items(), key=lambda kv: -kv[1])[:6])
                lines.append(f"  - churn {ch['rate']}/s: {ch['committed']} events committed, "
                             f"{ch['late_writes']} writes behind schedule, drained "
                             f"{ch['drain_after_last_write_s']:.2f} s after the last write; "
                             f"garbage collection {gc_s:.2f} s ({ch.get('gc_pauses_over_20ms', 0)}"
                             f" pauses over 20 ms, longest {ch.get('gc_pause_max_ms', 0):.0f} ms;"
                             f" {ch.get('slow_events_during_gc', 0)} of "
                             f"{ch.get('slow_events', 0)} events slower than 50 ms overlapped "
                             f"one); time in: {top}.")
                st = ch.get("stages") or {}
                if st:
                    lines.append("    stages p50/p99 (ms): " + ", ".join(
                        f"{k} {v['p50_ms']:.1f}/{v['p99_ms']:.1f}" for k, v in st.items()))
    return "\n".join(lines)


def render(results: list[dict[str, Any]], info: dict[str, str], command: str,
           label: str, northd: str, elapsed: float) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    ctl_cmd = results[0].get("command", "") if results else ""
    return "\n".join([
        f"#### {label} ({when})",
        "",
        f"- machine: {info['cpu']}, {info['memory']}, Linux {info['kernel']}",
        f"- {info['ovn']}; {info['ovsdb']}; Python {info['python']}; python-ovs C JSON "
        f"parser: {info['ovs_c_json']}; ovn-northd {northd} during the run",
        f"- command: `{command}` ({elapsed:.0f} s); controller under test: `{ctl_cmd}`",
        "",
        table(results),
        "",
        details(results),
        "",
    ])


def pct(values: list[float], p: float) -> float:
    """The nearest-rank p-th percentile (nan for no values)."""
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * len(values) + 0.5)) - 1))
    return values[k]


def write_results(path: Path, label: str, block: str) -> None:
    begin, end = f"<!-- bench:{label}:begin -->", f"<!-- bench:{label}:end -->"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{block}{end}{tail}"
    else:
        text = text.rstrip("\n") + f"\n\n{begin}\n{block}{end}\n"
    path.write_text(text)
