"""reconcile_pod as a pure function of a Context (in-memory stores, config, network model,
IPAM): a pod's port and annotations, its subnet (default, requested, bound to its namespace or
to its VPC, sticky), requested addresses and MACs, tenancy, dual stack, and when its address
is released.
"""

from __future__ import annotations

import ipaddress
from ipaddress import ip_address

import pytest

from tests.unit import factories as f
from tests.unit.cluster import Cluster
from tests.unit.outcomes import rows_of
from topology import naming
from topology.model import LogicalSwitchPort, Owner
from ycloud_controller import keys
from ycloud_controller.config import Config, SubnetConfig
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import EventEffect, Outcome, PatchEffect
from ycloud_controller.reconcilers.pod import reconcile_pod

POD = Owner("Pod", "default/web-0")


def pod_port(out: Outcome, owner: Owner = POD) -> LogicalSwitchPort:
    (row,) = rows_of(out, owner)
    assert isinstance(row, LogicalSwitchPort)
    return row


def patch(out: Outcome) -> dict[str, str] | None:
    patches = [e for e in out.effects if isinstance(e, PatchEffect)]
    if not patches:
        return None
    (p,) = patches
    return p.patch["metadata"]["annotations"]


def test_pod_in_default_subnet():
    c = Cluster().add(f.pod("web-0", node="n1")).sync_subnets()
    out = reconcile_pod(c.ctx, "default/web-0")
    row = pod_port(out)
    assert row.name == "web-0.default" and row.switch == "ovn-default"
    assert row.addresses == ("0a:58:0a:10:00:02 10.16.0.2",)
    assert row.port_security == row.addresses
    assert row.vpc == "ovn-cluster"
    ids = row.external_ids()
    assert ids[naming.NODE] == "n1" and ids[naming.ROLE] == "pod"
    assert ids[naming.MTU] == "1400" and ids[naming.GATEWAY] == "10.16.0.1"
    assert patch(out) == {keys.ANN_IP: "10.16.0.2", keys.ANN_MAC: "0a:58:0a:10:00:02",
                          keys.ANN_SWITCH: "ovn-default", keys.ANN_GATEWAY: "10.16.0.1",
                          keys.ANN_CIDR: "10.16.0.0/16", keys.ANN_MTU: "1400",
                          keys.ANN_IP_ALLOCATED: "10.16.0.2"}  # chosen by the controller
    (p,) = [e for e in out.effects if isinstance(e, PatchEffect)]
    assert (p.resource, p.name, p.namespace) == (res.PODS, "web-0", "default")
    assert c.ipam.get("Pod/default/web-0").ips == (ip_address("10.16.0.2"),)


def test_pod_annotations_patched_only_when_different():
    c = Cluster().add(f.pod("web-0")).sync_subnets()
    first = reconcile_pod(c.ctx, "default/web-0")
    c.annotate("Pod", "default/web-0", patch(first))
    second = reconcile_pod(c.ctx, "default/web-0")
    assert patch(second) is None
    assert pod_port(second) == pod_port(first)
    # a changed annotation is put back
    c.annotate("Pod", "default/web-0", {keys.ANN_GATEWAY: "10.16.0.99"})
    assert patch(reconcile_pod(c.ctx, "default/web-0")) == patch(first)


def test_pod_requests_subnet_by_annotation():
    c = Cluster().add(f.subnet("s1", "10.1.0.0/24"),
                      f.pod("web-0", annotations={keys.ANN_SUBNET: "s1"})).sync_subnets()
    row = pod_port(reconcile_pod(c.ctx, "default/web-0"))
    assert row.switch == "s1" and row.addresses == ("0a:58:0a:01:00:02 10.1.0.2",)


def test_pod_in_namespace_bound_subnet():
    c = Cluster().add(f.subnet("s1", "10.1.0.0/24", namespaces=["team"]),
                      f.pod("web-0", namespace="team")).sync_subnets()
    row = pod_port(reconcile_pod(c.ctx, "team/web-0"), Owner("Pod", "team/web-0"))
    assert row.switch == "s1" and row.name == "web-0.team"


def test_pod_in_vpc_namespace_gets_vpc_first_subnet():
    c = Cluster().add(f.vpc("v1", namespaces=["t1"]),
                      f.subnet("zz", "10.2.0.0/24", vpc="v1"),
                      f.subnet("aa", "10.1.0.0/24", vpc="v1"),
                      f.pod("p", namespace="t1")).sync_subnets()
    row = pod_port(reconcile_pod(c.ctx, "t1/p"), Owner("Pod", "t1/p"))
    assert row.switch == "aa" and row.vpc == "v1"


def test_pod_in_vpc_without_subnets():
    c = Cluster().add(f.vpc("v1", namespaces=["t1"]), f.pod("p", namespace="t1")).sync_subnets()
    out = reconcile_pod(c.ctx, "t1/p")
    assert out.rows == {Owner("Pod", "t1/p"): None}
    assert out.invalid.reason == "NoSubnet"
    status, ev = out.effects
    assert isinstance(ev, EventEffect) and ev.type == "Warning" and ev.reason == "NoSubnet"
    assert status.condition == "ycloud.io/NetworkReady" and status.ready is False


def test_pod_may_not_use_another_vpcs_subnet():
    c = Cluster().add(f.vpc("v1", namespaces=["t1"]),
                      f.subnet("s-v1", "10.1.0.0/24", vpc="v1"),
                      f.pod("p", namespace="intruder",
                            annotations={keys.ANN_SUBNET: "s-v1"})).sync_subnets()
    out = reconcile_pod(c.ctx, "intruder/p")
    assert out.rows == {Owner("Pod", "intruder/p"): None}
    assert out.invalid.reason == "SubnetNotAllowed"
    assert c.ipam.get("Pod/intruder/p") is None


def test_pod_may_not_use_the_sticky_annotation_to_enter_another_vpc():
    """The logical_switch annotation keeps a pod where it was placed; written by hand it must
    not bypass tenancy."""
    c = Cluster().add(f.vpc("v1", namespaces=["t1"]),
                      f.subnet("s-v1", "10.1.0.0/24", vpc="v1"),
                      f.pod("p", namespace="intruder",
                            annotations={keys.ANN_SWITCH: "s-v1"})).sync_subnets()
    out = reconcile_pod(c.ctx, "intruder/p")
    assert out.rows == {Owner("Pod", "intruder/p"): None}
    assert out.invalid.reason == "SubnetNotAllowed"


@pytest.mark.parametrize("subnet", ["nope", "subnet0"])
def test_pod_requests_unknown_or_join_subnet(subnet):
    c = Cluster().add(f.pod("web-0", annotations={keys.ANN_SUBNET: subnet})).sync_subnets()
    out = reconcile_pod(c.ctx, "default/web-0")
    assert out.invalid.reason == "UnknownSubnet"
    assert out.rows == {POD: None}


def test_pod_keeps_its_subnet_when_namespace_binding_changes():
    c = Cluster().add(f.pod("web-0")).sync_subnets()
    first = reconcile_pod(c.ctx, "default/web-0")
    c.annotate("Pod", "default/web-0", patch(first))
    c.add(f.subnet("s1", "10.1.0.0/24", namespaces=["default"])).sync_subnets()
    out = reconcile_pod(c.ctx, "default/web-0")
    assert pod_port(out).switch == "ovn-default"
    assert pod_port(out) == pod_port(first) and patch(out) is None


def test_pod_keeps_the_subnet_nb_records_for_it_without_its_annotations():
    """Manifests mode after a restart: the annotations are gone, IPAM holds what the pod's
    port in NB records (restore); the pod stays there, as the running controller kept it."""
    c = Cluster().add(f.pod("web-0"),
                      f.subnet("s1", "10.1.0.0/24", namespaces=["default"])).sync_subnets()
    assert c.ipam.restore("Pod/default/web-0", "ovn-default",
                          (ipaddress.ip_address("10.16.0.9"),), "0a:58:0a:10:00:09")
    out = reconcile_pod(c.ctx, "default/web-0")
    assert pod_port(out).switch == "ovn-default"
    assert pod_port(out).addresses == ("0a:58:0a:10:00:09 10.16.0.9",)


def test_sticky_subnet_that_is_gone_is_replaced():
    """The address was the controller's (ip_allocated lists it): re-allocated. A user's
    request that does not fit is refused (tests/unit/test_pod_addresses.py)."""
    c = Cluster().add(f.pod("web-0", annotations={keys.ANN_SWITCH: "gone",
                                                  keys.ANN_IP: "10.9.0.5",
                                                  keys.ANN_IP_ALLOCATED: "10.9.0.5"})
                      ).sync_subnets()
    out = reconcile_pod(c.ctx, "default/web-0")
    assert pod_port(out).switch == "ovn-default"
    assert patch(out)[keys.ANN_IP] == "10.16.0.2"  # the old address is outside: a new one


def test_pod_requested_address_and_mac():
    c = Cluster().add(f.pod("web-0", annotations={keys.ANN_IP: "10.16.0.50",
                                                  keys.ANN_MAC: "0a:00:00:00:00:50"})
                      ).sync_subnets()
    out = reconcile_pod(c.ctx, "default/web-0")
    assert pod_port(out).addresses == ("0a:00:00:00:00:50 10.16.0.50",)
    ann = patch(out)
    assert (ann[keys.ANN_IP], ann[keys.ANN_MAC]) == ("10.16.0.50", "0a:00:00:00:00:50")


def test_pod_requested_address_in_use():
    c = Cluster().add(f.pod("a", annotations={keys.ANN_IP: "10.16.0.50"}),
                      f.pod("b", annotations={keys.ANN_IP: "10.16.0.50"})).sync_subnets()
    assert pod_port(reconcile_pod(c.ctx, "default/a"), Owner("Pod", "default/a"))
    out = reconcile_pod(c.ctx, "default/b")
    assert out.rows == {Owner("Pod", "default/b"): None}
    assert out.invalid.reason == "AddressInUse"
    _, ev = out.effects
    assert ev.reason == "AddressInUse" and "default/a" in ev.message


def test_pod_before_its_subnet_is_ready():
    c = Cluster().add(f.pod("web-0"))  # no subnet registered in IPAM yet
    out = reconcile_pod(c.ctx, "default/web-0")
    assert out.rows == {POD: None}  # nothing written, nothing allocated
    assert c.ipam.owners() == {}
    said = out.invalid.reason if out.invalid else out.retry
    assert said and ("SubnetNotReady" in said or "not ready" in said)


@pytest.mark.parametrize("gone", ["deleted", "hostNetwork", "Succeeded", "Failed"])
def test_pod_without_port_releases_its_address(gone):
    c = Cluster().add(f.pod("web-0")).sync_subnets()
    pod_port(reconcile_pod(c.ctx, "default/web-0"))
    assert c.ipam.get("Pod/default/web-0") is not None
    if gone == "deleted":
        c.remove("Pod", "default/web-0")
    elif gone == "hostNetwork":
        c.add(f.pod("web-0", host_network=True))
    else:
        c.add(f.pod("web-0", phase=gone))
    out = reconcile_pod(c.ctx, "default/web-0")
    assert out.rows == {POD: []}
    assert out.effects == []
    assert c.ipam.get("Pod/default/web-0") is None


@pytest.mark.parametrize("manager", [keys.SLICE_EMULATOR, keys.SLICE_MANAGER])
def test_deleted_pod_keeps_its_port_while_a_derived_slice_lists_it(manager):
    """A deleted backend's port and address outlive its place in the slices the controller
    derives, so the Service's LB drops the address before the port goes (no VIP points at
    a port that is gone); a slice the controller does not derive holds nothing back."""
    c = Cluster().add(f.pod("web-0")).sync_subnets()
    pod_port(reconcile_pod(c.ctx, "default/web-0"))
    ip = str(c.ipam.get("Pod/default/web-0").ips[0])
    derived = f.endpoint_slice("web", [f.endpoint(ip)], name="web-derived",
                               labels={keys.SLICE_MANAGED_BY: manager})
    foreign = f.endpoint_slice("web", [f.endpoint(ip)], name="web-by-hand")
    c.add(derived).add(foreign).remove("Pod", "default/web-0")
    held = reconcile_pod(c.ctx, "default/web-0")
    assert held.rows == {POD: None}
    assert held.retry and ip in held.retry and "web-derived" in held.retry
    assert c.ipam.get("Pod/default/web-0") is not None
    c.add({**derived, "endpoints": []})
    out = reconcile_pod(c.ctx, "default/web-0")
    assert out.rows == {POD: []} and not out.retry
    assert c.ipam.get("Pod/default/web-0") is None


def test_host_network_pod_never_allocates():
    c = Cluster().add(f.pod("h", host_network=True)).sync_subnets()
    assert reconcile_pod(c.ctx, "default/h").rows == {Owner("Pod", "default/h"): []}
    assert c.ipam.owners() == {}


def test_dual_stack_pod():
    cfg = Config(default_subnet=SubnetConfig("ovn-default", "10.16.0.0/16,fd16::/112"))
    c = Cluster(cfg).add(f.pod("web-0")).sync_subnets()
    out = reconcile_pod(c.ctx, "default/web-0")
    assert pod_port(out).addresses == ("0a:58:0a:10:00:02 10.16.0.2 fd16::2",)
    ann = patch(out)
    assert ann[keys.ANN_IP] == "10.16.0.2,fd16::2"
    assert ann[keys.ANN_GATEWAY] == "10.16.0.1,fd16::1"
    assert ann[keys.ANN_CIDR] == "10.16.0.0/16,fd16::/112"


def test_pod_port_refused_by_nb_reports_event():
    c = Cluster().add(f.pod("web-0")).sync_subnets()
    out = reconcile_pod(c.ctx, "default/web-0")
    status, ev = out.on_refused("constraint violation")
    assert status.ready is False and status.condition == "ycloud.io/NetworkReady"
    assert ev.type == "Warning" and ev.reason == "NBRefused"
    assert "constraint violation" in ev.message
