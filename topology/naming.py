"""Every OVN NB row name and external_ids key the controller writes.

Nothing else in the project spells an NB name or an external_ids key: builders, the apply
engine, the CLI `inspect` command, the lab CNI and the tests all come here (Kubernetes-side
keys: annotations, labels, finalizers, conditions, are in ycloud_controller/keys.py).
`ovn-nbctl show` must read naturally, so names say what a row is for.

Reserved prefixes: Load_Balancer_Group has no external_ids column, so the controller recognises
its own groups by the prefix `LB_GROUP_PREFIX` (and only deletes such a group when no row that
is not ours references it).
"""

from __future__ import annotations

import hashlib

# -- external_ids keys --------------------------------------------------------------------
MANAGED_BY = "ycloud.io/managed-by"
MANAGED_BY_VALUE = "ycloud-controller"
KIND = "ycloud.io/kind"  # Kubernetes kind of the owner: Vpc, Subnet, Pod, Service, ...
OWNER = "ycloud.io/owner"  # namespace/name of the owner, or name when cluster scoped
VPC = "ycloud.io/vpc"
KEY = "ycloud.io/key"  # identity of the row among the rows of its table we own
HASH = "ycloud.io/hash"  # content hash of the desired columns, so diffs need no column reads
NODE = "ycloud.io/node"  # node a pod/vnic/node port is bound on (the CNI reads it)
SUBNET = "ycloud.io/subnet"
POOL = "ycloud.io/eip-pool"
NAMESPACE = "ycloud.io/namespace"
POD = "ycloud.io/pod"
GATEWAY = "ycloud.io/gateway"  # the subnet gateway, for the CNI
CIDR = "ycloud.io/cidr"
MTU = "ycloud.io/mtu"
ROUTES = "ycloud.io/routes"  # extra CIDRs a node port routes via the gateway (the CNI reads it)
SERVICE = "ycloud.io/service"  # namespace/name of the Service an LB row serves
ROLE = "ycloud.io/role"  # what an infrastructure row is for (see ROLE_* below)
EIP = "ycloud.io/eip"  # the EIP a row serves (LB, /32 route, on-link NAT)

ROLE_ROUTER_LINK = "router-link"
ROLE_LOCALNET = "localnet"
ROLE_NODE = "node"
ROLE_POD = "pod"
ROLE_VNIC = "vnic"
ROLE_TRANSIT = "transit"
ROLE_SVCGW_LINK = "svcgw-link"
ROLE_PROBE_SOURCE = "probe-source"

# -- external_ids the node agent (ycloud_controller/node) writes on its local OVS -------------
OVS_IFACE_ID = "iface-id"  # ovn-controller binds the Interface to the logical port of this name
OVS_INSTALLED = "ovn-installed"  # ovn-controller sets it "true" once the port's flows are in
# on Interfaces the node agent made, and only there: the role it plugged (pod | vnic | node);
# POD holds namespace/name of the pod or vnic, CONTAINER the CNI container id of a pod
NODE_AGENT_OWNER = "ycloud.io/cni"
CONTAINER = "ycloud.io/container"
IFNAME = "ycloud.io/ifname"  # CNI_IFNAME of a pod's interface
POD_UID = "ycloud.io/pod-uid"
NETNS = "ycloud.io/netns"  # the pod's netns path, for CHECK and for DEL without prevResult
OVS_OWNED_MAPPINGS = "ycloud.io/bridge-mappings"  # Open_vSwitch: the providers the agent mapped
REPRESENTOR = "ycloud.io/vf"  # DPU mode: the VF netdev (in the pod) of this representor

OWNERSHIP_KEYS = (MANAGED_BY, KIND, OWNER, VPC, KEY, HASH)
IDS_PREFIX = "ycloud.io/"  # every external_ids key above starts with it


def is_our_key(key: str) -> bool:
    """An external_ids key the controller writes; other keys (an operator's) are left alone,
    also on the controller's own rows."""
    return key.startswith(IDS_PREFIX)

# -- fixed names ------------------------------------------------------------------------------
DEFAULT_VPC = "ovn-cluster"
JOIN_SUBNET = "subnet0"
LB_GROUP_PREFIX = "vpc-"


def router(vpc: str) -> str:
    """Logical_Router of a VPC: the default VPC's router is `ovn-cluster`, others `vpc-<vpc>`."""
    return DEFAULT_VPC if vpc == DEFAULT_VPC else f"vpc-{vpc}"


def lb_group(vpc: str) -> str:
    """Load_Balancer_Group holding every ClusterIP LB of a VPC; attached to all its switches."""
    return f"{LB_GROUP_PREFIX}{vpc}"


def is_our_lb_group(name: str) -> bool:
    return name.startswith(LB_GROUP_PREFIX)


def lb_group_owner(name: str) -> tuple[str, str]:
    """(kind, owner) of one of our groups, which has no external_ids to say it: the VPC its
    name gives (`lb_group`)."""
    return "Vpc", name.removeprefix(LB_GROUP_PREFIX)


def switch(subnet: str) -> str:
    """Logical_Switch of a Subnet: the subnet's own name."""
    return subnet


def router_port(vpc: str, subnet: str) -> str:
    """Logical_Router_Port of the VPC router on a subnet switch."""
    return f"{vpc}-{subnet}"


def switch_router_port(subnet: str, vpc: str) -> str:
    """Logical_Switch_Port (type router) of a subnet switch towards its VPC router."""
    return f"{subnet}-{vpc}"


def pod_port(namespace: str, name: str) -> str:
    return f"{name}.{namespace}"


def vnic_port(namespace: str, name: str) -> str:
    """Port of a VM/bare-metal NIC: prefixed so a pod and a Vnic of one name never collide."""
    return f"vnic.{name}.{namespace}"


def node_port(node: str) -> str:
    """Port of a node on the join subnet (scenario 2: nodes reach default-VPC ClusterIPs)."""
    return f"node-{node}"


def probe_source_port(subnet: str) -> str:
    """Placeholder port reserving the health-check source address of a subnet."""
    return f"hc-{subnet}"


def service_lb(namespace: str, name: str, protocol: str, scope: str = "cluster",
               local_family: int | None = None) -> str:
    """Load_Balancer of a Service for one protocol; scope `cluster` (VPC) or `eip`. A
    node-local LB (a template LB of one address family, internalTrafficPolicy: Local) ends
    in `_local4` or `_local6`."""
    tail = f"_local{local_family}" if local_family else ""
    return f"Service_{namespace}/{name}_{protocol.upper()}_{scope}{tail}"


def template_var(service: str, scope: str, protocol: str, port: int, family: int) -> str:
    """The Chassis_Template_Var variable holding, on each chassis, the backends local to it
    of one port of a Service (`ns/name`) in one scope and address family. Template variable
    names are identifiers: a digest, with a readable head."""
    digest = hashlib.blake2b(f"{service}|{scope}|{protocol.upper()}|{port}|{family}".encode(),
                             digest_size=8).hexdigest()
    return f"ycloud_{protocol.lower()}_{port}_{digest}"


def health_check_key(lb_key: str, vip: str) -> str:
    return f"{lb_key}|{vip}"


# -- EIP pools, gateways and the service gateway ----------------------------------------------
def ext_switch(pool: str) -> str:
    """External Logical_Switch of an EIP pool, with a localnet port to the provider network."""
    return f"ext-{pool}"


def localnet_port(pool: str) -> str:
    return f"ln-{pool}"


def eip_gateway(pool: str) -> str:
    """Gateway router of an EIP pool (options:chassis, or an HA_Chassis_Group on its ports)."""
    return f"eipgw-{pool}"


def eip_ha_group(pool: str) -> str:
    return f"eipgw-{pool}"


def eip_gateway_uplink(pool: str) -> str:
    """Router port of eipgw-<pool> on the external switch."""
    return f"eipgw-{pool}-ext"


def ext_switch_gateway_port(pool: str) -> str:
    return f"ext-{pool}-eipgw"


def eip_transit(pool: str) -> str:
    """Transit Logical_Switch joining eipgw-<pool>, VPC routers and service gateways."""
    return f"eipts-{pool}"


def eip_gateway_transit_port(pool: str) -> str:
    return f"eipgw-{pool}-ts"


def transit_gateway_port(pool: str) -> str:
    return f"eipts-{pool}-eipgw"


def vpc_transit_port(vpc: str, pool: str) -> str:
    """Router port of a VPC router on the pool's transit switch (a distributed gateway port)."""
    return f"{vpc}-eipts-{pool}"


def transit_vpc_port(pool: str, vpc: str) -> str:
    return f"eipts-{pool}-{vpc}"


def service_gateway(pool: str) -> str:
    """Service-gateway router of a pool: DNAT+SNAT of an EIP to backends in several VPCs."""
    return f"svcgw-{pool}"


def svcgw_transit_port(pool: str) -> str:
    return f"svcgw-{pool}-ts"


def transit_svcgw_port(pool: str) -> str:
    return f"eipts-{pool}-svcgw"


def svcgw_link_switch(pool: str, vpc: str) -> str:
    """Link switch between svcgw-<pool> and one backend VPC's router."""
    return f"svcgw-{pool}-{vpc}"


def svcgw_link_port(pool: str, vpc: str) -> str:
    """Router port of svcgw-<pool> on the link switch to a VPC."""
    return f"svcgw-{pool}-to-{vpc}"


def vpc_svcgw_port(vpc: str, pool: str) -> str:
    """Router port of a VPC router on its link switch to svcgw-<pool>."""
    return f"{vpc}-to-svcgw-{pool}"


def link_switch_port(link_switch: str, router_port_name: str) -> str:
    """Switch port (type router) of a link/transit/external switch peering a router port."""
    return f"{link_switch}--{router_port_name}"


def gateway_chassis(lrp: str, chassis: str) -> str:
    return f"{lrp}-{chassis}"


# -- keys of unnamed rows -----------------------------------------------------------------------
def route_key(router_name: str, prefix: str, nexthop: str, policy: str = "dst-ip") -> str:
    return f"{router_name}|{policy}|{prefix}|{nexthop}"


def nat_key(router_name: str, nat_type: str, external_ip: str, logical_ip: str) -> str:
    return f"{router_name}|{nat_type}|{external_ip}|{logical_ip}"


def ha_chassis_key(group: str, chassis: str) -> str:
    return f"{group}|{chassis}"


def content_hash(payload: str) -> str:
    """Short, stable hash stored in external_ids[HASH]."""
    return hashlib.blake2b(payload.encode(), digest_size=10).hexdigest()


def owner_ids(kind: str, owner: str, vpc: str | None = None) -> dict[str, str]:
    """The external_ids every row carries: who manages it and which object owns it."""
    ids = {MANAGED_BY: MANAGED_BY_VALUE, KIND: kind, OWNER: owner}
    if vpc:
        ids[VPC] = vpc
    return ids


def owner_name(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def monitor_key(ip: str, port: int, protocol: str) -> str:
    """The key of one OVN health check (SB Service_Monitor) in the SB health monitor's reports."""
    return f"{ip}:{port}/{(protocol or 'tcp').lower()}"
