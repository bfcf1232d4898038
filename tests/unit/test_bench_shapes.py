"""The benchmark's shapes (bench/shapes.py) generate what their definition says, and the
current table (bench/current.py) renders a target as met or not from a run's figures."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench import current, shapes, workload


def kinds(shape: shapes.Shape) -> Counter[str]:
    return Counter(o["kind"] for o in workload.all_objects(shape))


def test_max_is_kubernetes_published_limits() -> None:
    s = shapes.MAX
    s.check()
    assert (s.nodes, s.pods, s.vpcs, s.subnets_per_vpc) == (5000, 150000, 100, 20)
    assert (s.services, s.big_services, s.big_endpoints) == (10000, 10, 5000)
    assert s.lb_services + s.multi_vpc_lbs == 200 and s.multi_vpc_lbs > 0
    assert s.vnics == 1000 and s.vnic_extra_ips > 0
    assert sum(s.pods_in(n) for n in range(s.namespaces)) == 150000


def test_tiny_objects_match_the_definition() -> None:
    s = shapes.TINY
    s.check()
    got = kinds(s)
    assert got["Pod"] == s.pods
    assert got["Node"] == s.nodes
    assert got["Vpc"] == s.vpcs and got["Subnet"] == s.namespaces
    assert got["Service"] == s.services + s.big_services + s.lb_services
    assert got["YusurService"] == s.multi_vpc_lbs and got["Vnic"] == s.vnics
    assert got["EipPool"] == 1
    assert sum(got.values()) == s.objects
    lbs = [o for o in workload.all_objects(s)
           if o["kind"] == "Service" and o["spec"]["type"] == "LoadBalancer"]
    assert len({o["spec"]["loadBalancerIP"] for o in lbs}) == s.lb_services
    multi = [o for o in workload.all_objects(s) if o["kind"] == "YusurService"]
    assert all(len(set(o["spec"]["vpcs"])) == s.multi_vpc_span for o in multi)


def test_big_service_endpoints_are_pods_of_its_vpc() -> None:
    s = shapes.TINY
    big = s.services  # the first big Service
    slices = workload.endpoint_slices(s, big)
    eps = [e for sl in slices for e in sl["endpoints"]]
    assert len(eps) == s.big_endpoints
    assert all(len(sl["endpoints"]) <= shapes.SLICE_MAX for sl in slices)
    pods = {(o["metadata"]["namespace"], o["metadata"]["name"]): o
            for o in workload.pods(s)}
    vpc = shapes.namespace_vpc(s, shapes.service_ns(s, big))
    for e in eps:
        ref = e["targetRef"]
        pod = pods[(ref["namespace"], ref["name"])]
        assert pod["metadata"]["annotations"]["ycloud.io/ip_address"] == e["addresses"][0]
        assert ref["namespace"].startswith(f"bns{vpc.removeprefix('bvpc')}-")
    assert len({e["addresses"][0] for e in eps}) == s.big_endpoints


def test_small_is_todays_shape() -> None:
    s = shapes.resolve("small", [10000])[0]
    assert (s.services, s.pods, s.vpcs, s.subnets_per_vpc, s.nodes) == (10000, 1000, 5, 10, 0)
    assert kinds(s)["Pod"] == 1000
    assert shapes.by_spec("max", 1) is shapes.MAX


def test_churned_slices_differ_and_match_vips() -> None:
    s = shapes.TINY
    a, b = workload.endpoint_slice(s, 5, 0), workload.endpoint_slice(s, 5, 1)
    assert a["endpoints"] != b["endpoints"]
    assert workload.vips_value(s, 5, 0) != workload.vips_value(s, 5, 1)


def _point(shape: str, objects: int, cold: float, cpu: float, p99: float) -> dict[str, Any]:
    return {"shape": shape, "services": 10, "objects": objects, "pods": 5, "raw": 1.0,
            "raw_rows": 20, "cold": cold, "restart": 0.2, "restart_txns": 0,
            "restart_nb_bytes": 0, "restart_updates": 0, "restart_kube_writes": 0,
            "peak_rss_mb": 100.0, "cpu_per_object_ms": cpu, "when": "t", "command": "c",
            "churn": [{"rate": 100, "p50_ms": 1.0, "p99_ms": p99, "lost": 0,
                       "achieved_rate": 100.0, "drain_after_last_write_s": 0.0,
                       "queue_mean_by_third": [0.0, 0.0, 0.0], "port_p99_ms": 2.0}]}


def test_current_table_says_met_or_not() -> None:
    data = {"small 10": _point("small", 100, 2.5, 0.1, 10.0),
            "max": _point("max", 1000, 4.0, 0.3, 80.0)}
    text = current.render(data, "results.png")
    small, big = text.split("**max**")
    assert "2.5x" in small and "**not met**" not in small
    assert "4.0x" in big and big.count("**not met**") == 3  # cold, churn p99, CPU per object
    assert "![" in big and "results.png" in big


def test_current_block_is_replaced_and_the_rest_kept() -> None:
    text = f"head\n{current.BEGIN}\nold\n{current.END}\ntail\n"
    out = current.replace_block(text, "new\n")
    assert out == f"head\n{current.BEGIN}\nnew\n{current.END}\ntail\n"


def test_cluster_rows_judge_writes_per_object_and_a_silent_restart() -> None:
    run = {"seconds": 10.0, "writes": 11, "objects_written": 11,
           "written_more_than_once": {"eippools.iaas.yusur.io p": 2},
           "requests": {"patch services/status": 10, "patch pods/status": 1, "list pods": 1}}
    restart = {**run, "writes": 0, "objects_written": 0, "requests": {"list pods": 1,
                                                                     "watch pods": 1}}
    rows = current.cluster_rows({"cold_unlimited": run, "restart": restart,
                                 "kube_api": {"qps": 200, "burst": 400}})
    text = "\n".join(" | ".join(r) for r in rows)
    assert "10 patch services/status" in text and "list pods" not in rows[0][1]
    assert [r[3] for r in rows[:2]] == ["met", "met"]
    assert "at least 0 s" in rows[2][1]  # fewer writes than the burst: not rate-bound
    worse = current.cluster_rows({"cold": {**run, "written_more_than_once": {"pods a/b": 2}},
                                  "restart": {**restart, "writes": 3}})
    assert [r[3] for r in worse[:2]] == ["**not met**", "**not met**"]
