"""The raw limit of the benchmark (bench/runner.py, item 1): the very rows the controller
writes, inserted in one OVSDB transaction over a plain socket.

The rows are captured from the NB the controller converged (its first cold sync): every row
of every table the controller writes (topology.model.TABLES: routers, switches, their ports,
gateway chassis, HA groups, routes, NAT, load balancers and their groups, health checks,
chassis template variables), every column as the server holds it (empty sets and maps left
to their defaults, as the controller does), references between them turned into named
UUIDs. So the raw transaction holds exactly what the controller wrote, every row kind, and
needs no model of its own that could drift from the product.

Up to the "restructure" block (issue 19 added the shapes) the raw limit was the
Load_Balancer rows and their groups only, built with the product's builder: the blocks of the
history compare the cold sync with that smaller transaction.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from bench import ovsdb
from topology import model
from topology.model import Row


def _empty(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and value[0] in ("set", "map") \
        and not value[1]


def _relink(value: Any, names: dict[str, str]) -> Any:
    """["uuid", x] of a captured row -> ["named-uuid", its name], in atoms, sets and maps."""
    if isinstance(value, list):
        if len(value) == 2 and value[0] == "uuid" and isinstance(value[1], str):
            name = names.get(value[1])
            return ["named-uuid", name] if name else value
        return [_relink(v, names) for v in value]
    return value


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


def capture_ops(client: ovsdb.Client) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Insert ops for every row of the tables the controller writes, as NB holds them now;
    and the row count of each table."""
    selects = [{"op": "select", "table": t, "where": []} for t in model.TABLES]
    results = client.transact(selects)
    names: dict[str, str] = {}
    tables: list[tuple[str, list[dict[str, Any]]]] = []
    for table, res in zip(model.TABLES, results, strict=True):
        rows = res["rows"]
        tables.append((table, rows))
        for row in rows:
            names[row["_uuid"][1]] = f"r{len(names)}"
    ops: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    for table, rows in tables:
        for row in rows:
            cols = {c: _relink(v, names) for c, v in row.items()
                    if c not in ("_uuid", "_version") and not _empty(v)}
            ops.append({"op": "insert", "table": table, "row": cols,
                        "uuid-name": names[row["_uuid"][1]]})
            counts[table] += 1
    return ops, dict(counts)


def wipe(client: ovsdb.Client) -> None:
    for ops in ovsdb.wipe_ops():
        client.transact(ops)


def raw_limit(client: ovsdb.Client, ops: list[dict[str, Any]], repeat: int = 3,
              keep: bool = False) -> list[float]:
    """Median-of-`repeat` material: each run empties NB and inserts `ops` in one transaction,
    timed from the first byte sent to the reply parsed (request pre-encoded). NB is emptied
    at the end, or keeps the rows of the last run (`keep`)."""
    times = []
    for k in range(repeat):
        data = client.encode("transact", [ovsdb.DB, *ops])
        wipe(client)
        time.sleep(0.2)
        t0 = time.monotonic()
        result = client.call_raw(data)
        t1 = time.monotonic()
        ovsdb.check(result)
        times.append(t1 - t0)
        del data
        if k < repeat - 1 or not keep:
            wipe(client)
    return times
