"""Objects for the tests of ycloud_controller.api, and the reason a parser refuses one with."""

from __future__ import annotations

from typing import Any

import pytest

from ycloud_controller.api.common import Invalid

DEFAULT_VPC = "ovn-cluster"


def obj(name: str, spec: Any, namespace: str | None = None, **md: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, **md}
    if namespace:
        metadata["namespace"] = namespace
    return {"metadata": metadata, "spec": spec}


def reason(fn, *args) -> str:
    with pytest.raises(Invalid) as info:
        fn(*args)
    assert info.value.message == str(info.value)
    return info.value.reason
