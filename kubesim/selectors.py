"""Label selectors (equality and set-based) and field selectors, as the API server parses them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import errors

Obj = dict[str, Any]

_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                        r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        raise AssertionError(self.op)


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def _check_key(key: str, selector: str) -> str:
    key = key.strip()
    if not key or not _LABEL_KEY.match(key) or len(key.split("/")[-1]) > 63:
        raise errors.bad_request(f"unable to parse requirement: invalid label key \"{key}\" in selector "
                                 f"\"{selector}\"")
    return key


def _check_value(value: str, selector: str) -> str:
    value = value.strip()
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise errors.bad_request(f"unable to parse requirement: invalid label value: \"{value}\" in selector "
                                 f"\"{selector}\"")
    return value


_SET_RE = re.compile(r"^\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*$")


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse ``a=b,c!=d,e in (x,y),f notin (z),g,!h``. Raises 400 BadRequest on syntax errors."""
    if text is None or not text.strip():
        return []
    reqs: list[Requirement] = []
    for raw in _split_top(text):
        term = raw.strip()
        if not term:
            raise errors.bad_request(f"found '', expected: identifier in selector \"{text}\"")
        match = _SET_RE.match(term)
        if match:
            key = _check_key(match.group(1), text)
            values = tuple(sorted({_check_value(v, text) for v in match.group(3).split(",")}))
            reqs.append(Requirement(key, match.group(2), values))
        elif term.startswith("!"):
            reqs.append(Requirement(_check_key(term[1:], text), "!"))
        elif "!=" in term:
            key, value = term.split("!=", 1)
            reqs.append(Requirement(_check_key(key, text), "!=", (_check_value(value, text),)))
        elif "==" in term:
            key, value = term.split("==", 1)
            reqs.append(Requirement(_check_key(key, text), "=", (_check_value(value, text),)))
        elif "=" in term:
            key, value = term.split("=", 1)
            reqs.append(Requirement(_check_key(key, text), "=", (_check_value(value, text),)))
        elif re.search(r"\s|[()]", term):
            raise errors.bad_request(f"unable to parse requirement: found '{term}', expected: in, notin, =, "
                                     f"==, !=, gt, lt")
        else:
            reqs.append(Requirement(_check_key(term, text), "exists"))
    return reqs


def selector_from_label_selector(selector: Mapping[str, Any] | None) -> list[Requirement]:
    """Requirements of a ``metav1.LabelSelector`` (matchLabels + matchExpressions)."""
    if not selector:
        return []
    reqs = [Requirement(k, "=", (str(v),)) for k, v in sorted((selector.get("matchLabels") or {}).items())]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        reqs.append(Requirement(expr["key"], ops[expr["operator"]], tuple(expr.get("values") or ())))
    return reqs


def labels_match(reqs: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(req.matches(labels) for req in reqs)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


FIELD_GETTERS: dict[str, Callable[[Obj], str | None]] = {
    "metadata.name": lambda o: o.get("metadata", {}).get("name"),
    "metadata.namespace": lambda o: o.get("metadata", {}).get("namespace"),
    # Events (kubectl describe finds an object's events with these)
    **{f"involvedObject.{name}": (lambda key: lambda o: _text((o.get("involvedObject") or {}).get(key)))(name)
       for name in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
    "reason": lambda o: _text(o.get("reason")),
    "type": lambda o: _text(o.get("type")),
}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str

    def matches(self, obj: Obj) -> bool:
        actual = FIELD_GETTERS[self.field](obj) or ""
        return (actual == self.value) if self.op == "=" else (actual != self.value)


def parse_field_selector(text: str | None) -> list[FieldRequirement]:
    if text is None or not text.strip():
        return []
    reqs: list[FieldRequirement] = []
    for raw in text.split(","):
        term = raw.strip()
        if not term:
            continue
        op_text = next((o for o in ("!=", "==", "=") if o in term), None)
        if op_text is None:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, value = term.split(op_text, 1)
        field = field.strip()
        op = "!=" if op_text == "!=" else "="
        if field not in FIELD_GETTERS:
            known = ", ".join(f'"{name}"' for name in FIELD_GETTERS)
            raise errors.bad_request(f'"{field}" is not a known field selector: only {known}')
        reqs.append(FieldRequirement(field, op, value.strip()))
    return reqs


def fields_match(reqs: list[FieldRequirement], obj: Obj) -> bool:
    return all(req.matches(obj) for req in reqs)


def make_predicate(label_selector: str | None, field_selector: str | None) -> Callable[[Obj], bool] | None:
    """A store predicate for the two query parameters, or None when neither filters anything."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector)
    if not labels and not fields:
        return None

    def predicate(obj: Obj) -> bool:
        return labels_match(labels, obj.get("metadata", {}).get("labels")) and fields_match(fields, obj)

    return predicate
