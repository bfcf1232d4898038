"""The layers, checked: every import of every module (top level, functions, TYPE_CHECKING
blocks alike) is read from its source, and the rules of docs/architecture.md hold.

- topology's pure part (model, naming, index, plan, builders) imports neither the OVSDB client
  (topology.ovsdb) nor the NB sync engine (topology.nbsync), nor threads, sockets or python-ovs;
- the OVSDB client knows nothing of NB: it imports nothing else of topology;
- nothing in topology knows Kubernetes or the controller;
- reconcilers and the API types import neither the client nor the engine;
- the node agent (ycloud_controller/node) imports neither the NB client nor the engine, and the
  CNI plugin only json, os, socket and sys;
- the product imports no harness (the lab, the OVN sandbox, the fake API server, tests, bench),
  and bench does not import tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE_TOPOLOGY = ("topology.model", "topology.naming", "topology.index", "topology.plan",
                 "topology.builders")
HARNESS = ("ycloud_lab", "fakekube", "ovn_sandbox", "tests", "bench")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def modules(*packages: str) -> dict[str, set[str]]:
    found = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = imports_of(path)
    return found


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(importers: dict[str, set[str]], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{mod} imports {imp}" for mod, imps in importers.items()
                  for imp in imps if under(imp, forbidden))


def test_the_modules_under_check_exist() -> None:
    names = set(modules("topology", "ycloud_controller"))
    for expected in ("topology.plan", "topology.index", "topology.ovsdb.session",
                     "topology.nbsync.client", "ycloud_controller.reconcilers.service"):
        assert expected in names


def test_topologys_pure_part_imports_no_client_engine_threads_or_sockets() -> None:
    pure = {m: i for m, i in modules("topology").items() if under(m, PURE_TOPOLOGY)}
    assert violations(pure, ("topology.ovsdb", "topology.nbsync", "threading", "socket", "ovs",
                             "ovsdbapp", "structlog.threadlocal")) == []


def test_the_ovsdb_client_knows_nothing_of_nb() -> None:
    client = {m: i for m, i in modules("topology").items() if under(m, ("topology.ovsdb",))}
    others = {imp for imps in client.values() for imp in imps
              if under(imp, ("topology",)) and not under(imp, ("topology.ovsdb",))}
    assert others == set()


def test_topology_knows_neither_kubernetes_nor_the_controller() -> None:
    assert violations(modules("topology"), ("kubernetes", "ycloud_controller")) == []


@pytest.mark.parametrize("package", ["ycloud_controller/reconcilers", "ycloud_controller/api"])
def test_reconcilers_and_api_types_write_no_nb(package: str) -> None:
    assert violations(modules(package), ("topology.ovsdb", "topology.nbsync")) == []


def test_the_product_imports_no_harness_and_bench_no_tests() -> None:
    assert violations(modules("topology", "ycloud_controller"), HARNESS) == []
    assert violations(modules("bench"), ("tests",)) == []


def test_the_node_agent_reads_no_nb_and_the_plugin_only_the_standard_library() -> None:
    node = modules("ycloud_controller/node")
    assert violations(node, ("topology.ovsdb", "topology.nbsync", "ycloud_controller.cli",
                             "ycloud_controller.controller")) == []
    assert node["ycloud_controller.node.plugin"] == {"json", "os", "socket", "sys"}
