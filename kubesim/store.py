"""In-memory object store with the API server's bookkeeping.

One global resourceVersion counter, uids, creation timestamps, ``metadata.generation`` bumped on spec changes
only, optimistic concurrency on updates, garbage collection of owned objects, and an event log that watches
read from. Defaulting and validation happen before objects reach the store (``defaults.py``); the store only
keeps the rules every resource shares.
"""

from __future__ import annotations

import builtins
import copy
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import errors
from .clock import Clock
from .defaults import zero_status
from .resources import NAMESPACES, RESOURCES, ResourceType

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]

_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
EVENT_LOG_SIZE = 20000


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    resource: ResourceType
    obj: Obj  # a private copy; never mutate

    @property
    def namespace(self) -> str | None:
        return self.obj.get("metadata", {}).get("namespace")


def _has_generation(rt: ResourceType) -> bool:
    return rt.group == "apps"


def _strip_volatile(obj: Obj) -> Obj:
    clean = copy.deepcopy(obj)
    meta = clean.get("metadata", {})
    for key in ("resourceVersion", "generation"):
        meta.pop(key, None)
    # a change of managedFields counts (kubectl rewrites them when moving to server-side apply), a new
    # timestamp alone does not
    for entry in meta.get("managedFields") or []:
        if isinstance(entry, dict):
            entry.pop("time", None)
    return clean


class Store:
    def __init__(self, clock: Clock | None = None):
        self.clock = clock or Clock()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._rv = 100
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {rt.key: {} for rt in RESOURCES}
        self._events: deque[Event] = deque(maxlen=EVENT_LOG_SIZE)
        self._subscribers: list[Callable[[Event], None]] = []

    # -- reading ---------------------------------------------------------------------------------------------

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        with self._lock:
            obj = self._objects[rt.key].get((namespace or "", name))
            if obj is None:
                raise errors.not_found(rt.group, rt.plural, name)
            return copy.deepcopy(obj)

    def find(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        with self._lock:
            obj = self._objects[rt.key].get((namespace or "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, rt: ResourceType, namespace: str | None = None, match: Predicate | None = None
             ) -> tuple[list[Obj], int]:
        """Objects of ``rt`` (in ``namespace`` or all), sorted by namespace and name, and the list's rv."""
        with self._lock:
            items = [copy.deepcopy(obj) for (ns, _), obj in sorted(self._objects[rt.key].items())
                     if (namespace is None or ns == namespace) and (match is None or match(obj))]
            return items, self._rv

    # -- writing ---------------------------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str | None, obj: Obj, dry_run: bool = False) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        with self._lock:
            if rt.namespaced:
                ns = namespace or meta.get("namespace") or "default"
                if ns not in {name for (_, name) in self._objects[NAMESPACES.key]}:
                    raise errors.not_found("", "namespaces", ns)
                meta["namespace"] = ns
            else:
                ns = ""
                meta.pop("namespace", None)
            if not meta.get("name"):
                prefix = meta.get("generateName")
                if not prefix:
                    raise errors.invalid(rt.group, rt.kind, rt.plural, "",
                                         [("FieldValueRequired", "metadata.name", "Required value: name or "
                                                                                  "generateName is required")])
                meta["name"] = prefix + "".join(random.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))
            key = (ns, meta["name"])
            if key in self._objects[rt.key]:
                raise errors.already_exists(rt.group, rt.plural, meta["name"])
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = self.clock.timestamp()
            meta.pop("resourceVersion", None)
            meta.pop("deletionTimestamp", None)
            if _has_generation(rt):
                meta["generation"] = 1
            obj["apiVersion"] = rt.api_version
            obj["kind"] = rt.kind
            if rt is NAMESPACES:
                obj["status"] = {"phase": "Active"}
            elif rt.has_status() and rt.group == "apps":
                obj["status"] = zero_status(rt)  # the API server ignores status on create; controllers fill it
            if dry_run:
                meta["resourceVersion"] = str(self._rv)
                return obj
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            self._objects[rt.key][key] = obj
            self._emit(Event(self._rv, "ADDED", rt, copy.deepcopy(obj)))
            return copy.deepcopy(obj)

    def replace(self, rt: ResourceType, namespace: str | None, name: str, obj: Obj, dry_run: bool = False,
                subresource: str | None = None) -> Obj:
        """PUT semantics. A non-empty ``metadata.resourceVersion`` must match (409 Conflict otherwise)."""
        new = copy.deepcopy(obj)
        new_meta = new.setdefault("metadata", {})
        with self._lock:
            key = ((namespace or "") if rt.namespaced else "", name)
            old = self._objects[rt.key].get(key)
            if old is None:
                raise errors.not_found(rt.group, rt.plural, name)
            if new_meta.get("name", name) != name:
                raise errors.bad_request(f"the name of the object ({new_meta.get('name')}) does not match the "
                                         f"name on the URL ({name})")
            wanted_rv = new_meta.get("resourceVersion")
            if wanted_rv and str(wanted_rv) != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt.group, rt.plural, name, "the object has been modified; please apply "
                                                                 "your changes to the latest version and try again")
            old_meta = old["metadata"]
            if subresource == "status":
                merged = copy.deepcopy(old)
                merged["status"] = zero_status(rt, new.get("status"))
                new = merged
                new_meta = new["metadata"]
            else:
                if rt.has_status():
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
                    else:
                        new.pop("status", None)
                for keep in ("uid", "creationTimestamp", "namespace", "deletionTimestamp"):
                    if keep in old_meta:
                        new_meta[keep] = old_meta[keep]
                    else:
                        new_meta.pop(keep, None)
                new_meta["name"] = name
                if _has_generation(rt):
                    generation = int(old_meta.get("generation", 1))
                    if new.get("spec") != old.get("spec"):
                        generation += 1
                    new_meta["generation"] = generation
            new["apiVersion"] = rt.api_version
            new["kind"] = rt.kind
            new_meta["resourceVersion"] = old_meta["resourceVersion"]
            if "managedFields" in old_meta and "managedFields" not in new_meta:
                new_meta["managedFields"] = copy.deepcopy(old_meta["managedFields"])
            if _strip_volatile(new) == _strip_volatile(old) and new_meta.get("generation") == old_meta.get(
                    "generation"):
                return copy.deepcopy(old)  # a no-op write does not bump the resourceVersion
            if dry_run:
                return new
            self._rv += 1
            new_meta["resourceVersion"] = str(self._rv)
            self._objects[rt.key][key] = new
            self._emit(Event(self._rv, "MODIFIED", rt, copy.deepcopy(new)))
            return copy.deepcopy(new)

    def delete(self, rt: ResourceType, namespace: str | None, name: str, dry_run: bool = False,
               orphan: bool = False) -> Obj:
        """Delete at once (no finalizers) and garbage-collect everything the object owns; with ``orphan``
        (``propagationPolicy: Orphan``) keep the dependents and remove only their ownerReferences to it."""
        with self._lock:
            key = ((namespace or "") if rt.namespaced else "", name)
            old = self._objects[rt.key].get(key)
            if old is None:
                raise errors.not_found(rt.group, rt.plural, name)
            if dry_run:
                return copy.deepcopy(old)
            del self._objects[rt.key][key]
            self._rv += 1
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(self._rv)
            self._emit(Event(self._rv, "DELETED", rt, gone))
            if orphan and old.get("kind") != "Namespace":
                self._orphan_dependents(old)
            else:
                self._collect_garbage(old)
            return copy.deepcopy(gone)

    def _orphan_dependents(self, owner: Obj) -> None:
        """What the garbage collector does for an Orphan deletion: every dependent loses its ownerReference
        to the owner (a MODIFIED event, a new resourceVersion) and stays."""
        uid = owner["metadata"]["uid"]
        for rt in RESOURCES:
            for key, obj in list(self._objects[rt.key].items()):
                refs = obj["metadata"].get("ownerReferences") or []
                kept = [ref for ref in refs if ref.get("uid") != uid]
                if len(kept) == len(refs):
                    continue
                new = copy.deepcopy(obj)
                if kept:
                    new["metadata"]["ownerReferences"] = kept
                else:
                    new["metadata"].pop("ownerReferences", None)
                self._rv += 1
                new["metadata"]["resourceVersion"] = str(self._rv)
                self._objects[rt.key][key] = new
                self._emit(Event(self._rv, "MODIFIED", rt, copy.deepcopy(new)))

    def _collect_garbage(self, owner: Obj) -> None:
        uid = owner["metadata"]["uid"]
        is_namespace = owner.get("kind") == "Namespace"
        for rt in RESOURCES:
            for (ns, name), obj in list(self._objects[rt.key].items()):
                refs = obj["metadata"].get("ownerReferences") or []
                if any(ref.get("uid") == uid for ref in refs) or (is_namespace and ns == owner["metadata"]["name"]):
                    if (ns, name) in self._objects[rt.key]:
                        self.delete(rt, ns or None, name)

    def update(self, rt: ResourceType, namespace: str | None, name: str, change: Callable[[Obj], Obj | None],
               subresource: str | None = None, attempts: int = 5) -> Obj:
        """Read-modify-write with retries on conflict (for controllers). ``change`` edits in place or returns."""
        for _ in range(attempts):
            current = self.get(rt, namespace, name)
            result = change(current)
            target = current if result is None else result
            try:
                return self.replace(rt, namespace, name, target, subresource=subresource)
            except errors.ApiError as err:
                if err.code != 409:
                    raise
        raise errors.conflict(rt.group, rt.plural, name, "too many conflicts")

    # -- events ----------------------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        """``callback`` runs under the store lock for every committed change: keep it short."""
        with self._lock:
            self._subscribers.append(callback)

    def _emit(self, event: Event) -> None:
        self._events.append(event)
        for callback in self._subscribers:
            callback(event)
        self._changed.notify_all()

    def events_since(self, rv: int) -> builtins.list[Event]:
        """Events with a resourceVersion greater than ``rv``; 410 Gone if the log no longer reaches back."""
        with self._lock:
            if self._events and rv < self._events[0].rv - 1 and rv < self._rv:
                raise errors.gone(f"too old resource version: {rv} ({self._events[0].rv - 1})")
            return [event for event in self._events if event.rv > rv]

    def wait_for_change(self, rv: int, timeout: float) -> bool:
        """Block until the store's resourceVersion passes ``rv`` or ``timeout`` real seconds pass."""
        with self._lock:
            return self._changed.wait_for(lambda: self._rv > rv, timeout=timeout)

    def all_objects(self, rts: Iterable[ResourceType] = RESOURCES) -> builtins.list[tuple[ResourceType, Obj]]:
        with self._lock:
            return [(rt, copy.deepcopy(obj)) for rt in rts for obj in self._objects[rt.key].values()]
