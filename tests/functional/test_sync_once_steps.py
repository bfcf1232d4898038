"""The steps of `sync --once` in manifests mode against a real NB: the NB full sync takes the
settle pass's outcomes for objects nothing changed since, the settle pass sends new rows as
it goes, the Ready conditions of a chunk are written as soon as it commits, and the closing
verification repairs what drifted without reconciling every object again."""

from __future__ import annotations

import pytest
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional.conftest import SERVICES, endpoint_slice, find, service
from topology import naming
from topology.nbsync.client import NbClient
from ycloud_controller.controller import Controller
from ycloud_controller.keys import NETWORK_READY
from ycloud_controller.kube import resources as res
from ycloud_controller.memkube.store import MemoryStore
from ycloud_controller.sync import chunks


def backends(sandbox: Sandbox, i: int) -> str:
    vip = f"10.96.3.{i + 1}:80"
    return next(lb["vips"][vip] for lb in find(sandbox, "Load_Balancer") if vip in lb["vips"])


def caught_up(ctl: Controller) -> bool:
    return all(inf.caught_up() for inf in ctl.informers.values())


def test_the_full_sync_takes_settled_outcomes_unless_the_object_was_queued_since(
        svc_ctl: Controller, svc_store: MemoryStore, sandbox: Sandbox) -> None:
    settled = svc_ctl.settle()
    assert settled
    svc_store.patch(res.ENDPOINTSLICES, "s3-a", "default", {"endpoints": [
        {"addresses": ["10.16.0.99"], "conditions": {"ready": True}}]})
    wait_for(lambda: caught_up(svc_ctl), timeout=10, what="the informers saw the change")
    report = svc_ctl.full_sync(settled)
    assert report.converged
    assert 0 < report.reused < report.objects  # s3 (queued by its slice) was reconciled again
    assert backends(sandbox, 3) == "10.16.0.99:8080"  # not the settled, stale outcome
    assert backends(sandbox, 4) == "10.16.0.14:8080"
    # a full sync without a settle pass before it reconciles everything
    assert svc_ctl.full_sync().reused == 0


def test_ready_conditions_of_a_chunk_are_written_once_it_commits(
        svc_ctl: Controller, svc_store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # a full sync with no settle pass before it (as `run` on a cluster) streams every row
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 5)  # many chunks
    landed: list[tuple[str, bool]] = []
    submit = svc_ctl.writer.submit

    def spy(effects: list) -> None:  # what is handed to the writer while chunks stream
        landed.extend((e.obj["metadata"]["name"], svc_ctl.last_sync is None)
                      for e in effects if getattr(e, "ready", None))
        submit(effects)
    monkeypatch.setattr(svc_ctl.writer, "submit", spy)
    svc_ctl.last_sync = None
    report = svc_ctl.full_sync()
    assert report.transactions > 5  # streamed in many chunks
    early = {name for name, before_the_end in landed if before_the_end}
    assert {f"s{i}" for i in range(SERVICES)} <= early
    assert svc_ctl.drain(timeout=30)
    conds = svc_store.get(res.SERVICES, "s0", "default")["status"]["conditions"]
    assert [c["status"] for c in conds if c["type"] == NETWORK_READY] == ["True"]


def test_the_settle_pass_sends_new_rows_as_it_goes(
        svc_ctl: Controller, svc_store: MemoryStore, sandbox: Sandbox,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 5)  # many chunks
    assert svc_ctl.applier is not None
    sends: list[int] = []
    send = svc_ctl.applier.send

    def count(desired, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        sends.append(len(desired))
        return send(desired, *args, **kwargs)
    monkeypatch.setattr(svc_ctl.applier, "send", count)
    ready: list[str] = []
    submit = svc_ctl.writer.submit

    def spy(effects: list) -> None:
        ready.extend(e.obj["metadata"]["name"] for e in effects if getattr(e, "ready", None))
        submit(effects)
    monkeypatch.setattr(svc_ctl.writer, "submit", spy)

    settled = svc_ctl.settle()
    assert settled
    # every Service's rows are in NB before the full sync, sent in many transactions while
    # the pass went on, and each one's Ready condition was handed once its rows were in
    assert len(sends) > 5
    assert all(backends(sandbox, i) == f"10.16.0.{10 + i}:8080" for i in range(SERVICES))
    assert {f"s{i}" for i in range(SERVICES)} <= set(ready)
    report = svc_ctl.full_sync(settled)
    assert report.converged and report.reused > 0
    assert report.transactions == 0 and report.changes == 0  # nothing left to write
    assert svc_ctl.drain(timeout=30)
    conds = svc_store.get(res.SERVICES, "s0", "default")["status"]["conditions"]
    assert [c["status"] for c in conds if c["type"] == NETWORK_READY] == ["True"]
    assert svc_ctl.verify().changes == 0
    # a settle pass on rows NB holds already sends nothing (a restart writes nothing)
    sends.clear()
    assert svc_ctl.settle()
    assert sends == []


def test_a_settle_pass_that_fails_after_sending_rows_reloads_them(
        svc_ctl: Controller, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    assert svc_ctl.applier is not None
    reloads: list[int] = []
    resync = svc_ctl.applier.resync
    monkeypatch.setattr(svc_ctl.applier, "resync", lambda: (reloads.append(1), resync()))

    def fail(**_kwargs: object) -> bool:
        raise RuntimeError("the drain failed")
    monkeypatch.setattr(svc_ctl.worker, "drain", fail)
    with pytest.raises(RuntimeError):
        svc_ctl.settle()
    assert reloads == [1]  # the index holds what the server holds, nothing assumed
    monkeypatch.undo()
    settled = svc_ctl.settle()
    assert settled
    assert svc_ctl.full_sync(settled).converged
    assert svc_ctl.drain(timeout=30)
    assert svc_ctl.verify().changes == 0
    assert all(backends(sandbox, i) == f"10.16.0.{10 + i}:8080" for i in range(SERVICES))


def test_the_verification_finds_nothing_after_a_sync_and_repairs_drift(
        svc_ctl: Controller, sandbox: Sandbox, nb: NbClient) -> None:
    settled = svc_ctl.settle()
    assert settled
    svc_ctl.full_sync(settled)
    assert svc_ctl.drain(timeout=30)
    report = svc_ctl.verify()
    assert report.converged and report.changes == 0 and report.transactions == 0
    assert report.objects == svc_ctl.last_sync.objects
    assert svc_ctl.verdicts.last_checked == []  # every object was reconciled, none again
    # drift: an operator deletes one of our LBs; the verification puts it back
    name = naming.service_lb("default", "s5", "tcp")
    lb = next(lb for lb in find(sandbox, "Load_Balancer") if lb["name"] == name)
    sandbox.nbctl("destroy", "Load_Balancer", lb["_uuid"])
    wait_for(lambda: nb.read(nb.index.count_by_table)["Load_Balancer"] == SERVICES - 1,
             timeout=10, what="NB reported the delete")
    again = svc_ctl.verify()
    assert again.changes >= 1  # written: `sync --once` says NOT converged
    assert backends(sandbox, 5) == "10.16.0.15:8080"
    assert svc_ctl.verify().changes == 0


def test_the_verification_reconciles_an_object_the_full_sync_did_not_see(
        svc_ctl: Controller, svc_store: MemoryStore, sandbox: Sandbox) -> None:
    svc_ctl.full_sync()
    svc_store.create(res.SERVICES, service(40))
    svc_store.create(res.ENDPOINTSLICES, endpoint_slice(40))
    wait_for(lambda: caught_up(svc_ctl), timeout=10, what="the informers saw it")
    report = svc_ctl.verify()  # no drain in between: s40 was never reconciled
    assert ("Service", "default/s40") in svc_ctl.verdicts.last_checked
    assert report.changes >= 1 and backends(sandbox, 40) == "10.16.0.50:8080"
