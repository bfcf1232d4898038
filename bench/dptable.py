"""The dataplane table of `python -m bench --dataplane`: iperf3 JSON parsing, the per-round
ratios to the direct path, and the Markdown block (pure functions; bench/dataplane.py runs
the lab and the tools).

A round measures every path once, one after the other; a path's ratio is its value divided
by the baseline's value of the SAME round, and the table shows the median over rounds of the
values and of those ratios (the machine is shared: the ratios of one round share its load).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# metric -> (column head, unit, higher is better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "gbps": ("bandwidth", "Gbit/s", True),
    "kpps": ("packet rate", "kpps", True),
    "lat_us": ("latency p50", "us", False),
    "rps": ("requests/s", "req/s", True),
}
TARGET = 0.9  # every Service path >= 0.9x direct on these
TARGET_METRICS = ("gbps", "rps")


class ToolError(RuntimeError):
    """A measuring tool failed (its own error message)."""


def iperf_tcp_gbps(doc: Mapping[str, Any]) -> float:
    """Received TCP throughput of an `iperf3 -J` client run, Gbit/s."""
    if doc.get("error"):
        raise ToolError(f"iperf3: {doc['error']}")
    return float(doc["end"]["sum_received"]["bits_per_second"]) / 1e9


def iperf_udp_kpps(doc: Mapping[str, Any]) -> float:
    """Packets the server received per second (sent minus lost, as the server reported them
    to the client) of an `iperf3 -u -J` client run, thousands per second."""
    if doc.get("error"):
        raise ToolError(f"iperf3: {doc['error']}")
    end = doc["end"]
    total = end["sum"]
    received = int(total["packets"]) - int(total["lost_packets"])
    seconds = float(total.get("seconds") or (total["end"] - total["start"]))
    if seconds <= 0:
        raise ToolError("iperf3: a UDP run of no duration")
    return received / seconds / 1000.0


def pmd_stats(text: str) -> tuple[int, int]:
    """(packets received, packet recirculations) summed over the threads of
    `ovs-appctl dpif-netdev/pmd-stats-show` (the main thread on a netdev bridge without PMDs)."""
    packets = recirculations = 0
    for line in text.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "packets received":
            packets += int(value)
        elif key == "packet recirculations":
            recirculations += int(value)
    return packets, recirculations


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


Round = Mapping[str, Mapping[str, float | None]]  # path id -> metric -> value (None: failed)


@dataclass(frozen=True)
class Cell:
    value: float | None  # median over rounds
    ratio: float | None  # median over rounds of value / baseline's value in that round
    runs: int  # rounds with a value
    spread: tuple[float, float] | None = None  # quartiles of those ratios (>= 2 rounds)


def aggregate(rounds: Sequence[Round], baseline: str) -> dict[str, dict[str, Cell]]:
    """path -> metric -> Cell, ratios to `baseline`."""
    paths: list[str] = []
    for rnd in rounds:
        paths += [p for p in rnd if p not in paths]
    out: dict[str, dict[str, Cell]] = {}
    for path in paths:
        out[path] = {}
        for metric in METRICS:
            values, ratios = [], []
            for rnd in rounds:
                v = (rnd.get(path) or {}).get(metric)
                base = (rnd.get(baseline) or {}).get(metric)
                if v is None:
                    continue
                values.append(v)
                if base:
                    ratios.append(v / base)
            spread = None
            if len(ratios) >= 2:
                q = statistics.quantiles(ratios, n=4, method="inclusive")
                spread = (q[0], q[2])
            out[path][metric] = Cell(median(values), median(ratios), len(values), spread)
    return out


def met(cell: Cell) -> bool:
    return cell.ratio is not None and cell.ratio >= TARGET


def _num(v: float | None) -> str:
    if v is None:
        return "failed"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}" if v < 1 else f"{v:.1f}"


def _cell(c: Cell, is_baseline: bool) -> str:
    if is_baseline or c.value is None or c.ratio is None:
        return _num(c.value)
    spread = f", {c.spread[0]:.2f}-{c.spread[1]:.2f}" if c.spread else ""
    return f"{_num(c.value)} ({c.ratio:.2f}x{spread})"


def render_table(table: Mapping[str, Mapping[str, Cell]], labels: Mapping[str, str],
                 baseline: str, services: Sequence[str]) -> str:
    """Markdown: rows = paths, columns = the metrics (value and ratio to the baseline), and
    whether the target holds on the Service paths."""
    head = ["path"] + [f"{METRICS[m][0]} ({METRICS[m][1]})" for m in METRICS] + \
        [f">= {TARGET}x on {' and '.join(METRICS[m][0] for m in TARGET_METRICS)}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for path, cells in table.items():
        verdict = "baseline" if path == baseline else "-"
        if path in services:
            verdict = "met" if all(met(cells[m]) for m in TARGET_METRICS) else "NOT met (" + \
                ", ".join(METRICS[m][0] for m in TARGET_METRICS if not met(cells[m])) + ")"
        row = [labels.get(path, path)] + [_cell(cells[m], path == baseline) for m in METRICS]
        lines.append("| " + " | ".join(row + [verdict]) + " |")
    return "\n".join(lines) + "\n"


def below_target(table: Mapping[str, Mapping[str, Cell]], services: Sequence[str]
                 ) -> list[str]:
    """'path metric ratio' for every Service path under the target."""
    return [f"{p} {m} {table[p][m].ratio:.2f}x" if table[p][m].ratio is not None
            else f"{p} {m} failed"
            for p in services for m in TARGET_METRICS if p in table and not met(table[p][m])]
