"""Label and field selectors with the API server's string syntax.

Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x,y)``, ``a``
(exists) and ``!a`` (does not exist), comma separated (AND). Field selectors: ``path=v``,
``path==v``, ``path!=v`` where path is a dotted field path such as ``metadata.name``
or ``spec.nodeName``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ycloud_controller.kube.errors import ApiError

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_KEY_RE = re.compile(rf"^{_KEY}$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")
_SET_RE = re.compile(rf"^({_KEY})\s+(in|notin)\s*\((.*)\)$")
_EQ_RE = re.compile(r"^([^=!\s]+)\s*(==|!=|=)\s*(.*)$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        # "!=" and "notin" match objects without the label, as the API server does
        return self.key not in labels or labels[self.key] not in self.values


def _split_terms(text: str) -> list[str]:
    terms: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    terms.append("".join(current).strip())
    return [t for t in terms if t]


def _bad(selector: str, why: str) -> ApiError:
    return ApiError(400, "BadRequest", f"unable to parse requirement {selector!r}: {why}")


def _check_key(key: str, term: str) -> str:
    if not _KEY_RE.match(key):
        raise _bad(term, f"invalid label key {key!r}")
    return key


def _check_value(value: str, term: str) -> str:
    if not _VALUE_RE.match(value) or len(value) > 63:
        raise _bad(term, f"invalid label value {value!r}")
    return value


def parse_label_selector(selector: str | Mapping[str, str] | None) -> tuple[Requirement, ...]:
    """Parse a label selector string (or an equality dict); raises ApiError 400."""
    if not selector:
        return ()
    if isinstance(selector, Mapping):
        return tuple(Requirement(k, "=", frozenset([v])) for k, v in selector.items())
    requirements: list[Requirement] = []
    for term in _split_terms(selector):
        set_match = _SET_RE.match(term)
        if set_match:
            key, op, body = set_match.group(1), set_match.group(3), set_match.group(4)
            values = frozenset(
                _check_value(v.strip(), term) for v in body.split(",") if v.strip()
            )
            if not values:
                raise _bad(term, "for 'in', 'notin' operators, values set can't be empty")
            requirements.append(Requirement(_check_key(key, term), op, values))
            continue
        eq_match = _EQ_RE.match(term)
        if eq_match:
            key, op, value = eq_match.groups()
            op = "=" if op == "==" else op
            requirements.append(
                Requirement(_check_key(key, term), op, frozenset([_check_value(value, term)]))
            )
            continue
        if term.startswith("!"):
            requirements.append(Requirement(_check_key(term[1:].strip(), term), "!exists"))
        else:
            requirements.append(Requirement(_check_key(term, term), "exists"))
    return tuple(requirements)


def label_matcher(
    selector: str | Mapping[str, str] | None,
) -> Callable[[dict[str, Any]], bool]:
    """Predicate over objects for a label selector (parsed once)."""
    requirements = parse_label_selector(selector)
    if not requirements:
        return _always

    def match(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r.matches(labels) for r in requirements)

    return match


def field_value(obj: dict[str, Any], path: str) -> str:
    """Value at a dotted field path rendered like the API server does ("" if missing)."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def field_matcher(selector: str | None) -> Callable[[dict[str, Any]], bool]:
    """Predicate over objects for a field selector; raises ApiError 400 on bad syntax."""
    if not selector:
        return _always
    checks: list[tuple[str, bool, str]] = []
    for term in _split_terms(selector):
        eq_match = _EQ_RE.match(term)
        if not eq_match:
            raise ApiError(400, "BadRequest", f"invalid field selector: {term!r}")
        path, op, value = eq_match.groups()
        checks.append((path, op != "!=", value.strip()))

    def match(obj: dict[str, Any]) -> bool:
        return all((field_value(obj, p) == v) == eq for p, eq, v in checks)

    return match


def _always(obj: dict[str, Any]) -> bool:
    return True


def selector_matcher(label_selector: str | Mapping[str, str] | None,
                     field_selector: str | None) -> Callable[[dict[str, Any]], bool] | None:
    """One predicate for a list's or watch's label and field selectors (parsed once), or
    None when they select everything (no call per object then)."""
    labels, fields = label_matcher(label_selector), field_matcher(field_selector)
    if labels is _always:
        return None if fields is _always else fields
    if fields is _always:
        return labels
    return lambda obj: labels(obj) and fields(obj)
