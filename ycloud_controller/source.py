"""Where Kubernetes objects come from: a cluster (kubeconfig / in-cluster) or a directory."""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass

import structlog

from ycloud_controller.kube.backend import Backend
from ycloud_controller.memkube.backend import MemoryBackend
from ycloud_controller.memkube.manifests import ManifestSource
from ycloud_controller.memkube.store import MemoryStore

log = structlog.get_logger(__name__)


@dataclass
class Source:
    backend: Backend
    emulate: bool  # no cluster behind it: the controller derives EndpointSlices and ClusterIPs
    manifests: ManifestSource | None = None
    api_client: object | None = None

    def start(self, stop: threading.Event) -> None:
        """Re-read the manifests directory on change (manifests mode only)."""
        if self.manifests is not None:
            threading.Thread(target=self.manifests.run, args=(stop,), name="manifests",
                             daemon=True).start()

    def close(self) -> None:
        close = getattr(self.api_client, "close", None)
        if close is not None:
            close()


def manifests_source(directory: str) -> Source:
    store = MemoryStore()
    manifests = ManifestSource(directory, store)
    count = manifests.load()
    log.info("manifests loaded", directory=directory, objects=count)
    return Source(MemoryBackend(store), emulate=True, manifests=manifests)


def open_source(args: argparse.Namespace) -> Source:
    if args.manifests:
        return manifests_source(args.manifests)
    # imported here: the kubernetes package costs ~33 MB RSS that manifests mode never uses
    from ycloud_controller.kube.apibackend import ApiBackend
    from ycloud_controller.kube.client import make_api_client

    client = make_api_client(args.kubeconfig, args.in_cluster, args.context)
    return Source(ApiBackend(client), emulate=False, api_client=client)
