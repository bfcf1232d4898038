"""reconcile_vpc and reconcile_subnet as pure functions of a Context (in-memory stores,
config, network model, IPAM): a VPC's router, LB group, routes and status, the default VPC
without an object; a subnet's switch, router port, MTU, IPAM and status, the subnets of the
config; invalid and deleted objects.
"""

from __future__ import annotations

from tests.unit import factories as f
from tests.unit.cluster import Cluster
from tests.unit.outcomes import only, rows_of, status
from topology import naming
from topology.model import (
    LoadBalancerGroup,
    LogicalRouter,
    LogicalRouterPort,
    LogicalSwitch,
    LogicalSwitchPort,
    Owner,
    StaticRoute,
)
from ycloud_controller.config import Config
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import EventEffect, StatusEffect
from ycloud_controller.reconcilers.subnet import reconcile_subnet
from ycloud_controller.reconcilers.vpc import reconcile_vpc


# == Vpc ===========================================================================================
def test_default_vpc_without_object():
    c = Cluster()
    out = reconcile_vpc(c.ctx, "ovn-cluster")
    rows = rows_of(out, Owner("Vpc", "ovn-cluster"))
    assert {r.rid.key for r in rows} == {"ovn-cluster", "vpc-ovn-cluster"}
    assert out.effects == [] and out.invalid is None


def test_vpc_rows_and_status():
    c = Cluster().add(f.vpc("v1", staticRoutes=[{"cidr": "0.0.0.0/0", "nextHop": "10.1.0.254"}]),
                      f.subnet("b", "10.2.0.0/24", vpc="v1"), f.subnet("a", "10.1.0.0/24",
                                                                       vpc="v1"))
    out = reconcile_vpc(c.ctx, "v1")
    rows = rows_of(out, Owner("Vpc", "v1"))
    assert only(rows, LogicalRouter).name == "vpc-v1"
    assert only(rows, LoadBalancerGroup).name == "vpc-v1"
    route = only(rows, StaticRoute)
    assert (route.router, route.ip_prefix, route.nexthop) == ("vpc-v1", "0.0.0.0/0", "10.1.0.254")
    st = status(out)
    assert st.resource == res.VPCS and st.ready is True
    assert st.fields["router"] == "vpc-v1" and st.fields["lbGroup"] == "vpc-v1"
    assert st.fields["subnets"] == ["a", "b"]
    refused = out.on_refused("boom")
    assert any(isinstance(e, StatusEffect) and e.ready is False and e.reason == "NBRefused"
               for e in refused)


def test_invalid_vpc_leaves_rows_alone():
    c = Cluster().add(f.vpc("old", age=1, namespaces=["a"]),
                      f.vpc("new", age=2, namespaces=["a"]))
    out = reconcile_vpc(c.ctx, "new")
    assert out.rows == {Owner("Vpc", "new"): None}
    assert out.invalid.reason == "NamespaceConflict"
    st = status(out)
    assert st.ready is False and st.reason == "NamespaceConflict"
    (ev,) = [e for e in out.effects if isinstance(e, EventEffect)]
    assert ev.type == "Warning" and ev.reason == "NamespaceConflict"


def test_deleted_vpc_deletes_its_rows():
    out = reconcile_vpc(Cluster().ctx, "gone")
    assert out.rows == {Owner("Vpc", "gone"): []}
    assert out.effects == []


# == Subnet ========================================================================================
def test_subnet_rows_status_and_ipam():
    c = Cluster().add(f.vpc("v1"), f.subnet("s1", "10.1.0.0/24", vpc="v1", mtu=1300))
    out = reconcile_subnet(c.ctx, "s1")
    rows = rows_of(out, Owner("Subnet", "s1"))
    assert only(rows, LogicalSwitch).lb_groups == ("vpc-v1",)
    lrp = only(rows, LogicalRouterPort)
    assert lrp.router == "vpc-v1" and lrp.networks == ("10.1.0.1/24",)
    assert only(rows, LogicalSwitchPort).external_ids()[naming.MTU] == "1300"
    assert c.ipam.subnet("s1") is not None
    st = status(out)
    assert st.fields == {"switch": "s1", "v4UsingIPs": 0, "v4AvailableIPs": 252}
    c.ipam.allocate("Pod/x/y", "s1")
    assert status(reconcile_subnet(c.ctx, "s1")).fields["v4UsingIPs"] == 1


def test_subnet_mtu_defaults_to_config_and_dual_stack_status():
    c = Cluster(Config(mtu=1450)).add(f.subnet("s1", "10.1.0.0/24,fd01::/120"))
    out = reconcile_subnet(c.ctx, "s1")
    sw = only(rows_of(out, Owner("Subnet", "s1")), LogicalSwitch)
    assert sw.external_ids()[naming.MTU] == "1450"
    assert status(out).fields == {"switch": "s1", "v4UsingIPs": 0, "v4AvailableIPs": 252,
                                  "v6UsingIPs": 0, "v6AvailableIPs": 253}


def test_config_subnets_reconcile_without_objects():
    c = Cluster()
    out = reconcile_subnet(c.ctx, "ovn-default")
    lrp = only(rows_of(out, Owner("Subnet", "ovn-default")), LogicalRouterPort)
    assert lrp.router == "ovn-cluster" and lrp.networks == ("10.16.0.1/16",)
    assert out.effects == []
    assert reconcile_subnet(c.ctx, "subnet0").rows[Owner("Subnet", "subnet0")]


def test_invalid_subnet():
    c = Cluster().add(f.subnet("s1", "10.1.0.0/24", vpc="nope"))
    out = reconcile_subnet(c.ctx, "s1")
    assert out.rows == {Owner("Subnet", "s1"): None}
    assert out.invalid.reason == "UnknownVPC"
    assert status(out).ready is False
    assert c.ipam.subnet("s1") is None


def test_deleted_subnet_frees_ipam():
    c = Cluster().add(f.subnet("s1", "10.1.0.0/24"))
    reconcile_subnet(c.ctx, "s1")
    c.ipam.allocate("Pod/ns/p", "s1")
    c.remove("Subnet", "s1")
    out = reconcile_subnet(c.ctx, "s1")
    assert out.rows == {Owner("Subnet", "s1"): []}
    assert c.ipam.subnet("s1") is None and c.ipam.get("Pod/ns/p") is None
