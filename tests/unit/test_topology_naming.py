"""topology.naming: readable NB names, distinct names for distinct objects, stable keys."""

from __future__ import annotations

import itertools

import pytest

from topology import naming


def test_router_names():
    assert naming.router(naming.DEFAULT_VPC) == "ovn-cluster"
    assert naming.router("vpc1") == "vpc-vpc1"
    assert naming.lb_group("vpc1") == "vpc-vpc1"
    assert naming.is_our_lb_group(naming.lb_group("anything"))
    assert not naming.is_our_lb_group("ovn-kubernetes-lbg")


def test_subnet_names():
    assert naming.switch("s1") == "s1"
    assert naming.router_port("vpc1", "s1") == "vpc1-s1"
    assert naming.switch_router_port("s1", "vpc1") == "s1-vpc1"
    assert naming.probe_source_port("s1") == "hc-s1"


def test_workload_port_names():
    assert naming.pod_port("ns", "web-0") == "web-0.ns"
    assert naming.vnic_port("ns", "web-0") == "vnic.web-0.ns"
    assert naming.node_port("node1") == "node-node1"
    # a pod and a Vnic of the same name in the same namespace never share a port
    assert naming.pod_port("ns", "a") != naming.vnic_port("ns", "a")


def test_pod_ports_unique_per_namespace_and_name():
    names = ["a", "b", "web-0", "a.b", "x.y.z"]
    namespaces = ["default", "ns1", "ns-2"]  # namespaces are DNS labels: no dots
    ports = [naming.pod_port(ns, n) for ns, n in itertools.product(namespaces, names)]
    assert len(set(ports)) == len(ports)


def test_service_lb_names():
    assert naming.service_lb("ns", "web", "tcp") == "Service_ns/web_TCP_cluster"
    assert naming.service_lb("ns", "web", "UDP", "eip") == "Service_ns/web_UDP_eip"
    combos = itertools.product(["ns", "ns2"], ["web", "db"], ["TCP", "UDP", "SCTP"],
                               ["cluster", "eip"])
    lbs = [naming.service_lb(*c) for c in combos]
    assert len(set(lbs)) == len(lbs)


def test_eip_names_are_distinct_per_pool_and_vpc():
    pool, vpc = "p1", "v1"
    names = [
        naming.ext_switch(pool), naming.localnet_port(pool), naming.eip_gateway(pool),
        naming.eip_gateway_uplink(pool), naming.ext_switch_gateway_port(pool),
        naming.eip_transit(pool), naming.eip_gateway_transit_port(pool),
        naming.transit_gateway_port(pool), naming.vpc_transit_port(vpc, pool),
        naming.transit_vpc_port(pool, vpc), naming.service_gateway(pool),
        naming.svcgw_transit_port(pool), naming.transit_svcgw_port(pool),
        naming.svcgw_link_switch(pool, vpc), naming.svcgw_link_port(pool, vpc),
        naming.vpc_svcgw_port(vpc, pool),
    ]
    # routers and switches may share a name with each other (different tables), but ports
    # of one table must not collide
    ports = names[1:2] + names[3:5] + names[6:10] + names[11:13] + names[14:16]
    assert len(set(ports)) == len(ports)
    assert naming.ext_switch(pool) == "ext-p1"
    assert naming.eip_gateway(pool) == "eipgw-p1"
    assert naming.eip_transit(pool) == "eipts-p1"
    assert naming.service_gateway(pool) == "svcgw-p1"
    assert naming.link_switch_port("eipts-p1", "vpc-v1-eipts-p1") == "eipts-p1--vpc-v1-eipts-p1"
    assert naming.gateway_chassis("lrp", "ch1") == "lrp-ch1"


@pytest.mark.parametrize("fn,args", [
    (naming.route_key, ("r", "10.0.0.0/24", "10.0.0.1", "dst-ip")),
    (naming.nat_key, ("r", "snat", "1.1.1.1", "10.0.0.0/24")),
])
def test_keys_differ_in_every_field(fn, args):
    base = fn(*args)
    for i in range(len(args)):
        changed = list(args)
        changed[i] = changed[i] + "x"
        assert fn(*changed) != base


def test_route_key_default_policy():
    assert naming.route_key("r", "0.0.0.0/0", "1.1.1.1") == \
        naming.route_key("r", "0.0.0.0/0", "1.1.1.1", "dst-ip")
    assert naming.route_key("r", "0.0.0.0/0", "1.1.1.1", "src-ip") != \
        naming.route_key("r", "0.0.0.0/0", "1.1.1.1")


def test_route_keys_unique_over_ipv6_prefixes():
    keys = {naming.route_key("r", p, h) for p in ("fd00::/64", "fd00::1/128", "::/0")
            for h in ("fd00::1", "fd00::2")}
    assert len(keys) == 6


def test_health_check_and_ha_keys():
    assert naming.health_check_key("lb", "[fd00::1]:80") == "lb|[fd00::1]:80"
    assert naming.health_check_key("lb", "1.1.1.1:80") != naming.health_check_key("lb",
                                                                                   "1.1.1.1:8")
    assert naming.ha_chassis_key("g", "c1") != naming.ha_chassis_key("g", "c2")


def test_content_hash_is_short_and_stable():
    h = naming.content_hash("payload")
    assert h == naming.content_hash("payload")
    assert h != naming.content_hash("payload2")
    assert len(h) == 20 and all(c in "0123456789abcdef" for c in h)


def test_owner_ids():
    assert naming.owner_ids("Pod", "ns/p") == {
        naming.MANAGED_BY: naming.MANAGED_BY_VALUE, naming.KIND: "Pod", naming.OWNER: "ns/p"}
    assert naming.owner_ids("Subnet", "s", "v1")[naming.VPC] == "v1"
    assert naming.VPC not in naming.owner_ids("Subnet", "s", "")
    assert naming.owner_name("ns", "p") == "ns/p"
    assert naming.owner_name(None, "s") == "s"


def test_external_ids_keys_are_namespaced_and_distinct():
    keys = [naming.MANAGED_BY, naming.KIND, naming.OWNER, naming.VPC, naming.KEY, naming.HASH,
            naming.NODE, naming.SUBNET, naming.POOL, naming.NAMESPACE, naming.POD,
            naming.GATEWAY, naming.CIDR, naming.MTU, naming.ROUTES, naming.SERVICE, naming.ROLE]
    assert len(set(keys)) == len(keys)
    assert all(k.startswith("ycloud.io/") for k in keys)
