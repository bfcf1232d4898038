"""reconcile_node as a pure function of a Context (in-memory stores, config, network model,
IPAM): a node's port on the join subnet with its routes, the annotations the node agent reads,
a stable address released on delete, a retry before the join subnet is ready.
"""

from __future__ import annotations

from tests.unit import factories as f
from tests.unit.cluster import Cluster
from tests.unit.outcomes import rows_of
from topology import naming
from topology.model import Owner
from ycloud_controller import keys
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import PatchEffect
from ycloud_controller.reconcilers.node import reconcile_node


def test_node_port_on_join_subnet():
    c = Cluster().add(f.node("n1"), f.subnet("aaa", "10.20.0.0/16"), f.vpc("v1"),
                      f.subnet("other", "10.30.0.0/16", vpc="v1")).sync_subnets()
    out = reconcile_node(c.ctx, "n1")
    (row,) = rows_of(out, Owner("Node", "n1"))
    assert row.name == "node-n1" and row.switch == "subnet0"
    assert row.addresses == ("0a:58:64:40:00:02 100.64.0.2",)
    ids = row.external_ids()
    assert ids[naming.ROLE] == "node" and ids[naming.NODE] == "n1"
    # service CIDR, then the default VPC's subnets by name; never other VPCs' subnets
    assert ids[naming.ROUTES] == "10.96.0.0/12,10.20.0.0/16,10.16.0.0/16"
    assert ids[naming.GATEWAY] == "100.64.0.1" and ids[naming.CIDR] == "100.64.0.0/16"
    assert c.ipam.get("Node/n1").subnet == "subnet0"


def test_node_is_annotated_with_its_node_port_for_the_node_agent():
    c = Cluster().add(f.node("n1"), f.subnet("aaa", "10.20.0.0/16")).sync_subnets()
    out = reconcile_node(c.ctx, "n1")
    (p,) = [e for e in out.effects if isinstance(e, PatchEffect)]
    assert (p.resource, p.name, p.namespace) == (res.NODES, "n1", None)
    assert p.patch["metadata"]["annotations"] == {
        keys.ANN_IP: "100.64.0.2", keys.ANN_MAC: "0a:58:64:40:00:02",
        keys.ANN_SWITCH: "subnet0", keys.ANN_GATEWAY: "100.64.0.1",
        keys.ANN_CIDR: "100.64.0.0/16", keys.ANN_MTU: "1400",
        keys.ANN_ROUTES: "10.96.0.0/12,10.20.0.0/16,10.16.0.0/16"}
    # written once: an annotated node is not patched again
    c.annotate("Node", "n1", p.patch["metadata"]["annotations"])
    assert [e for e in reconcile_node(c.ctx, "n1").effects if isinstance(e, PatchEffect)] == []


def test_node_port_is_stable_and_released_on_delete():
    c = Cluster().add(f.node("n1")).sync_subnets()
    first = reconcile_node(c.ctx, "n1")
    assert reconcile_node(c.ctx, "n1").rows == first.rows
    c.remove("Node", "n1")
    assert reconcile_node(c.ctx, "n1").rows == {Owner("Node", "n1"): []}
    assert c.ipam.get("Node/n1") is None


def test_node_before_join_subnet_is_ready_retries():
    c = Cluster().add(f.node("n1"))
    out = reconcile_node(c.ctx, "n1")
    assert out.rows == {Owner("Node", "n1"): None}
    assert out.retry and out.invalid is None
