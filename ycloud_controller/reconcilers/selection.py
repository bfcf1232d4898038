"""Label selection through the informer stores' indexes, both ways: the objects a selector
matches (a YusurService's backends, an emulated EndpointSlice's pods) and the objects whose
selector matches some labels (the Services and YusurServices a pod event concerns). Each
starts from one `key=value` pair in an index, never from a scan of every object."""

from __future__ import annotations

from typing import Any

from ycloud_controller.api.common import key_of, meta, selector_matches

# Pods and Vnics by each of their labels ("key=value")
LABEL_INDEX = "label"
# Services and YusurServices by the first pair of their selector ("key=value")
SELECTOR_INDEX = "selector"


def label_index(obj: dict[str, Any]) -> list[str]:
    return [f"{k}={v}" for k, v in (meta(obj).get("labels") or {}).items()]


def selector_index(obj: dict[str, Any]) -> list[str]:
    selector = (obj.get("spec") or {}).get("selector")
    if not isinstance(selector, dict) or not selector:
        return []  # no selector selects nothing; a malformed one is the reconcile's to report
    k, v = next(iter(selector.items()))
    return [f"{k}={v}"]


def selected(store: Any, selector: Any, namespace: str | None = None) -> list[dict[str, Any]]:
    """The objects of `store` (indexed by LABEL_INDEX) whose labels the equality-based
    `selector` matches, in key order; in `namespace` only when given. An empty selector
    matches every object."""
    items = list(selector.items() if isinstance(selector, dict) else selector)
    if items:
        k, v = items[0]
        candidates = store.by_index(LABEL_INDEX, f"{k}={v}")
    else:
        candidates = sorted(store.list(), key=key_of)
    return [obj for obj in candidates
            if (namespace is None or meta(obj).get("namespace") == namespace)
            and selector_matches(selector, meta(obj).get("labels"))]


def selecting(store: Any, labels: list[dict[str, Any]]) -> list[str]:
    """The keys of the objects of `store` (indexed by SELECTOR_INDEX) whose selector
    matches one of `labels`, in key order."""
    pairs = {f"{k}={v}" for lb in labels for k, v in lb.items()}
    found = []
    for key in sorted({k for pair in pairs for k in store.index_keys(SELECTOR_INDEX, pair)}):
        selector = ((store.get(key) or {}).get("spec") or {}).get("selector")
        if selector and any(selector_matches(selector, lb) for lb in labels):
            found.append(key)
    return found
