"""The DaemonSet controller: one pod per simulated node, revisions and the rolling update.

Nodes are simulated: ``knobs.daemonset_nodes`` of them, ``node-1``..``node-N``, labelled like real nodes
(``kubernetes.io/hostname``, ``kubernetes.io/os``, ``kubernetes.io/arch``) so a template's ``nodeSelector``
works. Revisions follow upstream's ``constructHistory``: the revision equal to the current template gets
max(old) + 1 (only its number changes); otherwise a new one is snapshotted with the DaemonSet's annotations.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from .. import errors
from ..resources import CONTROLLERREVISIONS, DAEMONSETS, PODS
from . import hashing, history
from .kubelet import (
    Obj,
    Runtime,
    create_pod,
    deleting,
    new_pod,
    node_names,
    owned_by,
    pod_available,
    pod_failed,
    pod_ready,
    sync_each,
)

TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"

_DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)


def node_labels(node: str) -> dict[str, str]:
    return {"kubernetes.io/hostname": node, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}


def should_run(ds: Obj, node: str) -> bool:
    selector = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    have = node_labels(node)
    return all(have.get(k) == v for k, v in selector.items())


def _scaled(value: Any, total: int) -> int:
    """Int-or-percent against ``total``; DaemonSets round percentages up."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    try:
        if text.endswith("%"):
            return math.ceil(int(text[:-1]) * total / 100)
        return int(text)
    except ValueError:
        return 0


def _rolling(ds: Obj) -> Obj:
    strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
    return strategy.get("rollingUpdate") or {} if strategy.get("type", "RollingUpdate") == "RollingUpdate" else {}


def template_generation(ds: Obj) -> str | None:
    value = ((ds.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)
    return str(value) if value is not None else None


def pod_updated(pod: Obj, digest: str, generation: str | None) -> bool:
    pod_labels = (pod.get("metadata") or {}).get("labels") or {}
    if digest and pod_labels.get(hashing.CONTROLLER_REVISION_HASH) == digest:
        return True
    return generation is not None and pod_labels.get(TEMPLATE_GENERATION_LABEL) == generation


def _by_age(pod: Obj) -> tuple[str, int, str]:
    phase_rank = {"Running": 0, "Pending": 1}.get((pod.get("status") or {}).get("phase", ""), 2)
    meta = pod["metadata"]
    return (meta.get("creationTimestamp", ""), phase_rank, meta["name"])


class DaemonSetController:
    def __init__(self, rt: Runtime):
        self.rt = rt

    def sync_all(self) -> None:
        sync_each(self.rt, DAEMONSETS, self.sync)

    # -- history -----------------------------------------------------------------------------------------------

    def construct_history(self, ds: Obj) -> tuple[Obj, list[Obj]]:
        rt = self.rt
        template = (ds.get("spec") or {}).get("template") or {}
        data = hashing.revision_patch(template)
        current: list[Obj] = []
        old: list[Obj] = []
        for cr in history.list_owned(rt, ds):
            if hashing.CONTROLLER_REVISION_HASH not in (cr["metadata"].get("labels") or {}):
                cr = copy.deepcopy(cr)
                cr["metadata"].setdefault("labels", {})[hashing.CONTROLLER_REVISION_HASH] = cr["metadata"]["name"]
                cr = rt.store.replace(CONTROLLERREVISIONS, cr["metadata"]["namespace"],
                                      cr["metadata"]["name"], cr)
            (current if history.data_of(cr) == data else old).append(cr)
        next_number = max((history.revision_number(cr) for cr in old), default=0) + 1
        if not current:
            return self.snapshot(ds, template, next_number), old
        current.sort(key=history.sort_key)
        keep = current[-1]
        for dup in current[:-1]:
            self.relabel_pods(ds, dup, keep)
            history.delete(rt, dup)
        if history.revision_number(keep) < next_number:
            keep = history.renumber(rt, keep, next_number)
        return keep, old

    def snapshot(self, ds: Obj, template: Obj, number: int) -> Obj:
        collisions = int((ds.get("status") or {}).get("collisionCount") or 0)
        while True:
            digest = hashing.pod_template_hash(template, collisions or None)
            cr = history.build(ds, template, number, digest,
                               annotations=(ds["metadata"].get("annotations") or None))
            try:
                return history.create(self.rt, ds, cr)
            except errors.ApiError as err:
                if err.code != 409:
                    raise
                collisions += 1
                latest = copy.deepcopy(ds)
                latest.setdefault("status", {})["collisionCount"] = collisions
                self.rt.store.replace(DAEMONSETS, ds["metadata"]["namespace"], ds["metadata"]["name"], latest,
                                      subresource="status")

    def relabel_pods(self, ds: Obj, dup: Obj, keep: Obj) -> None:
        old_hash = (dup["metadata"].get("labels") or {}).get(hashing.CONTROLLER_REVISION_HASH)
        new_hash = (keep["metadata"].get("labels") or {}).get(hashing.CONTROLLER_REVISION_HASH)
        pods, _ = self.rt.store.list(PODS, ds["metadata"]["namespace"], owned_by(ds))
        for pod in pods:
            if (pod["metadata"].get("labels") or {}).get(hashing.CONTROLLER_REVISION_HASH) == old_hash:
                pod["metadata"]["labels"][hashing.CONTROLLER_REVISION_HASH] = new_hash
                self.rt.store.replace(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], pod)

    def cleanup_history(self, ds: Obj, old: list[Obj], pods: list[Obj]) -> None:
        limit = (ds.get("spec") or {}).get("revisionHistoryLimit")
        to_kill = len(old) - (10 if limit is None else int(limit))
        if to_kill <= 0:
            return
        live = {(p["metadata"].get("labels") or {}).get(hashing.CONTROLLER_REVISION_HASH) for p in pods}
        for cr in sorted(old, key=history.sort_key):
            if to_kill <= 0:
                break
            if (cr["metadata"].get("labels") or {}).get(hashing.CONTROLLER_REVISION_HASH) in live:
                continue
            history.delete(self.rt, cr)
            to_kill -= 1

    # -- pods ------------------------------------------------------------------------------------------------

    def _new_pod(self, ds: Obj, node: str, digest: str) -> Obj:
        generation = template_generation(ds) or str(ds["metadata"].get("generation") or 1)
        template = copy.deepcopy((ds.get("spec") or {}).get("template") or {})
        spec = template.setdefault("spec", {})
        tolerations = list(spec.get("tolerations") or [])
        for default in _DAEMON_TOLERATIONS:
            if not any(t.get("key") == default["key"] and t.get("effect") == default["effect"]
                       for t in tolerations):
                tolerations.append(dict(default))
        spec["tolerations"] = tolerations
        affinity = spec.setdefault("affinity", {})
        affinity["nodeAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}
        return new_pod(template, ds, generate_name=ds["metadata"]["name"] + "-", extra_labels={
            hashing.CONTROLLER_REVISION_HASH: digest,
            TEMPLATE_GENERATION_LABEL: generation,
        }, node=node)

    def pods_by_node(self, ds: Obj) -> dict[str, list[Obj]]:
        pods, _ = self.rt.store.list(PODS, ds["metadata"]["namespace"], owned_by(ds))
        result: dict[str, list[Obj]] = {}
        for pod in pods:
            if deleting(pod):
                continue
            result.setdefault(str((pod.get("spec") or {}).get("nodeName") or ""), []).append(pod)
        return result

    def sync(self, ds: Obj) -> None:
        if deleting(ds):
            return
        cur, old = self.construct_history(ds)
        digest = str((cur["metadata"].get("labels") or {}).get(hashing.CONTROLLER_REVISION_HASH, ""))
        nodes = node_names(self.rt.knobs)
        self.manage(ds, nodes, digest)
        strategy = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy == "RollingUpdate":
            self.rolling_update(ds, nodes, digest)
        by_node = self.pods_by_node(ds)
        self.cleanup_history(ds, old, [p for pods in by_node.values() for p in pods])
        self.update_status(ds, nodes, digest, by_node)

    def _delete(self, pod: Obj) -> None:
        try:
            self.rt.store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        except errors.ApiError as err:
            if err.code != 404:
                raise

    def manage(self, ds: Obj, nodes: list[str], digest: str) -> None:
        surge_allowed = self.max_surge(ds, nodes) > 0
        by_node = self.pods_by_node(ds)
        for node, pods in by_node.items():
            if node not in nodes or not should_run(ds, node):
                for pod in pods:
                    self._delete(pod)
        for node in nodes:
            if not should_run(ds, node):
                continue
            running = []
            for pod in by_node.get(node, []):
                if pod_failed(pod):
                    self._delete(pod)
                else:
                    running.append(pod)
            if not running:
                create_pod(self.rt, self._new_pod(ds, node, digest))
                continue
            if len(running) <= 1:
                continue
            running.sort(key=_by_age)
            if not surge_allowed:
                for pod in running[1:]:
                    self._delete(pod)
                continue
            oldest_new = oldest_old = None
            for pod in running:
                is_new = (pod["metadata"].get("labels") or {}).get(hashing.CONTROLLER_REVISION_HASH) == digest
                if is_new and oldest_new is None:
                    oldest_new = pod
                elif not is_new and oldest_old is None:
                    oldest_old = pod
                else:
                    self._delete(pod)
            if oldest_new is not None and oldest_old is not None and (
                    not pod_ready(oldest_old) or pod_ready(oldest_new)):
                self._delete(oldest_old)

    def max_surge(self, ds: Obj, nodes: list[str]) -> int:
        desired = sum(1 for n in nodes if should_run(ds, n))
        return _scaled(_rolling(ds).get("maxSurge"), desired)

    def max_unavailable(self, ds: Obj, nodes: list[str]) -> int:
        desired = sum(1 for n in nodes if should_run(ds, n))
        unavailable = _scaled(_rolling(ds).get("maxUnavailable", 1), desired)
        if unavailable == 0 and self.max_surge(ds, nodes) == 0:
            unavailable = 1
        return unavailable

    def rolling_update(self, ds: Obj, nodes: list[str], digest: str) -> None:
        rt = self.rt
        generation = template_generation(ds)
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        by_node = self.pods_by_node(ds)
        surge = self.max_surge(ds, nodes)
        unavailable_budget = self.max_unavailable(ds, nodes)

        def split(pods: list[Obj]) -> tuple[Obj | None, Obj | None, bool]:
            new = old = None
            for pod in pods:
                if pod_updated(pod, digest, generation):
                    if new is not None:
                        return None, None, False
                    new = pod
                else:
                    if old is not None:
                        return None, None, False
                    old = pod
            return new, old, True

        if surge == 0:
            unavailable = 0
            replace: list[Obj] = []
            candidates: list[Obj] = []
            for node in sorted(by_node):
                new, old, ok = split(by_node[node])
                if not ok or (new is None) == (old is None):
                    unavailable += 1
                elif new is not None:
                    if not pod_available(rt, new, min_ready):
                        unavailable += 1
                elif old is not None:
                    if not pod_available(rt, old, min_ready):
                        replace.append(old)
                    elif unavailable < unavailable_budget:
                        candidates.append(old)
            remaining = min(max(unavailable_budget - unavailable, 0), len(candidates))
            for pod in replace + candidates[:remaining]:
                self._delete(pod)
            return
        surged = 0
        to_delete: list[Obj] = []
        allowed_nodes: list[str] = []
        candidate_nodes: list[str] = []
        for node in sorted(by_node):
            new, old, ok = split(by_node[node])
            if not ok:
                surged += 1
                continue
            if old is None:
                continue
            if new is None:
                if not pod_available(rt, old, min_ready):
                    allowed_nodes.append(node)
                elif surged < surge:
                    candidate_nodes.append(node)
            elif not pod_available(rt, new, min_ready):
                surged += 1
            else:
                to_delete.append(old)
        remaining = min(max(surge - surged, 0), len(candidate_nodes))
        for pod in to_delete:
            self._delete(pod)
        for node in allowed_nodes + candidate_nodes[:remaining]:
            create_pod(rt, self._new_pod(ds, node, digest))

    # -- status -----------------------------------------------------------------------------------------------

    def update_status(self, ds: Obj, nodes: list[str], digest: str, by_node: dict[str, list[Obj]]) -> None:
        rt = self.rt
        generation = template_generation(ds)
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        desired = current = ready = available = updated = misscheduled = 0
        for node in nodes:
            pods = sorted(by_node.get(node, []), key=_by_age)
            if should_run(ds, node):
                desired += 1
                if not pods:
                    continue
                current += 1
                pod = pods[0]
                if pod_ready(pod):
                    ready += 1
                    if pod_available(rt, pod, min_ready):
                        available += 1
                if pod_updated(pod, digest, generation):
                    updated += 1
            elif pods:
                misscheduled += 1
        status: Obj = {
            "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled,
            "desiredNumberScheduled": desired,
            "numberReady": ready,
        }
        if ds["metadata"].get("generation"):
            status["observedGeneration"] = int(ds["metadata"]["generation"])
        for key, value in (("updatedNumberScheduled", updated), ("numberAvailable", available),
                           ("numberUnavailable", desired - available)):
            if value:
                status[key] = value
        old_status = ds.get("status") or {}
        if old_status.get("collisionCount") is not None:
            status["collisionCount"] = old_status["collisionCount"]
        if old_status.get("conditions"):
            status["conditions"] = old_status["conditions"]
        if status != old_status:
            latest = copy.deepcopy(ds)
            latest["status"] = status
            rt.store.replace(DAEMONSETS, ds["metadata"]["namespace"], ds["metadata"]["name"], latest,
                             subresource="status")
