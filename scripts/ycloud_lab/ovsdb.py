"""Reading NB/SB through ovn-nbctl/ovn-sbctl --format=json, as plain python rows."""

from __future__ import annotations

import json
from typing import Any

from ycloud_lab.proc import LabError, run


def plain(value: Any) -> Any:
    """OVSDB JSON notation -> python: map -> dict, set -> list, uuid -> str."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        kind, inner = value
        if kind == "map":
            return {k: plain(v) for k, v in inner}
        if kind == "set":
            return [plain(v) for v in inner]
        if kind in ("uuid", "named-uuid"):
            return inner
    return value


def as_list(value: Any) -> list[Any]:
    """A set column: ovn-nbctl prints a one-element set as a bare atom."""
    if isinstance(value, list):
        return value
    return [] if value in (None, "") else [value]


def rows(tool: str, remote: str, *args: str, what: str = "") -> list[dict[str, Any]]:
    """Rows printed by `<tool> --db=remote --format=json <args>` as {column: value}."""
    res = run([tool, f"--db={remote}", "--format=json", *args], what=what or tool, timeout=30)
    try:
        data = json.loads(res.stdout)
    except ValueError as exc:
        raise LabError(f"{what or tool}: unparsable output of {tool} {' '.join(args)}: {exc}"
                       ) from None
    return [{h: plain(v) for h, v in zip(data["headings"], row, strict=True)}
            for row in data["data"]]
