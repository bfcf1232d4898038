"""A small cluster that changes at random, built so that its objects contend.

`World` holds a fixed base (namespaces, a node, two VPCs, a subnet, an EIP pool) and
slots, each empty or holding one variant of an object; the variants of the slots ask for
the same things: overlapping Subnet CIDRs in one VPC (under names that sort before and
after the holder's), a namespace bound to two VPCs, overlapping EipPool CIDRs, one static
pod address, one ClusterIP, one EIP. `step` fills, changes or empties one slot. The same
seed gives the same sequence, and `history` says it, so a failure prints what to replay.

A world is written as one YAML file per object (manifests mode, `write`) or applied to an
API store (cluster mode, `apply`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]


def _ns(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _vpc(name: str, namespaces: list[str]) -> Obj:
    return {"apiVersion": "iaas.yusur.io/v1", "kind": "Vpc", "metadata": {"name": name},
            "spec": {"namespaces": namespaces, "natOutgoing": True}}


def _subnet(name: str, vpc: str, cidr: str, namespaces: list[str] | None = None) -> Obj:
    spec: dict[str, Any] = {"vpc": vpc, "cidrBlock": cidr}
    if namespaces:
        spec["namespaces"] = namespaces
    return {"apiVersion": "iaas.yusur.io/v1", "kind": "Subnet", "metadata": {"name": name},
            "spec": spec}


def _pool(name: str, cidr: str, gateway: str, uplink: str, default: bool) -> Obj:
    return {"apiVersion": "iaas.yusur.io/v1", "kind": "EipPool", "metadata": {"name": name},
            "spec": {"cidr": cidr, "gateway": gateway, "uplinkIP": uplink,
                     "providerNetwork": "physnet", "gatewayNodes": ["node1"],
                     "default": default}}


def _pod(name: str, namespace: str, ip: str | None = None, app: str = "web") -> Obj:
    md: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"app": app}}
    if ip:
        md["annotations"] = {"ycloud.io/ip_address": ip}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md,
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running"}}


def _service(name: str, namespace: str, cluster_ip: str | None = None,
             eip: str | None = None, lb: bool = False) -> Obj:
    spec: dict[str, Any] = {"selector": {"app": "web"},
                            "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                       "protocol": "TCP"}]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    md: dict[str, Any] = {"name": name, "namespace": namespace}
    if lb:
        spec.update(type="LoadBalancer", allocateLoadBalancerNodePorts=False)
        md["annotations"] = {"ycloud.io/eip-pool": "pool1"}
        if eip:
            spec["loadBalancerIP"] = eip
    return {"apiVersion": "v1", "kind": "Service", "metadata": md, "spec": spec}


BASE: list[Obj] = [
    _ns("ns-a"), _ns("ns-b"),
    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1"},
     "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.11"}]}},
    _vpc("vpc-a", ["ns-a"]), _vpc("vpc-b", ["ns-b"]),
    _subnet("sub-b", "vpc-b", "10.88.0.0/24", ["ns-b"]),
    _pool("pool1", "172.30.0.0/24", "172.30.0.1", "172.30.0.2", True),
]

# slot -> its variants (None: the slot is empty, the object deleted)
SLOTS: dict[str, list[Obj | None]] = {
    "vpc-0": [None, _vpc("vpc-0", ["ns-a"])],  # binds ns-a, which vpc-a binds
    "sub-a": [None, _subnet("sub-a", "vpc-a", "10.77.0.0/24", ["ns-a"]),
              _subnet("sub-a", "vpc-a", "10.77.0.128/25", ["ns-a"])],
    "aaa": [None, _subnet("aaa", "vpc-a", "10.77.0.0/26"),
            _subnet("aaa", "vpc-a", "10.77.1.0/24"),
            _subnet("aaa", "vpc-a", "10.77.0.0/24", ["ns-a"])],
    "zzz": [None, _subnet("zzz", "vpc-a", "10.77.0.0/25"), _subnet("zzz", "vpc-a", "10.77.2.0/24")],
    "pool0": [None, _pool("pool0", "172.30.0.0/25", "172.30.0.1", "172.30.0.3", False)],
    "p1": [None, _pod("p1", "ns-a"), _pod("p1", "ns-a", "10.77.0.10")],
    "p2": [None, _pod("p2", "ns-a"), _pod("p2", "ns-a", "10.77.0.10")],
    "p3": [None, _pod("p3", "ns-a", "10.77.0.11")],
    "q1": [None, _pod("q1", "ns-b")],
    "web": [None, _service("web", "ns-a", "10.96.7.7"), _service("web", "ns-a", "10.96.7.8")],
    "web2": [None, _service("web2", "ns-a", "10.96.7.7"), _service("web2", "ns-a")],
    "lb1": [None, _service("lb1", "ns-a", "10.96.8.1", "172.30.0.50", lb=True),
            _service("lb1", "ns-a", "10.96.8.1", "172.30.0.51", lb=True)],
    "lb2": [None, _service("lb2", "ns-a", "10.96.8.2", "172.30.0.50", lb=True),
            _service("lb2", "ns-a", "10.96.8.2", lb=True)],
}


class World:
    def __init__(self, seed: int):
        self.seed = seed
        self.rng = random.Random(seed)
        self.slots: dict[str, int] = dict.fromkeys(SLOTS, 0)
        self.history: list[str] = []

    def objects(self) -> dict[str, Obj]:
        """File name (or slot) -> object, base included."""
        out = {f"base-{i:02d}-{o['kind'].lower()}-{o['metadata']['name']}": o
               for i, o in enumerate(BASE)}
        for slot, variant in self.slots.items():
            obj = SLOTS[slot][variant]
            if obj is not None:
                out[f"slot-{slot}"] = obj
        return out

    def step(self) -> str:
        """Fill, change or empty one slot; returns what it did."""
        slot = self.rng.choice(sorted(SLOTS))
        choices = [i for i in range(len(SLOTS[slot])) if i != self.slots[slot]]
        self.slots[slot] = self.rng.choice(choices)
        what = f"{slot}={self.slots[slot]}"
        self.history.append(what)
        return what

    def fill(self, share: float) -> None:
        """Start with about `share` of the slots filled."""
        for slot in sorted(SLOTS):
            if self.rng.random() < share:
                self.slots[slot] = self.rng.randrange(1, len(SLOTS[slot]))
        self.history.append(f"start {dict(sorted(self.slots.items()))}")

    def replay(self) -> str:
        return f"seed {self.seed}: " + "; ".join(self.history)

    # -- manifests mode ---------------------------------------------------------------------
    def write(self, directory: Path) -> None:
        """The directory holds exactly this world's objects, one file each (a file whose
        content is unchanged is not rewritten)."""
        directory.mkdir(parents=True, exist_ok=True)
        want = {f"{name}.yaml": yaml.safe_dump(obj, sort_keys=True)
                for name, obj in self.objects().items()}
        for path in directory.glob("*.yaml"):
            if path.name not in want:
                path.unlink()
        for name, text in want.items():
            path = directory / name
            if not path.exists() or path.read_text() != text:
                path.write_text(text)

    # -- cluster mode -------------------------------------------------------------------------
    def apply(self, applied: dict[str, Obj], create: Callable[[Obj], None],
              replace: Callable[[Obj, Obj], None], delete: Callable[[Obj], None]) -> None:
        """Make the API store hold this world, given what was applied before (updated)."""
        want = self.objects()
        for name in sorted(set(applied) - set(want)):
            delete(applied.pop(name))
        for name, obj in want.items():
            old = applied.get(name)
            if old is None:
                create(obj)
            elif old != obj:
                replace(old, obj)
            applied[name] = obj
