"""What the bad-input tests (issue 9) share: the corpus of malformed and hostile objects and
what each must end in (annotation test.ycloud.io/expect, see the header of
tests/functional/data/bad_inputs.yaml), what Kubernetes shows about an object (its condition,
the Warning Events about it), what NB holds for its owner, whether the controller still runs.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakekube.server import FakeKube
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional.conftest import find
from tests.functional.ctlrun import handled_everything
from topology import naming
from topology.model import ROW_TYPES
from ycloud_controller.controller import Controller
from ycloud_controller.keys import NETWORK_READY, READY
from ycloud_controller.kube import resources as res
from ycloud_controller.kube.errors import AlreadyExists

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "manifests" / "examples"
DATA = Path(__file__).resolve().parents[1] / "data"
CORPUS = DATA / "bad_inputs.yaml"
EXPECT = "test.ycloud.io/expect"
TIER = "test.ycloud.io/tier"
NB_NOTE = "test.ycloud.io/nb"
DEADLINE = 30.0

# NB tables whose rows carry our ownership external_ids
OWNED_TABLES = tuple(t.TABLE for t in ROW_TYPES if t.TABLE != "Load_Balancer_Group")


# -- the corpus ----------------------------------------------------------------------------------
def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def load_dir(path: Path) -> list[dict[str, Any]]:
    return [d for f in sorted(path.glob("*.yaml")) for d in load(f)]


def resource(obj: dict[str, Any]) -> res.Resource:
    return res.by_kind(obj["kind"], obj["apiVersion"])


def ident(obj: dict[str, Any]) -> tuple[str, str, str]:
    """(kind, namespace, name); namespace "" for cluster-scoped objects."""
    md = obj["metadata"]
    namespace = md.get("namespace", "default") if resource(obj).namespaced else ""
    return obj["kind"], namespace, md["name"]


def label(obj: dict[str, Any]) -> str:
    kind, ns, name = ident(obj)
    short = name if len(name) < 40 else f"{name[:20]}...({len(name)})"
    return f"{kind} {ns + '/' if ns else ''}{short}"


@dataclass(frozen=True)
class Expect:
    reason: str | None  # None: valid, condition True
    nb: str | None  # "cluster-lb", "config", "foreign": rows the product keeps, documented

    @property
    def ok(self) -> bool:
        return self.reason is None


def expectation(obj: dict[str, Any]) -> Expect | None:
    ann = obj["metadata"].get("annotations") or {}
    raw = ann.get(EXPECT, "")
    if raw == "support":
        return None
    if raw == "ok":
        return Expect(None, ann.get(NB_NOTE))
    assert raw.startswith("reason="), f"{label(obj)}: bad {EXPECT} {raw!r}"
    return Expect(raw.removeprefix("reason="), ann.get(NB_NOTE))


def create(fake: FakeKube, objs: Iterable[dict[str, Any]]) -> None:
    for obj in objs:
        obj = dict(obj, metadata=dict(obj["metadata"]))
        if resource(obj).namespaced:
            obj["metadata"].setdefault("namespace", "default")
        try:
            fake.store.create(resource(obj), obj)
        except AlreadyExists:
            assert obj["kind"] == "Namespace", f"{label(obj)} exists twice"


def tiers(objs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for obj in objs:
        out[int((obj["metadata"].get("annotations") or {}).get(TIER, "0"))].append(obj)
    return [out[t] for t in sorted(out)]


def next_second() -> None:
    """creationTimestamp has a resolution of one second: make the next objects younger."""
    time.sleep(1.05 - time.time() % 1.0)


# -- what Kubernetes shows -----------------------------------------------------------------------
def live(fake: FakeKube, obj: dict[str, Any]) -> dict[str, Any] | None:
    kind, ns, name = ident(obj)
    try:
        return fake.store.get(resource(obj), name, ns or None)
    except Exception:  # noqa: BLE001 - NotFound
        return None


def condition(obj: dict[str, Any] | None) -> dict[str, Any]:
    if obj is None:
        return {}
    ctype = READY if obj.get("apiVersion", "").startswith("iaas.yusur.io") else NETWORK_READY
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == ctype), {})


def warnings(fake: FakeKube) -> dict[tuple[str, str, str], set[str]]:
    """(kind, namespace, name) -> reasons of the Warning Events about that object."""
    events, _ = fake.store.list(res.EVENTS)
    out: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for ev in events:
        inv = ev.get("involvedObject") or {}
        if ev.get("type") == "Warning":
            out[(inv.get("kind", ""), inv.get("namespace", ""), inv.get("name", ""))].add(
                ev.get("reason", ""))
    return out


def mismatches(fake: FakeKube, corpus: list[dict[str, Any]], events: bool) -> list[str]:
    """What does not (yet) hold: one line per corpus object."""
    seen = warnings(fake) if events else {}
    out = []
    for obj in corpus:
        want = expectation(obj)
        if want is None:
            continue
        cond = condition(live(fake, obj))
        got = f"{cond.get('status')}/{cond.get('reason')}" if cond else "no condition"
        if want.ok:
            if cond.get("status") != "True":
                out.append(f"{label(obj)}: want True, got {got}: {cond.get('message', '')}")
            continue
        if cond.get("status") != "False" or cond.get("reason") != want.reason:
            out.append(f"{label(obj)}: want False/{want.reason}, got {got}: "
                       f"{cond.get('message', '')}")
        elif events:
            kind, ns, name = ident(obj)
            if want.reason not in seen.get((kind, ns, name), set()):
                out.append(f"{label(obj)}: no Warning Event {want.reason} (has "
                           f"{sorted(seen.get((kind, ns, name), set()))})")
    return out


def converge(fake: FakeKube, corpus: list[dict[str, Any]], timeout: float = DEADLINE) -> None:
    """Wait until every corpus object shows what it expects, its Event included."""
    deadline = time.monotonic() + timeout
    while True:
        left = mismatches(fake, corpus, events=True)
        if not left:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{len(left)} corpus object(s) did not end as expected:\n  "
                        + "\n  ".join(left))
        time.sleep(0.1)


# -- what NB holds -------------------------------------------------------------------------------
def owned_rows(sandbox: Sandbox) -> dict[tuple[str, str], list[str]]:
    """(kind, owner key) -> 'table:name' of every row we own."""
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for table in OWNED_TABLES:
        for row in find(sandbox, table,
                        f"external_ids:{naming.MANAGED_BY}={naming.MANAGED_BY_VALUE}"):
            ids = row.get("external_ids") or {}
            name = row.get("name") or ids.get(naming.KEY, "")
            out[(ids.get(naming.KIND, ""), ids.get(naming.OWNER, ""))].append(
                f"{table}:{name}")
    return out


def snapshot(sandbox: Sandbox, owners: set[tuple[str, str]]) -> dict[str, Any]:
    """The rows that say what the owners get: LB VIPs+backends, port addresses."""
    out: dict[str, Any] = {}
    for lb in find(sandbox, "Load_Balancer"):
        ids = lb["external_ids"]
        if (ids.get(naming.KIND), ids.get(naming.OWNER)) in owners:
            out[f"lb {lb['name']}"] = lb["vips"]
    for port in find(sandbox, "Logical_Switch_Port"):
        ids = port["external_ids"]
        if (ids.get(naming.KIND), ids.get(naming.OWNER)) in owners:
            out[f"port {port['name']}"] = port["addresses"]
    return out


def settled(fake: FakeKube, ctl: Controller) -> None:
    """Wait until the controller has handled every write made so far (the witness that it
    looked, instead of a quiet period: see ctlrun.handled_everything)."""
    wait_for(lambda: handled_everything(fake, ctl), timeout=DEADLINE,
             what="the controller handled every write so far")


def row_owner(obj: dict[str, Any]) -> tuple[str, str]:
    """The NB owner of an object's rows (a YusurService's rows are its Service's)."""
    kind, ns, name = ident(obj)
    if kind == "YusurService":
        kind = "Service"
    return kind, f"{ns}/{name}" if ns else name


def example_owners(examples: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {row_owner(o) for o in examples
            if o["kind"] in ("Pod", "Vnic", "Service", "YusurService")}


def check_nb_of_corpus(sandbox: Sandbox, corpus: list[dict[str, Any]]) -> list[str]:
    rows = owned_rows(sandbox)
    problems = []
    for obj in corpus:
        want = expectation(obj)
        if want is None or want.nb in ("config", "foreign"):
            continue
        mine = rows.get(row_owner(obj), [])
        if want.ok:
            if not mine:
                problems.append(f"{label(obj)} is valid but has no rows in NB")
        elif want.nb == "cluster-lb":  # the LB and its health checks, no EIP rows
            extra = [r for r in mine if r.partition(":")[0] not in
                     ("Load_Balancer", "Load_Balancer_Health_Check") or "_cluster" not in r]
            if extra or not mine:
                problems.append(f"{label(obj)} should keep only its ClusterIP LB: {mine}")
        elif mine:
            problems.append(f"{label(obj)} was refused but owns rows: {mine[:5]}")
    return problems


def assert_alive(ctl: Controller) -> None:
    """The controller's loop still runs and it reports ready (as /readyz would)."""
    assert not ctl.stop_event.is_set()
    assert any(t.name == "controller-loop" and t.is_alive() for t in threading.enumerate()), \
        "the controller's loop thread died"
    wait_for(ctl.ready, timeout=DEADLINE, what="controller ready")
    assert ctl.last_sync is not None


def forget_verdicts(fake: FakeKube, objs: list[dict[str, Any]]) -> None:
    """Erase the conditions of `objs` and every Event."""
    for obj in objs:
        if expectation(obj) is not None and resource(obj).has_status:
            kind, ns, name = ident(obj)
            fake.store.patch(resource(obj), name, ns or None, {"status": {"conditions": None}},
                             subresource="status")
    events, _ = fake.store.list(res.EVENTS)
    for ev in events:
        fake.store.delete(res.EVENTS, ev["metadata"]["name"], ev["metadata"]["namespace"])


# Conflicts over a requested address, MAC or EIP. On a cold start the first object reconciled
# wins (kind order, then name), not the older one: left out of test_corpus.py's cold start,
# see test_conflicts.py::test_cold_start_gives_a_requested_address_to_the_older_object.
FIRST_COME = {("Vnic", "bad", "mac-owner"), ("Pod", "bad", "mac-in-use"),
              ("Vnic", "bad", "a-vnic-mac-in-use"), ("Service", "bad", "z-eip-first"),
              ("Service", "bad", "a-eip-second"), ("Pod", "ns-vpc1", "ip-in-use"),
              ("Service", "ns-vpc1", "eip-taken"), ("YusurService", "bad", "eip-taken")}


def ok(obj: dict[str, Any]) -> dict[str, Any]:
    """An example object, expected valid (condition True)."""
    md = dict(obj["metadata"], annotations={**(obj["metadata"].get("annotations") or {}),
                                            EXPECT: "ok"})
    if obj["kind"] in ("Namespace", "Node", "EndpointSlice"):
        md["annotations"][EXPECT] = "support"
    return dict(obj, metadata=md)
