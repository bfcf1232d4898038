"""The ClusterIP and the EIP load balancers of a Service come from one set of configurations
(reconcilers/lb_config.py) placed by one builder (topology.builders.service.lb_rows)."""

from __future__ import annotations

from typing import Any

from tests.unit import factories as f
from tests.unit.cluster import Cluster
from topology import naming
from topology.builders.service import SCOPE_CLUSTER, SCOPE_EIP, LbPlacement, lb_rows
from topology.model import HealthCheck, LoadBalancer, Owner, Row, StaticRoute
from ycloud_controller.api.service import parse_service
from ycloud_controller.keys import ANN_HEALTH_CHECK, ANN_IP
from ycloud_controller.reconcilers.base import Outcome
from ycloud_controller.reconcilers.lb_config import lb_configs
from ycloud_controller.reconcilers.pod import reconcile_pod
from ycloud_controller.reconcilers.service import reconcile_service
from ycloud_controller.reconcilers.vpc import reconcile_vpc

SVC = Owner("Service", "default/web")
EIP = "172.18.0.50"


def eip_cluster() -> Cluster:
    """A default EIP pool (the default VPC is attached to it), two placed pods behind a
    health-checked dual-protocol LoadBalancer Service."""
    c = Cluster().add(
        f.eippool("pool1", "172.18.0.0/24", "172.18.0.1", default=True),
        f.pod("web-0", annotations={ANN_IP: "10.16.0.5"}),
        f.pod("web-1", annotations={ANN_IP: "10.16.0.6"})).sync_subnets()
    reconcile_pod(c.ctx, "default/web-0")
    reconcile_pod(c.ctx, "default/web-1")
    reconcile_vpc(c.ctx, naming.DEFAULT_VPC)
    c.add(f.service("web", cluster_ips=["10.96.0.10"], type="LoadBalancer",
                    loadBalancerIP=EIP, sessionAffinity="ClientIP",
                    annotations={ANN_HEALTH_CHECK: '{"interval": 2}'},
                    ports=[{"name": "http", "port": 80, "targetPort": 8080},
                           {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}]),
          f.endpoint_slice("web", [f.endpoint("10.16.0.5"), f.endpoint("10.16.0.6")], ports=[
              {"name": "http", "port": 8080}, {"name": "dns", "port": 53, "protocol": "UDP"}]))
    return c


def lb_rows_of(out: Outcome) -> list[Row]:
    return [r for r in out.rows[SVC] or () if isinstance(r, LoadBalancer | HealthCheck)]


def test_cluster_and_eip_lbs_are_one_config_set_in_two_placements() -> None:
    c = eip_cluster()
    out = reconcile_service(c.ctx, "default/web")
    assert out.invalid is None and out.retry is None
    svc = parse_service(c.get("Service", "default/web") or {})
    slices: list[dict[str, Any]] = c.ctx.store("EndpointSlice").by_index("service",
                                                                           "default/web")
    configs = lb_configs(svc, slices, EIP)
    assert [(cfg.scope, cfg.protocol) for cfg in configs] == [
        (SCOPE_CLUSTER, "TCP"), (SCOPE_CLUSTER, "UDP"), (SCOPE_EIP, "TCP"), (SCOPE_EIP, "UDP")]
    mappings = {"10.16.0.5": "web-0.default:10.16.255.254",
                "10.16.0.6": "web-1.default:10.16.255.254"}
    want = [*lb_rows("default", "web", SVC, configs, LbPlacement.vpc_group("ovn-cluster"),
                     mappings),
            *lb_rows("default", "web", SVC, configs,
                     LbPlacement.vpc_router("ovn-cluster", "pool1", EIP), mappings)]
    assert lb_rows_of(out) == want  # the same rows, names, external_ids and hashes
    assert [r.external_ids() for r in lb_rows_of(out)] == [r.external_ids() for r in want]
    lbs = {r.name: r for r in want if isinstance(r, LoadBalancer)}
    cluster, eip = (lbs["Service_default/web_TCP_cluster"], lbs["Service_default/web_TCP_eip"])
    # one computation: the EIP's backends and options are those of the ClusterIP VIPs
    assert dict(cluster.vips)[f"{EIP}:80"] == dict(eip.vips)[f"{EIP}:80"] == \
        dict(cluster.vips)["10.96.0.10:80"] == "10.16.0.5:8080,10.16.0.6:8080"
    assert dict(eip.options) == {"reject": "true", "affinity_timeout": "10800"}
    assert dict(cluster.options) == {**dict(eip.options), "hairpin_snat_ip": "10.96.0.10"}
    assert eip.ip_port_mappings == cluster.ip_port_mappings == tuple(sorted(mappings.items()))
    assert (cluster.groups, cluster.routers) == (("vpc-ovn-cluster",), ())
    assert (eip.groups, eip.routers) == ((), ("ovn-cluster",))
    ids = eip.external_ids()
    assert (ids[naming.SERVICE], ids[naming.POOL], ids[naming.EIP]) == ("default/web", "pool1",
                                                                         EIP)
    assert naming.POOL not in cluster.external_ids()
    # the EIP reaches the VPC router from eipgw
    route = next(r for r in out.rows[SVC] or () if isinstance(r, StaticRoute))
    assert (route.router, route.ip_prefix) == (naming.eip_gateway("pool1"), f"{EIP}/32")


def test_a_service_without_eip_has_only_cluster_configs() -> None:
    svc = parse_service(f.service("web", cluster_ips=["10.96.0.10"]))
    configs = lb_configs(svc, [], None)
    assert [(cfg.scope, cfg.protocol) for cfg in configs] == [(SCOPE_CLUSTER, "TCP")]
    placement = LbPlacement.vpc_router("ovn-cluster", "pool1", EIP)
    assert lb_rows("default", "web", SVC, configs, placement) == []
