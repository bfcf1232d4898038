"""Every VPC attached to a pool reaches the pool's multi-VPC EIPs over its own service-gateway
link (issue 18 item 6), read from a real NB after `sync --once` on the examples plus a VPC
that backs no service (vpc3) and one whose subnet overlaps a backend VPC's (vpc4)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ovn_sandbox import Sandbox

from tests.functional.conftest import find, nb_db_file
from tests.functional.test_cli import EXAMPLES, cli, digest
from topology import naming
from topology.nbsync.client import NbClient

POOL, EIP = "pool1", "172.18.0.60"


def vpc_with_subnet(vpc: str, subnet: str, cidr: str, gateway: str) -> str:
    return f"""
apiVersion: iaas.yusur.io/v1
kind: Vpc
metadata: {{name: {vpc}}}
spec: {{natOutgoing: true}}
---
apiVersion: iaas.yusur.io/v1
kind: Subnet
metadata: {{name: {subnet}}}
spec: {{vpc: {vpc}, cidrBlock: {cidr}, gateway: {gateway}}}
"""


# vpc3 backs no service; vpc4's subnet overlaps vpc2's subnet3
EXTRA = "---".join([vpc_with_subnet("vpc3", "subnet4", "10.3.1.0/24", "10.3.1.1"),
                    vpc_with_subnet("vpc4", "subnet5", "10.2.1.128/25", "10.2.1.129")])


def _routes(sandbox: Sandbox, router: str) -> dict[str, str]:
    (row,) = find(sandbox, "Logical_Router", f"name={router}")
    refs = row["static_routes"]
    refs = refs if isinstance(refs, list) else [refs]
    out = {}
    for uuid in refs:
        (route,) = [r for r in find(sandbox, "Logical_Router_Static_Route")
                    if str(r["_uuid"]) == str(uuid)]
        out[route["ip_prefix"]] = route["nexthop"]
    return out


def _link_ips(sandbox: Sandbox, vpc: str) -> tuple[str, str] | None:
    """(svcgw's address, the VPC router's address) on the VPC's link, or None."""
    ports = {r["name"]: r["networks"] for r in find(sandbox, "Logical_Router_Port")}
    gw, mine = ports.get(naming.svcgw_link_port(POOL, vpc)), ports.get(
        naming.vpc_svcgw_port(vpc, POOL))
    if gw is None or mine is None:
        return None
    return _address(gw), _address(mine)


def _address(networks: str | list[str]) -> str:
    return (networks if isinstance(networks, str) else networks[0]).split("/")[0]


def test_every_attached_vpc_routes_the_multi_vpc_eip_over_its_own_link(
        sandbox: Sandbox, nb: NbClient, tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(EXAMPLES, manifests)
    (manifests / "90-more-vpcs.yaml").write_text(EXTRA)
    done = cli(sandbox, "sync", "--once", "--manifests", str(manifests))
    assert done.returncode == 0, done.stderr[-2000:]
    # backend VPCs (vpc1, vpc2) and clients (the default VPC, vpc3) are linked; vpc4's
    # subnet overlaps vpc2's: refused, it keeps the path through the transit switch
    svcgw = _routes(sandbox, naming.service_gateway(POOL))
    for vpc, subnet in (("vpc1", "10.1.1.0/24"), ("vpc2", "10.2.1.0/24"),
                        (naming.DEFAULT_VPC, "10.16.0.0/16"), ("vpc3", "10.3.1.0/24")):
        link = _link_ips(sandbox, vpc)
        assert link is not None, vpc
        assert _routes(sandbox, naming.router(vpc))[f"{EIP}/32"] == link[0], vpc
        assert svcgw[subnet] == link[1], vpc
    # the service gateway picks backends by a hash of the connection, not by dp_hash (one
    # recirculation less); the LB on a VPC router keeps OVS's default
    (multi,) = find(sandbox, "Load_Balancer", 'name="Service_demo/multi_TCP_eip"')
    assert sorted(multi["selection_fields"]) == ["ip_dst", "ip_src", "tp_dst", "tp_src"]
    (single,) = find(sandbox, "Load_Balancer", 'name="Service_ns-vpc1/web-eip_TCP_eip"')
    assert single["selection_fields"] in ([], set(), "")
    assert _link_ips(sandbox, "vpc4") is None
    assert f"{EIP}/32" not in _routes(sandbox, naming.router("vpc4"))
    assert "10.2.1.128/25" not in svcgw
    show = sandbox.nbctl("show")
    assert f"({naming.svcgw_link_switch(POOL, 'vpc3')})" in show
    sandbox.nbctl("--wait=sb", "sync")
    before = digest(nb_db_file(sandbox))
    again = cli(sandbox, "sync", "--once", "--manifests", str(manifests))
    assert again.returncode == 0, again.stderr[-2000:]
    assert digest(nb_db_file(sandbox)) == before

    # the pool's last multi-VPC service goes: no links, no routes over them
    (manifests / "70-scenario4-eip-multi-vpc.yaml").unlink()
    done = cli(sandbox, "sync", "--once", "--manifests", str(manifests))
    assert done.returncode == 0, done.stderr[-2000:]
    for vpc in ("vpc1", "vpc2", naming.DEFAULT_VPC, "vpc3"):
        assert _link_ips(sandbox, vpc) is None, vpc
        assert f"{EIP}/32" not in _routes(sandbox, naming.router(vpc)), vpc
