"""The lab's source ports for requests (ycloud_lab.lab.Lab.source_ports): blocks that do not
overlap, inside SOURCE_PORTS, in turn."""

from __future__ import annotations

from pathlib import Path

from ycloud_lab import Lab
from ycloud_lab.lab import SOURCE_PORTS


def test_source_port_blocks_stay_in_range_and_do_not_overlap(tmp_path: Path) -> None:
    lab = Lab(directory=tmp_path / "lab")  # nothing started: the allocation is in memory
    count = 7000  # three blocks and a bit fill the range: the fourth starts it again
    blocks = [range(first, first + count) for first in
              (lab.source_ports(count) for _ in range(4))]
    for block in blocks:
        assert SOURCE_PORTS[0] <= block.start and block.stop <= SOURCE_PORTS[1], block
    for a, b in zip(blocks, blocks[1:], strict=False):
        assert not set(a) & set(b), (a, b)  # back to back, never one port twice in a row
    assert any(b.start == SOURCE_PORTS[0] for b in blocks[1:])  # came round
