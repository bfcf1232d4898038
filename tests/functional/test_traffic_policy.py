"""Traffic policy Local against real NB and northd: an internalTrafficPolicy: Local Service
gets a template Load_Balancer (options template=true, address-family) whose VIP names a
template variable, every Node a Chassis_Template_Var holding its own backends (northd copies
them to SB, where each ovn-controller reads its chassis'). When the Service goes, the rows
stay with no variables: ovn-controller 23.03.1 exits if the row of its chassis is deleted
and inserted again later."""

from __future__ import annotations

import json

from ovn_sandbox import Sandbox

from tests.functional.conftest import find
from topology import naming
from topology.builders.service import SCOPE_CLUSTER
from ycloud_controller.controller import Controller
from ycloud_controller.kube import resources as res
from ycloud_controller.memkube.store import MemoryStore

VAR = naming.template_var("default/local", SCOPE_CLUSTER, "TCP", 80, 4)
LB = "Service_default/local_TCP_cluster_local4"


def nb_vars(sandbox: Sandbox) -> dict[str, dict[str, str]]:
    return {r["chassis"]: r["variables"] for r in find(sandbox, "Chassis_Template_Var")}


def sb_vars(sandbox: Sandbox) -> dict[str, dict[str, str]]:
    sandbox.nbctl("--wait=sb", "sync")
    data = json.loads(sandbox.sbctl("--format=json", "--columns=chassis,variables", "list",
                                    "Chassis_Template_Var"))
    return {row[0]: dict(row[1][1]) for row in data["data"]}


def test_a_local_service_is_a_template_lb_with_each_nodes_backends(
        svc_ctl: Controller, svc_store: MemoryStore, sandbox: Sandbox) -> None:
    assert svc_ctl.full_sync().converged
    for node in ("n1", "n2", "n3"):
        svc_store.create(res.NODES, {"apiVersion": "v1", "kind": "Node",
                                     "metadata": {"name": node}})
    svc_store.create(res.SERVICES, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "local",
                                                            "namespace": "default"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.4.1", "clusterIPs": ["10.96.4.1"],
                 "internalTrafficPolicy": "Local",
                 "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}]}})
    svc_store.create(res.ENDPOINTSLICES, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "local-a", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "local"}},
        "addressType": "IPv4", "ports": [{"port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [f"10.16.1.{i}"], "nodeName": node,
                       "conditions": {"ready": True}}
                      for i, node in ((1, "n1"), (2, "n1"), (3, "n2"))]})
    assert svc_ctl.drain(timeout=30)

    (lb,) = find(sandbox, "Load_Balancer", f'name="{LB}"')
    assert lb["vips"] == {"10.96.4.1:80": f"^{VAR}"}
    assert lb["options"]["template"] == "true" and lb["options"]["address-family"] == "ipv4"
    want = {"n1": {VAR: "10.16.1.1:8080,10.16.1.2:8080"}, "n2": {VAR: "10.16.1.3:8080"},
            "n3": {VAR: ""}}
    assert nb_vars(sandbox) == want
    assert sb_vars(sandbox) == want  # northd took the rows

    svc_store.delete(res.SERVICES, "local", "default")
    assert svc_ctl.drain(timeout=30)
    assert not find(sandbox, "Load_Balancer", f'name="{LB}"')
    assert nb_vars(sandbox) == {"n1": {}, "n2": {}, "n3": {}}  # kept, with no variables
