"""The plan: the exact change a run makes to each workload, shown before anything is written (pure: no I/O).

For every workload: the live revision and release, the target revision and release, and a field-level diff of
the pod template (images, env names with literal values, resources, probes, command/args, volumes, and any other
field). Values that come from Secrets are never in a pod template, and the plan names only the Secret and key
an env var or volume takes them from.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .inputs import ImageSpec
from .workloads import prune_empty, without_hash

Obj = dict[str, Any]
MAX_VALUE = 300  # characters of one rendered value in the plan
RELEASE_FIELD = "change-cause (release)"


@dataclass(frozen=True)
class Change:
    field: str  # "container web: image", "volume config", "template label app"
    before: str | None  # None: not there before
    after: str | None  # None: removed

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class WorkloadPlan:
    workload: str
    action: str  # rollback | deploy | redeploy | skip
    from_revision: int | None
    from_release: str | None
    to_revision: int | None  # rollback: the revision returned to (its number before the undo renumbers it)
    to_release: str | None
    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"workload": self.workload, "action": self.action,
                "from": {"revision": self.from_revision, "release": self.from_release},
                "to": {"revision": self.to_revision, "release": self.to_release},
                "changes": [c.to_json() for c in self.changes], "notes": list(self.notes)}

    def headline(self) -> str:
        def end(revision: int | None, release: str | None, new: str) -> str:
            where = f"revision {revision}" if revision is not None else new
            return f"{where} ({release or '<none>'})"

        template_changed = any(c.field != RELEASE_FIELD for c in self.changes)
        to = end(self.to_revision, self.to_release, "a new revision" if template_changed else "the same revision")
        return f"{self.workload}: {self.action}, {end(self.from_revision, self.from_release, 'nothing')} -> {to}"


# -- rendering values -------------------------------------------------------------------------------------------


def _compact(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE - 3] + "..."


def _env_value(var: Mapping[str, Any]) -> str:
    """An env var's value as the plan shows it: the literal, or where it comes from (never a Secret's value)."""
    source = var.get("valueFrom")
    if not source:
        return _compact(var.get("value", ""))
    for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
        ref = source.get(key)
        if isinstance(ref, dict):
            optional = " (optional)" if ref.get("optional") else ""
            return f"from {kind} {ref.get('name')} key {ref.get('key')}{optional}"
    if isinstance(source.get("fieldRef"), dict):
        return f"from field {source['fieldRef'].get('fieldPath')}"
    if isinstance(source.get("resourceFieldRef"), dict):
        return f"from resource {source['resourceFieldRef'].get('resource')}"
    return _compact(source)


def _volume_value(volume: Mapping[str, Any]) -> str:
    rest = {k: v for k, v in volume.items() if k != "name"}
    if isinstance(rest.get("secret"), dict):  # name the Secret, and the items it maps (keys, not values)
        secret = {k: v for k, v in rest["secret"].items() if k in ("secretName", "items", "optional")}
        return "secret " + _compact(secret)
    if isinstance(rest.get("configMap"), dict):
        return "configMap " + _compact(rest["configMap"])
    return _compact(rest)


# -- the diff ---------------------------------------------------------------------------------------------------


def _by_name(items: Any) -> dict[str, Mapping[str, Any]]:
    return {str(item.get("name")): item for item in items or [] if isinstance(item, dict)}


def _diff_maps(label: str, before: Mapping[str, Any], after: Mapping[str, Any], render: Any = _compact
               ) -> list[Change]:
    changes = []
    for key in list(before) + [k for k in after if k not in before]:
        old, new = before.get(key), after.get(key)
        if old != new:
            changes.append(Change(f"{label} {key}", None if old is None else render(old),
                                  None if new is None else render(new)))
    return changes


def _container_changes(label: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    changes = []
    keys = list(before) + [k for k in after if k not in before]
    first = ("image", "command", "args", "env", "envFrom", "resources", "livenessProbe", "readinessProbe",
             "startupProbe", "volumeMounts")
    for key in [k for k in first if k in keys] + [k for k in keys if k not in first and k != "name"]:
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if key == "env":
            changes += _diff_maps(f"{label}: env", _by_name(old), _by_name(new), _env_value)
        elif key == "resources":
            for part in ("requests", "limits", "claims"):
                changes += _diff_maps(f"{label}: resources.{part}", (old or {}).get(part) or {},
                                      (new or {}).get(part) or {})
        else:
            changes.append(Change(f"{label}: {key}", None if old is None else _compact(old),
                                  None if new is None else _compact(new)))
    return changes


def template_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[Change, ...]:
    """Field-level differences between two pod templates (``pod-template-hash`` and empty values ignored)."""
    old, new = prune_empty(without_hash(before)), prune_empty(without_hash(after))
    changes: list[Change] = []
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    changes += _diff_maps("template label", old_meta.get("labels") or {}, new_meta.get("labels") or {})
    changes += _diff_maps("template annotation", old_meta.get("annotations") or {},
                          new_meta.get("annotations") or {})
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    for group, label in (("initContainers", "init container"), ("containers", "container")):
        old_items, new_items = _by_name(old_spec.get(group)), _by_name(new_spec.get(group))
        for name in list(old_items) + [n for n in new_items if n not in old_items]:
            if name not in new_items:
                changes.append(Change(f"{label} {name}", f"image {old_items[name].get('image')}", None))
            elif name not in old_items:
                changes.append(Change(f"{label} {name}", None, f"image {new_items[name].get('image')}"))
            else:
                changes += _container_changes(f"{label} {name}", old_items[name], new_items[name])
    changes += _diff_maps("volume", _by_name(old_spec.get("volumes")), _by_name(new_spec.get("volumes")),
                          _volume_value)
    for key in list(old_spec) + [k for k in new_spec if k not in old_spec]:
        if key in ("containers", "initContainers", "volumes"):
            continue
        if old_spec.get(key) != new_spec.get(key):
            before_value, after_value = old_spec.get(key), new_spec.get(key)
            changes.append(Change(f"pod spec {key}", None if before_value is None else _compact(before_value),
                                  None if after_value is None else _compact(after_value)))
    return tuple(changes)


def with_images(template: Mapping[str, Any], images: Sequence[ImageSpec]) -> Obj:
    """The pod template after ``kubectl set image``-style changes (containers and init containers by name)."""
    result = copy.deepcopy(dict(template))
    spec = result.get("spec") or {}
    wanted = {item.container: item.image for item in images}
    for group in ("containers", "initContainers"):
        for container in spec.get(group) or []:
            if container.get("name") in wanted:
                container["image"] = wanted[container["name"]]
    return result


def release_change(before: str | None, after: str | None) -> tuple[Change, ...]:
    if before == after:
        return ()
    return (Change(RELEASE_FIELD, before, after),)


# -- showing it -------------------------------------------------------------------------------------------------


def log_lines(plans: Sequence[WorkloadPlan]) -> list[str]:
    """The plan as log lines (for a ``::group::Plan``)."""
    lines = []
    for plan in plans:
        lines.append(plan.headline())
        for change in plan.changes:
            lines.append(f"  {change.field}: {change.before if change.before is not None else '(none)'} -> "
                         f"{change.after if change.after is not None else '(removed)'}")
        if not plan.changes:
            lines.append("  no change")
        lines += [f"  note: {note}" for note in plan.notes]
    return lines
