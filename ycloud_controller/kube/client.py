"""Build the official client's ApiClient from a kubeconfig or the in-cluster service
account, into a private Configuration (the library's global default is never touched).
"""

from __future__ import annotations

import os

import structlog
import urllib3
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration

log = structlog.get_logger(__name__)

POOL_SIZE = 32  # informers hold one connection per watch, workers need a few more


class KubeConfigError(RuntimeError):
    """Neither the kubeconfig nor the in-cluster configuration could be loaded."""


def _default_kubeconfig() -> str:
    """$KUBECONFIG (read now, not at import) or ~/.kube/config."""
    return os.path.expanduser(os.environ.get("KUBECONFIG") or "~/.kube/config")


def make_api_client(
    kubeconfig: str | None, in_cluster: bool, context: str | None = None
) -> ApiClient:
    """An ApiClient for the cluster.

    ``in_cluster`` uses only the pod's service account. Otherwise ``kubeconfig`` (or
    $KUBECONFIG, or ~/.kube/config) is loaded with ``context``; when no kubeconfig was
    named and the default one is unusable, the in-cluster configuration is tried too.
    Raises KubeConfigError saying what was tried and why it failed.
    """
    cfg = Configuration()
    errors: list[str] = []
    if not in_cluster:
        path = kubeconfig or _default_kubeconfig()
        try:
            kube_config.load_kube_config(
                config_file=path, context=context, client_configuration=cfg,
                persist_config=False,
            )
            log.info("kube_config_loaded", source="kubeconfig", path=path, context=context)
            return _finish(cfg)
        except (kube_config.ConfigException, OSError, ValueError, TypeError) as exc:
            errors.append(f"kubeconfig {path}: {exc}")
            if kubeconfig is not None:
                raise KubeConfigError(
                    f"cannot load kubeconfig {path!r}"
                    + (f" (context {context!r})" if context else "")
                    + f": {exc}"
                ) from exc
    try:
        kube_config.load_incluster_config(client_configuration=cfg)
        log.info("kube_config_loaded", source="in-cluster")
        return _finish(cfg)
    except kube_config.ConfigException as exc:
        errors.append(f"in-cluster: {exc}")
        raise KubeConfigError(
            "no Kubernetes configuration: " + "; ".join(errors)
            + " (pass --kubeconfig PATH, set KUBECONFIG, or run in a pod with a service "
            "account; use manifests mode to run without a cluster)"
        ) from exc


def configure_transport(cfg: Configuration) -> Configuration:
    """Connection pool size, and urllib3 retries limited to failed connects.

    urllib3 would otherwise retry 429/503 answers carrying Retry-After and read errors
    on its own, even for PUT/DELETE; ApiBackend owns that policy (bounded, jittered,
    reads only), so the transport retries only connections that never sent a byte.
    """
    cfg.connection_pool_maxsize = max(cfg.connection_pool_maxsize or 0, POOL_SIZE)
    cfg.retries = urllib3.Retry(
        total=2, connect=2, read=0, status=0, other=0, redirect=0,
        backoff_factor=0.1, respect_retry_after_header=False, raise_on_status=False,
    )
    return cfg


def _finish(cfg: Configuration) -> ApiClient:
    return ApiClient(configuration=configure_transport(cfg))
