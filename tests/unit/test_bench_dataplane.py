"""The dataplane bench's arithmetic (bench/dptable.py): iperf3 3.12's JSON (the fields it
reads, as `iperf3 -J` prints them), ratios to the direct path of the same round, and the
table with the 0.9x target marked."""

from __future__ import annotations

import pytest

from bench import dptable

TCP = {"start": {"tcp_mss_default": 1348},
       "end": {"sum_sent": {"bits_per_second": 2.6e8, "retransmits": 12},
               "sum_received": {"seconds": 3.0, "bits_per_second": 2.5e8}}}
UDP = {"end": {"sum": {"start": 0, "end": 3.0, "seconds": 3.0, "bytes": 3_840_000,
                       "bits_per_second": 1.024e7, "jitter_ms": 0.1, "lost_packets": 30_000,
                       "packets": 60_000, "lost_percent": 50.0, "sender": True}}}


def test_tcp_bandwidth_is_what_the_receiver_got() -> None:
    assert dptable.iperf_tcp_gbps(TCP) == pytest.approx(0.25)


def test_packet_rate_counts_received_packets_only() -> None:
    # 60k sent, 30k lost, in 3 s: 10 kpps arrived
    assert dptable.iperf_udp_kpps(UDP) == pytest.approx(10.0)


def test_an_iperf3_error_is_raised_with_its_message() -> None:
    with pytest.raises(dptable.ToolError, match="unable to connect"):
        dptable.iperf_tcp_gbps({"start": {}, "end": {},
                                "error": "unable to connect to server: Connection refused"})


def rounds() -> list[dict[str, dict[str, float | None]]]:
    # the machine got twice as slow in round 2: the ratios stay, the values do not
    return [
        {"direct": {"gbps": 1.0, "kpps": 100.0, "lat_us": 100.0, "rps": 1000.0},
         "svc": {"gbps": 0.95, "kpps": 80.0, "lat_us": 120.0, "rps": 800.0}},
        {"direct": {"gbps": 0.5, "kpps": 50.0, "lat_us": 200.0, "rps": 500.0},
         "svc": {"gbps": 0.47, "kpps": 40.0, "lat_us": 240.0, "rps": None}},
        {"direct": {"gbps": 1.0, "kpps": 100.0, "lat_us": 100.0, "rps": 1000.0},
         "svc": {"gbps": 0.93, "kpps": 80.0, "lat_us": 120.0, "rps": 820.0}},
    ]


def test_ratios_are_taken_within_a_round_then_the_median() -> None:
    table = dptable.aggregate(rounds(), "direct")
    svc = table["svc"]
    assert svc["gbps"].ratio == pytest.approx(0.94)  # 0.95, 0.94, 0.93
    assert svc["gbps"].value == pytest.approx(0.93)  # median of 0.95, 0.47, 0.93
    assert svc["lat_us"].ratio == pytest.approx(1.2)
    assert svc["rps"].runs == 2 and svc["rps"].ratio == pytest.approx(0.81)
    assert table["direct"]["gbps"].ratio == pytest.approx(1.0)
    assert svc["gbps"].spread == pytest.approx((0.935, 0.945))  # quartiles of the 3 ratios
    assert svc["rps"].spread == pytest.approx((0.805, 0.815))


def test_the_table_marks_the_target_per_service_path() -> None:
    table = dptable.aggregate(rounds(), "direct")
    text = dptable.render_table(table, {"direct": "pod -> pod", "svc": "pod -> ClusterIP"},
                                "direct", ["svc"])
    lines = text.splitlines()
    assert lines[0].startswith("| path | bandwidth (Gbit/s) | packet rate (kpps)")
    assert lines[2] == "| pod -> pod | 1.0 | 100 | 100 | 1000 | baseline |"
    # the ratio's quartiles over rounds follow it
    assert lines[3] == ("| pod -> ClusterIP | 0.93 (0.94x, 0.94-0.94) | 80.0 (0.80x, "
                        "0.80-0.80) | 120 (1.20x, 1.20-1.20) | 810 (0.81x, 0.81-0.81) | "
                        "NOT met (requests/s) |")
    assert dptable.below_target(table, ["svc"]) == ["svc rps 0.81x"]


def test_a_path_that_never_answered_is_failed_not_met() -> None:
    table = dptable.aggregate([{"direct": {"gbps": 1.0}, "svc": {"gbps": None}}], "direct")
    assert table["svc"]["gbps"].value is None
    assert dptable.below_target(table, ["svc"]) == ["svc gbps failed", "svc rps failed"]


PMD_STATS = """main thread:
  packets received: 13514
  packet recirculations: 20209
  avg. datapath passes per packet: 2.50
  emc hits: 38
  megaflow hits: 519
  miss with success upcall: 95
pmd thread numa_id 0 core_id 1:
  packets received: 6
  packet recirculations: 1
"""


def test_datapath_counters_sum_every_thread() -> None:
    assert dptable.pmd_stats(PMD_STATS) == (13520, 20210)
