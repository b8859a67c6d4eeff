"""Patch mechanics: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch and
server-side apply with field ownership.

All functions are pure: they take plain JSON-like values and return new ones, never mutating their inputs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from . import errors

Obj = dict[str, Any]

# -- errors as the real API server reports them ------------------------------------------------------------


def unprocessable(message: str) -> errors.ApiError:
    """What the API server answers when a patch cannot be applied (e.g. a failed ``test`` op): 422 with the
    generic message and the patch library's message as the single cause."""
    return errors.ApiError(422, "Invalid", "the server rejected our request due to an error in our request",
                           {"causes": [{"reason": "UnexpectedServerResponse", "message": message}]})


# -- JSON patch ------------------------------------------------------------------------------------------


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def escape_token(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def parse_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise unprocessable(f'JSON pointer must be empty or start with a "/": {pointer}')
    return [_unescape(part) for part in pointer[1:].split("/")]


def _array_index(token: str, length: int, allow_end: bool, path: str) -> int:
    if token == "-" and allow_end:
        return length
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise unprocessable(f"Unable to access invalid index: {token}: invalid index referenced: {path}")
    index = int(token)
    if index > length or (index == length and not allow_end):
        raise unprocessable(f"Unable to access invalid index: {index}: invalid index referenced: {path}")
    return index


def _parent(doc: Any, tokens: list[str], op: str, path: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise unprocessable(f"{op} operation does not apply: doc is missing path: \"{path}\": "
                                    f"missing value")
            node = node[token]
        elif isinstance(node, list):
            node = node[_array_index(token, len(node), False, path)]
        else:
            raise unprocessable(f"{op} operation does not apply: doc is missing path: \"{path}\": missing value")
    if not isinstance(node, dict | list):
        raise unprocessable(f"{op} operation does not apply: doc is missing path: \"{path}\": missing value")
    return node


def _get(doc: Any, path: str, op: str) -> Any:
    tokens = parse_pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise unprocessable(f"{op} operation does not apply: doc is missing key: {path}: missing value")
        return parent[last]
    return parent[_array_index(last, len(parent), False, path)]


def _remove(doc: Any, path: str, op: str) -> tuple[Any, Any]:
    tokens = parse_pointer(path)
    if not tokens:
        raise unprocessable(f"{op} operation does not apply: cannot remove the whole document")
    parent = _parent(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise unprocessable(f"{op} operation does not apply: doc is missing key: {path}: missing value")
        return doc, parent.pop(last)
    return doc, parent.pop(_array_index(last, len(parent), False, path))


def _add(doc: Any, path: str, value: Any, op: str = "add") -> Any:
    tokens = parse_pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    else:
        parent.insert(_array_index(last, len(parent), True, path), value)
    return doc


def _replace(doc: Any, path: str, value: Any) -> Any:
    tokens = parse_pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, "replace", path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise unprocessable(f"replace operation does not apply: doc is missing key: {path}: missing value")
        parent[last] = value
    else:
        parent[_array_index(last, len(parent), False, path)] = value
    return doc


def decode_json_patch(body: bytes) -> list[Obj]:
    """Parse a JSON patch document; a syntax error is 400 BadRequest like the real server."""
    try:
        ops = json.loads(body)
    except ValueError as exc:
        raise errors.bad_request(f"invalid JSON patch: {exc}") from None
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    return ops


def json_patch(doc: Any, ops: Iterable[Obj]) -> Any:
    """Apply RFC 6902 operations atomically (the input is never modified). Failures raise 422."""
    doc = copy.deepcopy(doc)
    for op in ops:
        kind = op.get("op")
        path = op.get("path")
        if not isinstance(path, str):
            raise unprocessable(f"{kind} operation does not apply: missing path")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise unprocessable(f"{kind} operation does not apply: missing value")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, path, "remove")
        elif kind == "replace":
            doc = _replace(doc, path, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            source = op.get("from")
            if not isinstance(source, str):
                raise unprocessable(f"{kind} operation does not apply: missing from")
            if kind == "move":
                if path.startswith(source + "/"):
                    raise unprocessable("move operation does not apply: cannot move a value into its own child")
                doc, value = _remove(doc, source, "move")
            else:
                value = copy.deepcopy(_get(doc, source, "copy"))
            doc = _add(doc, path, value, kind)
        elif kind == "test":
            try:
                actual = _get(doc, path, "test")
            except errors.ApiError:
                actual = None
                if op["value"] is not None:
                    raise unprocessable(f"testing value {path} failed: test failed") from None
            if not _json_equal(actual, op["value"]):
                raise unprocessable(f"testing value {path} failed: test failed")
        else:
            raise unprocessable(f"Unexpected kind: {kind}")
    return doc


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    return bool(a == b)


# -- JSON merge patch ------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- strategic merge patch -------------------------------------------------------------------------------

#: list fields merged element-wise by a key (field name -> merge key), as the Kubernetes types declare them
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "resourceClaims": "name",
}

#: lists of scalars that merge as sets
PRIMITIVE_MERGE_LISTS = frozenset({"finalizers"})

_DELETE = object()


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value if not (isinstance(v, dict) and set(v) == {"$patch"})]
    return copy.deepcopy(value)


def _smp_map(original: Obj, patch: Obj) -> Any:
    patch = dict(patch)
    directive = patch.pop("$patch", None)
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return _strip_directives(patch)
    if directive not in (None, "merge"):
        raise errors.bad_request(f"Unknown patch type: {directive}")
    retain = patch.pop("$retainKeys", None)
    orders: dict[str, list[Any]] = {}
    deletions: dict[str, list[Any]] = {}
    for key in list(patch):
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = patch.pop(key) or []
        elif key.startswith("$deleteFromPrimitiveList/"):
            deletions[key.split("/", 1)[1]] = patch.pop(key) or []
    result = copy.deepcopy(original)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            merged = _smp_map(current if isinstance(current, dict) else {}, value)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            current = result.get(key)
            result[key] = _smp_list(key, current if isinstance(current, list) else [], value)
        else:
            result[key] = copy.deepcopy(value)
    for key, values in deletions.items():
        if isinstance(result.get(key), list):
            result[key] = [v for v in result[key] if v not in values]
    for key, order in orders.items():
        if isinstance(result.get(key), list):
            result[key] = _reorder(key, result[key], order)
    if retain is not None:
        if not isinstance(retain, list):
            raise errors.bad_request("invalid patch: $retainKeys must be a list")
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _identity(field: str, item: Any) -> Any:
    key = MERGE_KEYS.get(field)
    if key is not None and isinstance(item, dict):
        return json.dumps(item.get(key), sort_keys=True)
    return json.dumps(item, sort_keys=True)


def _reorder(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    rank = {_identity(field, item): index for index, item in enumerate(order)}
    indexed = list(enumerate(items))
    indexed.sort(key=lambda pair: (rank.get(_identity(field, pair[1]), len(rank)), pair[0]))
    return [item for _, item in indexed]


def _smp_list(field: str, original: list[Any], patch: list[Any]) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" and len(item) == 1 for item in patch):
        return _strip_directives([item for item in patch if not (isinstance(item, dict) and item == {
            "$patch": "replace"})])
    key = MERGE_KEYS.get(field)
    if field in PRIMITIVE_MERGE_LISTS:
        result = copy.deepcopy(original)
        for item in patch:
            if item not in result:
                result.append(copy.deepcopy(item))
        return result
    if key is None or not all(isinstance(item, dict) for item in patch):
        return _strip_directives(patch)
    result = copy.deepcopy(original)
    for item in patch:
        directive = item.get("$patch")
        index = next((i for i, current in enumerate(result)
                      if isinstance(current, dict) and key in item and current.get(key) == item.get(key)), None)
        if directive == "delete":
            if index is not None:
                result.pop(index)
            continue
        if index is not None:
            merged = _smp_map(result[index], item)
        else:
            merged = _smp_map({}, item)
        if merged is _DELETE:
            if index is not None:
                result.pop(index)
        elif index is not None:
            result[index] = merged
        else:
            result.append(merged)
    return result


def strategic_merge_patch(original: Obj, patch: Any) -> Obj:
    """Apply a strategic merge patch for the fields kubectl touches (see ``MERGE_KEYS``)."""
    if not isinstance(patch, dict):
        raise errors.bad_request("invalid strategic merge patch: the patch must be a JSON object")
    merged = _smp_map(original, patch)
    if merged is _DELETE:
        return {}
    result: Obj = merged
    return result


# -- field sets (managedFields) --------------------------------------------------------------------------

Path = tuple[str, ...]  # elements in the FieldsV1 notation: 'f:spec', 'k:{"name":"app"}', 'v:"x"'

_IGNORED_METADATA = frozenset({"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
                               "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"})


def _key_element(item: Obj, key: str) -> str:
    return "k:" + json.dumps({key: item.get(key)}, separators=(",", ":"), sort_keys=True)


def field_set(obj: Any, prefix: Path = (), field: str = "") -> set[Path]:
    """Leaf paths of ``obj`` (maps by field, keyed lists by key, scalar-set lists by value; other lists and
    scalars are leaves). Keyed list elements are members themselves too."""
    paths: set[Path] = set()
    if isinstance(obj, dict):
        if not obj and prefix:
            paths.add(prefix)
        for key, value in obj.items():
            if value is None:
                continue
            if not prefix and key in ("apiVersion", "kind", "status"):
                continue
            if prefix == ("f:metadata",) and key in _IGNORED_METADATA | {"name", "namespace"}:
                continue
            paths |= field_set(value, prefix + (f"f:{key}",), key)
        return paths
    if isinstance(obj, list):
        key = MERGE_KEYS.get(field)
        if key is not None and obj and all(isinstance(item, dict) and key in item for item in obj):
            for item in obj:
                element = prefix + (_key_element(item, key),)
                paths.add(element)
                paths |= field_set(item, element)
            return paths
        if field in PRIMITIVE_MERGE_LISTS:
            return {prefix + ("v:" + json.dumps(item, separators=(",", ":")),) for item in obj}
        paths.add(prefix)
        return paths
    paths.add(prefix)
    return paths


_MISSING = object()


def get_path(obj: Any, path: Path) -> Any:
    node = obj
    for element in path:
        kind, rest = element[0], element[2:]
        if kind == "f":
            if not isinstance(node, dict) or rest not in node:
                return _MISSING
            node = node[rest]
        elif kind == "k":
            wanted = json.loads(rest)
            if not isinstance(node, list):
                return _MISSING
            node = next((item for item in node if isinstance(item, dict)
                         and all(item.get(k) == v for k, v in wanted.items())), _MISSING)
            if node is _MISSING:
                return _MISSING
        elif kind == "v":
            value = json.loads(rest)
            if not isinstance(node, list) or value not in node:
                return _MISSING
            node = value
        else:
            return _MISSING
    return node


def remove_path(obj: Any, path: Path) -> None:
    """Remove the member at ``path`` from ``obj`` in place, if present."""
    if not path:
        return
    parent = get_path(obj, path[:-1])
    if parent is _MISSING:
        return
    element = path[-1]
    kind, rest = element[0], element[2:]
    if kind == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif kind == "k" and isinstance(parent, list):
        wanted = json.loads(rest)
        parent[:] = [item for item in parent if not (isinstance(item, dict)
                                                     and all(item.get(k) == v for k, v in wanted.items()))]
    elif kind == "v" and isinstance(parent, list):
        value = json.loads(rest)
        parent[:] = [item for item in parent if item != value]


def to_fields_v1(paths: Iterable[Path]) -> Obj:
    """The nested FieldsV1 form (``{"f:spec": {"f:replicas": {}}}``; list elements carry ``".": {}``)."""
    root: Obj = {}
    for path in sorted(paths):
        node = root
        for element in path:
            node = node.setdefault(element, {})
        if path and path[-1].startswith("k:"):
            node.setdefault(".", {})
    return root


def from_fields_v1(tree: Any, prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    if not isinstance(tree, dict) or not tree:
        return {prefix} if prefix else set()
    for key, value in tree.items():
        if key == ".":
            paths.add(prefix)
            continue
        paths |= from_fields_v1(value, prefix + (key,))
    return paths


def _covered(path: Path, owned: set[Path]) -> bool:
    """``path`` or an ancestor of it is in ``owned`` (an atomic parent owns its content)."""
    return any(path[:i] in owned for i in range(1, len(path) + 1))


def managers_of(obj: Obj) -> list[Obj]:
    return list(obj.get("metadata", {}).get("managedFields") or [])


def _entry_paths(entry: Obj) -> set[Path]:
    return from_fields_v1(entry.get("fieldsV1") or {})


def _entry(manager: str, operation: str, api_version: str, paths: set[Path], now: str,
           subresource: str | None = None) -> Obj:
    entry: Obj = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": now,
                  "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(paths)}
    if subresource:
        entry["subresource"] = subresource
    return entry


def _apply_merge(live: Any, applied: Any, field: str = "") -> Any:
    """Merge an applied configuration into the live object: maps recursively, keyed lists by key, scalar-set
    lists as sets, everything else replaced."""
    if isinstance(applied, dict):
        result = copy.deepcopy(live) if isinstance(live, dict) else {}
        for key, value in applied.items():
            if value is None:
                continue
            result[key] = _apply_merge(result.get(key), value, key)
        return result
    if isinstance(applied, list):
        key = MERGE_KEYS.get(field)
        if key is not None and isinstance(live, list) and all(isinstance(i, dict) for i in applied):
            merged = []
            live_items = [i for i in live if isinstance(i, dict)]
            for item in applied:
                match = next((c for c in live_items if c.get(key) == item.get(key)), None)
                merged.append(_apply_merge(match, item))
            applied_keys = {json.dumps(i.get(key)) for i in applied}
            merged += [copy.deepcopy(c) for c in live_items if json.dumps(c.get(key)) not in applied_keys]
            return merged
        if field in PRIMITIVE_MERGE_LISTS and isinstance(live, list):
            return copy.deepcopy(live) + [copy.deepcopy(v) for v in applied if v not in live]
        return copy.deepcopy(applied)
    return copy.deepcopy(applied)


def server_side_apply(live: Obj | None, applied: Obj, manager: str, force: bool, now: str,
                      api_version: str, group: str, plural: str) -> Obj:
    """Server-side apply of ``applied`` by ``manager`` onto ``live`` (None: the object does not exist yet).

    Returns the new object with updated ``metadata.managedFields``. Raises 409 Conflict when another manager
    owns a field this apply changes to a different value and ``force`` is false.
    """
    new_paths = field_set(applied)
    if live is None:
        result = _apply_merge({}, applied)
        result.setdefault("metadata", {})["managedFields"] = [_entry(manager, "Apply", api_version, new_paths, now)]
        return result
    entries = managers_of(live)
    mine = next((e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"), None)
    previous = _entry_paths(mine) if mine else set()
    others = [e for e in entries if e is not mine]
    conflicts: list[tuple[str, Path]] = []
    for entry in others:
        owned = _entry_paths(entry)
        for path in sorted(new_paths):
            if not _covered(path, owned):
                continue
            live_value = get_path(live, path)
            applied_value = get_path(applied, path)
            if live_value is _MISSING or applied_value is _MISSING:
                continue
            if path[-1].startswith("k:") or live_value == applied_value:
                continue
            conflicts.append((str(entry.get("manager")), path))
    if conflicts and not force and manager == "kubectl":
        allowed = _last_applied_fields(live)
        conflicts = [(m, p) for m, p in conflicts if p not in allowed]
        force = not conflicts
    if conflicts and not force:
        raise _apply_conflict(conflicts, group, plural, live.get("metadata", {}).get("name", ""))
    result = _apply_merge(live, applied)
    _sync_last_applied(result, applied, manager, live)
    # fields this manager applied before but no longer does, and nobody else owns, are removed
    still_owned = set().union(*(_entry_paths(e) for e in others)) if others else set()
    for path in sorted(previous - new_paths, key=len, reverse=True):
        if any(p[:len(path)] == path for p in new_paths):
            continue
        if path in still_owned:
            continue
        remove_path(result, path)
    new_entries: list[Obj] = []
    conflicting = {path for _, path in conflicts}
    for entry in entries:
        if entry is mine:
            continue
        paths = _entry_paths(entry)
        if force and conflicting:
            paths = {p for p in paths if not any(p[:len(c)] == c for c in conflicting)}
            if not paths:
                continue
            entry = dict(entry, fieldsV1=to_fields_v1(paths))
        new_entries.append(entry)
    new_entries.append(_entry(manager, "Apply", api_version, new_paths, now))
    result.setdefault("metadata", {})["managedFields"] = new_entries
    return result


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _last_applied_fields(live: Obj) -> set[Path]:
    """Moving from ``kubectl apply`` to ``kubectl apply --server-side`` does not conflict: like the real API
    server, conflicts of the ``kubectl`` manager on fields that the live object's last-applied-configuration
    annotation holds with their live values are overridden."""
    text = (live.get("metadata", {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return set()
    try:
        last_applied = json.loads(text)
    except ValueError:
        return set()
    return {p for p in field_set(last_applied) if get_path(last_applied, p) == get_path(live, p)}


def _sync_last_applied(result: Obj, applied: Obj, manager: str, live: Obj) -> None:
    """The real server keeps a client-side-apply annotation in step with ``kubectl apply --server-side``."""
    annotations = (live.get("metadata", {}).get("annotations") or {})
    if manager != "kubectl" or LAST_APPLIED not in annotations:
        return
    config = copy.deepcopy(applied)
    config_annotations = (config.get("metadata") or {}).get("annotations")
    if isinstance(config_annotations, dict):
        config_annotations.pop(LAST_APPLIED, None)
    result.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = json.dumps(
        config, separators=(",", ":"))


def _describe(path: Path) -> str:
    parts = []
    for element in path:
        kind, rest = element[0], element[2:]
        if kind == "f":
            parts.append("." + rest)
        elif kind == "k":
            parts.append(f"[{','.join(f'{k}={json.dumps(v)}' for k, v in json.loads(rest).items())}]")
        else:
            parts.append(f"[={rest}]")
    return "".join(parts)


def _apply_conflict(conflicts: list[tuple[str, Path]], group: str, plural: str, name: str) -> errors.ApiError:
    if len(conflicts) == 1:
        manager, path = conflicts[0]
        message = f'Apply failed with 1 conflict: conflict with "{manager}": {_describe(path)}'
    else:
        lines = "\n".join(f'- conflict with "{m}": {_describe(p)}' for m, p in conflicts)
        message = f"Apply failed with {len(conflicts)} conflicts: conflicts with " \
                  f"{', '.join(sorted({chr(34) + m + chr(34) for m, _ in conflicts}))}:\n{lines}"
    causes = [{"reason": "FieldManagerConflict", "message": f'conflict with "{m}"', "field": _describe(p)}
              for m, p in conflicts]
    details: Obj = {"name": name, "kind": plural, "causes": causes}
    if group:
        details["group"] = group
    return errors.ApiError(409, "Conflict", message, details)


def record_update(old: Obj | None, new: Obj, manager: str, now: str, api_version: str,
                  subresource: str | None = None) -> Obj:
    """Track ownership for a non-apply write (create/update/patch): fields whose value changed (or all fields
    on create) move to ``manager`` with ``operation: Update``. Returns ``new`` with managedFields set."""
    new = copy.deepcopy(new)
    meta = new.setdefault("metadata", {})
    entries = managers_of(old) if old is not None else list(meta.get("managedFields") or [])
    if old is None:
        changed = _relevant(new, subresource)
    else:
        changed = {p for p in _relevant(new, subresource) if get_path(old, p) != get_path(new, p)}
    if not changed:
        meta["managedFields"] = entries
        return new
    result: list[Obj] = []
    mine: Obj | None = None
    for entry in entries:
        if entry.get("manager") == manager and entry.get("operation") == "Update" and \
                entry.get("subresource") == subresource:
            mine = entry
            continue
        paths = _entry_paths(entry)
        remaining = {p for p in paths if p not in changed}
        if remaining != paths:
            if not remaining:
                continue
            entry = dict(entry, fieldsV1=to_fields_v1(remaining))
        result.append(entry)
    paths = (_entry_paths(mine) if mine else set()) | changed
    paths = {p for p in paths if get_path(new, p) is not _MISSING}
    result.append(_entry(manager, "Update", api_version, paths, now, subresource))
    meta["managedFields"] = result
    return new


def _without_status(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k != "status"}


def _relevant(obj: Obj, subresource: str | None) -> set[Path]:
    if subresource == "status":
        return field_set(obj.get("status") or {}, ("f:status",))
    return field_set(_without_status(obj))
