"""An in-memory cluster for reconciler unit tests: informer stores, config, network, IPAM."""

from __future__ import annotations

from typing import Any

from ycloud_controller.api.common import key_of, meta
from ycloud_controller.config import Config
from ycloud_controller.ipam import Ipam
from ycloud_controller.kube.informer import Store
from ycloud_controller.network import NetworkModel, build_network
from ycloud_controller.reconcilers.base import Context
from ycloud_controller.reconcilers.registry import add_indexes
from ycloud_controller.reconcilers.subnet import reconcile_subnet

KINDS = ("Vpc", "Subnet", "EipPool", "Pod", "Node", "Service", "EndpointSlice", "Vnic",
         "YusurService", "NetworkProbe", "Namespace")


class Cluster:
    """Stores indexed like the controller's, and a Context reading them."""

    def __init__(self, cfg: Config | None = None, emulate: bool = False):
        self.cfg = cfg or Config()
        self.stores = {kind: Store() for kind in KINDS}
        add_indexes(self.stores)
        self.ipam = Ipam()
        self.ctx = Context(self.cfg, self.stores, self.network, self.ipam, emulate)  # type: ignore[arg-type]

    def network(self) -> NetworkModel:
        return build_network(self.stores["Vpc"].list(), self.stores["Subnet"].list(),
                             self.stores["EipPool"].list(), self.cfg)

    def add(self, *objs: dict[str, Any]) -> Cluster:
        for obj in objs:
            self.stores[obj["kind"]].upsert(key_of(obj), obj)
        return self

    def remove(self, kind: str, key: str) -> None:
        self.stores[kind].remove(key)

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        return self.stores[kind].get(key)

    def sync_subnets(self) -> Cluster:
        """Register every valid subnet in IPAM, as the subnet reconciler does."""
        for name in self.network().subnets:
            reconcile_subnet(self.ctx, name)
        return self

    def annotate(self, kind: str, key: str, annotations: dict[str, str]) -> None:
        """Apply an annotation patch to the stored object (what the API server would do)."""
        obj = self.stores[kind].get(key)
        assert obj is not None
        new = {**obj, "metadata": {**obj["metadata"],
                                   "annotations": {**(meta(obj).get("annotations") or {}),
                                                   **annotations}}}
        self.stores[kind].upsert(key, new)
