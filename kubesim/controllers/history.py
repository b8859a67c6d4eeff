"""ControllerRevision helpers shared by the StatefulSet and DaemonSet controllers.

A revision's ``data`` is the strategic-merge patch ``{"spec":{"template":{...,"$patch":"replace"}}}`` of the
workload's template at that time (``hashing.revision_patch``); ``revision`` is its number. Revisions compare
equal when their data does (upstream ignores everything else, including annotations).
"""

from __future__ import annotations

import copy
from typing import Any

from .. import errors
from ..resources import CONTROLLERREVISIONS
from . import hashing
from .kubelet import Obj, Runtime, controller_ref, owned_by

MAX_PREFIX = 223


def revision_number(cr: Obj) -> int:
    try:
        return int(cr.get("revision") or 0)
    except (TypeError, ValueError):
        return 0


def sort_key(cr: Obj) -> tuple[int, str, str]:
    meta = cr.get("metadata") or {}
    return (revision_number(cr), meta.get("creationTimestamp", ""), meta.get("name", ""))


def list_owned(rt: Runtime, owner: Obj) -> list[Obj]:
    """The owner's ControllerRevisions, oldest revision first."""
    items, _ = rt.store.list(CONTROLLERREVISIONS, owner["metadata"]["namespace"], owned_by(owner))
    return sorted(items, key=sort_key)


def data_of(cr: Obj) -> bytes:
    return hashing.data_bytes(cr.get("data"))


def equal(left: Obj | None, right: Obj | None) -> bool:
    if left is None or right is None:
        return left is right
    return data_of(left) == data_of(right)


def template_of(cr: Obj) -> Obj:
    """The pod template a revision restores (its patch without the ``$patch`` directive)."""
    template = copy.deepcopy(((cr.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def revision_name(owner_name: str, digest: str) -> str:
    return f"{owner_name[:MAX_PREFIX]}-{digest}"


def build(owner: Obj, template: Obj, revision: int, digest: str, *, annotations: dict[str, Any] | None) -> Obj:
    """A ControllerRevision for ``owner``'s ``template`` (labels from the template plus the hash label)."""
    revision_labels = dict(((template.get("metadata") or {}).get("labels")) or {})
    revision_labels[hashing.CONTROLLER_REVISION_HASH] = digest
    meta: Obj = {
        "name": revision_name(owner["metadata"]["name"], digest),
        "namespace": owner["metadata"]["namespace"],
        "labels": revision_labels,
        "ownerReferences": [controller_ref(owner)],
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": meta,
        "data": hashing.revision_data(template),
        "revision": revision,
    }


def create(rt: Runtime, owner: Obj, cr: Obj) -> Obj:
    """Create ``cr``; an existing equal revision of the same owner under that name is returned instead."""
    try:
        return rt.store.create(CONTROLLERREVISIONS, owner["metadata"]["namespace"], cr)
    except errors.ApiError as err:
        if err.code != 409:
            raise
        existing = rt.store.find(CONTROLLERREVISIONS, owner["metadata"]["namespace"], cr["metadata"]["name"])
        if existing is not None and owned_by(owner)(existing) and equal(existing, cr):
            return existing
        raise


def renumber(rt: Runtime, cr: Obj, revision: int) -> Obj:
    """Give an existing revision a new number, leaving everything else (annotations too) untouched."""
    if revision_number(cr) == revision:
        return cr
    cr = copy.deepcopy(cr)
    cr["revision"] = revision
    return rt.store.replace(CONTROLLERREVISIONS, cr["metadata"]["namespace"], cr["metadata"]["name"], cr)


def delete(rt: Runtime, cr: Obj) -> None:
    try:
        rt.store.delete(CONTROLLERREVISIONS, cr["metadata"]["namespace"], cr["metadata"]["name"])
    except errors.ApiError as err:
        if err.code != 404:
            raise
