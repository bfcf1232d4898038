"""Reading NB with OVS's own tools (ovsdb-client, no controller code) to check the invariants
of the fault tests: every row of ours once (no duplicates), no row whose owner is gone (no
orphans), and what a fresh controller would still change (`render`)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.functional.conftest import _plain
from topology import model, naming
from topology.model import Owner
from ycloud_controller.config import Config

ROOT = Path(__file__).resolve().parents[2]
# our tables with a `name` column (the others: routes, NAT, HA_Chassis, health checks)
NAMED = frozenset({"Logical_Router", "Logical_Router_Port", "Gateway_Chassis",
                   "HA_Chassis_Group", "Logical_Switch", "Logical_Switch_Port",
                   "Load_Balancer_Group", "Load_Balancer"})


def owned_rows(remote: str, extra: dict[str, tuple[str, ...]] | None = None,
               ) -> dict[str, list[dict[str, Any]]]:
    """Every row the controller owns, per table, read from the server at `remote` (one
    remote, not a list) by `ovsdb-client transact` (one `select` per table, one
    transaction): rows with managed-by, and the Load_Balancer_Groups of our reserved names
    (the table has no external_ids). `extra`: more columns to read, per table."""
    ops = []
    for table in model.TABLES:
        columns = ["_uuid", *(["name"] if table in NAMED else []),
                   *([] if table in model.OWNED_BY_NAME else ["external_ids"]),
                   *(extra or {}).get(table, ())]
        where = [] if table in model.OWNED_BY_NAME else [[
            "external_ids", "includes",
            ["map", [[naming.MANAGED_BY, naming.MANAGED_BY_VALUE]]]]]
        ops.append({"op": "select", "table": table, "where": where, "columns": columns})
    res = subprocess.run(["ovsdb-client", "transact", remote,
                          json.dumps(["OVN_Northbound", *ops])],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out: dict[str, list[dict[str, Any]]] = {}
    for table, result in zip(model.TABLES, json.loads(res.stdout), strict=True):
        rows = [{c: _plain(v) for c, v in row.items()} for row in result["rows"]]
        if table in model.OWNED_BY_NAME:
            rows = [r for r in rows if naming.is_our_lb_group(r["name"])]
        out[table] = rows
    return out


def key_of(table: str, row: dict[str, Any]) -> str:
    if table in model.OWNED_BY_NAME:
        return row["name"]
    return row["external_ids"].get(naming.KEY) or row.get("name") or row["_uuid"]


def duplicates(rows: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str], int]:
    """(table, key) of ours held by more than one row, and by how many; also names shared
    by two rows of ours in a table whose rows have names (Load_Balancer names are not unique
    in the schema: a second insert would not be refused by NB itself)."""
    found: dict[tuple[str, str], int] = {}
    for table, items in rows.items():
        for key, n in Counter(key_of(table, r) for r in items).items():
            if n > 1:
                found[(table, key)] = n
        names = Counter(r["name"] for r in items if isinstance(r.get("name"), str)
                        and r["name"])
        for name, n in names.items():
            if n > 1:
                found.setdefault((table, f"name={name}"), n)
    return found


def owner_of(table: str, row: dict[str, Any]) -> Owner | None:
    if table in model.OWNED_BY_NAME:
        return None
    ids = row["external_ids"]
    return Owner(ids.get(naming.KIND, ""), ids.get(naming.OWNER, ""))


def orphans(rows: dict[str, list[dict[str, Any]]],
            alive: Iterable[Owner]) -> list[tuple[str, str, Owner | None]]:
    """Rows of ours whose owner is not among `alive`."""
    alive = set(alive)
    return [(table, key_of(table, r), owner_of(table, r)) for table, items in rows.items()
            for r in items if owner_of(table, r) is not None and owner_of(table, r) not in alive]


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """`ycloud-controller ARGS` as a user runs it (JSON logs on stderr)."""
    return subprocess.run([sys.executable, "-m", "ycloud_controller.cli", *args,
                           "--log-format", "json"], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def render_changes(kubeconfig: Path, nb_remote: str, sb_remote: str) -> list[dict[str, Any]]:
    """What a fresh controller would change in NB (`render --format json`; [] when NB is as
    desired)."""
    return render_plan(["--kubeconfig", str(kubeconfig)], nb_remote, sb_remote)


def render_plan(source: list[str], nb_remote: str, sb_remote: str) -> list[dict[str, Any]]:
    """`render --format json` of a fresh controller on `source` (`--kubeconfig F` or
    `--manifests DIR`)."""
    out = cli("render", *source, "--ovn-nb-db", nb_remote, "--ovn-sb-db", sb_remote,
              "--format", "json")
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def expected_owners(namespace: str, pods: Iterable[str], services: Iterable[str]) -> set[Owner]:
    """The owners a cluster of pods and services of one namespace has in NB, with the default
    VPC and the configuration's subnets."""
    cfg = Config()
    return ({Owner("Pod", f"{namespace}/{p}") for p in pods}
            | {Owner("Service", f"{namespace}/{s}") for s in services}
            | {Owner("Vpc", cfg.default_vpc), Owner("Subnet", cfg.default_subnet.name),
               Owner("Subnet", cfg.join_subnet.name)})
