"""Kubernetes resource descriptors used by every Kubernetes call in the product.

A :class:`Resource` names one REST collection (group, version, plural) and knows how to
build its URL paths and the cache key of its objects. The constants below are the
resources the controller reads and writes; the iaas.yusur.io/v1 CRDs are listed too so
the in-memory store and the fake API server know them without a CRD object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

CRD_GROUP = "iaas.yusur.io"
CRD_VERSION = "v1"


@dataclass(frozen=True)
class Resource:
    """One Kubernetes REST resource (a collection of one kind in one group/version).

    ``has_status`` says whether the resource has a ``/status`` subresource: writes to
    the main resource then ignore ``.status`` and writes to ``/status`` change only it.
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    has_status: bool = False
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, ``group/version`` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def base_path(self) -> str:
        """``/api/v1`` for the core group, ``/apis/<group>/<version>`` otherwise."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_resource(self) -> str:
        """``plural.group`` (``pods`` for core), as kubectl and error messages spell it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(
        self,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        """URL path of the collection, or of one object and optionally its subresource.

        A namespaced resource without a namespace gives the all-namespaces collection.
        """
        parts = [self.base_path]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
            if subresource:
                parts.append(subresource)
        elif subresource:
            raise ValueError("a subresource needs an object name")
        return "/".join(parts)

    def key_of(self, obj: dict[str, Any]) -> str:
        """Cache key of an object: ``namespace/name`` or ``name``."""
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        if self.namespaced:
            return f"{meta.get('namespace', '')}/{name}"
        return name


def split_key(key: str) -> tuple[str | None, str]:
    """Inverse of :meth:`Resource.key_of`: ``(namespace or None, name)``."""
    if "/" in key:
        namespace, name = key.split("/", 1)
        return namespace, name
    return None, key


NAMESPACES = Resource("", "v1", "namespaces", "Namespace", False, True, ("ns",))
NODES = Resource("", "v1", "nodes", "Node", False, True, ("no",))
PODS = Resource("", "v1", "pods", "Pod", True, True, ("po",))
SERVICES = Resource("", "v1", "services", "Service", True, True, ("svc",))
EVENTS = Resource("", "v1", "events", "Event", True, False, ("ev",))
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", True, False, ("cm",))
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", True)
CUSTOMRESOURCEDEFINITIONS = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
    False, True, ("crd", "crds"),
)

VPCS = Resource(CRD_GROUP, CRD_VERSION, "vpcs", "Vpc", False, True)
SUBNETS = Resource(CRD_GROUP, CRD_VERSION, "subnets", "Subnet", False, True)
EIPPOOLS = Resource(CRD_GROUP, CRD_VERSION, "eippools", "EipPool", False, True)
VNICS = Resource(CRD_GROUP, CRD_VERSION, "vnics", "Vnic", True, True)
YUSURSERVICES = Resource(
    CRD_GROUP, CRD_VERSION, "yusurservices", "YusurService", True, True, ("ysvc",)
)
NETWORKPROBES = Resource(CRD_GROUP, CRD_VERSION, "networkprobes", "NetworkProbe", True, True)

BUILTINS: tuple[Resource, ...] = (
    NAMESPACES, NODES, PODS, SERVICES, EVENTS, CONFIGMAPS, ENDPOINTSLICES, LEASES,
    CUSTOMRESOURCEDEFINITIONS,
)
CRDS: tuple[Resource, ...] = (VPCS, SUBNETS, EIPPOOLS, VNICS, YUSURSERVICES, NETWORKPROBES)
ALL: tuple[Resource, ...] = BUILTINS + CRDS


def by_kind(kind: str, api_version: str | None = None) -> Resource:
    """The resource of ``kind`` in :data:`ALL` (optionally of one apiVersion).

    Raises KeyError when unknown.
    """
    for res in ALL:
        if res.kind == kind and (api_version is None or res.api_version == api_version):
            return res
    raise KeyError(f"unknown kind {kind!r}" + (f" in {api_version}" if api_version else ""))


# (group, plural) of the resources whose /status writes may also change labels and
# annotations: the API server's status strategy of Pods resets only spec, deletionTimestamp
# and ownerReferences (a custom resource's /status keeps nothing but .status)
STATUS_WRITES_METADATA = frozenset({("", "pods")})


def status_takes_metadata(res: Resource) -> bool:
    """Whether a write of `res`'s status subresource also takes labels and annotations."""
    return (res.group, res.plural) in STATUS_WRITES_METADATA
