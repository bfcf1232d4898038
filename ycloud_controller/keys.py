"""Every Kubernetes-side key the controller reads or writes, as topology/naming.py holds every
NB name: annotations, labels, finalizers, the LoadBalancer class it serves, condition types
and the reasons it writes for its own outcomes. Nothing else spells them."""

from __future__ import annotations

# -- pod annotations: the CNI contract (the controller writes them; a user may ask for an
# address, a MAC or a subnet with them) --------------------------------------------------------
ANN_SUBNET = "ycloud.io/subnet"
ANN_IP = "ycloud.io/ip_address"
ANN_MAC = "ycloud.io/mac_address"
ANN_SWITCH = "ycloud.io/logical_switch"
ANN_GATEWAY = "ycloud.io/gateway"
ANN_CIDR = "ycloud.io/cidr"
ANN_MTU = "ycloud.io/mtu"  # the interface MTU (pods and nodes)
# pods only, not part of the CNI contract: the addresses of ANN_IP the controller chose itself
# (comma list). An address of ANN_IP it does not list is the user's request: never replaced,
# refused when it does not fit the pod's subnet; a listed one is re-allocated when it no longer fits
ANN_IP_ALLOCATED = "ycloud.io/ip_allocated"
ANN_ROUTES = "ycloud.io/routes"  # nodes only: CIDRs the node routes through its node port
# the same contract on Node objects: ANN_IP, ANN_MAC, ANN_SWITCH, ANN_GATEWAY, ANN_CIDR, ANN_MTU
# and ANN_ROUTES describe the node's port on the join subnet (scenario 2), which the node agent
# creates; the node agent reads Kubernetes only, never NB

# -- Service annotations ----------------------------------------------------------------------
ANN_EIP_POOL = "ycloud.io/eip-pool"  # the pool a LoadBalancer Service's EIP comes from
ANN_EIP = "ycloud.io/eip"  # the EIP it asks for (else spec.loadBalancerIP)
ANN_HEALTH_CHECK = "ycloud.io/health-check"  # JSON HealthCheck, set by the YusurService owner
ANN_VPC = "ycloud.io/vpc"  # VPC(s) of a Service owned by a YusurService (comma list)

# -- labels -------------------------------------------------------------------------------------
YSVC_LABEL = "ycloud.io/yusurservice"  # on what a YusurService owns: its name
SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # an EndpointSlice's Service
SLICE_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGER = "ycloud-controller"  # value: the slices of a YusurService
SLICE_EMULATOR = "ycloud-controller/manifests"  # value: the slices manifests mode derives

# -- finalizers -----------------------------------------------------------------------------------
EIPPOOL_FINALIZER = "ycloud.io/eippool-protection"

# -- spec.loadBalancerClass of the LoadBalancer Services the controller serves (or none) ------
LB_CLASS = "ycloud.io/eip"

# -- conditions ---------------------------------------------------------------------------------
READY = "Ready"  # on our CRDs (and Kubernetes' own Pod condition)
NETWORK_READY = "ycloud.io/NetworkReady"  # on core objects whose Ready belongs to someone else
REASON_RECONCILED = "Reconciled"
REASON_NB_REFUSED = "NBRefused"
