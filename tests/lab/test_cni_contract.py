"""The NB contract of a plugged port (what the lab reads to address a Vnic's guest, as DHCP
would), the agrees-with check against the node agent's annotations, and shape validation:
pure, no root needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ycloud_lab import LabError
from ycloud_lab.cniread import PortSpec, parse_port
from ycloud_lab.shape import load_shape

from topology import naming

from .conftest import SHAPE

SHAPE_DATA = load_shape(SHAPE)


def _row(name: str = "web1.default", addresses: object = "0a:00:00:00:00:05 10.1.0.5",
         **ids: str) -> dict:
    base = {naming.MANAGED_BY: naming.MANAGED_BY_VALUE, naming.ROLE: naming.ROLE_POD,
            naming.NODE: "node1", naming.GATEWAY: "10.1.0.1", naming.CIDR: "10.1.0.0/24"}
    base.update(ids)
    return {"name": name, "addresses": addresses, "external_ids": base}


def test_pod_port() -> None:
    spec = parse_port(_row(), SHAPE_DATA)
    assert isinstance(spec, PortSpec)
    assert (spec.node, spec.mac, spec.ips, spec.mtu) == (
        "node1", "0a:00:00:00:00:05", ("10.1.0.5/24",), SHAPE_DATA.pod_mtu)
    assert spec.routes == () and spec.gateway_for("10.1.0.5/24") == "10.1.0.1"


def test_dual_stack_vnic_with_mtu() -> None:
    row = _row(addresses=["0A:00:00:00:00:06 10.1.0.6 fd00:1::6"], **{
        naming.ROLE: naming.ROLE_VNIC, naming.GATEWAY: "10.1.0.1,fd00:1::1",
        naming.CIDR: "10.1.0.0/24,fd00:1::/64", naming.MTU: "1300"})
    spec = parse_port(row, SHAPE_DATA)
    assert isinstance(spec, PortSpec)
    assert spec.ips == ("10.1.0.6/24", "fd00:1::6/64") and spec.mtu == 1300
    assert spec.mac == "0a:00:00:00:00:06" and spec.gateway_for("fd00:1::6/64") == "fd00:1::1"


def test_node_port_routes() -> None:
    spec = parse_port(_row(naming.node_port("node1"), **{naming.ROLE: naming.ROLE_NODE}),
                      SHAPE_DATA)
    assert isinstance(spec, PortSpec) and spec.routes == (SHAPE_DATA.service_cidr,)
    spec = parse_port(_row(naming.node_port("node1"), **{
        naming.ROLE: naming.ROLE_NODE, naming.ROUTES: "10.96.0.0/12, 10.16.0.0/16"}),
        SHAPE_DATA)
    assert isinstance(spec, PortSpec) and spec.routes == ("10.96.0.0/12", "10.16.0.0/16")


def test_fingerprint_changes_with_content() -> None:
    a, b = parse_port(_row(), SHAPE_DATA), parse_port(_row(**{naming.MTU: "1200"}), SHAPE_DATA)
    assert isinstance(a, PortSpec) and isinstance(b, PortSpec)
    assert a.fingerprint != b.fingerprint
    assert a.fingerprint == parse_port(_row(), SHAPE_DATA).fingerprint  # type: ignore[union-attr]


@pytest.mark.parametrize(("row", "reason"), [
    (_row(**{naming.MANAGED_BY: "someone"}), "not managed"),
    (_row(**{naming.ROLE: naming.ROLE_LOCALNET}), "not plugged"),
    (_row(**{naming.NODE: ""}), naming.NODE),
    (_row(addresses="router"), "no 'MAC IP'"),
    (_row(addresses="0a:00:00:00:00:05"), "no 'MAC IP'"),
    (_row(**{naming.CIDR: "10.1.0.0/33"}), "bad"),
])
def test_skipped(row: dict, reason: str) -> None:
    result = parse_port(row, SHAPE_DATA)
    assert isinstance(result, str) and reason in result


def test_shape_validation(tmp_path: Path) -> None:
    data = yaml.safe_load(SHAPE.read_text())
    assert {c.name for c in SHAPE_DATA.gateways} == {"gw1", "gw2"}
    assert {"node1", "node2"} <= {c.name for c in SHAPE_DATA.workers}
    data["chassis"][1]["tunnel_ip"] = "10.0.0.1"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(LabError, match="not in"):
        load_shape(bad)


@pytest.mark.parametrize("dual", [False, True])
def test_nb_port_and_cni_annotations_of_one_pod_agree(dual: bool) -> None:
    """The controller writes one pod twice: its NB port (build_port) and the annotations the
    node agent plugs from (cni_annotations). Both name the same MAC, addresses (with their
    prefix lengths), gateways and MTU."""
    import ipaddress

    from topology.builders.port import PortSpec as NbPort
    from topology.builders.port import build_port
    from topology.model import Owner
    from ycloud_controller.api.subnet import SubnetView
    from ycloud_controller.ipam import Allocation
    from ycloud_controller.node.addressing import parse
    from ycloud_controller.reconcilers.pod import cni_annotations

    cidrs = ("10.1.1.0/24", "fd00:10:1::/64") if dual else ("10.1.1.0/24",)
    gateways = ("10.1.1.1", "fd00:10:1::1")[:len(cidrs)]
    ips = ("10.1.1.7", "fd00:10:1::7")[:len(cidrs)]
    sub = SubnetView(name="subnet1", vpc="vpc1",
                     cidrs=tuple(ipaddress.ip_network(c) for c in cidrs),
                     gateways=tuple(ipaddress.ip_address(g) for g in gateways))
    alloc = Allocation(subnet="subnet1", ips=tuple(ipaddress.ip_address(i) for i in ips),
                       mac="0a:58:0a:01:01:07")
    ann = parse(cni_annotations(sub, alloc, 1400))
    (lsp,) = build_port(NbPort(
        name=naming.pod_port("ns1", "web"), switch="subnet1", owner=Owner("Pod", "ns1/web"),
        vpc="vpc1", mac=alloc.mac, ips=ips, role=naming.ROLE_POD, node="node1",
        gateways=gateways, cidrs=cidrs, mtu=1400))
    nb = parse_port({"name": lsp.name, "addresses": list(lsp.addresses),
                     "external_ids": lsp.external_ids()}, SHAPE_DATA)
    assert isinstance(nb, PortSpec)
    assert (nb.mac, nb.ips, nb.gateways, nb.mtu) == (ann.mac, ann.ips, ann.gateways, ann.mtu)
