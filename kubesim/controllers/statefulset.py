"""The StatefulSet controller: revisions, ordered pods and the reverse-ordinal rolling update.

Upstream behaviour (``pkg/controller/statefulset``) that matters for rollbacks:

* the update revision is the ControllerRevision whose data equals the current template; an equal revision that
  is not the newest is renumbered to max + 1 (its annotations stay as they were); otherwise a new revision is
  created, snapshotting the StatefulSet's annotations;
* with ``OrderedReady`` every pod must be Running and Ready before the next one is touched, and a rolling update
  replaces pods from the highest ordinal down, one at a time, only while all pods are healthy. So a pod of a bad
  revision that never becomes Ready blocks the rollout, and reverting the template alone does not replace it:
  only deleting it lets the controller recreate it at the update revision.
"""

from __future__ import annotations

import copy
import re

from .. import errors
from ..resources import PODS, STATEFULSETS
from . import hashing, history
from .kubelet import (
    Obj,
    Runtime,
    create_pod,
    deleting,
    new_pod,
    owned_by,
    pick_node,
    pod_available,
    pod_failed,
    pod_ready,
    pod_running_and_ready,
    sync_each,
)

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def _replicas(sts: Obj) -> int:
    value = (sts.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _start_ordinal(sts: Obj) -> int:
    ordinals = (sts.get("spec") or {}).get("ordinals") or {}
    return int(ordinals.get("start") or 0)


def _partition(sts: Obj) -> int:
    strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0
    return int((strategy.get("rollingUpdate") or {}).get("partition") or 0)


def _pod_revision(pod: Obj) -> str:
    return str(((pod.get("metadata") or {}).get("labels") or {}).get(hashing.CONTROLLER_REVISION_HASH, ""))


class StatefulSetController:
    def __init__(self, rt: Runtime):
        self.rt = rt

    def sync_all(self) -> None:
        sync_each(self.rt, STATEFULSETS, self.sync)

    # -- revisions -----------------------------------------------------------------------------------------

    def revisions(self, sts: Obj, revisions: list[Obj]) -> tuple[Obj, Obj, int]:
        """(current revision, update revision, collision count)."""
        rt = self.rt
        status = sts.get("status") or {}
        collisions = int(status.get("collisionCount") or 0)
        template = (sts.get("spec") or {}).get("template") or {}
        data = hashing.revision_patch(template)
        next_number = history.revision_number(revisions[-1]) + 1 if revisions else 1
        equal = [cr for cr in revisions if history.data_of(cr) == data]
        if equal and history.equal(revisions[-1], equal[-1]):
            update = revisions[-1]
        elif equal:
            update = history.renumber(rt, equal[-1], next_number)
        else:
            while True:
                digest = hashing.controller_revision_hash(data, collisions)
                candidate = history.build(sts, template, next_number, digest,
                                          annotations=(sts["metadata"].get("annotations") or None))
                try:
                    update = history.create(rt, sts, candidate)
                    break
                except errors.ApiError as err:
                    if err.code != 409:
                        raise
                    collisions += 1
        current = next((cr for cr in revisions if cr["metadata"]["name"] == status.get("currentRevision")), None)
        return current or update, update, collisions

    # -- pods ------------------------------------------------------------------------------------------------

    def _new_pod(self, sts: Obj, revision: Obj, ordinal: int) -> Obj:
        name = f'{sts["metadata"]["name"]}-{ordinal}'
        template = history.template_of(revision)
        pod = new_pod(template, sts, name=name, extra_labels={
            hashing.CONTROLLER_REVISION_HASH: revision["metadata"]["name"],
            POD_NAME_LABEL: name,
            POD_INDEX_LABEL: str(ordinal),
        }, node=pick_node(self.rt.knobs, f'{sts["metadata"]["uid"]}/{ordinal}'))
        pod["spec"]["hostname"] = name
        service = (sts.get("spec") or {}).get("serviceName")
        if service:
            pod["spec"]["subdomain"] = service
        volumes = list(pod["spec"].get("volumes") or [])
        for claim in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
            claim_name = (claim.get("metadata") or {}).get("name")
            if claim_name and not any(v.get("name") == claim_name for v in volumes):
                volumes.append({"name": claim_name,
                                "persistentVolumeClaim": {"claimName": f"{claim_name}-{name}"}})
        if volumes:
            pod["spec"]["volumes"] = volumes
        return pod

    def _versioned_pod(self, sts: Obj, current: Obj, update: Obj, ordinal: int) -> Obj:
        strategy = ((sts.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy == "RollingUpdate" and ordinal < _start_ordinal(sts) + _partition(sts):
            return self._new_pod(sts, current, ordinal)
        return self._new_pod(sts, update, ordinal)

    def sync(self, sts: Obj) -> None:
        if deleting(sts):
            return
        rt = self.rt
        store = rt.store
        ns = sts["metadata"]["namespace"]
        name = sts["metadata"]["name"]
        revisions = history.list_owned(rt, sts)
        current, update, collisions = self.revisions(sts, revisions)
        pods, _ = store.list(PODS, ns, owned_by(sts))
        self.manage(sts, pods, current, update)
        pods, _ = store.list(PODS, ns, owned_by(sts))
        status = self.status(sts, pods, current, update, collisions)
        if status != (sts.get("status") or {}):
            latest = copy.deepcopy(sts)
            latest["status"] = status
            store.replace(STATEFULSETS, ns, name, latest, subresource="status")
        self.truncate_history(sts, pods, revisions, current, update)

    def manage(self, sts: Obj, pods: list[Obj], current: Obj, update: Obj) -> None:
        rt = self.rt
        store = rt.store
        ns = sts["metadata"]["namespace"]
        start = _start_ordinal(sts)
        count = _replicas(sts)
        pattern = re.compile(re.escape(sts["metadata"]["name"]) + r"-(\d+)$")
        replicas: list[Obj | None] = [None] * count
        condemned: list[tuple[int, Obj]] = []
        for pod in pods:
            match = pattern.match(pod["metadata"]["name"])
            if not match:
                continue
            ordinal = int(match.group(1))
            if start <= ordinal < start + count:
                replicas[ordinal - start] = pod
            else:
                condemned.append((ordinal, pod))
        condemned.sort(key=lambda item: item[0], reverse=True)
        monotonic = (sts.get("spec") or {}).get("podManagementPolicy", "OrderedReady") != "Parallel"
        min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)

        def healthy(pod: Obj | None) -> bool:
            return pod is not None and pod_running_and_ready(pod) and not deleting(pod)

        first_unhealthy: Obj | None = None
        for pod in [p for p in replicas if p is not None] + [p for _, p in reversed(condemned)]:
            if not healthy(pod):
                first_unhealthy = pod
                break

        def delete(pod: Obj) -> None:
            try:
                store.delete(PODS, ns, pod["metadata"]["name"])
            except errors.ApiError as err:
                if err.code != 404:
                    raise

        for index in range(count):
            slot = replicas[index]
            if slot is not None and pod_failed(slot):
                delete(slot)
                slot = replicas[index] = None
            if slot is None:
                replicas[index] = create_pod(rt, self._versioned_pod(sts, current, update, start + index))
                if monotonic:
                    return
                continue
            if deleting(slot) and monotonic:
                return
            if not pod_running_and_ready(slot) and monotonic:
                return
            if not pod_available(rt, slot, min_ready) and monotonic:
                return
        for _, pod in condemned:
            if deleting(pod):
                if monotonic:
                    return
                continue
            if monotonic and pod is not first_unhealthy and (
                    not pod_running_and_ready(pod) or not pod_available(rt, pod, min_ready)):
                return
            delete(pod)
            if monotonic:
                return
        strategy = ((sts.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy == "OnDelete":
            return
        update_min = _partition(sts)
        for target in range(len(replicas) - 1, update_min - 1, -1):
            slot = replicas[target]
            if slot is None:
                return
            if _pod_revision(slot) != update["metadata"]["name"] and not deleting(slot):
                delete(slot)
                return
            if not healthy(slot):
                return

    # -- status -----------------------------------------------------------------------------------------------

    def status(self, sts: Obj, pods: list[Obj], current: Obj, update: Obj, collisions: int) -> Obj:
        rt = self.rt
        min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
        replicas = ready = available = current_count = updated = 0
        for pod in pods:
            replicas += 1
            if pod_running_and_ready(pod) and pod_ready(pod):
                ready += 1
                if pod_available(rt, pod, min_ready):
                    available += 1
            if not deleting(pod):
                revision = _pod_revision(pod)
                if revision == current["metadata"]["name"]:
                    current_count += 1
                if revision == update["metadata"]["name"]:
                    updated += 1
        current_name = current["metadata"]["name"]
        strategy = ((sts.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy == "RollingUpdate" and updated == replicas and ready == replicas:
            current_count = updated
            current_name = update["metadata"]["name"]
        status: Obj = {}
        if sts["metadata"].get("generation"):
            status["observedGeneration"] = int(sts["metadata"]["generation"])
        status["replicas"] = replicas
        for key, value in (("readyReplicas", ready), ("currentReplicas", current_count),
                           ("updatedReplicas", updated)):
            if value:
                status[key] = value
        status["currentRevision"] = current_name
        status["updateRevision"] = update["metadata"]["name"]
        status["collisionCount"] = collisions
        status["availableReplicas"] = available
        return status

    # -- history limit ----------------------------------------------------------------------------------------

    def truncate_history(self, sts: Obj, pods: list[Obj], revisions: list[Obj], current: Obj,
                         update: Obj) -> None:
        live = {current["metadata"]["name"], update["metadata"]["name"]}
        live.update(_pod_revision(pod) for pod in pods)
        old = [cr for cr in revisions if cr["metadata"]["name"] not in live]
        limit = (sts.get("spec") or {}).get("revisionHistoryLimit")
        limit = 10 if limit is None else int(limit)
        if len(old) <= limit:
            return
        for cr in old[:len(old) - limit]:
            history.delete(self.rt, cr)
