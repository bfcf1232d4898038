"""The datapath-flow chain walk of scripts/ycloud_lab/recirc.py, on the flows ovs-vswitchd
installed on the gateway chassis for a default-VPC pod reaching a multi-VPC EIP through the
transit switch (before issue 18 item 6; `ovs-appctl dpctl/dump-flows` on gw1): a tunnel pop
and six recirculations, the last one past dpif-netdev's limit."""

from __future__ import annotations

from pathlib import Path

from ycloud_lab.recirc import MAX_RECIRC_DEPTH, DpFlow, _chain, split_top

DUMP = Path(__file__).parent / "data" / "dpflows_multi_from_default_gw1.txt"


def flows() -> list[DpFlow]:
    return [f for f in map(DpFlow.parse, DUMP.read_text().splitlines()) if f is not None]


def test_split_top_keeps_nested_parentheses() -> None:
    assert split_top("ct(commit,zone=39,nat(src)),recirc(0x4f)") == \
        ["ct(commit,zone=39,nat(src))", "recirc(0x4f)"]


def test_the_request_chain_is_followed_through_every_recirculation() -> None:
    all_flows = flows()
    assert len(all_flows) == 7
    start = next(f for f in all_flows if f.recirc_id == 0 and not f.pops
                 and f.matches("10.16.0.2", "172.18.0.60"))
    assert start.tunneled and not start.matches("10.17.0.2", "172.18.0.60")
    depth, path = _chain(all_flows, start)
    # tunnel pop (1) + six recirculations: the sixth runs at depth 6, which dpif-netdev refuses
    assert depth == 7 > MAX_RECIRC_DEPTH
    assert [f.recirc_id for f in path] == [0, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e]
    assert [s for f in path for s in f.steps()][:3] == [
        "ct(commit,zone=14,nat(src=100.88.0.3))", "ct(zone=39,nat)", "hash(l4(0))"]
