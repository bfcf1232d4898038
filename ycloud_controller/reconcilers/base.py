"""What every reconciler shares: its context, its outcome, and the Kubernetes writes it asks for.

A reconciler (a `Reconciler`: the envelope every kind shares, written once here) is called
with one key and answers with an `Outcome`: the NB rows it wants per
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
from typing import Any, ClassVar, Protocol

from topology.model import Owner, Row
from ycloud_controller import keys
from ycloud_controller.api.common import Invalid
from ycloud_controller.cluster_ips import ClusterIps
from ycloud_controller.config import Config
from ycloud_controller.internal_ipam import InternalIpam
from ycloud_controller.ipam import Ipam
from ycloud_controller.kube.resources import Resource
from ycloud_controller.network import NetworkModel
from ycloud_controller.precedence import Precedence


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
    condition: str = keys.READY  # the condition type written


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

    def add_index(self, name: str, fn: Callable[[dict[str, Any]], list[str]]) -> None: ...


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

    def store(self, kind: str) -> Lister:
        return self.stores[kind]


def _condition(resource: Resource) -> str:
    return keys.READY if resource.group == "iaas.yusur.io" else keys.NETWORK_READY


def ready_effects(resource: Resource, obj: dict[str, Any] | None, fields: dict[str, Any],
                  message: str = "reconciled") -> list[Effect]:
    if obj is None:
        return []
    return [StatusEffect(resource, obj, fields, True, keys.REASON_RECONCILED, message,
                         _condition(resource))]


def invalid_effects(resource: Resource, obj: dict[str, Any] | None, exc: Invalid,
                    fields: dict[str, Any] | None = None) -> list[Effect]:
    if obj is None:
        return []
    return warning_effects(resource, obj, fields or {}, exc.reason, exc.message,
                           _condition(resource))


def warning_effects(resource: Resource, obj: dict[str, Any], fields: dict[str, Any],
                    reason: str, message: str, condition: str = keys.READY) -> list[Effect]:
    """The condition False with `reason`, and a Warning Event when the condition says
    something new: an object whose condition says it already (a restart, a resync) gets no
    Event again, as it gets no status write."""
    effects: list[Effect] = [StatusEffect(resource, obj, fields, False, reason, message,
                                          condition)]
    if not condition_says(obj, condition, "False", reason, message):
        effects.append(EventEffect(obj, "Warning", reason, message))
    return effects


def condition_says(obj: dict[str, Any], type_: str, status: str, reason: str,
                   message: str) -> bool:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return (cond.get("status"), cond.get("reason"), cond.get("message")) == (
                status, reason, message)
    return False


def refused_effects(resource: Resource,
                    obj: dict[str, Any] | None) -> Callable[[str], list[Effect]]:
    def build(message: str) -> list[Effect]:
        return invalid_effects(resource, obj, Invalid(keys.REASON_NB_REFUSED,
                                                         f"OVN NB refused the change: {message}"))
    return build


class Reconciler:
    """The envelope of a reconciler: its kind (that of its `RESOURCE`), the owner of its rows,
    the object read once from the store, what a deleted object leaves (`gone`: its rows
    deleted), and a refused one (`Invalid` raised anywhere in `reconcile`: its rows left
    alone, the Ready condition False with the reason, a Warning event). A kind keeps only its
    own logic: `reconcile`, and where it differs, `absent` and `gone`. Instances hold no
    state of their own: `reconcile_x = X()` is called as `reconcile_x(ctx, key)`."""

    RESOURCE: ClassVar[Resource]
    HAS_ROWS: ClassVar[bool] = True  # False: a kind that writes only to Kubernetes

    @classmethod
    def owner(cls, key: str) -> Owner:
        return Owner(cls.RESOURCE.kind, key)

    def __call__(self, ctx: Context, key: str) -> Outcome:
        obj = ctx.store(self.RESOURCE.kind).get(key)
        try:
            if self.absent(ctx, key, obj):
                return self.gone(ctx, key, obj)
            return self.reconcile(ctx, key, obj)
        except Invalid as exc:
            return self.refuse(ctx, key, obj, exc)

    def absent(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> bool:
        """Whether the object asks for nothing (deleted, by default)."""
        return obj is None

    def gone(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> Outcome:
        """Release what the object held: by default, its rows."""
        return Outcome(rows=self._rows(key, []))

    def reconcile(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> Outcome:
        raise NotImplementedError

    def refuse(self, ctx: Context, key: str, obj: dict[str, Any] | None,
               exc: Invalid) -> Outcome:
        """Bad input: rows left as they are, reported on the object, not retried."""
        return Outcome(rows=self._rows(key, None), invalid=exc,
                       effects=invalid_effects(self.RESOURCE, obj, exc))

    def ready(self, key: str, obj: dict[str, Any] | None, rows: Sequence[Row],
              status: dict[str, Any], message: str = "reconciled") -> Outcome:
        """Rows to write, and Ready=True with `status` once NB took them (or a refusal)."""
        return Outcome(rows={self.owner(key): rows},
                       effects=ready_effects(self.RESOURCE, obj, status, message),
                       on_refused=refused_effects(self.RESOURCE, obj))

    def _rows(self, key: str, rows: Sequence[Row] | None) -> dict[Owner, Sequence[Row] | None]:
        return {self.owner(key): rows} if self.HAS_ROWS else {}


BACKEND_INDEX = "backend-address"  # EndpointSlices the controller derives, by listed address


def backend_address_index(obj: dict[str, Any]) -> list[str]:
    """Index function for EndpointSlices: the addresses listed by a slice the controller
    derives itself (a YusurService's, or manifests mode's emulated ones)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if labels.get(keys.SLICE_MANAGED_BY) not in (keys.SLICE_MANAGER, keys.SLICE_EMULATOR):
        return []
    return sorted({a for ep in obj.get("endpoints") or [] for a in ep.get("addresses") or []})


class PortReconciler(Reconciler):
    """A kind whose objects hold addresses of a subnet (pods, Vnics, nodes): released when the
    object is gone, but not while a slice the controller derives still lists one of them: a
    backend's port outlives its place in every VIP built from those slices, so no client is
    sent to an address that no longer answers (the slice's update reaches the Service's LB
    first, then the port goes)."""

    def ipam_key(self, key: str) -> str:
        return f"{self.RESOURCE.kind}/{key}"

    def gone(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> Outcome:
        alloc = ctx.ipam.get(self.ipam_key(key))
        slices = ctx.store("EndpointSlice")
        for ip in alloc.ips if alloc is not None else ():
            listed = slices.index_keys(BACKEND_INDEX, str(ip))
            if listed:
                return Outcome(rows=self._rows(key, None),
                               retry=f"{ip} is still a backend in EndpointSlice {listed[0]}")
        ctx.ipam.release(self.ipam_key(key))
        return super().gone(ctx, key, obj)


class ModelReconciler(Reconciler):
    """A kind the network model holds (Vpc, Subnet, EipPool): gone when the model has neither
    a view of it nor an error for it (the configuration's VPC and subnets exist without an
    object; an object being deleted but still in use stays in the model)."""

    MODEL: ClassVar[str]  # the NetworkModel field holding its views: vpcs, subnets, pools

    def absent(self, ctx: Context, key: str, obj: dict[str, Any] | None) -> bool:
        net = ctx.network()
        views = getattr(net, self.MODEL)
        return views.get(key) is None and net.error(self.RESOURCE.kind, key) is None
