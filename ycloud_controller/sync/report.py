"""What a sync came to: `SyncReport` (of one full sync, batch or verification), `Verdict`
(what one object's reconcile came to once NB answered) and `Verdicts` (each object's latest
verdict since the last full sync, so that `verify` reconciles only what is still open)."""

from __future__ import annotations

from dataclasses import dataclass, field

from topology.plan import Plan
from ycloud_controller.triggers import Key

OK = "ok"
INVALID = "invalid"
REFUSED = "refused"
RETRYING = "retrying"


@dataclass(frozen=True)
class Verdict:
    state: str  # OK, INVALID (bad input, not retried), REFUSED (by NB), RETRYING
    message: str = ""

    @property
    def result(self) -> str:
        """The `result` label of ycloud_reconciles_total."""
        return RESULTS[self.state]

    @property
    def done(self) -> bool:
        """Nothing to retry: ok, or invalid until the object changes."""
        return self.state in DONE


RESULTS = {OK: OK, INVALID: INVALID, REFUSED: REFUSED, RETRYING: "retry"}  # by state
DONE = frozenset({OK, INVALID})  # states with nothing to retry


@dataclass
class SyncReport:
    objects: int = 0
    transactions: int = 0
    changes: int = 0
    invalid: dict[Key, str] = field(default_factory=dict)
    refused: dict[Key, str] = field(default_factory=dict)
    retrying: dict[Key, str] = field(default_factory=dict)
    plan: Plan | None = None
    seconds: float = 0.0
    reused: int = 0  # outcomes of the settle pass taken as they were (sync.settle)

    @property
    def converged(self) -> bool:
        return not self.refused and not self.retrying


class Verdicts:
    """What each object's latest reconcile came to since the last full sync, so that `sync
    --once` can end without reconciling every object a second time (Worker.verify)."""

    def __init__(self) -> None:
        self.seen: set[Key] = set()
        self.open: dict[Key, Verdict] = {}  # of the objects whose verdict is not ok
        self.last_checked: list[Key] = []

    def restart(self) -> None:
        """A full sync reconciles everything again."""
        self.seen, self.open = set(), {}

    def record(self, key: Key, verdict: Verdict) -> None:
        self.seen.add(key)
        if verdict.state == OK:
            self.open.pop(key, None)
        else:
            self.open[key] = verdict

    def unsettled(self, keys: list[Key]) -> list[Key]:
        """Keys to reconcile again: not reconciled since the full sync, or last refused by
        NB or retrying."""
        seen, open_ = self.seen, self.open
        self.last_checked = [k for k in keys if k not in seen or
                             (k in open_ and not open_[k].done)]
        return self.last_checked

    def fill(self, report: SyncReport, keys: list[Key]) -> None:
        """The invalid, refused and retrying objects among `keys`, into a SyncReport."""
        lists = {INVALID: report.invalid, REFUSED: report.refused, RETRYING: report.retrying}
        for key in keys:
            verdict = self.open.get(key)
            if verdict is not None:
                lists[verdict.state].setdefault(key, verdict.message)
