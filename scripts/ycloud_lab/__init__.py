"""ycloud lab: a multi-chassis OVN lab in network namespaces (userspace OVS, no containers).

`Lab` is the Python API (see lab.py); `python -m ycloud_lab` is the CLI behind scripts/lab.
Names are resolved lazily so that `python -m ycloud_lab.traffic` needs only the standard
library inside a namespace.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HeldConnection", "Lab", "LabError", "Reply", "Server"]


def __getattr__(name: str) -> Any:
    if name in ("Lab", "Reply", "Server", "HeldConnection"):
        from ycloud_lab import lab

        return getattr(lab, name)
    if name == "LabError":
        from ycloud_lab.proc import LabError

        return LabError
    raise AttributeError(name)
