"""The raw limit of the benchmark (bench/runner.py, item 1): the very Load_Balancer rows the
controller writes, and their group memberships, inserted in one OVSDB transaction over a plain
socket."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from bench import ovsdb, workload
from topology.model import Row


def _atom(value: Any) -> Any:
    if isinstance(value, dict):
        return ovsdb.ovs_map({str(k): str(v) for k, v in value.items()})
    if isinstance(value, list):
        return ovsdb.ovs_set(value)
    return value


def row_values(row: Row) -> dict[str, Any]:
    """A row of the product's builders as the columns of a raw insert. Empty sets and maps
    are left to their default, as the controller does: the raw transaction must be the
    cheapest form of the same rows."""
    cols = {k: _atom(v) for k, v in row.columns().items()
            if not (not v and isinstance(v, (list, tuple, dict)))}
    cols["external_ids"] = _atom(row.external_ids())
    return cols


def raw_ops(shape: workload.Shape) -> list[dict[str, Any]]:
    """One transaction: N LB rows + the VPC groups holding them (named-uuid memberships)."""
    ops: list[dict[str, Any]] = []
    members: dict[str, list[Any]] = defaultdict(list)
    for i in range(shape.services):
        row = workload.lb_row(shape, i)
        uuid_name = f"lb{i}"
        ops.append({"op": "insert", "table": "Load_Balancer", "row": row_values(row),
                    "uuid-name": uuid_name})
        members[row.groups[0]].append(["named-uuid", uuid_name])
    for group, lbs in sorted(members.items()):
        ops.append({"op": "insert", "table": "Load_Balancer_Group",
                    "row": {"name": group, "load_balancer": ["set", lbs]}})
    return ops


def wipe(client: ovsdb.Client) -> None:
    client.transact(ovsdb.wipe_ops())


def raw_limit(client: ovsdb.Client, shape: workload.Shape, repeat: int = 3) -> list[float]:
    data = client.encode("transact", [ovsdb.DB, *raw_ops(shape)])
    times = []
    for _ in range(repeat):
        wipe(client)
        time.sleep(0.2)
        t0 = time.monotonic()
        result = client.call_raw(data)
        t1 = time.monotonic()
        ovsdb.check(result)
        times.append(t1 - t0)
        data = client.encode("transact", [ovsdb.DB, *raw_ops(shape)])
    wipe(client)
    return times
