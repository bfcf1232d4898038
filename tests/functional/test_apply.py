"""The topology engine against a real ovsdb-server and ovn-northd."""

from __future__ import annotations

from ovn_sandbox import Sandbox

from tests.functional.conftest import as_list, find, nb_db_file
from topology import naming
from topology.builders.port import PortSpec, build_port
from topology.builders.subnet import SubnetSpec, build_subnet
from topology.builders.vpc import Route, VpcSpec, build_vpc
from topology.model import GatewayChassis, LogicalRouterPort, Owner, Row
from topology.nbsync.applier import Applier
from topology.nbsync.client import NbClient

VPC = Owner("Vpc", "vpc1")
SUBNET = Owner("Subnet", "subnet1")


def vpc_rows(routes: tuple[Route, ...] = ()) -> list[Row]:
    return build_vpc(VpcSpec(name="vpc1", owner=VPC, routes=routes))


def subnet_rows(name: str = "subnet1", cidr: str = "10.1.1.0/24",
                gw: str = "10.1.1.1") -> list[Row]:
    return build_subnet(SubnetSpec(name=name, vpc="vpc1", owner=Owner("Subnet", name),
                                   cidrs=(cidr,), gateways=(gw,)))


def pod_rows(name: str, ip: str, mac: str = "0a:00:00:00:00:01",
             switch: str = "subnet1") -> list[Row]:
    return build_port(PortSpec(name=naming.pod_port("ns1", name), switch=switch,
                               owner=Owner("Pod", f"ns1/{name}"), vpc="vpc1", mac=mac, ips=(ip,),
                               role=naming.ROLE_POD, node="node1", gateways=("10.1.1.1",),
                               cidrs=("10.1.1.0/24",)))


def base() -> dict[Owner, list[Row]]:
    return {VPC: vpc_rows(), SUBNET: subnet_rows(),
            Owner("Pod", "ns1/a"): pod_rows("a", "10.1.1.10"),
            Owner("Pod", "ns1/b"): pod_rows("b", "10.1.1.11", mac="0a:00:00:00:00:02")}


def test_builds_readable_topology(applier: Applier, sandbox: Sandbox) -> None:
    result = applier.apply(base())
    assert result.ok and result.transactions == 1
    router = find(sandbox, "Logical_Router", "name=vpc-vpc1")[0]
    assert router["external_ids"][naming.OWNER] == "vpc1"
    assert router["external_ids"][naming.MANAGED_BY] == naming.MANAGED_BY_VALUE
    switch = find(sandbox, "Logical_Switch", "name=subnet1")[0]
    group = find(sandbox, "Load_Balancer_Group", "name=vpc-vpc1")[0]
    assert as_list(switch["load_balancer_group"]) == [group["_uuid"]]
    ports = {p["name"] for p in find(sandbox, "Logical_Switch_Port")}
    assert ports == {"subnet1-vpc1", "a.ns1", "b.ns1"}
    lrp = find(sandbox, "Logical_Router_Port", "name=vpc1-subnet1")[0]
    assert lrp["networks"] == "10.1.1.1/24"
    show = sandbox.nbctl("show")
    assert "router" in show and "(vpc-vpc1)" in show and "(subnet1)" in show
    assert "port a.ns1" in show and "addresses: [\"0a:00:00:00:00:01 10.1.1.10\"]" in show


def test_second_apply_commits_nothing(applier: Applier, sandbox: Sandbox) -> None:
    assert applier.apply(base()).transactions == 1
    sandbox.nbctl("--wait=sb", "sync")
    size = nb_db_file(sandbox).stat().st_size
    again = applier.apply(base(), gc=True)
    assert again.ok and again.transactions == 0 and again.changes == 0
    applier.catch_up()  # witness: the server has answered everything this client sent
    assert nb_db_file(sandbox).stat().st_size == size


def test_modify_rewrites_only_changed_row(applier: Applier, sandbox: Sandbox) -> None:
    applier.apply(base())
    changed = {Owner("Pod", "ns1/a"): pod_rows("a", "10.1.1.20")}
    plan = applier.plan(changed)
    assert plan.summary() == {"insert": 0, "update": 1, "delete": 0, "link": 0, "unlink": 0,
                              "errors": 0}
    assert applier.apply(changed).changes == 1
    port = find(sandbox, "Logical_Switch_Port", "name=a.ns1")[0]
    assert port["addresses"] == "0a:00:00:00:00:01 10.1.1.20"


def test_delete_owner_removes_its_rows_only(applier: Applier, sandbox: Sandbox) -> None:
    applier.apply(base())
    result = applier.apply({Owner("Pod", "ns1/a"): []})
    assert result.ok
    ports = {p["name"] for p in find(sandbox, "Logical_Switch_Port")}
    assert ports == {"subnet1-vpc1", "b.ns1"}
    switch = find(sandbox, "Logical_Switch", "name=subnet1")[0]
    assert len(switch["ports"]) == 2


def test_gc_deletes_owners_that_are_gone(applier: Applier, sandbox: Sandbox) -> None:
    applier.apply(base())
    desired = base()
    del desired[Owner("Pod", "ns1/b")]
    result = applier.apply(desired, gc=True)
    assert result.ok and result.changes >= 1
    assert not find(sandbox, "Logical_Switch_Port", "name=b.ns1")


def test_deleted_vpc_takes_its_lb_group_along(applier: Applier, sandbox: Sandbox) -> None:
    """Load_Balancer_Group has no external_ids: its owner comes from its reserved name."""
    applier.apply(base())
    assert applier.apply({o: [] for o in base()}).ok
    assert not find(sandbox, "Load_Balancer_Group")
    assert not find(sandbox, "Logical_Router") and not find(sandbox, "Logical_Switch")
    applier.apply(base())
    assert applier.apply({}, gc=True).ok  # gc finds the owner of the group too
    assert not find(sandbox, "Load_Balancer_Group")


def test_rows_made_by_hand_are_never_touched(applier: Applier, sandbox: Sandbox) -> None:
    applier.apply(base())
    sandbox.nbctl("ls-add", "handmade")
    sandbox.nbctl("lsp-add", "subnet1", "manual-port")
    sandbox.nbctl("lr-add", "vpc-manual")
    sandbox.nbctl("lb-add", "manual-lb", "10.0.0.1:80", "10.0.0.2:80")
    sandbox.nbctl("lr-route-add", "vpc-vpc1", "192.168.0.0/16", "10.1.1.254")
    result = applier.apply(base(), gc=True)
    assert result.ok and result.transactions == 0
    assert find(sandbox, "Logical_Switch", "name=handmade")
    assert find(sandbox, "Logical_Router", "name=vpc-manual")
    assert find(sandbox, "Load_Balancer", "name=manual-lb")
    switch = find(sandbox, "Logical_Switch", "name=subnet1")[0]
    manual = find(sandbox, "Logical_Switch_Port", "name=manual-port")[0]
    assert manual["_uuid"] in as_list(switch["ports"])
    assert "192.168.0.0/16" in sandbox.nbctl("lr-route-list", "vpc-vpc1")
    # deleting every owner still leaves the hand-made rows alone
    applier.apply({}, gc=True)
    assert find(sandbox, "Logical_Switch", "name=handmade")
    assert find(sandbox, "Load_Balancer", "name=manual-lb")
    assert not find(sandbox, "Logical_Router", "name=vpc-vpc1")


def test_bad_owner_does_not_block_the_batch(applier: Applier, sandbox: Sandbox) -> None:
    applier.apply({VPC: vpc_rows(), SUBNET: subnet_rows()})
    sandbox.nbctl("ls-add", "other")
    sandbox.nbctl("lsp-add", "other", "taken.ns1")  # a port name that is not ours
    desired = {Owner("Pod", f"ns1/p{i}"): pod_rows(f"p{i}", f"10.1.1.{10 + i}",
                                                   mac=f"0a:00:00:00:01:{i:02x}")
               for i in range(8)}
    desired[Owner("Pod", "ns1/taken")] = pod_rows("taken", "10.1.1.99")
    bad_gw = Owner("Vpc", "badgw")
    desired[bad_gw] = [
        LogicalRouterPort(name="gwport", router="vpc-vpc1", mac="0a:00:00:00:09:01",
                          networks=("10.9.0.1/24",), owner=bad_gw),
        GatewayChassis(name="gwport-c1", port="gwport", chassis_name="c1", priority=99999,
                       owner=bad_gw),
    ]
    result = applier.apply(desired)
    assert set(result.errors) == {Owner("Pod", "ns1/taken"), bad_gw}
    assert "taken.ns1" in result.errors[Owner("Pod", "ns1/taken")]
    names = {p["name"] for p in find(sandbox, "Logical_Switch_Port")}
    assert {f"p{i}.ns1" for i in range(8)} <= names
    assert not find(sandbox, "Logical_Router_Port", "name=gwport")


def test_dangling_reference_refuses_only_that_owner(applier: Applier, sandbox: Sandbox) -> None:
    desired = {VPC: vpc_rows(),
               Owner("Subnet", "orphan"): build_subnet(SubnetSpec(
                   name="orphan", vpc="nope", owner=Owner("Subnet", "orphan"),
                   cidrs=("10.5.0.0/24",), gateways=("10.5.0.1",)))}
    result = applier.apply(desired)
    assert list(result.errors) == [Owner("Subnet", "orphan")]
    assert "references missing" in result.errors[Owner("Subnet", "orphan")]
    assert "vpc-nope" in result.errors[Owner("Subnet", "orphan")]
    assert find(sandbox, "Logical_Router", "name=vpc-vpc1")


def test_duplicate_rows_are_collapsed(applier: Applier, sandbox: Sandbox, nb: NbClient) -> None:
    applier.apply({VPC: vpc_rows()})
    ids = find(sandbox, "Logical_Router", "name=vpc-vpc1")[0]["external_ids"]
    sandbox.nbctl("create", "Logical_Router", "name=vpc-vpc1",
                  "external_ids={" + ",".join(f'"{k}"="{v}"' for k, v in ids.items()) + "}")
    assert len(find(sandbox, "Logical_Router", "name=vpc-vpc1")) == 2
    result = applier.apply({VPC: vpc_rows()})
    assert result.ok
    assert len(find(sandbox, "Logical_Router", "name=vpc-vpc1")) == 1


def test_routes_follow_the_spec(applier: Applier, sandbox: Sandbox) -> None:
    applier.apply({VPC: vpc_rows((Route("0.0.0.0/0", "10.1.1.254"),))})
    assert "10.1.1.254" in sandbox.nbctl("lr-route-list", "vpc-vpc1")
    applier.apply({VPC: vpc_rows((Route("172.16.0.0/12", "10.1.1.253"),))})
    routes = sandbox.nbctl("lr-route-list", "vpc-vpc1")
    assert "10.1.1.253" in routes and "10.1.1.254" not in routes


def test_northd_builds_sb_datapaths(applier: Applier, sandbox: Sandbox) -> None:
    applier.apply(base())
    sandbox.nbctl("--wait=sb", "sync")
    names = {line.split("=", 1)[1].strip('"') for line in
             sandbox.sbctl("--bare", "--columns=external_ids", "list", "Datapath_Binding").split()
             if line.startswith("name=")}
    assert {"vpc-vpc1", "subnet1"} <= names
    bindings = sandbox.sbctl("--bare", "--columns=logical_port", "list", "Port_Binding").split()
    assert {"a.ns1", "b.ns1", "vpc1-subnet1"} <= set(bindings)
