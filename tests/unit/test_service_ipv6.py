"""IPv6 and dual-stack Services: ClusterIPs per family (manifests mode, as the API server
gives them), backends of the VIP's family in every scope (an IPv6 EIP too), OVN health checks
of IPv6 backends (ip_port_mappings in brackets, OVN 23.03), hairpin SNAT per family."""

from __future__ import annotations

import pytest

from tests.unit import factories as f
from tests.unit.cluster import Cluster
from tests.unit.outcomes import SVC, only, rows_of
from tests.unit.test_reconcile_endpoints import run, web_pod
from topology.builders.service import SCOPE_EIP
from topology.model import HealthCheck, LoadBalancer
from ycloud_controller import keys
from ycloud_controller.api.service import parse_service
from ycloud_controller.cluster_ips import ClusterIps
from ycloud_controller.reconcilers.base import PatchEffect
from ycloud_controller.reconcilers.lb_config import lb_configs
from ycloud_controller.reconcilers.pod import reconcile_pod
from ycloud_controller.reconcilers.service import reconcile_service

DUAL = "10.20.0.0/24,fd20::/64"


def dual_stack_cluster() -> Cluster:
    """Two pods on a dual-stack subnet of the default VPC behind a health-checked
    RequireDualStack Service (IPv6 first)."""
    c = Cluster().add(
        f.subnet("ds", DUAL, gateway="10.20.0.1,fd20::1", namespaces=["default"]),
        f.pod("web-0", annotations={keys.ANN_SUBNET: "ds"}),
        f.pod("web-1", annotations={keys.ANN_SUBNET: "ds"})).sync_subnets()
    for name in ("web-0", "web-1"):
        reconcile_pod(c.ctx, f"default/{name}")
    ips = {name: c.ctx.ipam.get(f"Pod/default/{name}") for name in ("web-0", "web-1")}
    v4 = [str(ip) for a in ips.values() for ip in a.ips if ip.version == 4]
    v6 = [str(ip) for a in ips.values() for ip in a.ips if ip.version == 6]
    c.add(f.service("web", cluster_ips=["fd00:96::10", "10.96.0.10"],
                    ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv6", "IPv4"],
                    annotations={keys.ANN_HEALTH_CHECK: '{"interval": 2}'}),
          f.endpoint_slice("web", [f.endpoint(ip) for ip in v6], address_type="IPv6",
                           name="web-v6"),
          f.endpoint_slice("web", [f.endpoint(ip) for ip in v4]))
    return c


def test_ipv6_backends_are_health_checked_with_bracketed_mappings() -> None:
    c = dual_stack_cluster()
    out = reconcile_service(c.ctx, "default/web")
    assert out.invalid is None, out.invalid
    rows = rows_of(out, SVC)
    lb = only(rows, LoadBalancer)
    vips = dict(lb.vips)
    assert set(vips) == {"[fd00:96::10]:80", "10.96.0.10:80"}
    v6_backends = vips["[fd00:96::10]:80"].split(",")
    assert len(v6_backends) == 2 and all(b.startswith("[fd20::") for b in v6_backends)
    mappings = dict(lb.ip_port_mappings)
    v6_keys = sorted(k for k in mappings if k.startswith("["))
    assert v6_keys == sorted(b.rsplit(":", 1)[0] for b in v6_backends)
    # the source of IPv6 probes is the subnet's IPv6 probe address, in brackets (OVN 23.03)
    assert {mappings[k] for k in v6_keys} == {"web-0.default:[fd20::ffff:ffff:ffff:ffff]",
                                             "web-1.default:[fd20::ffff:ffff:ffff:ffff]"}
    assert all(not k.startswith("[") and v.endswith(":10.20.0.254")
               for k, v in mappings.items() if k not in v6_keys)
    checks = sorted(r.vip for r in rows if isinstance(r, HealthCheck))
    assert checks == ["10.96.0.10:80", "[fd00:96::10]:80"]
    assert sorted(dict(lb.options)["hairpin_snat_ip"].split()) == ["10.96.0.10", "fd00:96::10"]


def test_an_ipv6_eip_takes_the_ipv6_backends() -> None:
    c = dual_stack_cluster()
    svc = parse_service(c.get("Service", "default/web") or {})
    slices = c.ctx.store("EndpointSlice").by_index("service", "default/web")
    (eip_cfg,) = [cfg for cfg in lb_configs(svc, slices, "2001:db8::50") if cfg.scope ==
                  SCOPE_EIP]
    (vip,) = eip_cfg.vips
    assert vip.key == "[2001:db8::50]:80"
    assert len(vip.backends) == 2 and all(":" in ip for ip, _ in vip.backends)
    (v4_cfg,) = [cfg for cfg in lb_configs(svc, slices, "172.18.0.50") if cfg.scope ==
                 SCOPE_EIP]
    assert all("." in ip for v in v4_cfg.vips for ip, _ in v.backends)


@pytest.mark.parametrize(("cidrs", "spec", "families"), [
    ("10.96.0.0/12,fd00:96::/108", {}, [4]),
    ("10.96.0.0/12,fd00:96::/108", {"ipFamilies": ["IPv6"]}, [6]),
    ("10.96.0.0/12,fd00:96::/108", {"ipFamilyPolicy": "PreferDualStack"}, [4, 6]),
    ("10.96.0.0/12,fd00:96::/108", {"ipFamilyPolicy": "RequireDualStack",
                                    "ipFamilies": ["IPv6", "IPv4"]}, [6, 4]),
    ("fd00:96::/108,10.96.0.0/12", {"ipFamilyPolicy": "PreferDualStack"}, [6, 4]),
    ("10.96.0.0/12", {"ipFamilyPolicy": "PreferDualStack"}, [4]),  # single-stack cluster
])
def test_cluster_ip_families_as_the_api_server_gives_them(cidrs: str, spec: dict,
                                                          families: list[int]) -> None:
    alloc = ClusterIps(cidrs)
    assert alloc.families(spec) == families
    ips = alloc.allocate_spec("default/web", spec)
    assert [6 if ":" in ip else 4 for ip in ips] == families
    assert alloc.allocate_spec("default/web", spec) == ips  # held, not allocated again


def test_manifests_mode_gives_a_dual_stack_service_one_cluster_ip_per_family() -> None:
    c = Cluster(emulate=True).add(
        f.service("web", selector={"app": "web"}, ipFamilyPolicy="PreferDualStack"),
        web_pod("web-0", "10.16.0.5"))
    out = run(c, alloc=ClusterIps("10.96.0.0/12,fd00:96::/108"))
    (patch,) = [e for e in out.effects if isinstance(e, PatchEffect)]
    assert patch.patch["spec"]["clusterIPs"] == ["10.96.0.2", "fd00:96::2"]
    assert patch.patch["spec"]["clusterIP"] == "10.96.0.2"
