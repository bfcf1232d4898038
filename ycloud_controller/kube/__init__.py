"""Kubernetes plumbing of ycloud-controller.

Every Kubernetes call goes through a :class:`~ycloud_controller.kube.backend.Backend`:
``ApiBackend`` (a real API server, raw JSON over the official client's ApiClient built
by :func:`~ycloud_controller.kube.client.make_api_client`) or ``MemoryBackend`` (a
:class:`~ycloud_controller.memkube.store.MemoryStore`, filled from YAML files by
:class:`~ycloud_controller.memkube.manifests.ManifestSource` in manifests mode).

Modules:
    resources   Resource descriptors (paths, keys) and the constants for every kind used
    errors      ApiError (code, reason, message) and its subclasses, Expired (410)
    backend     the Backend protocol, MemoryBackend, ApiBackend (apibackend.py)
    memstore    MemoryStore: in-memory API server semantics (memwatch, memgc, registry)
    informer    Informer (list+watch, relist on 410) and its indexed Store
    queue       WorkQueue: coalescing keys, one worker per key, per-key backoff
    leader      LeaderElector on coordination.k8s.io/v1 Leases
    events      EventRecorder: aggregated, rate-limited core/v1 Events
    status      StatusWriter and Condition for .status through the status subresource
    manifests   ManifestSource: a directory of YAML applied to a MemoryStore
    selectors, patch, objects, backoff: helpers shared by the above
"""
