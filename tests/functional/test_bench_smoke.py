"""The benchmark harness stays green: `python -m bench --quick` (300 services, 5 s of churn
per rate) runs every measurement on its own sandbox and its numbers are consistent. It times
nothing against a limit: speed is read in bench/RESULTS.md, not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_runs_every_measurement(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--dir", str(tmp_path / "work"),
         "--json", str(out), "--log-level", "warning", "--cold-runs", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = json.loads(out.read_text())
    assert result["services"] == 300
    cold, restart = result["cold"], result["restart"]
    assert cold["rc"] == 0 and restart["rc"] == 0
    assert cold["check"] == {"lbs": 300, "wrong_vips": 0, "hash_differs_from_builder": 0}
    # the raw limit inserts every row kind the cold sync wrote (captured from the NB)
    assert {"Load_Balancer", "Logical_Switch_Port", "Logical_Router"} <= set(result["raw_tables"])
    assert result["raw_rows"] == sum(result["raw_tables"].values()) > 300
    assert cold["reused"] > 0  # the NB phase took the settle pass's outcomes
    # NB writes begin in the settle pass: the NB phase is more than the full sync after it
    assert cold["nb_phase"] > cold["full_sync"] > 0
    # two rounds of (raw limit, cold sync); the table shows the round of the median ratio
    assert len(result["cold_rounds"]) == 2
    assert (result["raw"], cold["e2e"]) in [(r["raw"], r["e2e"]) for r in result["cold_rounds"]]
    assert "cold sync in 2 rounds" in proc.stdout
    # the reconciles' time comes from the controller's own histogram
    assert result["churn"][-1]["timers"]["reconcile (all kinds)"] > 0
    assert restart["nb_bytes_written"] == 0 and restart["observed_updates"] == 0
    assert restart["controller_transactions"] == 0
    assert [c["rate"] for c in result["churn"]] == [100, 1000]
    assert all(c["lost"] == 0 and c["committed"] > 0 for c in result["churn"])
    # churn mixes pod creations/deletions (their switch ports seen in NB) with endpoint moves
    assert all(c["port_events"] > 0 for c in result["churn"])
    assert result["cluster"]["peak_rss_mb"] > 0
    assert "| 300 |" in proc.stdout  # the table that goes into RESULTS.md
