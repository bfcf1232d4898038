"""Label selection through the store indexes (ycloud_controller.reconcilers.selection)."""

from __future__ import annotations

from ycloud_controller.kube.informer import Store
from ycloud_controller.reconcilers.selection import LABEL_INDEX, label_index, selected


def _pods() -> Store:
    store = Store()
    store.add_index(LABEL_INDEX, label_index)
    for ns, name, labels in (("a", "web-1", {"app": "web", "tier": "front"}),
                             ("a", "web-2", {"app": "web"}),
                             ("b", "web-3", {"app": "web", "tier": "front"}),
                             ("a", "db-1", {"app": "db"})):
        store.upsert(f"{ns}/{name}", {"metadata": {"name": name, "namespace": ns,
                                                   "labels": labels}})
    return store


def names(objs: list[dict]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def test_selected_matches_the_whole_selector_in_key_order() -> None:
    pods = _pods()
    assert names(selected(pods, {"app": "web", "tier": "front"})) == ["web-1", "web-3"]
    assert names(selected(pods, {"tier": "front", "app": "web"}, "a")) == ["web-1"]
    assert names(selected(pods, {"app": "cache"})) == []


def test_an_empty_selector_matches_every_object_of_the_namespace() -> None:
    assert names(selected(_pods(), {}, "a")) == ["db-1", "web-1", "web-2"]
    assert len(selected(_pods(), {})) == 4
