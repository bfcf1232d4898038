"""Kubernetes plumbing of ycloud-controller.

Every Kubernetes call goes through a :class:`~ycloud_controller.kube.backend.Backend`:
``ApiBackend`` (a real API server, raw JSON over the official client's ApiClient built
by :func:`~ycloud_controller.kube.client.make_api_client`) or ``MemoryBackend`` (a
:class:`~ycloud_controller.memkube.store.MemoryStore`, filled from YAML files by
:class:`~ycloud_controller.memkube.manifests.ManifestSource` in manifests mode).

Modules:
    resources   Resource descriptors (paths, keys) and the constants for every kind used
    errors      ApiError (code, reason, message) and its subclasses, Expired (410)
    backend     the Backend protocol (ApiBackend in apibackend.py, MemoryBackend in memkube)
    informer    Informer (list+watch, relist on 410) and its indexed Store
    workqueue   WorkQueue: coalescing keys, one worker per key, per-key backoff
    leader      LeaderElector on coordination.k8s.io/v1 Leases
    events      EventRecorder: aggregated, rate-limited core/v1 Events
    status      StatusWriter and Condition for .status through the status subresource
    patch, objects, canon, backoff, registry: helpers shared by the above and memkube

The in-memory API server of manifests mode and tests is ycloud_controller.memkube.
"""
