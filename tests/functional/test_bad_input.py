"""Bad input (issue 9): a corpus of malformed and hostile objects on top of the examples.

tests/functional/data/bad_inputs.yaml holds the corpus; each object says what it must end in
(annotation test.ycloud.io/expect, see the file's header). The tests run the real controller
(its watch loop on FakeKube, the real kubernetes client, a real NB) and check, for every
corpus object, its condition through the API and a Warning Event about it with the same
reason; that the controller keeps running and stays ready; that the examples' NB rows are
exactly what they were without the corpus; and that owners of refused objects have no rows.

FakeKube does not validate CRD schemas nor most core fields, so objects the API server would
refuse (port 70000, a /33, unicode label values) reach the controller, which must refuse them
itself. FakeKube also has no endpoint controller and no ClusterIP allocator: the controller
runs with emulation on (what `--manifests` mode does) so that Services get ClusterIPs and
EndpointSlices, as in a cluster.
"""

from __future__ import annotations

import ipaddress
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
from tests.functional.test_controller import running
from topology import naming
from topology.model import ROW_TYPES
from topology.nbsync.client import NbClient
from ycloud_controller import keys
from ycloud_controller.controller import Controller
from ycloud_controller.keys import NETWORK_READY, READY
from ycloud_controller.kube import resources as res
from ycloud_controller.kube.errors import AlreadyExists

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests" / "examples"
CORPUS = Path(__file__).parent / "data" / "bad_inputs.yaml"
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


# -- the tests -----------------------------------------------------------------------------------
@pytest.fixture
def examples() -> list[dict[str, Any]]:
    return load_dir(EXAMPLES)


@pytest.fixture
def corpus() -> list[dict[str, Any]]:
    return load(CORPUS)


def test_corpus_is_large_and_annotated(corpus: list[dict[str, Any]]) -> None:
    bad = [o for o in corpus if (e := expectation(o)) is not None and not e.ok]
    assert len(bad) >= 50
    assert len({ident(o) for o in corpus}) == len(corpus), "an object is listed twice"
    kinds = {o["kind"] for o in bad}
    assert kinds >= {"Vpc", "Subnet", "EipPool", "Pod", "Vnic", "Service", "YusurService"}


def test_corpus_live_on_top_of_the_examples(fake: FakeKube, sandbox: Sandbox, nb: NbClient,
                                            examples: list[dict[str, Any]],
                                            corpus: list[dict[str, Any]]) -> None:
    owners = example_owners(examples)
    create(fake, examples)
    with running(fake, sandbox, emulate=True, wait_synced=True) as ctl:
        # without the corpus: every example converged; that is the reference
        wait_for(lambda: not mismatches(fake, [ok(o) for o in examples], events=False),
                 timeout=DEADLINE, what="examples ready")
        settled(fake, ctl)
        baseline = snapshot(sandbox, owners)
        assert "lb Service_demo/multi_TCP_eip" in baseline
        assert "lb Service_default/ysvc1_TCP_cluster" in baseline
        # the corpus, the younger side of each conflict pair a second later
        for i, tier in enumerate(tiers(corpus)):
            if i:
                converge(fake, [o for t in tiers(corpus)[:i] for o in t])
                next_second()
            create(fake, tier)
        converge(fake, corpus)
        assert_alive(ctl)
        settled(fake, ctl)
        assert snapshot(sandbox, owners) == baseline
        assert not check_nb_of_corpus(sandbox, corpus)
        assert not mismatches(fake, [ok(o) for o in examples], events=False)
    # a restart with everything in place: the same verdicts (conditions and Events erased in
    # between, so they are found again), the same rows
    forget_verdicts(fake, corpus)
    with running(fake, sandbox, emulate=True, wait_synced=True) as again:
        wait_for(again.ready, timeout=DEADLINE, what="restarted controller ready")
        converge(fake, corpus)
        assert_alive(again)
        settled(fake, again)
        assert snapshot(sandbox, owners) == baseline
        assert not check_nb_of_corpus(sandbox, corpus)


def test_corpus_and_examples_from_a_cold_start(fake: FakeKube, sandbox: Sandbox, nb: NbClient,
                                               examples: list[dict[str, Any]],
                                               corpus: list[dict[str, Any]]) -> None:
    """Everything at once into an empty NB: conflicts are decided by age, not by which
    object the controller happened to see first, and the examples still come up whole."""
    corpus = [o for o in corpus if ident(o) not in FIRST_COME]
    create(fake, examples)
    for tier in tiers(corpus):
        next_second()  # the examples are older than the corpus, tier 0 older than tier 1
        create(fake, tier)
    with running(fake, sandbox, emulate=True, wait_synced=True) as ctl:
        converge(fake, corpus)
        wait_for(lambda: not mismatches(fake, [ok(o) for o in examples], events=False),
                 timeout=DEADLINE, what="examples ready")
        assert_alive(ctl)
        settled(fake, ctl)
        state = snapshot(sandbox, example_owners(examples))
        assert not check_nb_of_corpus(sandbox, corpus)
    # the examples' shape: every LB with its VIPs and as many backends as without the corpus
    vips = {k: {vip: len(bes.split(",")) for vip, bes in v.items()}
            for k, v in state.items() if k.startswith("lb ")}
    ysvc1 = vips.pop("lb Service_default/ysvc1_TCP_cluster")  # its ClusterIP is allocated
    assert list(ysvc1.values()) == [3]  # iperf-1, vm-1 and vm-1's extra address
    assert vips == EXAMPLE_LBS
    pods = {k.removeprefix("port "): v.split()[1:] for k, v in state.items()
            if k.startswith("port ")}
    for port, subnet in EXAMPLE_PORTS.items():
        assert port in pods, port
        net = ipaddress.ip_network(subnet)
        assert all(ipaddress.ip_address(ip) in net for ip in pods[port]), (port, pods[port])


# Conflicts over a requested address, MAC or EIP. On a cold start the first object reconciled
# wins (kind order, then name), not the older one: left out of the cold start, see
# test_cold_start_gives_a_requested_address_to_the_older_object.
FIRST_COME = {("Vnic", "bad", "mac-owner"), ("Pod", "bad", "mac-in-use"),
              ("Vnic", "bad", "a-vnic-mac-in-use"), ("Service", "bad", "z-eip-first"),
              ("Service", "bad", "a-eip-second"), ("Pod", "ns-vpc1", "ip-in-use"),
              ("Service", "ns-vpc1", "eip-taken"), ("YusurService", "bad", "eip-taken")}

# what the examples build, VIP -> number of backends (manifests/examples, README scenarios)
EXAMPLE_LBS = {
    "lb Service_ns-vpc1/web_TCP_cluster": {"10.96.10.10:80": 2},
    "lb Service_ns-vpc1/web_UDP_cluster": {"10.96.10.10:53": 2},
    "lb Service_ns-vpc1/web-eip_TCP_cluster": {"10.96.10.11:80": 2, "172.18.0.50:80": 2},
    "lb Service_ns-vpc1/web-eip_TCP_eip": {"172.18.0.50:80": 2},
    "lb Service_default/nginx_TCP_cluster": {"10.96.20.20:80": 2},
    "lb Service_demo/multi_TCP_eip": {"172.18.0.60:80": 2},
}
EXAMPLE_PORTS = {
    "web-1.ns-vpc1": "10.1.1.0/24", "web-2.ns-vpc1": "10.1.1.0/24",
    "client-1.ns-vpc1": "10.1.2.0/24", "client-2.ns-vpc2": "10.2.1.0/24",
    "nginx-1.default": "10.16.0.0/16", "nginx-2.default": "10.16.0.0/16",
    "multi-1.ns-vpc1": "10.1.1.0/24", "multi-2.ns-vpc2": "10.2.1.0/24",
    "iperf-1.ns-vpc1": "10.1.1.0/24", "vnic.vm-1.ns-vpc1": "10.1.1.0/24",
}


def ok(obj: dict[str, Any]) -> dict[str, Any]:
    """An example object, expected valid (condition True)."""
    md = dict(obj["metadata"], annotations={**(obj["metadata"].get("annotations") or {}),
                                            EXPECT: "ok"})
    if obj["kind"] in ("Namespace", "Node", "EndpointSlice"):
        md["annotations"][EXPECT] = "support"
    return dict(obj, metadata=md)


# -- a selector matching thousands of pods -------------------------------------------------------
CROWD = 2000


def crowd_pod(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"c-{i:04d}", "namespace": "crowd", "labels": {"app": "crowd"}},
            "spec": {"nodeName": f"node{i % 2 + 1}", "containers": [{"name": "c", "image": "x"}]}}


def test_selector_matching_thousands_of_pods(fake: FakeKube, sandbox: Sandbox,
                                             nb: NbClient) -> None:
    """A YusurService created over 2000 running pods works: each pod is a backend of its
    VIP in NB, and its EndpointSlices stay within what the API server accepts (at most 1000
    endpoints each; the EndpointSlice controller's default is 100)."""
    fake.store.create(res.NAMESPACES, {"metadata": {"name": "crowd"}})
    for i in range(CROWD):
        fake.store.create(res.PODS, crowd_pod(i))
    with running(fake, sandbox, emulate=True, wait_synced=True) as ctl:
        def placed() -> int:
            pods, _ = fake.store.list(res.PODS, "crowd", copy=False)
            return sum(1 for p in pods if keys.ANN_IP in (p["metadata"].get("annotations")
                                                            or {}))
        wait_for(lambda: placed() == CROWD, timeout=DEADLINE, what=f"{CROWD} pods placed")
        fake.store.create(res.YUSURSERVICES, {
            "apiVersion": "iaas.yusur.io/v1", "kind": "YusurService",
            "metadata": {"name": "crowd", "namespace": "crowd"},
            "spec": {"type": "ClusterIP", "scope": "cluster", "clusterIP": "10.96.77.77",
                     "ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "crowd"},
                     "healthCheck": {"enabled": False}}})

        def backends() -> int:
            lbs = find(sandbox, "Load_Balancer", "name=Service_crowd/crowd_TCP_cluster")
            vips = lbs[0]["vips"] if lbs else {}
            return len(vips.get("10.96.77.77:80", "").split(",")) if vips else 0
        wait_for(lambda: backends() == CROWD, timeout=DEADLINE, what=f"{CROWD} backends in NB")
        ysvc = wait_for(lambda: (y := fake.store.get(res.YUSURSERVICES, "crowd", "crowd"))
                        and condition(y).get("status") == "True"
                        and y["status"].get("totalBackends") == CROWD and y,
                        timeout=DEADLINE, what="YusurService ready")
        assert ysvc["status"]["backends"] == f"{CROWD}/{CROWD}"
        slices, _ = fake.store.list(res.ENDPOINTSLICES, "crowd")
        sizes = [len(s["endpoints"]) for s in slices]
        assert sum(sizes) == CROWD
        assert max(sizes) <= 100, f"EndpointSlices larger than the API server accepts: {sizes}"
        assert_alive(ctl)


# -- multi-VPC services that overlap only together ----------------------------------------------
def ysvc(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "iaas.yusur.io/v1", "kind": "YusurService",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}], **spec}}


def test_multi_vpc_services_whose_vpcs_overlap_only_together(
        fake: FakeKube, sandbox: Sandbox, nb: NbClient, examples: list[dict[str, Any]],
        corpus: list[dict[str, Any]]) -> None:
    """Each service alone is fine; together they want one service gateway to route
    10.50.0.0/24 to vpc-a and to vpc-b. The younger service is refused with a condition on
    it (not left retrying in silence), the older one keeps its EIP."""
    scaffolding = [o for o in corpus if o["metadata"]["name"] in (
        "bad", "ns-a", "ns-b", "vpc-a", "vpc-b", "sub-a", "sub-b", "near-a", "near-b")]
    create(fake, examples)
    create(fake, scaffolding)
    older = ysvc("older", "bad", type="LoadBalancer", scope="multi-vpc", vpcs=["vpc1", "vpc-b"],
                 selector={"app": "near"}, healthCheck={"enabled": False})
    younger = ysvc("younger", "bad", type="LoadBalancer", scope="multi-vpc",
                   vpcs=["vpc-a", "vpc2"], selector={"app": "near"},
                   healthCheck={"enabled": False})
    with running(fake, sandbox, emulate=True, wait_synced=True) as ctl:
        fake.store.create(res.YUSURSERVICES, older)
        wait_for(lambda: find(sandbox, "Load_Balancer", "name=Service_bad/older_TCP_eip"),
                 timeout=DEADLINE, what="EIP LB of the older service")
        next_second()
        fake.store.create(res.YUSURSERVICES, younger)
        got = wait_for(lambda: condition(fake.store.get(res.YUSURSERVICES, "younger", "bad"))
                       .get("status") == "False" and condition(
                           fake.store.get(res.YUSURSERVICES, "younger", "bad")),
                       timeout=DEADLINE, what="the younger service refused")
        assert got["reason"] == "OverlappingSubnets", got
        wait_for(lambda: "OverlappingSubnets" in warnings(fake).get(
            ("YusurService", "bad", "younger"), ()), timeout=DEADLINE, what="Warning Event")
        assert condition(fake.store.get(res.SERVICES, "younger", "bad"))["reason"] == \
            "OverlappingSubnets"
        assert condition(fake.store.get(res.YUSURSERVICES, "older", "bad"))["status"] == "True"
        # the older service keeps its link to vpc-b and the route of 10.50.0.0/24 through it
        lrps = {p["name"] for p in find(sandbox, "Logical_Router_Port")}
        assert "svcgw-pool1-to-vpc-b" in lrps and "svcgw-pool1-to-vpc-a" not in lrps
        routes = {(r["ip_prefix"], r["nexthop"]) for r in find(
            sandbox, "Logical_Router_Static_Route", f"external_ids:{naming.OWNER}=pool1")}
        link_b = next(p for p in find(sandbox, "Logical_Router_Port",
                                      "name=vpc-b-to-svcgw-pool1"))
        assert ("10.50.0.0/24", link_b["networks"].partition("/")[0]) in routes
        assert find(sandbox, "Load_Balancer", "name=Service_bad/older_TCP_eip")
        assert not find(sandbox, "Load_Balancer", "name=Service_bad/younger_TCP_eip")
        assert_alive(ctl)


# -- found by the corpus: product bugs, each reproduced on its own -------------------------------
COLLISIONS = Path(__file__).parent / "data" / "name_collisions.yaml"


def test_name_collisions_refuse_the_younger_object(fake: FakeKube, sandbox: Sandbox,
                                                   nb: NbClient,
                                                   examples: list[dict[str, Any]]) -> None:
    collisions = load(COLLISIONS)
    create(fake, examples)
    with running(fake, sandbox, emulate=True, wait_synced=True) as ctl:
        wait_for(lambda: not mismatches(fake, [ok(o) for o in examples], events=False),
                 timeout=DEADLINE, what="examples ready")

        def older_rows() -> dict[str, Any]:
            return {
                "vnic x": [(p["addresses"], p["external_ids"][naming.OWNER]) for p in find(
                    sandbox, "Logical_Switch_Port", "name=vnic.x.bad")],
                "cx-y-z": [(p["networks"], p["external_ids"][naming.OWNER]) for p in find(
                    sandbox, "Logical_Router_Port", "name=cx-y-z")],
                "web-1": [p["external_ids"][naming.OWNER] for p in find(
                    sandbox, "Logical_Switch_Port", "name=web-1.ns-vpc1")]}
        before: dict[str, Any] = {}
        for i, tier in enumerate(tiers(collisions)):
            if i:
                converge(fake, tiers(collisions)[0])
                settled(fake, ctl)
                before = older_rows()  # the rows of the older objects, before the younger
                next_second()
            create(fake, tier)
        # the younger objects had their chance to take the rows: each was refused (the
        # controller looked at it), and the controller handled everything that caused
        wait_for(lambda: all(condition(live(fake, o)).get("status") == "False"
                             for o in tiers(collisions)[1]),
                 timeout=DEADLINE, what="the younger objects refused")
        settled(fake, ctl)
        after = older_rows()
        assert after == before
        assert after["vnic x"][0][1] == "bad/x"
        assert after["cx-y-z"] == [("10.77.0.1/24", "y-z")]
        assert after["web-1"] == ["ns-vpc1/web-1"]
        for obj in tiers(collisions)[1]:
            got = condition(live(fake, obj))
            assert got.get("status") == "False" and got.get("reason") in (
                "NameConflict", "NBRefused"), (label(obj), got)


def test_same_named_objects_of_two_kinds_each_get_their_event(fake: FakeKube) -> None:
    from ycloud_controller.kube.backend import ApiBackend
    from ycloud_controller.kube.events import EventRecorder
    from ycloud_controller.kube.status import StatusWriter
    from ycloud_controller.reconcilers.base import EventEffect
    from ycloud_controller.writer import KubeWriter

    client = fake.api_client()
    backend = ApiBackend(client)
    recorder = EventRecorder(backend)
    writer = KubeWriter(backend, recorder, StatusWriter(backend))
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "ip-gateway", "namespace": "bad", "uid": "u1"}}
    nic = {"apiVersion": "iaas.yusur.io/v1", "kind": "Vnic",
           "metadata": {"name": "ip-gateway", "namespace": "bad", "uid": "u2"}}
    message = "10.16.0.1 is reserved in 10.16.0.0/16"
    writer.submit([EventEffect(pod, "Warning", "AddressReserved", message),
                   EventEffect(nic, "Warning", "AddressReserved", message)])
    stop = threading.Event()
    thread = threading.Thread(target=writer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert writer.flush(timeout=10) and recorder.flush(timeout=10)
        got = warnings(fake)
        assert "AddressReserved" in got.get(("Pod", "bad", "ip-gateway"), ())
        assert "AddressReserved" in got.get(("Vnic", "bad", "ip-gateway"), ())
    finally:
        stop.set()
        thread.join(timeout=5)
        recorder.close()
        client.close()


def test_an_object_with_a_253_character_name_gets_its_event(fake: FakeKube) -> None:
    from ycloud_controller.kube.backend import ApiBackend
    from ycloud_controller.kube.events import EventRecorder

    client = fake.api_client()
    recorder = EventRecorder(ApiBackend(client))
    name = "p" * 253
    try:
        recorder.event({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": name, "namespace": "bad", "uid": "u1"}},
                       "Warning", "InvalidIP", "ycloud.io/ip_address: 'banana' is not an IP")
        assert recorder.flush(timeout=10)
        assert "InvalidIP" in warnings(fake).get(("Pod", "bad", name), ())
    finally:
        recorder.close()
        client.close()


def test_cold_start_gives_a_requested_address_to_the_older_object(
        fake: FakeKube, sandbox: Sandbox, nb: NbClient, examples: list[dict[str, Any]],
        corpus: list[dict[str, Any]]) -> None:
    contenders = [o for o in corpus if ident(o) in FIRST_COME or o["kind"] == "Namespace"]
    create(fake, examples)
    for tier in tiers(contenders):
        next_second()
        create(fake, tier)
    with running(fake, sandbox, emulate=True, wait_synced=True):
        wait_for(lambda: all(condition(live(fake, o)) for o in contenders
                             if expectation(o) is not None), timeout=DEADLINE)

        def left() -> list[str]:
            return mismatches(fake, contenders, events=False) + mismatches(
                fake, [ok(o) for o in examples], events=False)
        try:
            wait_for(lambda: not left(), timeout=DEADLINE, what="contenders and examples")
        except AssertionError:
            raise AssertionError("\n".join(left())) from None


@pytest.mark.parametrize("loser,winner", [
    pytest.param(("Pod", "ns-vpc1", "ip-in-use"), (res.VNICS, "vm-1", "ns-vpc1"), id="ip"),
    pytest.param(("Service", "ns-vpc1", "eip-taken"), (res.SERVICES, "web-eip", "ns-vpc1"),
                 id="eip"),
])
def test_the_loser_of_a_conflict_gets_the_address_when_the_winner_goes(
        fake: FakeKube, sandbox: Sandbox, nb: NbClient, examples: list[dict[str, Any]],
        corpus: list[dict[str, Any]], loser: tuple[str, str, str],
        winner: tuple[res.Resource, str, str]) -> None:
    """A refused address or EIP is not refused forever: once its holder is gone, the
    younger object gets it."""
    losers = [o for o in corpus if ident(o) == loser]
    create(fake, examples)
    with running(fake, sandbox, emulate=True, wait_synced=True) as ctl:
        wait_for(lambda: not mismatches(fake, [ok(o) for o in examples], events=False),
                 timeout=DEADLINE, what="examples ready")
        create(fake, losers)
        converge(fake, losers)
        settled(fake, ctl)
        fake.store.delete(*winner)
        wait_for(lambda: not mismatches(fake, [ok(o) for o in losers], events=False),
                 timeout=10, what="the loser ready once the winner is gone")
