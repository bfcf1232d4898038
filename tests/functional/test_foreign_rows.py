"""Rows created by hand in NB are untouched by every sync, resync and GC (issue 9, fault 4).

The controller (FakeKube, the session NB, a full resync every second) builds two VPCs. Then an
operator adds, with ovn-nbctl: a logical switch with a port, a router with a port, load
balancers, a load balancer group, a port on one of OUR switches, a static route and a NAT on
OUR VPC router, a load balancer in OUR VPC's LB group and on our switch and router, their
own group on our switch, a load balancer in the LB group of the VPC that will be deleted
(their own switch carries that group too), and an extra external_ids key on two of our rows
(one we will update, one we will not).

Then the controller runs resyncs, updates our rows (new backends, a new pod port on the
switch holding the operator's port, a pod port removed from it, a changed VPC route), runs GC
(a VPC with its subnet, pod and service deleted; a service of the other VPC deleted) and is
restarted. After each step the whole NB is read with ovsdb-client: every row that is not ours
must be there with identical content, and must still be a member of every row of ours that
held it (rows of ours that are deleted take only their own memberships along). A row of ours
that the operator's row still references (the deleted VPC's LB group, on their switch) stays
while it is used; the first GC after they let go deletes it.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from fakekube.server import FakeKube
from fakekube.util import wait_for
from ovn_sandbox import NB_SCHEMA, Sandbox

from tests.functional import nbcheck
from tests.functional.bad_input.support import create
from tests.functional.conftest import as_list, find
from tests.functional.ctlrun import Running, controller
from topology import naming
from topology.nbsync.client import NbClient
from ycloud_controller.kube import resources as res

GROUP = "iaas.yusur.io/v1"
NOTE = "ops.example.com/note"  # an operator's own external_ids key
Dump = dict[str, dict[str, dict[str, Any]]]  # table -> uuid -> column -> value


def objects() -> list[dict[str, Any]]:
    def vpc(name: str, ns: str, routes: list[dict[str, str]]) -> dict[str, Any]:
        return {"apiVersion": GROUP, "kind": "Vpc", "metadata": {"name": name},
                "spec": {"namespaces": [ns], "staticRoutes": routes}}

    def subnet(name: str, vpc_name: str, cidr: str, gw: str, ns: list[str]) -> dict[str, Any]:
        return {"apiVersion": GROUP, "kind": "Subnet", "metadata": {"name": name},
                "spec": {"vpc": vpc_name, "cidrBlock": cidr, "gateway": gw,
                         "namespaces": ns}}

    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns2"}},
        vpc("vpc1", "ns1", [{"cidr": "10.99.0.0/16", "nextHop": "10.1.1.254"}]),
        vpc("vpc2", "ns2", []),
        subnet("subnet1", "vpc1", "10.1.1.0/24", "10.1.1.1", ["ns1"]),
        subnet("subnet2", "vpc1", "10.1.2.0/24", "10.1.2.1", []),
        subnet("subnet3", "vpc2", "10.2.1.0/24", "10.2.1.1", ["ns2"]),
        pod("a1", "ns1"), pod("a2", "ns1"), pod("b1", "ns2"),
        *service("web", "ns1", "10.96.10.10", ["10.1.1.5", "10.1.1.6"]),
        *service("web2", "ns1", "10.96.10.11", ["10.1.1.7"]),
        *service("svc", "ns2", "10.96.20.20", ["10.2.1.5"]),
    ]


def pod(name: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]}}


def service(name: str, ns: str, vip: str, backends: list[str]) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
         "spec": {"clusterIP": vip, "ports": [{"name": "http", "port": 80,
                                               "targetPort": 8080}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-x", "namespace": ns,
                      "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
         "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in backends]},
    ]


def lb(ns: str, name: str) -> str:
    return naming.service_lb(ns, name, "TCP")


# -- reading all of NB -------------------------------------------------------------------------
@cache
def ref_columns() -> dict[str, tuple[str, ...]]:
    """Columns holding row references, per NB table (from the schema)."""
    tables = json.loads(Path(NB_SCHEMA).read_text())["tables"]

    def is_ref(t: Any) -> bool:
        return isinstance(t, dict) and any(
            isinstance(t.get(p), dict) and "refTable" in t[p] for p in ("key", "value"))
    return {name: tuple(c for c, spec in t["columns"].items() if is_ref(spec["type"]))
            for name, t in tables.items()}


def _norm(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        kind, inner = value
        if kind in ("uuid", "named-uuid"):
            return inner
        if kind == "set":
            return sorted(_norm(v) for v in inner)
        if kind == "map":
            return {_norm(k): _norm(v) for k, v in inner}
    return value


def dump(sandbox: Sandbox) -> Dump:
    """Every row of every NB table but NB_Global (ovn-northd writes it), one transaction."""
    assert sandbox.state is not None
    sandbox.nbctl("--wait=sb", "sync")  # ovn-northd has seen everything
    tables = sorted(t for t in ref_columns() if t != "NB_Global")
    ops = [{"op": "select", "table": t, "where": []} for t in tables]
    out = subprocess.run(["ovsdb-client", "transact", sandbox.state.nb_remote,
                          json.dumps(["OVN_Northbound", *ops])],
                         capture_output=True, text=True, timeout=60, check=True)
    return {t: {row["_uuid"][1]: {c: _norm(v) for c, v in row.items()
                                  if c not in ("_uuid", "_version")}
                for row in result["rows"]}
            for t, result in zip(tables, json.loads(out.stdout), strict=True)}


def is_ours(table: str, row: dict[str, Any]) -> bool:
    if table == "Load_Balancer_Group":
        return naming.is_our_lb_group(row["name"])
    ids = row.get("external_ids")
    return isinstance(ids, dict) and ids.get(naming.MANAGED_BY) == naming.MANAGED_BY_VALUE


class Foreign:
    """What the operator made, as read from NB once: the rows that are not ours, which of
    them each row of ours holds, and the operator's keys in our rows' external_ids."""

    def __init__(self, nb: Dump):
        self.rows = {(t, u): row for t, rows in nb.items() for u, row in rows.items()
                     if not is_ours(t, row)}
        foreign = {u for _, u in self.rows}
        self.held: dict[tuple[str, str, str], set[str]] = {}  # (table, our uuid, column)
        self.keys: dict[tuple[str, str], dict[str, str]] = {}
        for t, rows in nb.items():
            for u, row in rows.items():
                if not is_ours(t, row):
                    continue
                for col in ref_columns()[t]:
                    members = set(as_list(row[col])) & foreign
                    if members:
                        self.held[(t, u, col)] = members
                extra = {k: v for k, v in (row.get("external_ids") or {}).items()
                         if not naming.is_our_key(k)}
                if extra:
                    self.keys[(t, u)] = extra

    def problems(self, nb: Dump) -> list[str]:
        """What changed since, one line each ([] when every foreign thing is intact)."""
        out = []
        for (t, u), row in self.rows.items():
            now = nb[t].get(u)
            if now is None:
                out.append(f"{t} {row.get('name', u)}: deleted")
            elif now != row:
                diff = {c: (row[c], now.get(c)) for c in row if now.get(c) != row[c]}
                out.append(f"{t} {row.get('name', u)}: changed {diff}")
        for (t, u, col), members in self.held.items():
            ours = nb[t].get(u)
            if ours is None:
                continue  # our row is gone (GC): its memberships went with it
            lost = members - set(as_list(ours[col]))
            if lost:
                out.append(f"{t} {ours.get('name', u)}.{col}: lost foreign members "
                           f"{sorted(self.rows_named(lost))}")
        for (t, u), extra in self.keys.items():
            ours = nb[t].get(u)
            if ours is None:
                continue
            ids = ours.get("external_ids") or {}
            changed = {k: v for k, v in extra.items() if ids.get(k) != v}
            if changed:
                out.append(f"{t} {ours.get('name', u)}: operator keys lost {changed}")
        return out

    def rows_named(self, uuids: set[str]) -> list[str]:
        return [f"{t}:{row.get('name', u)}" for (t, u), row in self.rows.items() if u in uuids]


def nbctl(sandbox: Sandbox, *args: str) -> str:
    return sandbox.nbctl(*args).strip()


def add_foreign_rows(sandbox: Sandbox) -> None:
    """What an operator adds by hand (see the module docstring)."""
    nbctl(sandbox, "ls-add", "ops-ls", "--", "lsp-add", "ops-ls", "ops-ls-p1",
          "--", "lsp-set-addresses", "ops-ls-p1", "00:00:00:aa:00:01 192.168.50.2")
    nbctl(sandbox, "lr-add", "ops-lr", "--", "lrp-add", "ops-lr", "ops-lr-p1",
          "00:00:00:aa:00:02", "192.168.51.1/24")
    nbctl(sandbox, "lb-add", "ops-lb", "10.200.0.1:80", "10.200.1.1:8080", "tcp")
    nbctl(sandbox, "lb-add", "ops-lb-grp", "10.200.0.2:80", "10.200.1.2:8080", "tcp")
    nbctl(sandbox, "lb-add", "ops-lb-gone", "10.200.0.3:80", "10.200.1.3:8080", "tcp")
    ops_group = nbctl(sandbox, "create", "Load_Balancer_Group", "name=ops-group")
    # on OUR rows: a port on our switch, a route and a NAT on our VPC router, LBs in our
    # VPC's group (and in the group of the VPC that goes), on our switch and router
    router = naming.router("vpc1")
    nbctl(sandbox, "lsp-add", "subnet1", "ops-port", "--", "lsp-set-addresses", "ops-port",
          "00:00:00:aa:00:03 10.1.1.200")
    nbctl(sandbox, "lr-route-add", router, "10.250.0.0/16", "10.1.1.254")
    nbctl(sandbox, "lr-nat-add", router, "snat", "172.30.0.1", "10.1.2.0/24")
    for grp, lb_name in ((naming.lb_group("vpc1"), "ops-lb-grp"),
                         (naming.lb_group("vpc2"), "ops-lb-gone")):
        lb_uuid = find(sandbox, "Load_Balancer", f"name={lb_name}")[0]["_uuid"]
        nbctl(sandbox, "add", "Load_Balancer_Group", grp, "load_balancer", lb_uuid)
    # the operator's switch carries the LB group of the VPC that will be deleted
    nbctl(sandbox, "add", "Logical_Switch", "ops-ls", "load_balancer_group",
          find(sandbox, "Load_Balancer_Group", f"name={naming.lb_group('vpc2')}")[0]["_uuid"])
    nbctl(sandbox, "ls-lb-add", "subnet1", "ops-lb")
    nbctl(sandbox, "lr-lb-add", router, "ops-lb")
    nbctl(sandbox, "add", "Logical_Switch", "subnet1", "load_balancer_group", ops_group)
    # the operator's own key on two of our rows: an LB we will update, a switch we will not
    web = find(sandbox, "Load_Balancer", f"name={lb('ns1', 'web')}")[0]["_uuid"]
    nbctl(sandbox, "set", "Load_Balancer", web, f'external_ids:"{NOTE}"="owned by team-a"')
    nbctl(sandbox, "set", "Logical_Switch", "subnet1", f'external_ids:"{NOTE}"=hand-made')


def resyncs(run: Running, n: int = 2) -> None:
    """Wait for `n` more full syncs (sync + GC) of the controller's loop."""
    for _ in range(n):
        before = run.ctl.last_sync
        wait_for(lambda b=before: run.ctl.last_sync is not b, timeout=30, interval=0.05,
                 what="a full resync")


def names(sandbox: Sandbox, table: str) -> set[str]:
    return {r["name"] for r in find(sandbox, table)}


def lb_backends(sandbox: Sandbox, name: str) -> list[str]:
    rows = find(sandbox, "Load_Balancer", f"name={name}")
    return sorted(",".join(rows[0]["vips"].values()).split(",")) if rows else []


def test_rows_made_by_hand_survive_sync_resync_gc_and_restart(
        fake: FakeKube, sandbox: Sandbox, nb: NbClient, tmp_path: Path) -> None:
    assert sandbox.state is not None
    remote = sandbox.state.nb_remote
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
    create(fake, objects())

    def step(label: str, foreign: Foreign) -> None:
        problems = foreign.problems(dump(sandbox))
        assert not problems, f"after {label}:\n" + "\n".join(problems)

    with controller(fake, remote, resync=1.0) as run:
        wait_for(lambda: {"a1.ns1", "a2.ns1", "b1.ns2"} <= names(sandbox, "Logical_Switch_Port")
                 and lb("ns2", "svc") in names(sandbox, "Load_Balancer"), timeout=30)
        add_foreign_rows(sandbox)
        foreign = Foreign(dump(sandbox))
        assert (len(foreign.rows), len(foreign.held), len(foreign.keys)) == (11, 8, 2)
        resyncs(run)
        step("resyncs", foreign)

        # updates of our rows next to foreign members
        fake.store.patch(res.ENDPOINTSLICES, "web-x", "ns1", {"endpoints": [
            {"addresses": [ip], "conditions": {"ready": True}} for ip in ("10.1.1.8",)]})
        fake.store.delete(res.PODS, "a1", "ns1")
        create(fake, [pod("a3", "ns1")])
        fake.store.patch(res.VPCS, "vpc1", None, {"spec": {"staticRoutes": [
            {"cidr": "10.98.0.0/16", "nextHop": "10.1.1.253"}]}})
        wait_for(lambda: lb_backends(sandbox, lb("ns1", "web")) == ["10.1.1.8:8080"]
                 and "a3.ns1" in names(sandbox, "Logical_Switch_Port")
                 and "a1.ns1" not in names(sandbox, "Logical_Switch_Port"), timeout=30)
        resyncs(run)
        step("updates", foreign)

        # garbage collection: a VPC with everything in it, and one service of the other
        for kind, name, ns in ((res.ENDPOINTSLICES, "svc-x", "ns2"), (res.SERVICES, "svc", "ns2"),
                               (res.PODS, "b1", "ns2"), (res.SUBNETS, "subnet3", None),
                               (res.VPCS, "vpc2", None), (res.ENDPOINTSLICES, "web2-x", "ns1"),
                               (res.SERVICES, "web2", "ns1")):
            fake.store.delete(kind, name, ns)
        gone = {naming.router("vpc2"), "subnet3", lb("ns2", "svc"), lb("ns1", "web2")}
        wait_for(lambda: not gone & (names(sandbox, "Logical_Router")
                                     | names(sandbox, "Logical_Switch")
                                     | names(sandbox, "Load_Balancer")), timeout=30)
        resyncs(run)
        step("garbage collection", foreign)
        # the deleted VPC's group stays while the operator's switch uses it (NB refuses to
        # delete a row still referenced); once the switch lets go, the next GC deletes it
        assert naming.lb_group("vpc2") in names(sandbox, "Load_Balancer_Group")
        nbctl(sandbox, "clear", "Logical_Switch", "ops-ls", "load_balancer_group")
        foreign = Foreign(dump(sandbox))
        wait_for(lambda: naming.lb_group("vpc2") not in names(sandbox, "Load_Balancer_Group"),
                 timeout=30, what="the group deleted by the next GC")
        resyncs(run)
        step("garbage collection of the group", foreign)

    # a restart: startup sync with GC over an NB holding foreign rows
    with controller(fake, remote, resync=1.0) as run:
        resyncs(run, 3)
        assert run.ctl.last_sync is not None and run.ctl.last_sync.changes == 0
        step("restart", foreign)
    assert nbcheck.render_changes(kubeconfig, remote, sandbox.state.sb_remote) == []
    step("render", foreign)
