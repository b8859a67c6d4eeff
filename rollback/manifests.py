"""Manifests for a deploy: YAML files found by paths/globs, with the change-cause injected into each workload.

Only workload objects (Deployment, StatefulSet, DaemonSet, apiVersion apps/v1) are accepted: the action
applies them with server-side apply, each together with its change-cause in the same write. Other objects
(ConfigMaps, Services, ...) belong in an earlier step, so a failed deploy never leaves them half-applied.
"""

from __future__ import annotations

import copy
import glob
import os
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from .inputs import WorkloadRef

Obj = dict[str, Any]
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
CHANGE_CAUSE = "kubernetes.io/change-cause"


class ManifestError(Exception):
    """A manifest problem; the message names the file."""


def find_files(patterns: Sequence[str], base: str) -> list[str]:
    files: list[str] = []
    for pattern in patterns:
        full = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
        matches = sorted(glob.glob(full, recursive=True))
        if os.path.isdir(full):
            matches = sorted(glob.glob(os.path.join(full, "*.y*ml")))
        matches = [m for m in matches if os.path.isfile(m)]
        if not matches:
            raise ManifestError(f"manifests: {pattern!r} matches no file (relative paths are resolved against "
                                f"the workspace)")
        files.extend(m for m in matches if m not in files)
    return files


def load(patterns: Sequence[str], base: str) -> list[Obj]:
    """All objects in the matched files, in file order. Raises ManifestError naming the bad file."""
    objects: list[Obj] = []
    seen: set[tuple[str, str]] = set()
    for path in find_files(patterns, base):
        shown = os.path.relpath(path, base)
        try:
            with open(path, encoding="utf-8") as handle:
                documents = list(yaml.safe_load_all(handle))
        except (OSError, yaml.YAMLError) as err:
            raise ManifestError(f"manifests: {shown} cannot be read as YAML: {err}") from None
        for document in documents:
            if document is None:
                continue
            if not isinstance(document, dict) or "kind" not in document:
                raise ManifestError(f"manifests: {shown} holds something that is not a Kubernetes object")
            kind = document.get("kind")
            if kind == "List":
                items = document.get("items") or []
            else:
                items = [document]
            for item in items:
                _check(item, shown)
                key = (item["kind"], item["metadata"]["name"])
                if key in seen:
                    raise ManifestError(f"manifests: {item['kind']}/{item['metadata']['name']} appears twice")
                seen.add(key)
                objects.append(item)
    return objects


def _check(item: Mapping[str, Any], shown: str) -> None:
    kind = item.get("kind")
    if kind not in WORKLOAD_KINDS:
        raise ManifestError(f"manifests: {shown} contains a {kind}; only {', '.join(WORKLOAD_KINDS)} objects are "
                            f"applied by this action (apply other objects in an earlier step)")
    if item.get("apiVersion") != "apps/v1":
        raise ManifestError(f"manifests: {shown}: {kind} must use apiVersion apps/v1, not {item.get('apiVersion')}")
    meta = item.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        raise ManifestError(f"manifests: {shown}: a {kind} has no metadata.name")


def workload_refs(objects: Sequence[Obj]) -> tuple[WorkloadRef, ...]:
    return tuple(WorkloadRef(o["kind"], o["metadata"]["name"]) for o in objects)


def with_release(obj: Obj, release: str, namespace: str) -> Obj:
    """A copy carrying ``kubernetes.io/change-cause: release`` and the target namespace."""
    item = copy.deepcopy(obj)
    meta = item.setdefault("metadata", {})
    manifest_namespace = meta.get("namespace")
    if manifest_namespace and manifest_namespace != namespace:
        raise ManifestError(f"manifests: {item['kind']}/{meta['name']} says namespace {manifest_namespace!r} but "
                            f"the namespace input is {namespace!r}")
    meta["namespace"] = namespace
    annotations = meta.get("annotations") or {}
    annotations[CHANGE_CAUSE] = release
    meta["annotations"] = annotations
    return item
