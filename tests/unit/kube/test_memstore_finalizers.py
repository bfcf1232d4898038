"""Graceful deletion: objects with finalizers stay, marked, until the finalizers are gone."""

from __future__ import annotations

import pytest

from ycloud_controller.kube import resources as res
from ycloud_controller.kube.errors import NotFound
from ycloud_controller.memkube.store import MemoryStore


def test_delete_with_finalizer_marks_then_removing_it_deletes() -> None:
    store = MemoryStore()
    store.create(res.EIPPOOLS, {"metadata": {"name": "p", "finalizers": ["x/y"]},
                                "spec": {"cidr": "1.0.0.0/24"}})
    sub = store.watch(res.EIPPOOLS, None, store.resource_version, None, None)
    marked = store.delete(res.EIPPOOLS, "p")
    assert marked["metadata"]["deletionTimestamp"]
    assert store.get(res.EIPPOOLS, "p")["metadata"]["deletionTimestamp"]
    assert store.delete(res.EIPPOOLS, "p")["metadata"]["deletionTimestamp"] == \
        marked["metadata"]["deletionTimestamp"]  # a second delete changes nothing
    store.patch(res.EIPPOOLS, "p", None, {"metadata": {"deletionTimestamp": None}})
    assert store.get(res.EIPPOOLS, "p")["metadata"]["deletionTimestamp"]  # not clearable
    store.patch(res.EIPPOOLS, "p", None, {"metadata": {"finalizers": []}})
    with pytest.raises(NotFound):
        store.get(res.EIPPOOLS, "p")
    types = [sub.next_event(1)["type"] for _ in range(2)]
    assert types == ["MODIFIED", "DELETED"]
    sub.stop()
