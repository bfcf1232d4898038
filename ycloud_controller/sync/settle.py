"""The settle pass of manifests mode: `SettlePass` runs one plan-only full sync and drains
what it causes, so that the controller's own Kubernetes-side work (IPAM annotations, derived
ClusterIPs and EndpointSlices, YusurService objects) converges in memory before NB is
written; meanwhile it sends new rows that cannot change early (sync.early). It returns what
it settled (`Settled`), which the full sync after it is handed explicitly."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from topology.nbsync.chunks import Stream
from ycloud_controller.reconcilers.base import (
    DeleteEffect,
    Outcome,
    PatchEffect,
    UpsertEffect,
)
from ycloud_controller.sync.commit import Committer
from ycloud_controller.sync.early import EarlyRows
from ycloud_controller.sync.report import OK, SyncReport, Verdict
from ycloud_controller.triggers import Key

_KUBE_WRITES = (PatchEffect, UpsertEffect, DeleteEffect)


def for_reuse(outcome: Outcome) -> Outcome:
    """A clean outcome of the settle pass as the full sync after it takes it: without the
    Kubernetes writes (annotations, derived objects) the settle pass handed to the writer
    already, which would only be written again to no effect."""
    for effect in outcome.effects:
        if isinstance(effect, _KUBE_WRITES):
            break
    else:
        return outcome
    return replace(outcome, effects=[e for e in outcome.effects
                                     if not isinstance(e, _KUBE_WRITES)])


@dataclass(frozen=True)
class Settled:
    """What a settle pass that drained hands the full sync after it."""

    # the last clean outcome of each object (for_reuse): the full sync takes it unless the
    # object was queued since
    outcomes: Mapping[Key, Outcome] = field(default_factory=dict)
    # of each object all of whose rows were sent early and are in NB, the rows sent (its
    # outcome.rows): an object taken from `outcomes` with these very rows is not sent again
    landed: Mapping[Key, object] = field(default_factory=dict)
    # the pass's own full sync restored IPAM from NB, and only this process wrote NB since
    # (its early rows): the full sync after it does not restore again
    restored: bool = False


def early_rows(committer: Committer, stores: Mapping[str, Any]) -> EarlyRows | None:
    """The stream of the settle pass's early rows, when NB is to be written after it and
    takes client-chosen UUIDs."""
    nb, applier = committer.nb, committer.applier
    if not committer.writes_nb() or nb is None or not nb.connected():
        return None
    assert applier is not None
    if not applier.can_run_ahead():
        return None
    index = nb.index
    return EarlyRows(partial(Stream, applier),
                     in_nb=lambda owner: owner in index.by_owner,
                     lookup=lambda key: stores[key[0]].get(key[1]),
                     submit=committer.writer.submit,
                     row_in_nb=lambda rid: bool(index.lookup(rid)))


class SettlePass:
    """One settle pass. While it runs, every commit (of its full sync, and of the batches of
    its drain) is plan-only and tells it each verdict (`record`); `handed` says whose Ready
    conditions went out as their early rows landed."""

    def __init__(self, early: EarlyRows | None,
                 full_sync: Callable[..., SyncReport], drain: Callable[..., bool]):
        self.early = early
        self.full_sync = full_sync  # called with settling=self
        self.drain = drain  # called with timeout= and settling=self
        self.outcomes: dict[Key, Outcome] = {}  # the newest clean outcome of each object

    @property
    def handed(self) -> set[Key] | frozenset[Key]:
        return self.early.handed if self.early is not None else frozenset()

    def record(self, key: Key, outcome: Outcome, verdict: Verdict) -> None:
        """Only a clean outcome is kept, and the newest."""
        self.outcomes.pop(key, None)
        if verdict.state == OK:
            self.outcomes[key] = for_reuse(outcome)

    def run(self, timeout: float) -> Settled | None:
        """The pass; what it settled, or None if the drain did not end within `timeout`
        (the full sync then reconciles everything)."""
        early = self.early
        try:
            self.full_sync(settling=self)
            drained = self.drain(timeout=timeout, settling=self)
            landed = early.finish() if early is not None else {}
            return Settled(self.outcomes, landed, restored=True) if drained else None
        except BaseException:
            if early is not None:
                early.abandon()
            raise
