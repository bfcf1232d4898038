"""DPU / SmartNIC mode: a pool of (VF netdev, representor) pairs.

With --hw-offload and --vf-pool, ADD moves a free VF netdev into the pod's netns (renamed to
CNI_IFNAME, with the pod's MAC, addresses and routes) and plugs its representor into br-int:
the datapath (hardware, when OVS offloads flows) switches the pod's traffic on the
representor. Which pair a pod holds is recorded on the representor's Interface in OVS
(external_ids naming.REPRESENTOR = the VF), so a restarted agent knows it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from topology import naming


class PoolExhausted(RuntimeError):
    pass


@dataclass(frozen=True)
class VfPair:
    vf: str
    representor: str


def parse_pairs(specs: list[str]) -> tuple[VfPair, ...]:
    """`vf:representor` items (each may be a comma-separated list)."""
    pairs = []
    for spec in specs:
        for item in (s.strip() for s in spec.split(",")):
            if not item:
                continue
            vf, sep, rep = item.partition(":")
            if not sep or not vf or not rep:
                raise ValueError(f"--vf-pool item {item!r} is not VF:REPRESENTOR")
            pairs.append(VfPair(vf, rep))
    names = [n for p in pairs for n in (p.vf, p.representor)]
    if len(set(names)) != len(names):
        raise ValueError("--vf-pool names a netdev twice")
    return tuple(pairs)


class VfPool:
    def __init__(self, pairs: tuple[VfPair, ...]):
        self.pairs = pairs
        self.lock = threading.Lock()

    def free(self, plugged: list[dict]) -> VfPair:
        """A pair whose representor no interface of ours holds (call under `lock`)."""
        used = {r["name"] for r in plugged if naming.REPRESENTOR in r["external_ids"]}
        for pair in self.pairs:
            if pair.representor not in used:
                return pair
        raise PoolExhausted(f"all {len(self.pairs)} VF/representor pairs are in use")

    def vf_of(self, representor: str) -> str | None:
        return next((p.vf for p in self.pairs if p.representor == representor), None)
