"""What the benchmark reads on the NB side, from its own sockets: the Load_Balancer rows the
controller owns and their check against the expected backends, the independent observer's
log of every vips change, and from it the churn's event-to-commit latency."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import ovsdb, workload
from bench.report import pct
from topology import model, naming


# -- NB-side facts ----------------------------------------------------------------------------
@dataclass
class LbLog:
    """Every Load_Balancer vips change the observer saw: owner -> [(time, vips)]; and every
    switch port inserted or deleted: "port:<name>" -> [(time, "present" or None)]."""

    on: bool = False
    changes: dict[str, list[tuple[float, str | None]]] = field(
        default_factory=lambda: defaultdict(list))

    def __call__(self, now: float, owner: str, value: str | None) -> None:
        if self.on:
            self.changes[owner].append((now, value))

    def port(self, now: float, name: str, value: str | None) -> None:
        self(now, f"port:{name}", value)


def observer_tables() -> dict[str, list[str] | None]:
    tables: dict[str, list[str] | None] = {t: None for t in model.TABLES}
    tables["Load_Balancer"] = ["name", "vips", "external_ids"]
    return tables


def nb_file(state) -> Path:  # noqa: ANN001
    return Path(state.directory) / "nb.db"


def select_lbs(client: ovsdb.Client) -> tuple[dict[str, str | None], dict[str, str]]:
    """owner -> vips value, owner -> content hash, of every Load_Balancer we own."""
    (res,) = client.transact([{"op": "select", "table": "Load_Balancer", "where": [],
                               "columns": ["vips", "external_ids"]}])
    vips, hashes = {}, {}
    for row in res["rows"]:
        ids = dict(row["external_ids"][1])
        owner = ids.get(naming.OWNER)
        if owner is None:
            continue
        pairs = row["vips"][1]
        vips[owner] = pairs[0][1] if len(pairs) == 1 else None
        hashes[owner] = ids.get(naming.HASH, "")
    return vips, hashes


def check_lbs(client: ovsdb.Client, shape: workload.Shape) -> dict[str, Any]:
    """Does NB hold exactly the expected LB of every service (and the raw rows' hash)?"""
    vips, hashes = select_lbs(client)
    wrong, hash_diff = 0, 0
    for i in range(shape.services + shape.big_services):
        key = workload.service_key(shape, i)
        if vips.get(key) != workload.vips_value(shape, i):
            wrong += 1
        elif hashes.get(key) != workload.lb_row(shape, i).content_hash:
            hash_diff += 1
    return {"lbs": len(vips), "wrong_vips": wrong, "hash_differs_from_builder": hash_diff}


def wait_updates_settle(observer: ovsdb.Observer, quiet: float = 0.3,
                        timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last, since = observer.snapshot_updates(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now_count = observer.snapshot_updates()
        if now_count != last:
            last, since = now_count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def wait_for(predicate, timeout: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# -- churn analysis ---------------------------------------------------------------------------
def analyse_churn(phase: dict[str, Any], lb_log: LbLog) -> dict[str, Any]:
    """Event-to-commit latency: for each write, the first time the observer saw its LB with
    this write's backends or a later write's (a coalesced update commits both)."""
    by_owner: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for t_write, owner, expected in phase["events"]:
        by_owner[owner].append((t_write, expected))
    latencies: list[float] = []
    port_latencies: list[float] = []
    spans: list[tuple[float, float]] = []  # (write, commit) of each event
    commit_times: list[float] = []
    lost = 0
    for owner, events in by_owner.items():
        seen = [(t, v) for t, v in lb_log.changes.get(owner, []) if t >= events[0][0]]
        pos = 0  # first pending event
        for t_seen, value in seen:
            match = None
            for j in range(pos, len(events)):
                if events[j][0] > t_seen:
                    break
                if events[j][1] == value:
                    match = j
            if match is None:
                continue
            for j in range(pos, match + 1):
                latencies.append(t_seen - events[j][0])
                if owner.startswith("port:"):
                    port_latencies.append(t_seen - events[j][0])
                spans.append((events[j][0], t_seen))
            commit_times.append(t_seen)
            pos = match + 1
        lost += len(events) - pos
    writes = [e[0] for e in phase["events"]]
    span = (max(writes) - min(writes)) if len(writes) > 1 else 0.0
    commits_in_window = [t for t in commit_times if t <= max(writes)] if writes else []
    third = span / 3 if span else 0
    queue = phase["queue"]
    depth = [q for _, q, _ in queue]
    thirds = [[q for t, q, _ in queue if min(writes) + k * third <= t < min(writes)
               + (k + 1) * third] for k in range(3)] if writes and third else [[], [], []]
    pauses = [(t, t + d) for t, d, _ in phase.get("gc_pauses", []) if d >= 0.02]
    slow = [(a, b) for a, b in spans if b - a > 0.05]
    slow_in_gc = sum(1 for a, b in slow if any(p0 < b and p1 > a for p0, p1 in pauses))
    return {
        "gc_pauses_over_20ms": len(pauses),
        "gc_pause_max_ms": max((d for _, d, _ in phase.get("gc_pauses", [])), default=0) * 1000,
        "slow_events": len(slow), "slow_events_during_gc": slow_in_gc,
        "rate": phase["rate"], "offered": phase["offered"], "seconds": phase["seconds"],
        "achieved_rate": (len(writes) - 1) / span if span else 0.0,
        "late_writes": phase["late_writes"],
        "commit_rate": len(commits_in_window) / span if span else 0.0,
        "p50_ms": pct(latencies, 50) * 1000, "p99_ms": pct(latencies, 99) * 1000,
        "max_ms": (max(latencies) * 1000) if latencies else float("nan"),
        "committed": len(latencies), "lost": lost,
        "port_events": sum(1 for e in phase["events"] if e[1].startswith("port:")),
        "port_p50_ms": pct(port_latencies, 50) * 1000,
        "port_p99_ms": pct(port_latencies, 99) * 1000,
        "queue_max": max(depth) if depth else 0,
        "queue_mean_by_third": [round(statistics.fmean(x), 1) if x else 0.0 for x in thirds],
        "drain_after_last_write_s": phase["drained_at"] - phase["end"],
        "timers": phase.get("timers", {}),
        "stages": {name: {"p50_ms": pct(v, 50) * 1000, "p99_ms": pct(v, 99) * 1000}
                   for name, v in phase.get("stages", {}).items()},
    }
