"""DIR/state.json: everything a lab created, so `down` can remove exactly that.

Names are recorded before the thing is created, so a failed `up` leaves a state that `down`
can still clean. Writers (the CLI, the demo, tests) serialise through a flock on
DIR/.lock; the lock is re-entrant inside one process.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ycloud_lab.proc import LabError, ProcRecord

STATE_FILE = "state.json"
LOCK_FILE = ".lock"
# Entries `down` removes from DIR; DIR itself goes only if nothing else is left in it.
OWNED_ENTRIES = (STATE_FILE, LOCK_FILE, "central", "chassis", "run")


def lab_id_for(directory: str | os.PathLike[str]) -> str:
    """Short id derived from the lab directory; prefixes every namespace of this lab."""
    digest = hashlib.blake2b(str(Path(directory).resolve()).encode(), digest_size=3).hexdigest()
    return f"yl{digest}"


@dataclass
class ChassisState:
    name: str
    role: str
    namespace: str
    dir: str
    tunnel_ip: str
    stopped: bool = False  # stopped on purpose by stop-chassis


@dataclass
class PortBinding:
    port: str
    role: str  # pod | vnic | node
    chassis: str
    namespace: str  # pod namespace, or the chassis namespace for node ports
    ifname: str  # the OVS-side interface name (veth end or internal port) in the chassis ns
    fingerprint: str
    mac: str
    ips: list[str] = field(default_factory=list)  # "ip/prefix"


@dataclass
class LabState:
    lab_id: str
    directory: str
    shape_path: str
    phase: str = "starting"  # starting | up | failed
    nb_remote: str = ""
    sb_remote: str = ""
    namespaces: list[str] = field(default_factory=list)
    infra: dict[str, str] = field(default_factory=dict)  # underlay/extnet -> namespace
    hosts: dict[str, str] = field(default_factory=dict)  # external host -> namespace
    chassis: dict[str, ChassisState] = field(default_factory=dict)
    processes: list[ProcRecord] = field(default_factory=list)
    ports: dict[str, PortBinding] = field(default_factory=dict)
    up_seconds: float = 0.0
    seq: int = 0  # counter for unique names of servers and held connections

    @classmethod
    def from_json(cls, text: str) -> LabState:
        data = json.loads(text)
        data["chassis"] = {k: ChassisState(**v) for k, v in data.get("chassis", {}).items()}
        data["processes"] = [ProcRecord(**p) for p in data.get("processes", [])]
        data["ports"] = {k: PortBinding(**v) for k, v in data.get("ports", {}).items()}
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def ns(self, name: str) -> str:
        """Namespace name for a lab-level name (chassis, host, infra, pod)."""
        return f"{self.lab_id}-{name}"

    def record_ns(self, ns: str) -> None:
        if ns not in self.namespaces:
            self.namespaces.append(ns)

    def forget_ns(self, ns: str) -> None:
        if ns in self.namespaces:
            self.namespaces.remove(ns)

    def next_tag(self, kind: str) -> str:
        self.seq += 1
        return f"{self.lab_id}-{kind}{self.seq}"


class StateStore:
    """Load/save DIR/state.json under an inter-process lock."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.path = directory / STATE_FILE
        self._tlock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def locked(self, *, create: bool = False) -> Iterator[None]:
        """Hold the lab lock. Only `up` (create=True) makes DIR; elsewhere a missing DIR means
        there is no lab, and recreating it would leave an empty DIR after `down`."""
        with self._tlock:
            if self._depth == 0:
                if create:
                    self.dir.mkdir(parents=True, exist_ok=True)
                elif not self.dir.is_dir():
                    raise LabError(f"no lab in {self.dir} (run `scripts/lab up --dir "
                                   f"{self.dir}`)")
                self._fd = os.open(self.dir / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                    os.close(self._fd)
                    self._fd = None

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> LabState:
        try:
            return LabState.from_json(self.path.read_text())
        except FileNotFoundError:
            raise LabError(f"no lab in {self.dir} (run `scripts/lab up --dir {self.dir}`)"
                           ) from None
        except (ValueError, TypeError) as exc:
            raise LabError(f"corrupt lab state {self.path}: {exc}") from None

    def load_or_none(self) -> LabState | None:
        try:
            return self.load()
        except LabError:
            return None

    def save(self, state: LabState) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(state.to_json())
        tmp.replace(self.path)
