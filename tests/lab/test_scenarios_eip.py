"""EIPs with real packets: scenario 3 (an external host reaches one VPC's backends through an
on-link EIP, its address preserved), scenario 4 (one EIP over backends in two VPCs, SNATed to
the service gateway's link addresses), an EIP that goes with its Service, pod egress, pods
reaching EIPs, and failover of the gateway chassis.

Runs on the examples served by the in-process controller (`examples` fixture)."""

from __future__ import annotations

import time

import pytest
from ycloud_lab import Lab
from ycloud_lab.checkrun import run_check, wait_check
from ycloud_lab.ovsdb import as_list, rows
from ycloud_lab.recirc import MAX_RECIRC_DEPTH, PathCount, measure
from ycloud_lab.scenarios import (
    CHECKS_BY_ID,
    EXT_HOST,
    MULTI,
    MULTI_EIP,
    POD_EIP,
    POOL,
    SVCGW_LINK,
    WEB,
    WEB_EIP,
    Check,
    Target,
    wait_until,
)

from topology import naming
from ycloud_controller import keys
from ycloud_controller.kube import resources as res

from .conftest import Examples, chassis_of, service, wait_deleted, wait_vip

pytestmark = pytest.mark.lab


def test_scenario3_onlink_eip_reaches_both_workers_with_client_address(
        examples: Examples) -> None:
    lab = examples.lab
    routes = lab.exec(EXT_HOST, "ip", "-4", "route", "show", check=True).stdout
    assert " via " not in routes and "default" not in routes, routes  # on-link, no route
    row = examples.check("s3", batch=20, most=20)
    assert row.ok, row  # every reply saw ext1's own address
    assert set(row.answered) == set(WEB), row
    assert {chassis_of(lab, examples.spec(n, 8080).target) for n in WEB} == {"node1", "node2"}


def test_scenario4_eip_reaches_both_vpcs_from_svcgw_links(examples: Examples) -> None:
    resolver = examples.resolver
    row = examples.check("s4", batch=20, most=20)
    assert row.ok, row
    assert set(row.answered) == set(MULTI), row
    vpcs = {n: resolver.port_vpc(examples.spec(n, 8080).target) for n in MULTI}
    assert vpcs == {"multi-1": "vpc1", "multi-2": "vpc2"}
    links = {n: resolver.router_port_ip(naming.svcgw_link_port(POOL, v)) for n, v in
             vpcs.items()}
    assert row.sources == {n: {ip} for n, ip in links.items()}, row.sources
    assert len(set(links.values())) == 2


def test_eip_of_a_deleted_service_stops_answering(examples: Examples) -> None:
    lab, eip = examples.lab, "172.18.0.70"
    svc = service("tmp-eip", "ns-vpc1", "10.96.10.14", {"app": "web"}, type="LoadBalancer",
                  loadBalancerIP=eip, allocateLoadBalancerNodePorts=False)
    svc["metadata"]["annotations"] = {keys.ANN_EIP_POOL: POOL}
    check = Check("tmp-eip", "3 EIP, one VPC", EXT_HOST, Target(eip), "tcp", 80, WEB)
    examples.backend.create(res.SERVICES, svc)
    try:
        wait_vip(lab, f"{eip}:80", lambda ips: ips is not None and len(ips) == 2,
                 "the tmp-eip LB")
        row = wait_check(lab, check, 20, resolver=examples.resolver, timeout=1)
        assert row.ok, row
    finally:
        wait_deleted(examples, "Service", "tmp-eip", "ns-vpc1")
    wait_vip(lab, f"{eip}:80", lambda ips: ips is None, "the tmp-eip LB removed")
    nat = rows("ovn-nbctl", lab.nb_remote, "--columns=external_ip", "find", "NAT",
               f"external_ip={eip}")
    assert nat == [], nat
    routes = lab.nbctl("lr-route-list", naming.eip_gateway(POOL))
    assert eip not in routes, routes
    wait_until(lambda: not lab.request(EXT_HOST, "tcp", eip, 80, timeout=1).ok, 15,
               f"{eip} to stop answering")
    assert not lab.request(EXT_HOST, "tcp", eip, 80, timeout=1).ok
    row = examples.check("s3")  # the other EIP of the same backends is untouched
    assert row.ok, row


@pytest.mark.parametrize("check_id", ["egress-vpc1", "egress-vpc2", "egress-default"])
def test_pod_egress_leaves_through_the_eip_gateway_uplink(examples: Examples,
                                                           check_id: str) -> None:
    row = examples.check(check_id)
    assert row.ok, row  # ext1 saw 172.18.0.2, pool1's uplink address


@pytest.mark.parametrize("check_id", [
    "eip-other-vpc", "eip-own-vpc", "multi-from-vpc1", "multi-from-vpc2", "multi-from-default",
])
def test_pod_reaches_eip(examples: Examples, check_id: str) -> None:
    row = examples.check(check_id, timeout=1.5)
    assert row.ok, row


VPC3_POD = naming.pod_port("ns-vpc3", "client-3")
VPC3 = [
    (res.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns-vpc3"}}),
    (res.VPCS, {"apiVersion": "iaas.yusur.io/v1", "kind": "Vpc", "metadata": {"name": "vpc3"},
                "spec": {"namespaces": ["ns-vpc3"], "natOutgoing": True}}),
    (res.SUBNETS, {"apiVersion": "iaas.yusur.io/v1", "kind": "Subnet",
                   "metadata": {"name": "subnet4"},
                   "spec": {"vpc": "vpc3", "cidrBlock": "10.3.1.0/24", "gateway": "10.3.1.1",
                            "namespaces": ["ns-vpc3"]}}),
    (res.PODS, {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "client-3", "namespace": "ns-vpc3"},
                "spec": {"nodeName": "node2", "containers": [{"name": "c", "image": "x"}]}}),
]


def test_a_vpc_attached_later_reaches_the_multi_vpc_eip(examples: Examples) -> None:
    """A VPC made while the examples run (no backend of any service, attached to the default
    pool) gets a service-gateway link and its pod reaches the multi-VPC EIP, SNATed to the
    gateway's link toward the answering backend's VPC, within the recirculation budget."""
    lab, backend = examples.lab, examples.backend
    check = Check("multi-from-vpc3", POD_EIP, VPC3_POD, Target(MULTI_EIP), "tcp", 80, MULTI,
                  SVCGW_LINK)
    for resource, obj in VPC3:
        backend.create(resource, obj)
    try:
        wait_until(lambda: any(r["ip_prefix"] == f"{MULTI_EIP}/32" and
                               r["external_ids"].get(naming.VPC) == "vpc3" for r in rows(
                                   "ovn-nbctl", lab.nb_remote, "--columns=ip_prefix,external_ids",
                                   "list", "Logical_Router_Static_Route")),
                   30, "vpc3's route to the multi-VPC EIP over its svcgw link")
        wait_until(lambda: VPC3_POD in lab.cni_sync(), 30, "client-3 plugged")
        row = wait_check(lab, check, 20, resolver=examples.resolver, timeout=1.5)
        assert row.ok, row
        count = measure(lab, VPC3_POD, "tcp", MULTI_EIP, 80)
        assert count.answered and count.within_budget, count.describe()
    finally:
        for resource, obj in reversed(VPC3):
            md = obj["metadata"]
            backend.delete(resource, md["name"], md.get("namespace"))
        wait_until(lambda: VPC3_POD not in lab.cni_sync(), 30, "client-3 unplugged")
    wait_until(lambda: naming.svcgw_link_switch(POOL, "vpc3") not in lab.nbctl("show"), 30,
               "vpc3's link gone")
    row = examples.check("multi-from-default")  # the other links are untouched
    assert row.ok, row


# client, target, the deepest nesting the README records for the path (Known limits)
RECIRC_PATHS = [
    ("multi-from-default", naming.pod_port("default", "nginx-1"), MULTI_EIP, 5),
    ("multi-from-vpc2", naming.pod_port("ns-vpc2", "client-2"), MULTI_EIP, 5),
    ("s4", EXT_HOST, MULTI_EIP, 4),
    ("s3", EXT_HOST, WEB_EIP, 3),
    ("eip-other-vpc", naming.pod_port("ns-vpc2", "client-2"), WEB_EIP, 5),
]


@pytest.mark.parametrize("path", RECIRC_PATHS, ids=[p[0] for p in RECIRC_PATHS])
def test_recirculations_per_path_stay_within_the_datapath_budget(
        examples: Examples, path: tuple[str, str, str, int],
        record_property: pytest.RecordProperty) -> None:
    """Every path to an EIP nests at most MAX_RECIRC_DEPTH deep on every chassis (tunnel pops
    and recirculations, measured on the datapath with a real request), and as deep as the
    README says: a change of topology that costs a recirculation shows here first."""
    _, client, eip, expected = path
    count = measure(examples.lab, client, "tcp", eip, 80)
    record_property("recirculations", count.describe())
    print(count.describe())
    assert count.answered, count.describe()
    assert count.within_budget and count.worst <= MAX_RECIRC_DEPTH, count.describe()
    assert count.worst == expected, count.describe()


MIN_REQUESTS, MAX_REQUESTS = 12, 60
GW_PODS = [
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client-gw", "namespace": "default"},
     "spec": {"nodeName": "gw1", "containers": [{"name": "c", "image": "x"}]}},
    {"apiVersion": "v1", "kind": "Pod",
     "metadata": {"name": "multi-3", "namespace": "ns-vpc1", "labels": {"app": "multi"}},
     "spec": {"nodeName": "gw1", "containers": [{"name": "web", "image": "x"}]}},
]


def test_client_and_backend_on_the_gateway_chassis_stay_within_the_budget(
        examples: Examples) -> None:
    """The deepest placement: a pod on the gateway chassis (where svcgw runs) reaches the
    multi-VPC EIP and the backend chosen is on that chassis too: its switch's conntrack runs
    there after svcgw's. Every request is answered and nests at most 6 deep."""
    lab, backend = examples.lab, examples.backend
    client, server = naming.pod_port("default", "client-gw"), naming.pod_port("ns-vpc1",
                                                                               "multi-3")
    for pod in GW_PODS:
        backend.create(res.PODS, pod)
    handle = None
    try:
        wait_until(lambda: {client, server} <= set(lab.cni_sync()), 30, "pods on gw1 plugged")
        handle = lab.start_server(server, "multi-3", "tcp", 8080)
        wait_vip(lab, f"{MULTI_EIP}:80", lambda ips: ips is not None and len(ips) == 3,
                 "multi-3 a backend of the multi-VPC EIP", timeout=30)
        # The backend is chosen by a hash of the 5-tuple, so which requests reach multi-3 is
        # chance: measure until one has (at least MIN_REQUESTS, at most MAX_REQUESTS; missing
        # one of 3 backends 60 times running happens once in 10^10 runs).
        counts: list[PathCount] = []
        while len(counts) < MAX_REQUESTS and (
                len(counts) < MIN_REQUESTS or "multi-3" not in {c.server for c in counts}):
            count = measure(lab, client, "tcp", MULTI_EIP, 80)
            assert count.answered and count.within_budget, count.describe()
            counts.append(count)
        assert "multi-3" in {c.server for c in counts}, [c.describe() for c in counts]
    finally:
        if handle is not None:
            lab.stop_server(handle)
        for pod in GW_PODS:
            backend.delete(res.PODS, pod["metadata"]["name"], pod["metadata"]["namespace"])
        wait_until(lambda: not {client, server} & set(lab.cni_sync()), 30, "pods unplugged")
    wait_vip(lab, f"{MULTI_EIP}:80", lambda ips: ips is not None and len(ips) == 2,
             "multi-3 gone from the multi-VPC EIP")


def _active_chassis(lab: Lab) -> dict[str, str]:
    """Distributed gateway port (cr-...) -> chassis name where it is active."""
    names = {r["_uuid"]: r["name"] for r in rows("ovn-sbctl", lab.sb_remote,
                                                 "--columns=_uuid,name", "list", "Chassis")}
    out = {}
    for r in rows("ovn-sbctl", lab.sb_remote, "--columns=logical_port,chassis", "find",
                  "Port_Binding", "type=chassisredirect"):
        chassis = as_list(r["chassis"])
        out[r["logical_port"]] = names.get(chassis[0], "?") if chassis else ""
    return out


def _svcgw_chassis(lab: Lab) -> str:
    return lab.nbctl("--if-exists", "get", "Logical_Router", naming.service_gateway(POOL),
                     "options:chassis").strip().strip('"')


def _all_on(lab: Lab, chassis: str) -> bool:
    active = _active_chassis(lab)
    return bool(active) and set(active.values()) == {chassis} and \
        _svcgw_chassis(lab) == chassis


def test_gateway_chassis_failover_and_failback(examples: Examples, lab: Lab) -> None:
    """gw1 stops: OVN moves the HA distributed gateway ports to gw2, the controller (reading
    the active chassis from SB) moves the service gateway there; scenarios 3 and 4 answer
    again. gw1 comes back: everything returns to it."""
    s3, s4 = CHECKS_BY_ID["s3"], CHECKS_BY_ID["s4"]
    # gw1 has the highest priority; right after the lab starts (or after a test that moved
    # them) the ports may still be on gw2 for a moment
    wait_until(lambda: _all_on(lab, "gw1"), 30, "gateway ports and svcgw on gw1")
    stopped = time.monotonic()
    lab.stop_chassis("gw1")
    try:
        row = wait_check(lab, s3, 30, resolver=examples.resolver, timeout=1)
        took_s3 = time.monotonic() - stopped
        assert row.ok, row
        row = wait_check(lab, s4, 30, resolver=examples.resolver, timeout=1)
        took_s4 = time.monotonic() - stopped
        assert row.ok, row
        assert _all_on(lab, "gw2"), (_active_chassis(lab), _svcgw_chassis(lab))
        print(f"failover: scenario 3 after {took_s3:.1f}s, scenario 4 after {took_s4:.1f}s")
    finally:
        started = time.monotonic()
        lab.start_chassis("gw1")
        wait_until(lambda: _all_on(lab, "gw1"), 30, "gateway ports and svcgw back on gw1")
        lab.wait_hv()
        for check in (s3, s4):
            row = wait_check(lab, check, 30, resolver=examples.resolver, timeout=1)
            assert row.ok, row
        print(f"failback: scenarios 3 and 4 after {time.monotonic() - started:.1f}s")
    # every backend VPC answers again: a batch of 20 right after the first answer may still
    # meet a flow being reinstalled (one timeout in about ten runs), so the batch is asked
    # until it passes, for at most 15 s
    deadline = time.monotonic() + 15
    while True:
        row = run_check(lab, CHECKS_BY_ID["s4"], examples.resolver, batch=20, most=20)
        if (row.ok and set(row.answered) == set(MULTI)) or time.monotonic() > deadline:
            break
    assert row.ok and set(row.answered) == set(MULTI), row
