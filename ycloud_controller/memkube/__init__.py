"""The in-memory Kubernetes API of manifests mode and tests: store, watch, owner GC,
history, label selectors, manifests."""
