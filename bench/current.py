"""The current results of `python -m bench`: one short table per shape (what, figure, target,
met or not) and a plot of time and memory against cluster size, at the top of
bench/RESULTS.md and in README.md's Performance section.

Each run merges its shapes' summaries into bench/current.json (a shape measured earlier
keeps its figures until it is measured again), then renders the tables from that file and
draws bench/results.png with matplotlib.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "current.json"
PLOT = HERE / "results.png"
BEGIN, END = "<!-- bench:current:begin -->", "<!-- bench:current:end -->"
RSS_LIMIT_MB = 1536
P99_LIMIT_MS = 50.0
ORDER = {"tiny": 0, "small": 1, "mid": 2, "max": 3}


def point(r: dict[str, Any]) -> str:
    """A shape's key: small is one point per service count."""
    return f"small {r['services']}" if r["shape"] == "small" else r["shape"]


def summary(r: dict[str, Any], command: str) -> dict[str, Any]:
    """The figures of one measured shape that the current table and the plot show."""
    c, s = r["cold"], r["restart"]
    rss = max(c["peak_rss_mb"], s["peak_rss_mb"], r.get("run_peak_rss_mb", 0))
    out = {
        "shape": r["shape"], "services": r["services"], "objects": r["objects"],
        "pods": r["pods"], "raw": r["raw"], "raw_rows": r.get("raw_rows"), "cold": c["e2e"],
        "restart": s["e2e"], "restart_txns": s["controller_transactions"],
        "restart_nb_bytes": s["nb_bytes_written"], "restart_updates": s["observed_updates"],
        "restart_kube_writes": s.get("kube_writes"), "peak_rss_mb": rss,
        "cpu_per_object_ms": 1000 * c.get("cpu_s", 0.0) / r["objects"],
        "churn": [{k: ch[k] for k in ("rate", "p50_ms", "p99_ms", "lost", "achieved_rate",
                                      "drain_after_last_write_s", "queue_mean_by_third",
                                      "port_p99_ms")} for ch in r.get("churn", [])],
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": command,
    }
    k = r.get("cluster")
    if k:
        out["cluster"] = {run: {f: k[run][f] for f in ("seconds", "writes", "objects_written",
                                                      "written_more_than_once", "requests")}
                          for run in ("cold", "cold_unlimited", "restart") if run in k}
        out["cluster"]["kube_api"] = k.get("kube_api", {})
    return out


def merge(results: list[dict[str, Any]], command: str, path: Path = DATA) -> dict[str, Any]:
    data = json.loads(path.read_text()) if path.exists() else {}
    for r in results:
        data[point(r)] = summary(r, command)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data


def ordered(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return sorted(data.items(), key=lambda kv: (ORDER.get(kv[1]["shape"], 9), kv[1]["objects"]))


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def backlog_free(ch: dict[str, Any]) -> bool:
    """No backlog growth: nothing lost, the offered rate achieved, the queue drained within
    a second of the last write."""
    return ch["lost"] == 0 and ch["drain_after_last_write_s"] < 1.0


def shape_table(key: str, p: dict[str, Any], base_cpu: float | None) -> str:
    raw, cold, restart = p["raw"], p["cold"], p["restart"]
    zero = p["restart_txns"] == 0 and p["restart_nb_bytes"] == 0 and p["restart_updates"] == 0
    kube = p.get("restart_kube_writes")
    rows = [
        ("cold sync vs raw limit", f"{cold:.2f} s / {raw:.3f} s = {cold / raw:.1f}x"
         f" ({p.get('raw_rows') or '?'} rows)", "<= 3x", _met(cold <= 3 * raw)),
        ("restart, nothing changed", f"{restart:.2f} s ({restart / cold:.2f} of cold)",
         "< 0.5 of cold", _met(restart < 0.5 * cold)),
        # manifests mode refills its in-memory store on every start (the YAML holds none of
        # the controller's annotations), so its Kubernetes-side writes are shown, not judged:
        # the API writes of a restart are counted in cluster mode (bench/cluster.py)
        ("restart writes", f"{int(p['restart_txns'])} NB transactions (in-memory store: "
         f"{'?' if kube is None else kube} writes re-deriving annotations)",
         "0 NB transactions", _met(zero)),
    ]
    for ch in p["churn"]:
        port = ch.get("port_p99_ms")
        extra = f", pods p99 {port:.1f} ms" if port == port and port is not None else ""
        rows.append((f"churn {ch['rate']}/s (endpoint moves + pods)",
                     f"p99 {ch['p99_ms']:.1f} ms{extra}, achieved {ch['achieved_rate']:.0f}/s,"
                     f" queue by third {' / '.join(str(x) for x in ch['queue_mean_by_third'])}",
                     "p99 < 50 ms, no backlog growth",
                     _met(ch["p99_ms"] < P99_LIMIT_MS and backlog_free(ch))))
    rows += cluster_rows(p.get("cluster"))
    rows.append(("peak RSS", f"{p['peak_rss_mb']:.0f} MB", "< 1.5 GB",
                 _met(p["peak_rss_mb"] < RSS_LIMIT_MB)))
    cpu = p["cpu_per_object_ms"]
    if base_cpu:
        rows.append(("CPU per object (cold sync)", f"{cpu:.3f} ms ({cpu / base_cpu:.2f}x the "
                     "smallest shape)", "not growing with size", _met(cpu <= 1.5 * base_cpu)))
    head = (f"**{key}**: {p['objects']:,} objects ({p['services']:,} ClusterIP Services, "
            f"{p['pods']:,} pods), measured {p['when']}")
    lines = [head, "", "| what | figure | target | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def _writes_by_verb(requests: dict[str, int]) -> str:
    writes = {k: v for k, v in requests.items()
              if k.split(" ")[0] in ("create", "update", "patch", "delete")}
    return ", ".join(f"{v:,} {k}" for k, v in sorted(writes.items(), key=lambda kv: -kv[1]))


def cluster_rows(k: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """Cluster mode (bench/cluster.py): the API requests FakeKube counted, and wall times."""
    if not k:
        return []
    cold = k.get("cold") or k.get("cold_unlimited")
    rows = []
    if cold:
        again = cold["written_more_than_once"]  # "resource name" -> writes
        # a custom resource's metadata (a finalizer) and its status are two writes: its
        # status subresource takes only .status
        extra = {o: n for o, n in again.items() if n > 2 or ".yusur.io " not in o}
        named = ", ".join(f"{o} {n}" for o, n in sorted(again.items())[:3])
        rows.append(("cluster mode: Kubernetes writes of a cold sync",
                     f"{cold['writes']:,} writes to {cold['objects_written']:,} objects"
                     + (f"; written more than once: {named}" if again else "")
                     + f" ({_writes_by_verb(cold['requests'])})",
                     "one write per object that needs one (a CRD's metadata and status: two)",
                     _met(not extra)))
    if "restart" in k:
        r = k["restart"]
        reads = sum(v for q, v in r["requests"].items() if q.split(" ")[0] in ("list",
                                                                              "watch", "get"))
        rows.append(("cluster mode: Kubernetes writes of a restart",
                     f"{r['writes']} writes ({reads} list/watch/get requests)", "0",
                     _met(r["writes"] == 0)))
    api = k.get("kube_api", {})
    walls = []
    if "cold" in k:
        walls.append(f"{k['cold']['seconds']:.1f} s at the default limit ({api.get('qps')}/s, "
                     f"burst {api.get('burst')})")
    elif cold:
        bound = max(0, cold["writes"] - (api.get("burst") or 0)) / (api.get("qps") or 1)
        walls.append(f"at the default limit at least {bound:.0f} s (writes - burst) / qps, "
                     "not run")
    if "cold_unlimited" in k:
        walls.append(f"{k['cold_unlimited']['seconds']:.1f} s unlimited")
    if "restart" in k:
        walls.append(f"restart {k['restart']['seconds']:.1f} s")
    if walls:
        rows.append(("cluster mode: cold sync wall time", "; ".join(walls), "rate-bound at "
                     "the default limit", "-"))
    return rows


def render(data: dict[str, Any], image: str) -> str:
    pts = ordered(data)
    base = next((p["cpu_per_object_ms"] for _, p in pts if p["shape"] != "tiny"), None)
    parts = [shape_table(k, p, base) for k, p in pts if p["shape"] != "tiny"]
    commands = sorted({p["command"] for _, p in pts if p["shape"] != "tiny"})
    parts.append("Measured by " + "; ".join(f"`{c}`" for c in commands) + " (the details of "
                 "each run are its block under History).")
    parts.append(f"![time and peak memory against cluster size]({image})")
    return "\n\n".join(parts) + "\n"


def plot(data: dict[str, Any], path: Path = PLOT) -> bool:
    """Time (raw, cold, restart) and peak RSS against objects; False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    pts = [p for _, p in ordered(data) if p["shape"] != "tiny"]
    pts.sort(key=lambda p: p["objects"])
    x = [p["objects"] for p in pts]
    fig, (t_ax, m_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("raw", "raw limit"), ("cold", "cold sync"),
                       ("restart", "restart, nothing changed")):
        t_ax.plot(x, [p[key] for p in pts], marker="o", label=label)
    for ax in (t_ax, m_ax):
        ax.set_xscale("log")
        ax.set_xlabel("Kubernetes objects")
        ax.grid(True, which="both", alpha=0.3)
    t_ax.set_yscale("log")
    t_ax.set_ylabel("seconds")
    t_ax.set_title("time")
    t_ax.legend()
    m_ax.plot(x, [p["peak_rss_mb"] for p in pts], marker="o", color="tab:red",
              label="peak RSS")
    m_ax.axhline(RSS_LIMIT_MB, color="gray", linestyle="--", label="target 1.5 GB")
    m_ax.set_ylabel("MB")
    m_ax.set_title("controller peak memory")
    m_ax.legend()
    for p in pts:
        t_ax.annotate(p["shape"], (p["objects"], p["cold"]), textcoords="offset points",
                      xytext=(4, 4), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def replace_block(text: str, block: str) -> str:
    """`block` between the current markers of `text` (appended when they are missing)."""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        return f"{head}{BEGIN}\n{block}{END}{tail}"
    return text.rstrip("\n") + f"\n\n{BEGIN}\n{block}{END}\n"


def update_current(results_path: Path, results: list[dict[str, Any]], command: str) -> None:
    """Merge this run into current.json (next to `results_path`), redraw the plot, rewrite
    the current block of `results_path` and, for bench/RESULTS.md, of README.md."""
    folder = results_path.parent
    data = merge(results, command, folder / DATA.name)
    plot(data, folder / PLOT.name)
    results_path.write_text(replace_block(results_path.read_text(),
                                          render(data, PLOT.name)))
    readme = HERE.parent / "README.md"
    if results_path.resolve() == (HERE / "RESULTS.md").resolve() and readme.exists():
        readme.write_text(replace_block(readme.read_text(), render(data, "bench/results.png")))
