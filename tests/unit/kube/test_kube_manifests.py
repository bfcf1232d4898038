"""ManifestSource: YAML directory -> MemoryStore, applied like kubectl apply."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from fakekube.util import wait_for

from ycloud_controller.kube.errors import NotFound
from ycloud_controller.kube.resources import (
    CUSTOMRESOURCEDEFINITIONS,
    NAMESPACES,
    NODES,
    PODS,
    SERVICES,
    SUBNETS,
    VPCS,
    Resource,
)
from ycloud_controller.memkube.manifests import ManifestSource
from ycloud_controller.memkube.store import MemoryStore

SCENARIO = """\
apiVersion: iaas.yusur.io/v1
kind: Vpc
metadata:
  name: vpc1
spec:
  namespaces: [team]
---
# an empty document is skipped
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: team
  labels: {app: web}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: p1}
  spec: {nodeName: n1}
- apiVersion: iaas.yusur.io/v1
  kind: Subnet
  metadata: {name: s1}
  spec: {cidrBlock: 10.0.0.0/24, vpc: vpc1}
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    # make sure the change is visible even within one mtime tick
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def names(store: MemoryStore, res: Resource) -> list[str]:
    return [res.key_of(o) for o in store.list(res)[0]]


def test_load_multi_document_list_and_implied_namespaces(tmp_path: Path, store) -> None:
    write(tmp_path / "a.yaml", SCENARIO)
    write(tmp_path / "sub" / "b.yml", "kind: Node\napiVersion: v1\nmetadata: {name: n1}\n"
          "status:\n  addresses: [{type: InternalIP, address: 192.0.2.10}]\n")
    (tmp_path / "ignored.txt").write_text("kind: Node\nmetadata: {name: n9}\n")
    source = ManifestSource(tmp_path, store)
    assert source.load() == 5
    assert names(store, VPCS) == ["vpc1"]
    assert names(store, SUBNETS) == ["s1"]
    assert names(store, SERVICES) == ["team/web"]
    assert names(store, PODS) == ["default/p1"]
    assert {"team", "default"} <= set(names(store, NAMESPACES))
    node = store.get(NODES, "n1")
    assert node["status"]["addresses"][0]["address"] == "192.0.2.10"


def test_reload_keeps_controller_writes_and_deletes_removed_docs(tmp_path: Path, store) -> None:
    manifest = tmp_path / "a.yaml"
    write(manifest, SCENARIO)
    source = ManifestSource(tmp_path, store)
    source.load()
    # the controller annotates the Vpc and writes its status
    store.patch(VPCS, "vpc1", None, {"metadata": {"annotations": {"ycloud.io/router": "r1"}}})
    store.patch(VPCS, "vpc1", None, {"status": {"ready": True}}, subresource="status")
    assert source.reload() is False  # nothing changed on disk

    edited = SCENARIO.replace("namespaces: [team]", "namespaces: [team, other]")
    edited = edited.split("---\napiVersion: v1\nkind: List")[0]  # drop the List doc
    write(manifest, edited)
    assert source.reload() is True
    vpc = store.get(VPCS, "vpc1")
    assert vpc["spec"]["namespaces"] == ["team", "other"]
    assert vpc["metadata"]["annotations"] == {"ycloud.io/router": "r1"}
    assert vpc["status"] == {"ready": True}
    assert vpc["metadata"]["generation"] == 2
    with pytest.raises(NotFound):
        store.get(PODS, "p1", "default")
    assert names(store, SUBNETS) == []
    # a field removed from the file is removed from the object (three-way apply)
    write(manifest, edited.replace("  labels: {app: web}\n", ""))
    source.reload()
    assert "labels" not in store.get(SERVICES, "web", "team")["metadata"]


def test_objects_not_from_files_are_never_deleted(tmp_path: Path, store) -> None:
    write(tmp_path / "a.yaml", SCENARIO)
    store.create(PODS, {"metadata": {"name": "controller-made", "namespace": "default"}})
    source = ManifestSource(tmp_path, store)
    source.load()
    (tmp_path / "a.yaml").unlink()
    assert source.reload() is True
    assert names(store, PODS) == ["default/controller-made"]
    assert names(store, VPCS) == []


def test_bad_documents_are_skipped_and_bad_yaml_keeps_previous(tmp_path: Path, store) -> None:
    write(tmp_path / "good.yaml", SCENARIO)
    write(tmp_path / "bad.yaml", "\n---\n".join([
        "just a string",
        "kind: Pod\nmetadata: {namespace: x}",            # no name
        "metadata: {name: nokind}",                        # no kind
        "kind: Gadget\napiVersion: x/v1\nmetadata: {name: g}",  # unknown kind
        "kind: Pod\napiVersion: v1\nmetadata: {name: Bad_Name}",  # rejected by the store
        "kind: Pod\napiVersion: v1\nmetadata: {name: ok, namespace: x}",
    ]))
    source = ManifestSource(tmp_path, store)
    source.load()
    assert names(store, PODS) == ["default/p1", "x/ok"]
    # a syntax error keeps what the file held before, instead of deleting it
    write(tmp_path / "good.yaml", SCENARIO + "---\nkind: [unclosed\n")
    source.reload()
    assert names(store, VPCS) == ["vpc1"]
    write(tmp_path / "new.yaml", "kind: Vpc\napiVersion: iaas.yusur.io/v1\nmetadata:\n"
          "  name: vpc2\n---\n: : bad: [\n")
    source.reload()
    assert names(store, VPCS) == ["vpc1", "vpc2"]  # documents before the error are used


def test_crds_in_files_register_their_kinds(tmp_path: Path) -> None:
    store = MemoryStore(resources=(NAMESPACES, CUSTOMRESOURCEDEFINITIONS))
    write(tmp_path / "widget.yaml", """\
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, kind: Widget}
  versions: [{name: v1, served: true, storage: true}]
""")
    ManifestSource(tmp_path, store).load()
    widgets = store.resource_by_kind("Widget", "example.com/v1")
    assert widgets is not None
    assert names(store, widgets) == ["default/w1"]


def test_run_picks_up_changes(tmp_path: Path, store, spawn, stop: threading.Event) -> None:
    source = ManifestSource(tmp_path, store)
    spawn(source.run, stop, 0.02)
    write(tmp_path / "a.yaml", "kind: Vpc\napiVersion: iaas.yusur.io/v1\nmetadata: {name: v}\n")
    wait_for(lambda: names(store, VPCS) == ["v"], what="vpc loaded")
    (tmp_path / "a.yaml").unlink()
    wait_for(lambda: names(store, VPCS) == [], what="vpc deleted")
