"""A delete the watch missed removes every trace once a relist no longer lists the object.

Cluster mode (FakeKube, real HTTP list/watch, no emulation). While every list and watch of
the running controller fails (its watch streams cut, then 503s), a pod, a Vnic, a
LoadBalancer Service, a YusurService (its Service, slices and probes garbage-collected with
it), a Subnet and an EipPool are deleted and the API server's history is compacted: no
DELETED event reaches the controller, which learns of the deletes only from relists that no
longer list the objects (its informers hand their handlers the last version they had). Then
nothing of them is left: no port, no address in any VIP or health-check mapping, no
NetworkProbe, no address in a YusurService's EndpointSlices, no load balancer, VIP or EIP
route of the Services (and the EIP no longer counted by its pool), no switch, router port,
NAT or route of the Subnet, no gateway of the pool; no row of theirs, and a fresh `render`
plans no change.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from fakekube.server import FakeKube
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional import nbcheck
from tests.functional.test_controller import running
from topology.model import Owner
from topology.nbsync.client import NbClient
from ycloud_controller import keys
from ycloud_controller.keys import EIPPOOL_FINALIZER as FINALIZER
from ycloud_controller.kube import resources as res

GROUP = "iaas.yusur.io/v1"
NS = "ns1"
WEB = {"app": "web"}
YS = {"svc": "ys"}


def _pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": dict(labels)},
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running"}}


def _pool(name: str, cidr: str, gateway: str, uplink: str, default: bool) -> dict[str, Any]:
    return {"apiVersion": GROUP, "kind": "EipPool", "metadata": {"name": name},
            "spec": {"cidr": cidr, "gateway": gateway, "uplinkIP": uplink,
                     "providerNetwork": "physnet", "gatewayNodes": ["gw1"],
                     "default": default}}


def _lb(name: str, cluster_ip: str, eip: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS,
                         "annotations": {keys.ANN_EIP_POOL: "pool1"}},
            "spec": {"type": "LoadBalancer", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "loadBalancerIP": eip, "allocateLoadBalancerNodePorts": False,
                     "selector": dict(WEB),
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                "protocol": "TCP"}]}}


def _ysvc(name: str, cluster_ip: str, health: bool) -> dict[str, Any]:
    return {"apiVersion": GROUP, "kind": "YusurService",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"type": "ClusterIP", "scope": "vpc", "vpc": "vpc1",
                     "clusterIP": cluster_ip, "selector": dict(YS),
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                "protocol": "TCP"}],
                     "healthCheck": {"enabled": health}}}


WORLD: list[tuple[res.Resource, dict[str, Any]]] = [
    (res.NAMESPACES, {"metadata": {"name": NS}}),
    (res.NODES, {"metadata": {"name": "node1"},
                 "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.11"}]}}),
    (res.VPCS, {"apiVersion": GROUP, "kind": "Vpc", "metadata": {"name": "vpc1"},
                "spec": {"namespaces": [NS], "natOutgoing": True}}),
    (res.SUBNETS, {"apiVersion": GROUP, "kind": "Subnet", "metadata": {"name": "s1"},
                   "spec": {"vpc": "vpc1", "cidrBlock": "10.1.1.0/24", "namespaces": [NS]}}),
    (res.SUBNETS, {"apiVersion": GROUP, "kind": "Subnet", "metadata": {"name": "s2"},
                   "spec": {"vpc": "vpc1", "cidrBlock": "10.1.2.0/24"}}),
    (res.EIPPOOLS, _pool("pool1", "172.18.0.0/24", "172.18.0.1", "172.18.0.2", True)),
    (res.EIPPOOLS, _pool("pool2", "172.19.0.0/24", "172.19.0.1", "172.19.0.2", False)),
    (res.PODS, _pod("p1", WEB)), (res.PODS, _pod("p2", WEB)), (res.PODS, _pod("p3", YS)),
    (res.VNICS, {"apiVersion": GROUP, "kind": "Vnic",
                 "metadata": {"name": "v1", "namespace": NS, "labels": dict(YS)},
                 "spec": {"subnet": "s1", "node": "node1", "extraIPs": ["10.1.1.200"]}}),
    (res.SERVICES, _lb("web", "10.96.0.10", "172.18.0.50")),
    (res.SERVICES, _lb("lb2", "10.96.0.11", "172.18.0.51")),
    (res.YUSURSERVICES, _ysvc("ys", "10.96.0.12", health=True)),
    (res.YUSURSERVICES, _ysvc("ys2", "10.96.0.13", health=False)),
    (res.YUSURSERVICES, _ysvc("ys3", "10.96.0.14", health=True)),
]


def _slice(service: str, ips: list[str]) -> dict[str, Any]:
    """The EndpointSlice Kubernetes' endpoint controller keeps for a Service (FakeKube has
    none: the test plays it)."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-abcde", "namespace": NS,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def _pod_ip(fake: FakeKube, name: str) -> str:
    obj = fake.store.get(res.PODS, name, NS)
    return str((obj["metadata"].get("annotations") or {}).get(keys.ANN_IP, ""))


def _vnic_ips(fake: FakeKube, name: str) -> list[str]:
    status = fake.store.get(res.VNICS, name, NS).get("status") or {}
    return [ip for ip in [str(status.get("ip", "")), *(status.get("extraIPs") or [])] if ip]


def _nb_dump(sandbox: Sandbox) -> str:
    assert sandbox.state is not None
    out = subprocess.run(["ovsdb-client", "dump", sandbox.state.nb_remote, "OVN_Northbound"],
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout


def _mentions(text: str, token: str) -> bool:
    """`token` (an address, a CIDR or a name) appears in `text` as a whole word."""
    return re.search(rf"(?<![\w.-]){re.escape(token)}(?![\w-]|\.\d)", text) is not None


def _kube_traces(fake: FakeKube, gone_ips: list[str]) -> list[str]:
    found = []
    slices, _ = fake.store.list(res.ENDPOINTSLICES, NS)
    for sl in slices:
        ips = {a for e in sl.get("endpoints") or [] for a in e.get("addresses") or []}
        found += [f"EndpointSlice {sl['metadata']['name']} lists {ip}"
                  for ip in sorted(ips & set(gone_ips))]
    probes, _ = fake.store.list(res.NETWORKPROBES, NS)
    for probe in probes:
        spec = probe.get("spec") or {}
        target = spec.get("target") or {}
        if spec.get("ip") in gone_ips or (target.get("kind"), target.get("name")) in (
                ("Pod", "p1"), ("Pod", "p3"), ("Vnic", "v1")):
            found.append(f"NetworkProbe {probe['metadata']['name']} of {target} {spec.get('ip')}")
    pool1 = fake.store.get(res.EIPPOOLS, "pool1")
    if "172.18.0.51" in ((pool1.get("status") or {}).get("eips") or {}):
        found.append("pool1 still counts lb2's EIP 172.18.0.51")
    return found


def test_deletes_missed_by_the_watch_leave_no_trace_after_the_relist(
        fake: FakeKube, sandbox: Sandbox, nb: NbClient, tmp_path: Path) -> None:
    assert sandbox.state is not None
    for resource, obj in WORLD:
        fake.store.create(resource, obj)
    with running(fake, sandbox, wait_synced=True) as ctl:
        ips = {p: wait_for(lambda p=p: _pod_ip(fake, p), timeout=30, what=f"{p}'s address")
               for p in ("p1", "p2", "p3")}
        vnic = wait_for(lambda: len(_vnic_ips(fake, "v1")) == 2 and _vnic_ips(fake, "v1"),
                        timeout=30, what="v1's addresses")
        fake.store.create(res.ENDPOINTSLICES, _slice("web", [ips["p1"], ips["p2"]]))
        fake.store.create(res.ENDPOINTSLICES, _slice("lb2", [ips["p1"], ips["p2"]]))
        gone_ips = [ips["p1"], ips["p3"], *vnic]
        # every trace is there first (what the check below must not find afterwards)
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")

        def settled() -> bool:
            return not nbcheck.render_changes(kubeconfig, sandbox.state.nb_remote,
                                              sandbox.state.sb_remote)
        before = wait_for(lambda: (dump := _nb_dump(sandbox)) and all(
            _mentions(dump, t) for t in [*gone_ips, "p1.ns1", "p3.ns1", "10.1.2.0/24",
                                         "172.18.0.51", "eipgw-pool2", "s2", "10.96.0.14"])
            and dump,
            timeout=60, interval=0.5, what="the world's rows in NB")
        assert before
        # p1 in two Services' slices; p3 and v1's addresses in three YusurServices' slices
        # and in the probes of the two that check health; lb2's EIP in pool1's status
        ysvc_ips = 1 + len(vnic)
        wanted = 2 + 3 * ysvc_ips + 2 * ysvc_ips + 1
        try:
            wait_for(lambda: len(_kube_traces(fake, gone_ips)) == wanted, timeout=30,
                     interval=0.2)
        except AssertionError:
            raise AssertionError(f"wanted {wanted} traces, found "
                                 f"{_kube_traces(fake, gone_ips)}") from None
        wait_for(settled, timeout=60, interval=0.5, what="converged before the deletes")

        # every list and watch fails; the deletes happen and the history is compacted
        fake.inject("GET", r"", 503, count=10**6)
        fake.drop_watches()
        mark = len(fake.requests)
        fake.store.delete(res.PODS, "p1", NS)
        web = fake.store.get(res.ENDPOINTSLICES, "web-abcde", NS)
        fake.store.patch(res.ENDPOINTSLICES, "web-abcde", NS, {
            "endpoints": [e for e in web["endpoints"] if e["addresses"] != [ips["p1"]]]})
        fake.store.delete(res.PODS, "p3", NS)
        fake.store.delete(res.VNICS, "v1", NS)
        fake.store.delete(res.SERVICES, "lb2", NS)
        fake.store.delete(res.ENDPOINTSLICES, "lb2-abcde", NS)
        fake.store.delete(res.SUBNETS, "s2")
        # the garbage collector takes the YusurService's Service, slices and probes with it
        fake.store.delete(res.YUSURSERVICES, "ys3", NS)
        pool2 = fake.store.get(res.EIPPOOLS, "pool2")
        assert FINALIZER in pool2["metadata"].get("finalizers", [])
        # an admin removes the finalizer of a pool the controller cannot be asked about
        fake.store.patch(res.EIPPOOLS, "pool2", None, {"metadata": {"finalizers": None}})
        fake.store.delete(res.EIPPOOLS, "pool2")
        fake.compact()
        fake.clear_faults()

        def traces() -> list[str]:
            dump = _nb_dump(sandbox)
            nb_found = [f"NB mentions {t}" for t in [
                *gone_ips, "p1.ns1", "p3.ns1", "vnic.v1.ns1", "10.1.2.0/24", "10.1.2.1",
                "172.18.0.51", "Service_ns1/lb2_TCP_cluster", "Service_ns1/lb2_TCP_eip",
                "s2", "vpc1-s2", "s2-vpc1", "eipgw-pool2", "ext-pool2", "eipts-pool2",
                "svcgw-pool2", "172.19.0.2", "172.19.0.0/24"] if _mentions(dump, t)]
            return nb_found + _kube_traces(fake, gone_ips)
        try:
            wait_for(lambda: not traces(), timeout=60, interval=0.5,
                     what="no trace of the deleted objects")
        except AssertionError:
            raise AssertionError(f"left after the relist: {traces()}") from None
        # the controller learnt the deletes from lists: after the faults, each kind's first
        # answered request was a list, not a watch from before the compaction
        after = fake.requests[mark:]
        for plural in ("pods", "vnics", "services", "subnets", "eippools"):
            first = next(r for r in after if r.method == "GET" and r.status == 200
                         and f"/{plural}?" in r.path)
            assert "watch=" not in first.path, f"{plural}: {first.path}"
        rows = nbcheck.owned_rows(sandbox.state.nb_remote)
        alive = {o for o in (nbcheck.owner_of(t, r) for t, items in rows.items()
                             for r in items) if o is not None}
        assert not {o for o in alive if o in {
            Owner("Pod", f"{NS}/p1"), Owner("Pod", f"{NS}/p3"), Owner("Vnic", f"{NS}/v1"),
            Owner("Service", f"{NS}/lb2"), Owner("Service", f"{NS}/ys3"), Owner("Subnet", "s2"),
            Owner("EipPool", "pool2")}}
        wait_for(settled, timeout=60, interval=0.5, what="render plans no change")
        assert ctl.ready()
        # what is left is still served: p2 in web's VIPs
        assert _mentions(_nb_dump(sandbox), ips["p2"])
