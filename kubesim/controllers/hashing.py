"""Template hashes, template comparison and the byte-exact ControllerRevision patch.

Upstream names ReplicaSets ``<deployment>-<pod-template-hash>`` and ControllerRevisions ``<owner>-<hash>``, where
the hash is a 32-bit FNV hash written in decimal and then mapped character by character onto the alphabet
``bcdfghjklmnpqrstvwxz2456789`` (no vowels, so no words). We hash a canonical JSON form of the template instead
of Go's in-memory dump, so the strings look and behave like upstream's (stable for equal templates, different
otherwise) without being byte-identical to a real cluster's pod-template-hash.

ControllerRevision ``data`` is the one place where bytes matter: ``kubectl rollout undo`` for StatefulSets and
DaemonSets decides "skipped rollback" by comparing ``cr.data`` byte for byte with a patch it computes from the
live object. kubectl decodes the object into Go structs and marshals it again, so the patch has Go's shape:
sorted keys, no spaces, zero values of ``omitempty`` fields dropped, ``creationTimestamp: null`` and
``resources: {}`` present. ``revision_patch`` computes exactly that shape.
"""

from __future__ import annotations

import copy
import json
import re
from fractions import Fraction
from typing import Any

POD_TEMPLATE_HASH = "pod-template-hash"
CONTROLLER_REVISION_HASH = "controller-revision-hash"

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv1_32(data: bytes) -> int:
    """FNV-1, 32 bit (multiply, then xor)."""
    value = _FNV_OFFSET
    for byte in data:
        value = (value * _FNV_PRIME) & 0xFFFFFFFF
        value ^= byte
    return value


def fnv1a_32(data: bytes) -> int:
    """FNV-1a, 32 bit (xor, then multiply)."""
    value = _FNV_OFFSET
    for byte in data:
        value ^= byte
        value = (value * _FNV_PRIME) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """Map every character onto the vowel-free alphabet upstream uses for generated names."""
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in text)


# -- template normal forms ---------------------------------------------------------------------------------

# Fields whose Go type is a map: an empty map is dropped by ``omitempty`` (a pointer-to-struct ``{}`` is not).
_MAP_FIELDS = frozenset({
    "labels", "annotations", "nodeSelector", "limits", "requests", "matchLabels", "overhead",
    "volumeAttributes",
})
# Non-pointer booleans and integers declared ``omitempty``: Go drops their zero values.
_NONPTR_BOOLS = frozenset({"hostNetwork", "hostPID", "hostIPC", "stdin", "stdinOnce", "tty", "readOnly"})
_NONPTR_OMITEMPTY_INTS = frozenset({"hostPort"})
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


# Fields holding resource.Quantity values (directly, or as the values of a map).
_QUANTITY_MAPS = frozenset({"limits", "requests", "overhead"})
_QUANTITY_FIELDS = frozenset({"sizeLimit"})
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
_BINARY = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_DECIMAL = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}


def canonical_quantity(value: Any) -> Any:
    """A resource quantity in the canonical form Go's ``resource.Quantity`` marshals (``0.5`` -> ``"500m"``,
    ``1`` -> ``"1"``, ``1024Mi`` -> ``"1Gi"``); anything unparsable is returned unchanged."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return value
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return value
    number, suffix = match.group(1), match.group(2) or ""
    amount = Fraction(number)
    if suffix in _BINARY[1:]:
        amount *= 1024 ** _BINARY.index(suffix)
        style = "binary"
    elif suffix[:1] in ("e", "E"):
        amount *= Fraction(10) ** int(suffix[1:])
        style = "exponent"
    else:
        amount *= Fraction(10) ** next(exp for exp, name in _DECIMAL.items() if name == suffix)
        style = "decimal"
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if style == "binary" and amount >= 1024 and amount.denominator == 1:
        mantissa, index = int(amount), 0
        while mantissa % 1024 == 0 and index < len(_BINARY) - 1:
            mantissa //= 1024
            index += 1
        return f"{sign}{mantissa}{_BINARY[index]}"
    scaled = amount * 10**9  # quantities are rounded up to the nano
    mantissa = scaled.numerator // scaled.denominator + (1 if scaled.denominator != 1 else 0)
    exponent = -9
    while mantissa and mantissa % 1000 == 0 and exponent < 18:
        mantissa //= 1000
        exponent += 3
    if mantissa == 0:
        return "0"
    if style == "exponent":
        return f"{sign}{mantissa}" + (f"e{exponent}" if exponent else "")
    return f"{sign}{mantissa}{_DECIMAL[exponent]}"


def _go_value(key: str | None, value: Any) -> tuple[bool, Any]:
    """(keep, value) for one field, as a Go struct round trip would render it."""
    if value is None:
        return False, None
    if isinstance(value, str) and value == "":
        return False, None
    if isinstance(value, list):
        if not value:
            return False, None
        return True, [_go_item(key, item) for item in value]
    if isinstance(value, dict):
        if not value and key in _MAP_FIELDS:
            return False, None
        return True, _go_dict(value, key)
    if isinstance(value, bool):
        if value is False and key in _NONPTR_BOOLS:
            return False, None
        return True, value
    if isinstance(value, int) and value == 0 and key in _NONPTR_OMITEMPTY_INTS:
        return False, None
    return True, value


def _go_item(list_key: str | None, item: Any) -> Any:
    if isinstance(item, dict):
        rendered = _go_dict(item, None)
        if list_key in _CONTAINER_LISTS and "resources" not in rendered:
            rendered["resources"] = {}
        return rendered
    return item


def _go_dict(obj: dict[str, Any], parent_key: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if parent_key in _MAP_FIELDS:  # map values: strings stay as they are, even empty ones
            out[key] = canonical_quantity(value) if parent_key in _QUANTITY_MAPS else value
            continue
        if key in _QUANTITY_FIELDS:
            out[key] = canonical_quantity(value)
            continue
        keep, rendered = _go_value(key, value)
        if keep:
            out[key] = rendered
    return out


def go_template(template: dict[str, Any]) -> dict[str, Any]:
    """The pod template as kubectl/the controllers see it after a Go decode/encode round trip."""
    rendered = _go_dict(copy.deepcopy(template), None)
    meta = rendered.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    meta = dict(meta)
    meta["creationTimestamp"] = None
    rendered["metadata"] = meta
    if not isinstance(rendered.get("spec"), dict):
        rendered["spec"] = {"containers": None}
    else:
        rendered["spec"].setdefault("containers", None)
    return rendered


def go_json(value: Any) -> bytes:
    """``encoding/json``'s bytes for ``value`` as a map: sorted keys, compact, HTML-safe escapes."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return text.encode("utf-8")


def revision_patch(template: dict[str, Any]) -> bytes:
    """The ControllerRevision ``data`` bytes for a StatefulSet/DaemonSet template (what kubectl compares)."""
    rendered = go_template(template)
    rendered["$patch"] = "replace"
    return go_json({"spec": {"template": rendered}})


def revision_data(template: dict[str, Any]) -> dict[str, Any]:
    """``revision_patch`` as a dict whose insertion order is the sorted key order."""
    parsed: dict[str, Any] = json.loads(revision_patch(template))
    return parsed


def data_bytes(data: Any) -> bytes:
    """Canonical bytes of a stored ``data`` value (equal data compare equal)."""
    return go_json(data)


def controller_revision_hash(data: bytes, probe: int | None) -> str:
    """The StatefulSet revision hash: FNV-1 over the data bytes and the collision count, as upstream does."""
    payload = data + (str(probe).encode() if probe is not None else b"")
    return safe_encode(str(fnv1_32(payload)))


# -- semantic template comparison ----------------------------------------------------------------------------


def _prune(value: Any) -> Any:
    """Drop null and empty values recursively (Go's zero values compare equal to absent ones)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            pruned = _prune(item)
            if pruned is None or pruned == {} or pruned == [] or pruned == "":
                continue
            out[key] = pruned
        return out
    if isinstance(value, list):
        return [_prune(item) for item in value]
    return value


def strip_label(template: dict[str, Any], label: str) -> dict[str, Any]:
    stripped = copy.deepcopy(template)
    labels = (stripped.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(label, None)
    return stripped


def normal_template(template: dict[str, Any] | None, ignore_label: str | None = POD_TEMPLATE_HASH) -> Any:
    """The template as Go sees it (typed round trip) without null/empty values: what semantic equality sees."""
    template = template or {}
    if ignore_label:
        template = strip_label(template, ignore_label)
    return _prune(go_template(template))


def equal_ignore_hash(left: dict[str, Any] | None, right: dict[str, Any] | None) -> bool:
    """Templates equal apart from the ``pod-template-hash`` label and null/empty values."""
    return bool(normal_template(left) == normal_template(right))


def pod_template_hash(template: dict[str, Any], collision_count: int | None = None) -> str:
    """A stable hash of the template (without its hash label) and the collision count."""
    payload = json.dumps(normal_template(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        payload += str(collision_count).encode()
    return safe_encode(str(fnv1a_32(payload)))
