"""The benchmark's Kubernetes objects, generated in-process (no YAML), and the LB rows they mean.

Shape (fixed by issue 8): 5 VPCs with 10 subnets each; one namespace per subnet (bound to it
through Subnet.spec.namespaces); N selector-less ClusterIP Services (one TCP port) spread
round-robin over the 50 namespaces, each with one EndpointSlice holding 3 ready endpoints on
pods that exist in the same namespace. Pods carry their IP and MAC as requested addresses
(ycloud.io/ip_address, ycloud.io/mac_address) so the EndpointSlices can name them before the
controller has run; the controller still allocates them through IPAM, patches the CNI
annotations and writes their switch ports. EndpointSlices are "real": they are not managed by
the manifests-mode emulator (other managed-by label), exactly as for a Service owned by a
YusurService, so a churn event goes EndpointSlice write -> informer -> Service reconcile ->
NB commit.

Churn: `churned_slice(i, version)` moves the service's 3 endpoints one pod further along its
namespace's pods, so consecutive versions always differ and each has a known `vips` value.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from topology import naming
from topology.builders.service import LbSpec, Vip, build_lb
from topology.model import LoadBalancer, Owner
from ycloud_controller import keys

VPCS = 5
SUBNETS_PER_VPC = 10
ENDPOINTS = 3
PORT = 80
TARGET_PORT = 8080
SLICE_MANAGER = "bench.ycloud.io"
SERVICE_BASE = int(ipaddress.ip_address("10.96.0.10"))


@dataclass(frozen=True)
class Shape:
    services: int
    vpcs: int = VPCS
    subnets_per_vpc: int = SUBNETS_PER_VPC

    @property
    def namespaces(self) -> int:
        return self.vpcs * self.subnets_per_vpc

    @property
    def pods_per_namespace(self) -> int:
        # enough pods that a churned endpoint set always differs from the previous one,
        # about one pod per 10 services (1000 pods at 10k services)
        return max(2 * ENDPOINTS, self.services // (10 * self.namespaces))

    @property
    def pods(self) -> int:
        return self.pods_per_namespace * self.namespaces


def vpc_name(v: int) -> str:
    return f"bvpc{v}"


def subnet_name(v: int, s: int) -> str:
    return f"bsub{v}-{s}"


def namespace(shape: Shape, n: int) -> str:
    v, s = divmod(n, shape.subnets_per_vpc)
    return f"bns{v}-{s}"


def namespace_vpc(shape: Shape, n: int) -> str:
    return vpc_name(n // shape.subnets_per_vpc)


def pod_ip(shape: Shape, n: int, j: int) -> str:
    v, s = divmod(n, shape.subnets_per_vpc)
    base = int(ipaddress.ip_address(f"10.{100 + v}.{s * 4}.0"))  # a /22 per subnet
    return str(ipaddress.ip_address(base + 10 + j))


def pod_mac(n: int, j: int) -> str:
    return f"0a:be:{n >> 8 & 0xff:02x}:{n & 0xff:02x}:{j >> 8 & 0xff:02x}:{j & 0xff:02x}"


def service_ns(shape: Shape, i: int) -> int:
    return i % shape.namespaces


def service_name(i: int) -> str:
    return f"svc{i}"


def service_ip(i: int) -> str:
    return str(ipaddress.ip_address(SERVICE_BASE + i))


def service_key(shape: Shape, i: int) -> str:
    return f"{namespace(shape, service_ns(shape, i))}/{service_name(i)}"


def endpoint_pods(shape: Shape, i: int, version: int = 0) -> list[int]:
    """Indexes (in the service's namespace) of the pods backing service i at `version`."""
    start = (i // shape.namespaces) * ENDPOINTS + version
    return [(start + k) % shape.pods_per_namespace for k in range(ENDPOINTS)]


def backends(shape: Shape, i: int, version: int = 0) -> tuple[tuple[str, int], ...]:
    n = service_ns(shape, i)
    return tuple(sorted((pod_ip(shape, n, j), TARGET_PORT) for j in endpoint_pods(shape, i,
                                                                                  version)))


def vips_value(shape: Shape, i: int, version: int = 0) -> str:
    """The Load_Balancer `vips` value service i must have at `version` (VIP -> backends)."""
    return Vip(service_ip(i), PORT, backends(shape, i, version)).value()


def vip_key(i: int) -> str:
    return Vip(service_ip(i), PORT, ()).key


# -- objects --------------------------------------------------------------------------------
def _meta(name: str, ns: str | None = None, **extra: Any) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name}
    if ns is not None:
        md["namespace"] = ns
    md.update(extra)
    return md


def infrastructure(shape: Shape) -> Iterator[dict[str, Any]]:
    for n in range(shape.namespaces):
        yield {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(namespace(shape, n))}
    for v in range(shape.vpcs):
        nss = [namespace(shape, v * shape.subnets_per_vpc + s)
               for s in range(shape.subnets_per_vpc)]
        yield {"apiVersion": "iaas.yusur.io/v1", "kind": "Vpc", "metadata": _meta(vpc_name(v)),
               "spec": {"namespaces": nss}}
        for s in range(shape.subnets_per_vpc):
            net = ipaddress.ip_network(f"10.{100 + v}.{s * 4}.0/22")
            yield {"apiVersion": "iaas.yusur.io/v1", "kind": "Subnet",
                   "metadata": _meta(subnet_name(v, s)),
                   "spec": {"vpc": vpc_name(v), "cidrBlock": str(net),
                            "gateway": str(net.network_address + 1),
                            "namespaces": [namespace(shape, v * shape.subnets_per_vpc + s)]}}


def pods(shape: Shape) -> Iterator[dict[str, Any]]:
    for n in range(shape.namespaces):
        ns = namespace(shape, n)
        for j in range(shape.pods_per_namespace):
            yield {"apiVersion": "v1", "kind": "Pod",
                   "metadata": _meta(f"pod{j}", ns, labels={"app": f"pod{j}"}, annotations={
                       keys.ANN_IP: pod_ip(shape, n, j), keys.ANN_MAC: pod_mac(n, j)}),
                   "spec": {"nodeName": f"node{j % 3}",
                            "containers": [{"name": "c", "image": "pause",
                                            "ports": [{"containerPort": TARGET_PORT}]}]},
                   "status": {"phase": "Running",
                              "conditions": [{"type": "Ready", "status": "True"}]}}


def service(shape: Shape, i: int) -> dict[str, Any]:
    ns = namespace(shape, service_ns(shape, i))
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(service_name(i), ns),
            "spec": {"type": "ClusterIP", "clusterIP": service_ip(i),
                     "clusterIPs": [service_ip(i)],
                     "ports": [{"name": "", "protocol": "TCP", "port": PORT,
                                "targetPort": TARGET_PORT}]}}


def endpoint_slice(shape: Shape, i: int, version: int = 0) -> dict[str, Any]:
    n = service_ns(shape, i)
    ns = namespace(shape, n)
    endpoints = [{"addresses": [pod_ip(shape, n, j)], "conditions": {"ready": True},
                  "nodeName": f"node{j % 3}",
                  "targetRef": {"kind": "Pod", "namespace": ns, "name": f"pod{j}"}}
                 for j in sorted(endpoint_pods(shape, i, version))]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": _meta(f"{service_name(i)}-bench", ns, labels={
                keys.SERVICE_NAME_LABEL: service_name(i),
                keys.SLICE_MANAGED_BY: SLICE_MANAGER}),
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": "", "port": TARGET_PORT, "protocol": "TCP"}]}


def services(shape: Shape) -> Iterator[dict[str, Any]]:
    for i in range(shape.services):
        yield service(shape, i)
        yield endpoint_slice(shape, i)


def all_objects(shape: Shape) -> Iterator[dict[str, Any]]:
    yield from infrastructure(shape)
    yield from pods(shape)
    yield from services(shape)


def fill_store(shape: Shape, store=None):  # noqa: ANN001, ANN201 - MemoryStore
    """The generated objects in `store` (a new MemoryStore by default); objects the store
    holds already (a FakeKube's own namespaces) are left as they are."""
    from ycloud_controller.kube.errors import ApiError
    from ycloud_controller.memkube.store import MemoryStore
    store = store if store is not None else MemoryStore()
    for obj in all_objects(shape):
        res = store.resource_by_kind(obj["kind"], obj["apiVersion"])
        assert res is not None, obj["kind"]
        status = obj.get("status")
        try:
            created = store.create(res, obj)
        except ApiError as exc:
            if exc.code != 409:
                raise
            continue
        if status is not None and res.has_status:
            created["status"] = status
            store.update(res, created, subresource="status")
    return store


# -- the LB rows the controller is expected to write (the raw limit writes these) -----------
def lb_row(shape: Shape, i: int, version: int = 0) -> LoadBalancer:
    n = service_ns(shape, i)
    key = service_key(shape, i)
    vpc = namespace_vpc(shape, n)
    ip = service_ip(i)
    rows = build_lb(LbSpec(
        name=naming.service_lb(namespace(shape, n), service_name(i), "TCP"),
        owner=Owner("Service", key), vpc=vpc, protocol="TCP",
        vips=(Vip(ip, PORT, backends(shape, i, version)),), groups=(naming.lb_group(vpc),),
        hairpin_snat_ip=ip, extra_ids=((naming.SERVICE, key),)))
    row = rows[0]
    assert isinstance(row, LoadBalancer)
    return row
