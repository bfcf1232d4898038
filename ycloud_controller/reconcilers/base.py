"""What every reconciler shares: its context, its outcome, and the Kubernetes writes it asks for.

A reconciler is called with one key and answers with an `Outcome`: the NB rows it wants per
owner (None: leave that owner's rows as they are, e.g. while its object is invalid), and the
Kubernetes writes (`Effect`s: status, events, annotation patches, owned objects) the controller
performs after NB accepted the rows. Reconcilers never write NB or Kubernetes themselves, so a
reconcile is fast, in-memory and easy to test; `render` reuses them without writing anything.

Threading: reconcilers run on the controller's single worker thread; the stores they read are
updated by informer threads, so they read each object once and work on that snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from topology.model import Owner, Row
from ycloud_controller.api.common import Invalid
from ycloud_controller.cluster_ips import ClusterIps
from ycloud_controller.config import Config
from ycloud_controller.internal_ipam import InternalIpam
from ycloud_controller.ipam import Ipam
from ycloud_controller.kube.resources import Resource
from ycloud_controller.network import NetworkModel
from ycloud_controller.precedence import Precedence

READY = "Ready"
# on core objects (Pods, Services) whose Ready belongs to someone else
NETWORK_READY = "ycloud.io/NetworkReady"


class NotReady(Exception):
    """Something this object needs is not there yet: retry the key with backoff."""


@dataclass(frozen=True)
class StatusEffect:
    """Merge `fields` into .status and set the Ready condition (status subresource)."""

    resource: Resource
    obj: dict[str, Any]
    fields: dict[str, Any]
    ready: bool | None = None  # None: leave the condition alone
    reason: str = ""
    message: str = ""
    condition: str = READY  # the condition type written


@dataclass(frozen=True)
class EventEffect:
    obj: dict[str, Any]
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class PatchEffect:
    """A merge patch on an object (annotations, spec) outside the status subresource."""

    resource: Resource
    name: str
    namespace: str | None
    patch: dict[str, Any]


@dataclass(frozen=True)
class UpsertEffect:
    """Create or update an object the controller owns (Service, EndpointSlice, probe)."""

    resource: Resource
    obj: dict[str, Any]


@dataclass(frozen=True)
class DeleteEffect:
    """Delete an object the controller owns; with `uid`, only that object (the one the
    reconcile saw), never another made since under the same name."""

    resource: Resource
    name: str
    namespace: str | None
    uid: str | None = None


Effect = StatusEffect | EventEffect | PatchEffect | UpsertEffect | DeleteEffect


@dataclass
class Outcome:
    rows: dict[Owner, Sequence[Row] | None] = field(default_factory=dict)
    effects: list[Effect] = field(default_factory=list)
    # effects for when NB refuses the rows: built by the controller from `on_refused`
    on_refused: Callable[[str], list[Effect]] | None = None
    retry: str | None = None  # transient: retry the key with backoff, saying why
    invalid: Invalid | None = None  # bad input: reported, not retried until the object changes


class Lister(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...

    def list(self) -> list[dict[str, Any]]: ...

    def by_index(self, name: str, value: str) -> list[dict[str, Any]]: ...


@dataclass
class Context:
    """What reconcilers read: configuration, informer stores, the network model, IPAM."""

    config: Config
    stores: dict[str, Lister]  # by kind
    network: Callable[[], NetworkModel]
    ipam: Ipam
    emulate_cluster: bool = False  # manifests mode: derive EndpointSlices, allocate ClusterIPs
    eips: Ipam = field(default_factory=Ipam)  # one "subnet" per EIP pool
    internal: InternalIpam = field(  # transit and link addresses
        default_factory=lambda: InternalIpam("100.88.0.0/16"))
    active_chassis: Callable[[str], str | None] = lambda lrp: None  # from the SB
    precedence: Precedence = Precedence()  # who keeps a contested resource
    cluster_ips: ClusterIps | None = None  # manifests mode: the emulated ClusterIP allocator
    # (pool, vpc) -> (reason, message): VPCs a pool's service gateway refused to link (their
    # subnets overlap those of a VPC linked for an older service); set by the EipPool
    # reconciler, read by the services that want the link
    refused_links: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    def store(self, kind: str) -> Lister:
        return self.stores[kind]


def _condition(resource: Resource) -> str:
    return READY if resource.group == "iaas.yusur.io" else NETWORK_READY


def ready_effects(resource: Resource, obj: dict[str, Any] | None, fields: dict[str, Any],
                  message: str = "reconciled") -> list[Effect]:
    if obj is None:
        return []
    return [StatusEffect(resource, obj, fields, True, "Reconciled", message,
                         _condition(resource))]


def invalid_effects(resource: Resource, obj: dict[str, Any] | None, exc: Invalid,
                    fields: dict[str, Any] | None = None) -> list[Effect]:
    if obj is None:
        return []
    return [StatusEffect(resource, obj, fields or {}, False, exc.reason, exc.message,
                         _condition(resource)),
            EventEffect(obj, "Warning", exc.reason, exc.message)]


def refused_effects(resource: Resource,
                    obj: dict[str, Any] | None) -> Callable[[str], list[Effect]]:
    def build(message: str) -> list[Effect]:
        return invalid_effects(resource, obj, Invalid("NBRefused", f"OVN NB refused the "
                                                                   f"change: {message}"))
    return build
