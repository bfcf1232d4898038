"""The benchmark's Kubernetes objects, generated in-process (no YAML), and the LB rows they mean.

The shapes (how many of each, names, addresses) are in bench/shapes.py. Objects: one
namespace per subnet (bound to it through Subnet.spec.namespaces), Vpcs and Subnets; pods
with their IP and MAC as requested addresses (ycloud.io/ip_address, ycloud.io/mac_address),
so that EndpointSlices can name them before the controller has run (the controller still
allocates them through IPAM, patches the CNI annotations and writes their switch ports);
selector-less Services (ClusterIP, and LoadBalancer with an EIP of the pool) each with
EndpointSlices that are "real": not managed by the manifests-mode emulator (other
managed-by label), exactly as for a Service owned by a YusurService, so a churn event goes
EndpointSlice write -> informer -> Service reconcile -> NB commit. With Nodes: one Node per
node (its join-subnet port), an EipPool on two of them, YusurServices of scope multi-vpc
(the controller derives their Service and EndpointSlices from the pods their selector
matches in their VPCs), Vnics with extra IPs.

Churn: `churned_slice(i, version)` moves a service's 3 endpoints one pod further along its
namespace's pods, so consecutive versions always differ and each has a known `vips` value;
`churn_pod(k)` is the k-th pod churn creates (and later deletes).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bench.shapes import (  # noqa: F401 - names other bench modules use through workload
    EIP_CIDR,
    EIP_POOL,
    ENDPOINTS,
    PORT,
    SLICE_MAX,
    TARGET_PORT,
    Shape,
    all_service_indexes,
    backends,
    churn_pod_namespace,
    eip,
    endpoint_pods,
    is_lb,
    multi_vpcs,
    namespace,
    namespace_vpc,
    node_name,
    pod_ip,
    pod_mac,
    service_ip,
    service_key,
    service_name,
    service_ns,
    subnet_cidr,
    subnet_name,
    vpc_name,
)
from topology import naming
from topology.builders.service import LbSpec, Vip, build_lb
from topology.model import LoadBalancer, Owner
from ycloud_controller import keys

SLICE_MANAGER = "bench.ycloud.io"
MULTI_NAMESPACE = "bmulti"


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
    if shape.multi_vpc_lbs:
        yield {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(MULTI_NAMESPACE)}
    for j in range(shape.nodes):
        yield {"apiVersion": "v1", "kind": "Node", "metadata": _meta(
            f"node{j}", labels={"kubernetes.io/hostname": f"node{j}",
                                "kubernetes.io/os": "linux"})}
    if shape.has_eip:
        yield {"apiVersion": "iaas.yusur.io/v1", "kind": "EipPool", "metadata": _meta(EIP_POOL),
               "spec": {"cidr": EIP_CIDR, "gateway": eip(-9), "uplinkIP": eip(-8),
                        "providerNetwork": "physnet", "gatewayNodes": ["node0", "node1"],
                        "default": True}}
    for v in range(shape.vpcs):
        nss = [namespace(shape, v * shape.subnets_per_vpc + s)
               for s in range(shape.subnets_per_vpc)]
        yield {"apiVersion": "iaas.yusur.io/v1", "kind": "Vpc", "metadata": _meta(vpc_name(v)),
               "spec": {"namespaces": nss}}
        for s in range(shape.subnets_per_vpc):
            net = subnet_cidr(v, s)
            yield {"apiVersion": "iaas.yusur.io/v1", "kind": "Subnet",
                   "metadata": _meta(subnet_name(v, s)),
                   "spec": {"vpc": vpc_name(v), "cidrBlock": str(net),
                            "gateway": str(net.network_address + 1),
                            "namespaces": [namespace(shape, v * shape.subnets_per_vpc + s)]}}


def pod(shape: Shape, n: int, j: int, name: str | None = None,
        addresses: bool = True) -> dict[str, Any]:
    """Pod j of namespace n (with its requested addresses), or a pod churn creates (the
    controller chooses its addresses)."""
    ann = {keys.ANN_IP: pod_ip(shape, n, j), keys.ANN_MAC: pod_mac(n, j)} if addresses else {}
    name = name or f"pod{j}"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": _meta(name, namespace(shape, n), labels={"app": name},
                              annotations=ann),
            "spec": {"nodeName": node_name(shape, j),
                     "containers": [{"name": "c", "image": "pause",
                                     "ports": [{"containerPort": TARGET_PORT}]}]},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pods(shape: Shape) -> Iterator[dict[str, Any]]:
    for n in range(shape.namespaces):
        for j in range(shape.pods_in(n)):
            yield pod(shape, n, j)


def churn_pod(shape: Shape, k: int) -> dict[str, Any]:
    """The k-th pod churn creates: no requested address (IPAM chooses), a light namespace."""
    return pod(shape, churn_pod_namespace(shape, k), k, name=f"churn{k}", addresses=False)


def service(shape: Shape, i: int) -> dict[str, Any]:
    ns = namespace(shape, service_ns(shape, i))
    spec: dict[str, Any] = {
        "type": "ClusterIP", "clusterIP": service_ip(i), "clusterIPs": [service_ip(i)],
        "ports": [{"name": "", "protocol": "TCP", "port": PORT, "targetPort": TARGET_PORT}]}
    md = _meta(service_name(shape, i), ns)
    if is_lb(shape, i):
        spec.update(type="LoadBalancer", loadBalancerIP=eip(i - shape.services
                                                           - shape.big_services),
                    allocateLoadBalancerNodePorts=False)
        md["annotations"] = {keys.ANN_EIP_POOL: EIP_POOL}
    return {"apiVersion": "v1", "kind": "Service", "metadata": md, "spec": spec}


def endpoint_slices(shape: Shape, i: int, version: int = 0) -> list[dict[str, Any]]:
    """Service i's EndpointSlices (one, except for the big Services: SLICE_MAX per slice)."""
    ns = namespace(shape, service_ns(shape, i))
    eps = [{"addresses": [pod_ip(shape, n, j)], "conditions": {"ready": True},
            "nodeName": node_name(shape, j),
            "targetRef": {"kind": "Pod", "namespace": namespace(shape, n), "name": f"pod{j}"}}
           for n, j in sorted(endpoint_pods(shape, i, version))]
    chunks = [eps[k:k + SLICE_MAX] for k in range(0, len(eps), SLICE_MAX)] or [[]]
    name = service_name(shape, i)
    return [{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": _meta(f"{name}-bench" + (f"-{c}" if c else ""), ns, labels={
                 keys.SERVICE_NAME_LABEL: name, keys.SLICE_MANAGED_BY: SLICE_MANAGER}),
             "addressType": "IPv4", "endpoints": chunk,
             "ports": [{"name": "", "port": TARGET_PORT, "protocol": "TCP"}]}
            for c, chunk in enumerate(chunks)]


def endpoint_slice(shape: Shape, i: int, version: int = 0) -> dict[str, Any]:
    """The EndpointSlice of a ClusterIP or LoadBalancer Service (churn writes these)."""
    (one,) = endpoint_slices(shape, i, version)
    return one


def services(shape: Shape) -> Iterator[dict[str, Any]]:
    for i in all_service_indexes(shape):
        yield service(shape, i)
        yield from endpoint_slices(shape, i)


def multi_vpc_services(shape: Shape) -> Iterator[dict[str, Any]]:
    """YusurServices of scope multi-vpc: their backends are the pods labelled app=pod<k> of
    every subnet of their VPCs; their EIP is served by the pool's service gateway."""
    for k in range(shape.multi_vpc_lbs):
        yield {"apiVersion": "iaas.yusur.io/v1", "kind": "YusurService",
               "metadata": _meta(f"multi{k}", MULTI_NAMESPACE),
               "spec": {"type": "LoadBalancer", "scope": "multi-vpc",
                        "vpcs": multi_vpcs(shape, k), "eip": eip(shape.lb_services + k),
                        "eipPool": EIP_POOL, "selector": {"app": f"pod{k % 6}"},
                        "healthCheck": {"enabled": False},
                        "ports": [{"name": "http", "protocol": "TCP", "port": PORT,
                                   "targetPort": TARGET_PORT}]}}


def vnics(shape: Shape) -> Iterator[dict[str, Any]]:
    """Vnics (VM NICs) with extra IPs, spread over the light namespaces."""
    light = shape.namespaces - shape.heavy_namespaces
    for k in range(shape.vnics):
        n = shape.heavy_namespaces + (k * 13) % light
        v, s = divmod(n, shape.subnets_per_vpc)
        yield {"apiVersion": "iaas.yusur.io/v1", "kind": "Vnic",
               "metadata": _meta(f"vnic{k}", namespace(shape, n)),
               "spec": {"subnet": subnet_name(v, s), "node": node_name(shape, k),
                        "extraIPCount": shape.vnic_extra_ips}}


def all_objects(shape: Shape) -> Iterator[dict[str, Any]]:
    yield from infrastructure(shape)
    yield from pods(shape)
    yield from services(shape)
    yield from multi_vpc_services(shape)
    yield from vnics(shape)


def fill_store(shape: Shape, store=None):  # noqa: ANN001, ANN201 - MemoryStore
    """The generated objects in `store` (a new MemoryStore by default); objects the store
    holds already (a FakeKube's own namespaces) are left as they are."""
    from ycloud_controller.memkube.store import MemoryStore
    store = store if store is not None else MemoryStore()
    for obj in all_objects(shape):
        put(store, obj)
    return store


def put(store, obj: dict[str, Any]) -> dict[str, Any] | None:  # noqa: ANN001
    """Create obj (and its status) in the store; None if it exists already."""
    from ycloud_controller.kube.errors import ApiError
    res = store.resource_by_kind(obj["kind"], obj["apiVersion"])
    assert res is not None, obj["kind"]
    status = obj.get("status")
    try:
        created = store.create(res, obj)
    except ApiError as exc:
        if exc.code != 409:
            raise
        return None
    if status is not None and res.has_status:
        # a patch, not an update: the controller may have written the object since (churn
        # creates pods under a running controller, which annotates them at once)
        md = created["metadata"]
        created = store.patch(res, md["name"], md.get("namespace"), {"status": status},
                              subresource="status")
    return created


# -- the LB rows the controller is expected to write ----------------------------------------
def lb_row(shape: Shape, i: int, version: int = 0) -> LoadBalancer:
    """The ClusterIP Load_Balancer of ClusterIP (or big) Service i, as the product builds it."""
    n = service_ns(shape, i)
    key = service_key(shape, i)
    vpc = namespace_vpc(shape, n)
    ip = service_ip(i)
    rows = build_lb(LbSpec(
        name=naming.service_lb(namespace(shape, n), service_name(shape, i), "TCP"),
        owner=Owner("Service", key), vpc=vpc, protocol="TCP",
        vips=(Vip(ip, PORT, backends(shape, i, version)),), groups=(naming.lb_group(vpc),),
        hairpin_snat_ip=ip, extra_ids=((naming.SERVICE, key),)))
    row = rows[0]
    assert isinstance(row, LoadBalancer)
    return row
