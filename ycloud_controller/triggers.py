"""Which queue keys an informer event touches (the dependency map of the controller).

Each function maps one event to the keys to reconcile; `Triggers` also keeps the network
model (VPCs, subnets, pools) current and, when it changes, enqueues what depends on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from ycloud_controller import keys
from ycloud_controller.api.common import key_of, meta
from ycloud_controller.config import Config
from ycloud_controller.ipam import Ipam
from ycloud_controller.keys import YSVC_LABEL
from ycloud_controller.kube.objects import VOLATILE, equal_except, only_status_changed
from ycloud_controller.network import NetworkModel, build_network
from ycloud_controller.precedence import Precedence
from ycloud_controller.reconcilers.base import PatchEffect
from ycloud_controller.reconcilers.eip_state import MULTI_VPC_INDEX, multi_vpc_index
from ycloud_controller.reconcilers.lb_config import local_policy_index
from ycloud_controller.reconcilers.selection import selecting

Key = tuple[str, str]
NETWORK_KEY: Key = ("Network", "")


class Triggers:
    def __init__(self, cfg: Config, stores: dict[str, Any], enqueue: Callable[[Key], None],
                 emulate: bool, pool_in_use: Callable[[str], bool] = lambda pool: False,
                 precedence: Precedence = Precedence(),
                 enqueue_many: Callable[[list[Key]], None] | None = None):
        self.cfg = cfg
        self.precedence = precedence
        self.pool_in_use = pool_in_use
        self.stores = stores
        self.enqueue = enqueue
        # a network change queues every object at once (WorkQueue.add_many)
        self.enqueue_many = enqueue_many or partial(_each, enqueue)
        self.emulate = emulate
        self._lock = threading.Lock()
        self.model: NetworkModel = build_network([], [], [], cfg)
        # pod key -> the annotations our own patch is writing (expect_patch)
        self._own_annotations: dict[str, dict[str, Any]] = {}

    def expect_patch(self, effect: PatchEffect) -> None:
        """Our patch of a pod's annotations (the addresses its reconcile chose) is about to
        be written: when it comes back as the only change, the pod's reconcile would give
        the same again (it was every pod once more after a cold sync's first pass)."""
        annotations = (effect.patch.get("metadata") or {}).get("annotations")
        if effect.resource.kind == "Pod" and isinstance(annotations, dict) and \
                set(effect.patch) == {"metadata"} and set(effect.patch["metadata"]) == {
                    "annotations"}:
            self._own_annotations[f"{effect.namespace}/{effect.name}"] = annotations

    # -- network model ------------------------------------------------------------------------
    def network(self) -> NetworkModel:
        return self.model

    def rebuild_network(self) -> None:
        with self._lock:
            old = self.model
            pools = self.stores["EipPool"].list()
            retired = frozenset(meta(p)["name"] for p in pools
                                if meta(p).get("deletionTimestamp")
                                and not self.pool_in_use(meta(p)["name"]))
            new = build_network(self.stores["Vpc"].list(), self.stores["Subnet"].list(),
                                pools, self.cfg, retired, self.precedence)
            self.model = new
        for name in set(old.vpcs) | set(new.vpcs) | {k for (kind, k) in new.errors
                                                      if kind == "Vpc"}:
            self.enqueue(("Vpc", name))
        for name in set(old.subnets) | set(new.subnets) | {k for (kind, k) in new.errors
                                                            if kind == "Subnet"}:
            self.enqueue(("Subnet", name))
        for name in set(old.pools) | set(new.pools) | {k for (kind, k) in new.errors
                                                        if kind == "EipPool"}:
            self.enqueue(("EipPool", name))
        changed_ns = {ns for ns in set(old.namespace_vpc) | set(new.namespace_vpc)
                      if old.namespace_vpc.get(ns) != new.namespace_vpc.get(ns)}
        changed_ns |= {ns for ns in set(old.namespace_subnet) | set(new.namespace_subnet)
                       if old.namespace_subnet.get(ns) != new.namespace_subnet.get(ns)}
        changed_subnets = {n for n in set(old.subnets) | set(new.subnets)
                           if old.subnets.get(n) != new.subnets.get(n)}
        affected: list[Key] = []
        for pod in self.stores["Pod"].list():
            ns = meta(pod).get("namespace")
            sub = (meta(pod).get("annotations") or {}).get(keys.ANN_SWITCH)
            if ns in changed_ns or sub in changed_subnets or sub is None:
                affected.append(("Pod", key_of(pod)))
        for vnic in self.stores["Vnic"].list():
            if (vnic.get("spec") or {}).get("subnet") in changed_subnets:
                affected.append(("Vnic", key_of(vnic)))
        services_affected = bool(changed_ns or changed_subnets or old.pools != new.pools)
        if services_affected:
            for svc in self.stores["Service"].list():
                affected.append(("Service", key_of(svc)))
                if self.emulate:  # endpoints are pods placed on subnets that exist
                    affected.append(("Endpoints", key_of(svc)))
            for ysvc in self.stores["YusurService"].list():
                affected.append(("YusurService", key_of(ysvc)))
        self.enqueue_many(affected)
        if not services_affected and old.vpcs != new.vpcs:
            # the VPCs attached to a pool: its multi-VPC EIPs' routes
            self._enqueue_multi_vpc()
        if changed_subnets & ({s.name for s in old.subnets_of(old.default_vpc)}
                              | {s.name for s in new.subnets_of(new.default_vpc)}):
            self._nodes_changed()  # their node ports are on the default VPC's subnets

    def allocations_changed(self, ipam: Ipam, eips: Ipam) -> None:
        """After a batch: subnets and EIP pools whose addresses were taken or given back
        since their status last counted them are reconciled again (a subnet or pool comes
        before the pods, Vnics and Services of its batch: see Ipam.take_changed)."""
        for name in ipam.take_changed():
            self.enqueue(("Subnet", name))
        for name in eips.take_changed():
            self.enqueue(("EipPool", name))

    # -- per-kind event handlers --------------------------------------------------------------
    def handler(self, kind: str) -> Callable[[str, dict, dict | None], None]:
        def on_event(event: str, obj: dict, old: dict | None) -> None:
            self.on_event(kind, event, obj, old)
        return on_event

    def on_event(self, kind: str, event: str, obj: dict, old: dict | None) -> None:
        key = key_of(obj)
        if kind in ("Vpc", "Subnet", "EipPool"):
            # rebuilt once per batch by the worker, however many objects changed. Our own
            # status coming back on a VPC or subnet changes nothing the model reads; on a
            # pool it may follow the release of its last EIP, which a terminating pool waits
            # for (its retirement is decided when the model is built)
            if kind == "EipPool" or not (event == "MODIFIED" and old is not None
                                         and only_status_changed(obj, old)):
                self.enqueue(NETWORK_KEY)
            return
        if kind == "Namespace":
            return
        if kind == "EndpointSlice":
            labels = meta(obj).get("labels") or {}
            svc = labels.get(keys.SERVICE_NAME_LABEL)
            if svc:
                svc_key = f"{meta(obj).get('namespace')}/{svc}"
                self.enqueue(("Service", svc_key))
                if local_policy_index(self.stores["Service"].get(svc_key) or {}):
                    self._nodes_changed()  # node-local backends are chassis variables
                if self.emulate and labels.get(keys.SLICE_MANAGED_BY) == keys.SLICE_EMULATOR:
                    # our derived slice changed: derived again, so that a write of an
                    # earlier reconcile landing after a newer one found the cache as it
                    # wanted it (and so wrote nothing) does not stay
                    self.enqueue(("Endpoints", svc_key))
            if event == "ADDED" and labels.get(YSVC_LABEL):
                # a YusurService's new slice: it may have been written before the YusurService
                # learnt that a Service of its name is not its own, and is then to be deleted
                self.enqueue(("YusurService", f"{meta(obj).get('namespace')}/"
                                              f"{labels[YSVC_LABEL]}"))
            return
        # our own status condition coming back on a ClusterIP Service or a Pod: nothing their
        # reconcile reads changed (of a pod's status it reads the phase only); a YusurService
        # still hears it. LoadBalancer Services are always reconciled again: EIP ownership
        # moves through their status (restore, refusals).
        # `same`: the two versions differ at most in status
        same = event == "MODIFIED" and old is not None and kind in ("Service", "Pod") and \
            only_status_changed(obj, old)
        status_only = same and _status_unread(kind, obj, old)
        own = self._own_annotations.pop(key, None) if kind == "Pod" else None
        if own is not None and event == "MODIFIED" and old is not None and \
                _only_annotated(obj, old, own):
            pass  # our own addresses coming back: services selecting the pod still hear it
        elif not status_only:
            self.enqueue((kind, key))
        if kind == "Service":
            # each check of both versions without a generator, and of the new one alone when
            # only the status changed: every Service status written back comes through here
            prev = None if same else old
            if local_policy_index(obj) or (prev is not None and local_policy_index(prev)):
                self._nodes_changed()
            if _type(obj) == "LoadBalancer" or (prev is not None and
                                                _type(prev) == "LoadBalancer"):
                for pool in self.model.pools:  # EIP usage, service gateway links
                    self.enqueue(("EipPool", pool))
                if any(meta(p).get("deletionTimestamp") for p in self.stores["EipPool"].list()):
                    self.enqueue(NETWORK_KEY)  # a pool waiting for its last service
            if not same and (multi_vpc_index(obj) or (old is not None and multi_vpc_index(old))):
                # the pool's links may change (a client VPC refused, or linked): every
                # multi-VPC service routes its EIP over every link (its status: no link)
                self._enqueue_multi_vpc()
            if self.emulate and not status_only:
                self.enqueue(("Endpoints", key))
            ysvc = (meta(obj).get("labels") or {}).get(YSVC_LABEL)
            if ysvc:
                self.enqueue(("YusurService", f"{meta(obj).get('namespace')}/{ysvc}"))
            elif self.stores["YusurService"].get(key) is not None:
                # not (or no longer) its Service: a YusurService of the name reports the
                # conflict, or takes the name once the Service is gone
                self.enqueue(("YusurService", key))
        if kind in ("Pod", "Vnic"):
            self._backend_changed(kind, event, obj, old)
        if kind == "NetworkProbe":
            owner = (obj.get("spec") or {}).get("service")
            if owner:
                self.enqueue(("YusurService", f"{meta(obj).get('namespace')}/{owner}"))

    def _enqueue_multi_vpc(self) -> None:
        """Every multi-VPC Service (the Service store's index of them)."""
        for key in self.stores["Service"].index_keys(MULTI_VPC_INDEX, MULTI_VPC_INDEX):
            self.enqueue(("Service", key))

    def _nodes_changed(self) -> None:
        """Every Node: their node ports, and their chassis' template variables (the
        node-local backends of the Services with a traffic policy Local)."""
        for node in self.stores["Node"].list():
            self.enqueue(("Node", key_of(node)))

    def _backend_changed(self, kind: str, event: str, obj: dict, old: dict | None) -> None:
        # a DELETED event carries the object as it last was (the informer passes it as both
        # versions): it is no backend any more, whatever the two versions say
        if event != "DELETED" and old is not None and _as_backend(obj) == _as_backend(old):
            return  # e.g. our own status condition on the pod: no service cares
        labels = [meta(o).get("labels") or {} for o in (obj, old) if o is not None]
        if kind == "Pod" and self.emulate:  # the Services of its namespace selecting it
            prefix = f"{meta(obj).get('namespace')}/"
            for key in selecting(self.stores["Service"], labels):
                if key.startswith(prefix):
                    self.enqueue(("Endpoints", key))
        for key in selecting(self.stores["YusurService"], labels):  # in any namespace
            self.enqueue(("YusurService", key))


def _each(enqueue: Callable[[Key], None], keys: list[Key]) -> None:
    for key in keys:
        enqueue(key)


def _status_unread(kind: str, obj: dict, old: dict) -> bool:
    """True when the kind's reconcile reads nothing of the status that may differ."""
    if kind == "Pod":
        return (obj.get("status") or {}).get("phase") == (old.get("status") or {}).get("phase")
    return (obj.get("spec") or {}).get("type") != "LoadBalancer"


def _type(service: dict) -> Any:
    return (service.get("spec") or {}).get("type")


def _as_backend(obj: dict) -> tuple:
    """What services read of a pod or Vnic (selection, addresses, placement, liveness)."""
    md = meta(obj)
    return (md.get("labels"), md.get("annotations"), md.get("deletionTimestamp"),
            obj.get("spec"), (obj.get("status") or {}).get("phase"))


_VOLATILE_OR_ANNOTATIONS = VOLATILE | {"annotations"}


_METADATA = frozenset({"metadata"})


def _only_annotated(obj: dict, old: dict, annotations: dict[str, Any]) -> bool:
    """True when `obj` is `old` with `annotations` merged in and nothing else changed
    (but the metadata every write changes)."""
    if not equal_except(obj, old, _METADATA):
        return False
    new_md, old_md = meta(obj), meta(old)
    if not equal_except(new_md, old_md, _VOLATILE_OR_ANNOTATIONS):
        return False
    merged = {**(old_md.get("annotations") or {}), **annotations}
    return (new_md.get("annotations") or {}) == {k: v for k, v in merged.items()
                                                 if v is not None}

