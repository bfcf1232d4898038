"""Patch algorithms the API server supports: JSON merge patch (RFC 7386), a strategic
merge patch subset, and JSON patch (RFC 6902); plus merge-patch generation for
``kubectl apply``-like three-way updates.

All functions are pure: they never modify their arguments.
"""

from __future__ import annotations

import copy
from typing import Any

from ycloud_controller.kube.errors import ApiError

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"


def merge_patch(target: Any, patch: Any, share: bool = False) -> Any:
    """RFC 7386: dicts merge recursively, ``None`` deletes, anything else replaces. Never
    modifies ``target``; shares what the patch leaves untouched with it. The patch's own
    lists and scalars are deep-copied unless ``share`` (a body the caller owns)."""
    if not isinstance(patch, dict):
        return patch if share else copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value, share)
    return result


def _merge_named_list(target: list[Any], patch: list[Any]) -> list[Any] | None:
    """Merge lists of maps keyed by ``name``; None when the lists are not such lists."""
    if not patch or not all(isinstance(i, dict) and "name" in i for i in patch + target):
        return None
    result = [copy.deepcopy(i) for i in target]
    index = {item["name"]: pos for pos, item in enumerate(result)}
    for item in patch:
        if item.get("$patch") == "delete":
            if item["name"] in index:
                result[index[item["name"]]] = None
            continue
        if item["name"] in index:
            pos = index[item["name"]]
            result[pos] = strategic_merge_patch(result[pos], item)
        else:
            index[item["name"]] = len(result)
            result.append(copy.deepcopy(item))
    return [i for i in result if i is not None]


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Merge patch, except that lists of maps that all carry ``name`` merge by name
    (like containers, ports and conditions-by-type do on the real server) and
    ``$patch: delete`` list items remove their entry."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            merged = _merge_named_list(result[key], value)
            result[key] = merged if merged is not None else copy.deepcopy(value)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"JSON pointer {path!r} must start with '/'")
    return [_unescape(t) for t in path[1:].split("/")]


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    current = doc
    for token in tokens[:-1]:
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list) and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            raise ApiError(422, "Invalid", f"JSON patch: path {path!r} does not exist")
    return current


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise ApiError(422, "Invalid", f"JSON patch: path {path!r} does not exist")


def _add(doc: Any, path: str, value: Any, replace: bool) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise ApiError(422, "Invalid", f"JSON patch: path {path!r} does not exist")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise ApiError(422, "Invalid", f"JSON patch: bad array index in {path!r}")
    else:
        raise ApiError(422, "Invalid", f"JSON patch: path {path!r} has no container")
    return doc


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise ApiError(422, "Invalid", "JSON patch: cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise ApiError(422, "Invalid", f"JSON patch: path {path!r} does not exist")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 (add, remove, replace, move, copy, test); raises ApiError 422."""
    if not isinstance(operations, list):
        raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError(422, "Invalid", f"JSON patch: malformed operation {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")), replace=False)
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op.get("value")), replace=True)
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind in ("move", "copy"):
            value = copy.deepcopy(_get(doc, op.get("from", "")))
            if kind == "move":
                doc = _remove(doc, op["from"])
            doc = _add(doc, path, value, replace=False)
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise ApiError(422, "Invalid", f"JSON patch: test failed at {path!r}")
        else:
            raise ApiError(422, "Invalid", f"JSON patch: unknown operation {kind!r}")
    return doc


def apply_patch(target: Any, patch: Any, content_type: str, share: bool = False) -> Any:
    """Apply ``patch`` with the algorithm of a PATCH ``content_type``; ``share``: a merge
    patch's values are used as they are (a body the caller owns, see :func:`merge_patch`)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == JSON_PATCH:
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
    if kind == STRATEGIC:
        return strategic_merge_patch(target, patch)
    if kind in (MERGE, APPLY, "application/json"):
        return merge_patch(target, patch, share)
    raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {content_type!r}")


def create_merge_patch(original: Any, modified: Any, share: bool = False) -> dict[str, Any]:
    """The RFC 7386 patch turning ``original`` into ``modified`` (both dicts). Values of
    ``modified`` are deep-copied into it unless ``share`` (the patch is only read)."""
    patch: dict[str, Any] = {}
    original = original if isinstance(original, dict) else {}
    for key in original:
        if key not in modified:
            patch[key] = None
    for key, value in modified.items():
        old = original.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            sub = create_merge_patch(old, value, share)
            if sub:
                patch[key] = sub
        elif key not in original or old != value:
            patch[key] = value if share else copy.deepcopy(value)
    return patch
