"""Reconcilers as pure functions of a Context: in-memory stores, config, network model, IPAM."""

from __future__ import annotations

import ipaddress
from ipaddress import ip_address

import pytest

from tests.unit import factories as f
from tests.unit.cluster import Cluster
from topology import naming
from topology.model import (
    HealthCheck,
    LoadBalancer,
    LoadBalancerGroup,
    LogicalRouter,
    LogicalRouterPort,
    LogicalSwitch,
    LogicalSwitchPort,
    Owner,
    StaticRoute,
)
from ycloud_controller import keys
from ycloud_controller.config import Config, SubnetConfig
from ycloud_controller.kube import resources as res
from ycloud_controller.reconcilers.base import EventEffect, Outcome, PatchEffect, StatusEffect
from ycloud_controller.reconcilers.lb_config import hairpin_ips
from ycloud_controller.reconcilers.node import reconcile_node
from ycloud_controller.reconcilers.pod import reconcile_pod
from ycloud_controller.reconcilers.service import reconcile_service
from ycloud_controller.reconcilers.subnet import reconcile_subnet
from ycloud_controller.reconcilers.vpc import reconcile_vpc


def rows_of(outcome: Outcome, owner: Owner) -> list:
    rows = outcome.rows[owner]
    assert rows is not None, outcome
    return list(rows)


def status(outcome: Outcome) -> StatusEffect:
    (eff,) = [e for e in outcome.effects if isinstance(e, StatusEffect)]
    return eff


def only(rows: list, cls: type):
    (row,) = [r for r in rows if isinstance(r, cls)]
    return row


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


# == Pod ===========================================================================================
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


# == Node ==========================================================================================
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


# == Service =======================================================================================
SVC = Owner("Service", "default/web")


def lbs(out: Outcome, owner: Owner = SVC) -> dict[str, LoadBalancer]:
    return {r.name: r for r in rows_of(out, owner) if isinstance(r, LoadBalancer)}


def vips(out: Outcome, proto: str = "TCP", owner: Owner = SVC) -> dict[str, str]:
    name = naming.service_lb(*owner.name.split("/"), proto)
    return dict(lbs(out, owner)[name].vips)


def test_service_one_lb_per_protocol():
    c = Cluster().add(
        f.service("web", cluster_ips=["10.96.0.10"], externalIPs=["1.2.3.4"], ports=[
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "https", "port": 443, "targetPort": 8443},
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]),
        f.endpoint_slice("web", [f.endpoint("10.16.0.5"), f.endpoint("10.16.0.6")], ports=[
            {"name": "http", "port": 8080}, {"name": "https", "port": 8443},
            {"name": "dns", "port": 5353, "protocol": "UDP"}]))
    out = reconcile_service(c.ctx, "default/web")
    got = lbs(out)
    assert set(got) == {"Service_default/web_TCP_cluster", "Service_default/web_UDP_cluster"}
    tcp = got["Service_default/web_TCP_cluster"]
    assert tcp.protocol == "tcp" and tcp.groups == ("vpc-ovn-cluster",) and tcp.vpc == "ovn-cluster"
    assert dict(tcp.vips) == {
        "10.96.0.10:80": "10.16.0.5:8080,10.16.0.6:8080",
        "10.96.0.10:443": "10.16.0.5:8443,10.16.0.6:8443",
        "1.2.3.4:80": "10.16.0.5:8080,10.16.0.6:8080",
        "1.2.3.4:443": "10.16.0.5:8443,10.16.0.6:8443"}
    assert vips(out, "UDP") == {"10.96.0.10:53": "10.16.0.5:5353,10.16.0.6:5353",
                                "1.2.3.4:53": "10.16.0.5:5353,10.16.0.6:5353"}
    assert dict(tcp.options) == {"reject": "true", "hairpin_snat_ip": "10.96.0.10"}
    assert tcp.external_ids()[naming.SERVICE] == "default/web"
    assert status(out).ready is True


def test_service_without_endpoints_rejects():
    c = Cluster().add(f.service("web", cluster_ips=["10.96.0.10"]))
    assert vips(reconcile_service(c.ctx, "default/web")) == {"10.96.0.10:80": ""}


def test_named_target_port_resolved_through_slice_ports():
    c = Cluster().add(
        f.service("web", cluster_ips=["10.96.0.10"],
                  ports=[{"name": "http", "port": 80, "targetPort": "web"}]),
        # two slices: pods whose "web" port differ
        f.endpoint_slice("web", [f.endpoint("10.16.0.5")], ports=[{"name": "http",
                                                                   "port": 8080}],
                         name="web-a"),
        f.endpoint_slice("web", [f.endpoint("10.16.0.6")], ports=[{"name": "http",
                                                                   "port": 9090}],
                         name="web-b"),
        f.endpoint_slice("other", [f.endpoint("10.16.0.9")]))
    assert vips(reconcile_service(c.ctx, "default/web")) == {
        "10.96.0.10:80": "10.16.0.5:8080,10.16.0.6:9090"}


def test_slice_without_ports():
    numeric = Cluster().add(f.service("web", cluster_ips=["10.96.0.10"]),
                            f.endpoint_slice("web", [f.endpoint("10.16.0.5")], ports=[]))
    assert vips(reconcile_service(numeric.ctx, "default/web")) == {
        "10.96.0.10:80": "10.16.0.5:8080"}
    named = Cluster().add(
        f.service("web", cluster_ips=["10.96.0.10"],
                  ports=[{"name": "http", "port": 80, "targetPort": "web"}]),
        f.endpoint_slice("web", [f.endpoint("10.16.0.5")], ports=[]))
    assert vips(reconcile_service(named.ctx, "default/web")) == {"10.96.0.10:80": ""}


def test_slice_port_matched_by_name_and_protocol():
    c = Cluster().add(
        f.service("web", cluster_ips=["10.96.0.10"],
                  ports=[{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}]),
        f.endpoint_slice("web", [f.endpoint("10.16.0.5")],
                         ports=[{"name": "dns", "port": 5353, "protocol": "TCP"}]))
    assert vips(reconcile_service(c.ctx, "default/web"), "UDP") == {"10.96.0.10:53": ""}


def test_not_ready_and_terminating_endpoints():
    eps = [f.endpoint("10.16.0.5"), f.endpoint("10.16.0.6", ready=False),
           f.endpoint("10.16.0.7", ready=None),  # unknown readiness counts as ready
           f.endpoint("10.16.0.8", ready=True, terminating=True),
           f.endpoint("10.16.0.9", ready=False, terminating=True)]
    c = Cluster().add(f.service("web", cluster_ips=["10.96.0.10"]),
                      f.endpoint_slice("web", eps))
    assert vips(reconcile_service(c.ctx, "default/web")) == {
        "10.96.0.10:80": "10.16.0.5:8080,10.16.0.7:8080"}
    c.add(f.service("web", cluster_ips=["10.96.0.10"], publishNotReadyAddresses=True))
    assert vips(reconcile_service(c.ctx, "default/web")) == {
        "10.96.0.10:80": "10.16.0.5:8080,10.16.0.6:8080,10.16.0.7:8080"}


def test_health_checked_service_keeps_not_ready_backends_and_maps_them():
    c = Cluster().add(f.pod("web-0", annotations={keys.ANN_IP: "10.16.0.5"}),
                      f.pod("web-1", annotations={keys.ANN_IP: "10.16.0.6"})).sync_subnets()
    reconcile_pod(c.ctx, "default/web-0")
    reconcile_pod(c.ctx, "default/web-1")
    c.add(f.service("web", cluster_ips=["10.96.0.10"],
                    annotations={keys.ANN_HEALTH_CHECK: '{"interval": 2, "failureCount": 2}'}),
          f.endpoint_slice("web", [f.endpoint("10.16.0.5"),
                                   f.endpoint("10.16.0.6", ready=False),
                                   f.endpoint("10.16.0.7")]))  # no port of ours: no mapping
    out = reconcile_service(c.ctx, "default/web")
    rows = rows_of(out, SVC)
    lb = only(rows, LoadBalancer)
    assert dict(lb.vips) == {"10.96.0.10:80": "10.16.0.5:8080,10.16.0.6:8080,10.16.0.7:8080"}
    assert dict(lb.ip_port_mappings) == {"10.16.0.5": "web-0.default:10.16.255.254",
                                         "10.16.0.6": "web-1.default:10.16.255.254"}
    hc = only(rows, HealthCheck)
    assert hc.vip == "10.96.0.10:80" and hc.lb == lb.name
    assert dict(hc.options)["interval"] == "2" and dict(hc.options)["failure_count"] == "2"


def test_client_ip_affinity():
    c = Cluster().add(f.service("web", cluster_ips=["10.96.0.10"], sessionAffinity="ClientIP"))
    lb = only(rows_of(reconcile_service(c.ctx, "default/web"), SVC), LoadBalancer)
    assert dict(lb.options)["affinity_timeout"] == "10800"


def test_ipv6_service():
    c = Cluster().add(f.service("web", cluster_ips=["fd00::10"]),
                      f.endpoint_slice("web", [f.endpoint("fd16::5")], address_type="IPv6"),
                      f.endpoint_slice("web", [f.endpoint("10.16.0.5")], name="v4"))
    out = reconcile_service(c.ctx, "default/web")
    assert vips(out) == {"[fd00::10]:80": "[fd16::5]:8080"}
    assert dict(only(rows_of(out, SVC), LoadBalancer).options)["hairpin_snat_ip"] == "fd00::10"


def test_dual_stack_service_uses_backends_of_each_family():
    c = Cluster().add(f.service("web", cluster_ips=["10.96.0.10", "fd00::10"]),
                      f.endpoint_slice("web", [f.endpoint("fd16::5")], address_type="IPv6"),
                      f.endpoint_slice("web", [f.endpoint("10.16.0.5")]))
    out = reconcile_service(c.ctx, "default/web")
    assert vips(out) == {"10.96.0.10:80": "10.16.0.5:8080", "[fd00::10]:80": "[fd16::5]:8080"}
    hairpin = dict(only(rows_of(out, SVC), LoadBalancer).options)["hairpin_snat_ip"]
    assert sorted(hairpin.split()) == ["10.96.0.10", "fd00::10"]  # one per family


def test_hairpin_ips_first_of_each_family():
    # the value is part of the LB's content hash: its order must not change
    assert hairpin_ips([("10.96.0.10", 4), ("10.96.0.11", 4), ("fd00::10", 6)]) == \
        "fd00::10 10.96.0.10"
    assert hairpin_ips([("fd00::10", 6), ("10.96.0.10", 4)]) == "10.96.0.10 fd00::10"
    assert hairpin_ips([]) == ""


@pytest.mark.parametrize("spec", [
    {"cluster_ips": ["None"]},
    {"type": "ExternalName", "externalName": "example.com", "ports": []},
    {},  # no ClusterIP allocated yet
])
def test_services_without_lb(spec):
    c = Cluster().add(f.service("web", **spec))
    out = reconcile_service(c.ctx, "default/web")
    assert out.rows == {SVC: []}
    assert status(out).ready is True


def test_deleted_service():
    out = reconcile_service(Cluster().ctx, "default/web")
    assert out.rows == {SVC: []} and out.effects == []


def test_service_in_vpc_namespace_uses_the_vpc_group():
    c = Cluster().add(f.vpc("v1", namespaces=["t1"]),
                      f.service("web", namespace="t1", cluster_ips=["10.96.0.10"]))
    lb = only(rows_of(reconcile_service(c.ctx, "t1/web"), Owner("Service", "t1/web")),
              LoadBalancer)
    assert lb.groups == ("vpc-v1",) and lb.vpc == "v1"


def test_service_vpc_from_annotation():
    c = Cluster().add(f.vpc("v2"), f.service("web", cluster_ips=["10.96.0.10"],
                                             annotations={keys.ANN_VPC: "v2"}))
    lb = only(rows_of(reconcile_service(c.ctx, "default/web"), SVC), LoadBalancer)
    assert lb.groups == ("vpc-v2",)


def test_service_of_unknown_vpc_is_invalid():
    c = Cluster().add(f.service("web", cluster_ips=["10.96.0.10"],
                                annotations={keys.ANN_VPC: "nope"}))
    out = reconcile_service(c.ctx, "default/web")
    assert out.rows == {SVC: None}
    assert out.invalid.reason == "UnknownVPC"
    assert status(out).ready is False


def test_service_with_bad_port_is_invalid():
    c = Cluster().add(f.service("web", cluster_ips=["10.96.0.10"], ports=[{"port": 0}]))
    out = reconcile_service(c.ctx, "default/web")
    assert out.rows == {SVC: None} and out.invalid.reason == "InvalidPort"


def test_service_rows_are_deterministic():
    objs = [f.service("web", cluster_ips=["10.96.0.10"]),
            f.endpoint_slice("web", [f.endpoint(f"10.16.0.{i}") for i in (9, 3, 7)])]
    one = reconcile_service(Cluster().add(*objs).ctx, "default/web")
    two = reconcile_service(Cluster().add(*reversed(objs)).ctx, "default/web")
    assert one.rows == two.rows
    assert [r.content_hash for r in rows_of(one, SVC)] == \
        [r.content_hash for r in rows_of(two, SVC)]
