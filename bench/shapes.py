"""The cluster shapes of the benchmark (`python -m bench --shape small,mid,max`) and the names
and addresses of every generated object (bench/workload.py builds the objects from these).

- small (issue 8, today's `python -m bench`): N selector-less ClusterIP Services (--services,
  default 1000 and 10000) with 3 endpoints each, 5 VPCs x 10 subnets (one namespace per
  subnet), about N/10 pods, no Node objects.
- max (issue 19): Kubernetes' published single-cluster limits: 5,000 Nodes (each a port on
  the join subnet), 150,000 pods over 100 VPCs of 20 subnets, 10,000 Services of 3
  endpoints plus 10 Services of 5,000 endpoints, 200 LoadBalancer Services with EIPs of
  which 20 are multi-VPC (YusurServices of scope multi-vpc: the service gateway SNAT path),
  1,000 Vnics with 2 extra IPs each.
- mid: about a quarter of max (a point between small and max for the plot).
- tiny: every kind of max at a few dozen objects, for smoke runs and tests.

Pods: the namespaces of the first `big_services` VPCs ("heavy") hold enough pods for one big
Service each (its endpoints are the pods of all subnets of its VPC); the other namespaces
share the remaining pods evenly. Pods carry their IP and MAC as requested addresses so that
EndpointSlices can name them before the controller ran.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

ENDPOINTS = 3
PORT = 80
TARGET_PORT = 8080
SERVICE_BASE = int(ipaddress.ip_address("10.96.0.10"))
EIP_POOL = "bpool"
EIP_CIDR = "172.20.0.0/22"
SLICE_MAX = 1000  # endpoints per EndpointSlice (Kubernetes' own maximum)


@dataclass(frozen=True)
class Shape:
    services: int  # ClusterIP Services with ENDPOINTS endpoints each
    vpcs: int = 5
    subnets_per_vpc: int = 10
    pod_count: int | None = None  # None: today's rule, about one pod per 10 services
    nodes: int = 0  # Node objects (join-subnet ports); 0: pods name node0..2, no Node
    big_services: int = 0  # Services with `big_endpoints` endpoints (one per heavy VPC)
    big_endpoints: int = 0
    lb_services: int = 0  # LoadBalancer Services with an EIP (single-VPC ones)
    multi_vpc_lbs: int = 0  # YusurServices of scope multi-vpc with an EIP
    multi_vpc_span: int = 2  # VPCs per multi-VPC service
    vnics: int = 0
    vnic_extra_ips: int = 2
    name: str = "small"

    @property
    def namespaces(self) -> int:
        return self.vpcs * self.subnets_per_vpc

    @property
    def heavy_namespaces(self) -> int:
        return self.big_services * self.subnets_per_vpc

    @property
    def heavy_pods_per_namespace(self) -> int:
        return math.ceil(self.big_endpoints / self.subnets_per_vpc) if self.big_services else 0

    @property
    def pods_per_namespace(self) -> int:
        """Pods of the smallest namespace (today's shape: every namespace)."""
        if self.pod_count is None:
            # enough pods that a churned endpoint set always differs from the previous one,
            # about one pod per 10 services (1000 pods at 10k services)
            return max(2 * ENDPOINTS, self.services // (10 * self.namespaces))
        return min(self.pods_in(n) for n in range(self.namespaces))

    def pods_in(self, n: int) -> int:
        """Pods of namespace n."""
        if self.pod_count is None:
            return self.pods_per_namespace
        if n < self.heavy_namespaces:
            return self.heavy_pods_per_namespace
        light = self.namespaces - self.heavy_namespaces
        rest = self.pod_count - self.heavy_namespaces * self.heavy_pods_per_namespace
        base, extra = divmod(rest, light)
        return base + (1 if n - self.heavy_namespaces < extra else 0)

    @property
    def pods(self) -> int:
        if self.pod_count is None:
            return self.pods_per_namespace * self.namespaces
        return self.pod_count

    @property
    def objects(self) -> int:
        """Kubernetes objects generated (the x axis of the plot)."""
        slices = self.services + self.big_services * math.ceil(self.big_endpoints / SLICE_MAX) \
            + self.lb_services
        return (self.namespaces + self.vpcs + self.namespaces + self.pods + self.nodes
                + self.services + self.big_services + self.lb_services + slices
                + self.multi_vpc_lbs + self.vnics + (1 + 1 if self.has_eip else 0))

    @property
    def has_eip(self) -> bool:
        return bool(self.lb_services or self.multi_vpc_lbs)

    def check(self) -> None:
        assert self.big_services <= self.vpcs, "one heavy VPC per big Service"
        assert self.pods_per_namespace >= 2 * ENDPOINTS, "churn needs 6 pods per namespace"
        assert self.multi_vpc_span <= self.vpcs
        assert self.lb_services + self.multi_vpc_lbs <= 1000, "EIPs of one /22 pool"
        assert self.nodes == 0 or self.nodes >= 2, "the EIP pool's two gateway nodes"


def small(services: int) -> Shape:
    return Shape(services)


TINY = Shape(services=200, vpcs=3, subnets_per_vpc=4, pod_count=400, nodes=20, big_services=2,
             big_endpoints=120, lb_services=8, multi_vpc_lbs=2, vnics=10, name="tiny")
MID = Shape(services=2500, vpcs=25, subnets_per_vpc=20, pod_count=37500, nodes=1250,
            big_services=3, big_endpoints=5000, lb_services=45, multi_vpc_lbs=5, vnics=250,
            name="mid")
MAX = Shape(services=10000, vpcs=100, subnets_per_vpc=20, pod_count=150000, nodes=5000,
            big_services=10, big_endpoints=5000, lb_services=180, multi_vpc_lbs=20,
            vnics=1000, name="max")
NAMED = {s.name: s for s in (TINY, MID, MAX)}
NAMES = ("tiny", "small", "mid", "max")


def resolve(name: str, services: list[int]) -> list[Shape]:
    """The shapes a --shape name means: small is one shape per --services count."""
    if name == "small":
        return [small(n) for n in services]
    if name not in NAMED:
        raise ValueError(f"unknown shape {name!r} (one of {', '.join(NAMES)})")
    return [NAMED[name]]


def by_spec(name: str, services: int) -> Shape:
    """The shape a worker process is told about: `--shape NAME --services N`."""
    return small(services) if name == "small" else NAMED[name]


# -- names and addresses ----------------------------------------------------------------------
def vpc_name(v: int) -> str:
    return f"bvpc{v}"


def subnet_name(v: int, s: int) -> str:
    return f"bsub{v}-{s}"


def namespace(shape: Shape, n: int) -> str:
    v, s = divmod(n, shape.subnets_per_vpc)
    return f"bns{v}-{s}"


def namespace_vpc(shape: Shape, n: int) -> str:
    return vpc_name(n // shape.subnets_per_vpc)


def subnet_cidr(v: int, s: int) -> ipaddress.IPv4Network:
    return ipaddress.ip_network(f"10.{100 + v}.{s * 4}.0/22")  # a /22 per subnet


def pod_ip(shape: Shape, n: int, j: int) -> str:
    v, s = divmod(n, shape.subnets_per_vpc)
    return str(subnet_cidr(v, s).network_address + 10 + j)


def pod_mac(n: int, j: int) -> str:
    return f"0a:be:{n >> 8 & 0xff:02x}:{n & 0xff:02x}:{j >> 8 & 0xff:02x}:{j & 0xff:02x}"


def node_name(shape: Shape, j: int) -> str:
    return f"node{j % (shape.nodes or 3)}"


def service_ns(shape: Shape, i: int) -> int:
    """Namespace index of service i (ClusterIP ones round-robin; big one b: the first
    namespace of heavy VPC b; LoadBalancer ones spread over the light namespaces)."""
    if i < shape.services:
        return i % shape.namespaces
    if i < shape.services + shape.big_services:
        return (i - shape.services) * shape.subnets_per_vpc
    k = i - shape.services - shape.big_services
    light = shape.namespaces - shape.heavy_namespaces
    return shape.heavy_namespaces + (k * 7) % light


def service_name(shape: Shape, i: int) -> str:
    if i < shape.services:
        return f"svc{i}"
    if i < shape.services + shape.big_services:
        return f"big{i - shape.services}"
    return f"lb{i - shape.services - shape.big_services}"


def all_service_indexes(shape: Shape) -> range:
    """ClusterIP, big, then LoadBalancer Services (each with its bench EndpointSlices)."""
    return range(shape.services + shape.big_services + shape.lb_services)


def is_lb(shape: Shape, i: int) -> bool:
    return i >= shape.services + shape.big_services


def service_ip(i: int) -> str:
    return str(ipaddress.ip_address(SERVICE_BASE + i))


def service_key(shape: Shape, i: int) -> str:
    return f"{namespace(shape, service_ns(shape, i))}/{service_name(shape, i)}"


def eip(k: int) -> str:
    """EIP of LoadBalancer Service k (single-VPC ones first, then the multi-VPC ones)."""
    return str(ipaddress.ip_network(EIP_CIDR).network_address + 10 + k)


def endpoint_pods(shape: Shape, i: int, version: int = 0) -> list[tuple[int, int]]:
    """(namespace, pod) of each endpoint of service i at `version` (churn moves the endpoints
    of a ClusterIP or LoadBalancer Service one pod along its namespace)."""
    if shape.services <= i < shape.services + shape.big_services:
        first = service_ns(shape, i)
        return [(first + k % shape.subnets_per_vpc, k // shape.subnets_per_vpc)
                for k in range(shape.big_endpoints)]
    n = service_ns(shape, i)
    start = (i // shape.namespaces) * ENDPOINTS + version
    count = shape.pods_in(n)
    return [(n, (start + k) % count) for k in range(ENDPOINTS)]


def backends(shape: Shape, i: int, version: int = 0) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((pod_ip(shape, n, j), TARGET_PORT)
                        for n, j in endpoint_pods(shape, i, version)))


def multi_vpcs(shape: Shape, k: int) -> list[str]:
    """The VPCs of multi-VPC service k (consecutive, from the first light VPC on)."""
    return [vpc_name((shape.big_services + k + d) % shape.vpcs)
            for d in range(shape.multi_vpc_span)]


def churn_pod_namespace(shape: Shape, k: int) -> int:
    """Namespace of the k-th pod created by churn (light namespaces, round-robin)."""
    light = shape.namespaces - shape.heavy_namespaces
    return shape.heavy_namespaces + (k * 11) % light
