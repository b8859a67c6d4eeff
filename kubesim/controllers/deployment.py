"""The Deployment controller: revisions, ReplicaSets, rolling/recreate rollouts, conditions and pruning.

It follows upstream's behaviour (``pkg/controller/deployment``): the ReplicaSet whose template equals the
Deployment's (ignoring the ``pod-template-hash`` label) is the new one; its revision becomes max(old) + 1, the
number it had before is appended to ``deployment.kubernetes.io/revision-history``; the Deployment's annotations
(minus the skip list) are copied onto it on every sync; old ReplicaSets are scaled down within
maxSurge/maxUnavailable and pruned beyond ``revisionHistoryLimit``; the Progressing condition times out after
``progressDeadlineSeconds`` without progress.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from .. import errors
from ..clock import Clock
from ..resources import DEPLOYMENTS, PODS, REPLICASETS
from . import hashing
from .kubelet import (
    Obj,
    Runtime,
    annotations_of,
    controller_ref,
    deleting,
    owned_by,
    pod_active,
    sync_each,
)

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
SKIP_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deployment.kubernetes.io/error-selector-overlapping-with",
    "deployment.kubernetes.io/selector-updated-at",
})
REVISION_HISTORY_MAX_CHARS = 2000
NO_DEADLINE = 2**31 - 1

# Progressing / Available reasons
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


# -- small helpers --------------------------------------------------------------------------------------------


def revision_of(obj: Obj) -> int:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION)
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def spec_replicas(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_int(obj: Obj, key: str) -> int:
    return int((obj.get("status") or {}).get(key) or 0)


def _scaled_value(value: Any, total: int, round_up: bool) -> int:
    """An int-or-percent value against ``total`` (percentages rounded up or down)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        try:
            percent = int(text[:-1])
        except ValueError:
            return 0
        exact = percent * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    try:
        return int(text)
    except ValueError:
        return 0


def is_rolling(d: Obj) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against spec.replicas; both zero means unavailable 1."""
    rolling = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    desired = spec_replicas(d)
    surge = _scaled_value(rolling.get("maxSurge", "25%"), desired, True)
    unavailable = _scaled_value(rolling.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Obj) -> int:
    return fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d) or spec_replicas(d) == 0:
        return 0
    return min(fenceposts(d)[1], spec_replicas(d))


def has_deadline(d: Obj) -> bool:
    value = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return value is not None and int(value) != NO_DEADLINE


def get_condition(status: Obj, kind: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def remove_condition(status: Obj, kind: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if not status["conditions"]:
        del status["conditions"]


def sum_spec(rss: list[Obj]) -> int:
    return sum(spec_replicas(rs) for rs in rss)


def sum_status(rss: list[Obj], key: str) -> int:
    return sum(status_int(rs, key) for rs in rss)


def active(rss: list[Obj]) -> list[Obj]:
    return [rs for rs in rss if spec_replicas(rs) > 0]


def by_creation(rs: Obj) -> tuple[str, str]:
    meta = rs["metadata"]
    return (meta.get("creationTimestamp", ""), meta["name"])


def deployment_complete(d: Obj, status: Obj) -> bool:
    replicas = spec_replicas(d)
    return (int(status.get("updatedReplicas") or 0) == replicas
            and int(status.get("replicas") or 0) == replicas
            and int(status.get("availableReplicas") or 0) == replicas
            and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0))


def deployment_progressing(d: Obj, new: Obj) -> bool:
    old = d.get("status") or {}

    def get(status: Obj, key: str) -> int:
        return int(status.get(key) or 0)

    old_old = get(old, "replicas") - get(old, "updatedReplicas")
    new_old = get(new, "replicas") - get(new, "updatedReplicas")
    return (get(new, "updatedReplicas") > get(old, "updatedReplicas") or new_old < old_old
            or get(new, "readyReplicas") > get(old, "readyReplicas")
            or get(new, "availableReplicas") > get(old, "availableReplicas"))


class DeploymentController:
    def __init__(self, rt: Runtime):
        self.rt = rt

    # -- plumbing -------------------------------------------------------------------------------------------

    def sync_all(self) -> None:
        live = sync_each(self.rt, DEPLOYMENTS, self.sync)
        for uid in [uid for uid in self.rt.times.progress if uid not in live]:
            del self.rt.times.progress[uid]

    def _condition(self, kind: str, status: str, reason: str, message: str) -> Obj:
        stamp = self.rt.stamp()
        return {"type": kind, "status": status, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
                "reason": reason, "message": message}

    def _set_condition(self, d: Obj, status: Obj, cond: Obj) -> None:
        """Upstream's SetDeploymentCondition: no-op on same status and reason; keep the transition time."""
        current = get_condition(status, cond["type"])
        if current is not None and current.get("status") == cond["status"] and \
                current.get("reason") == cond["reason"]:
            return
        if current is not None and current.get("status") == cond["status"]:
            cond["lastTransitionTime"] = current.get("lastTransitionTime", cond["lastTransitionTime"])
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]]
        conditions.append(cond)
        status["conditions"] = conditions
        if cond["type"] == "Progressing":
            self.rt.times.progress[d["metadata"]["uid"]] = (cond["lastUpdateTime"], self.rt.now())

    def _write_status(self, d: Obj, status: Obj) -> Obj:
        if status == (d.get("status") or {}):
            return d
        d = copy.deepcopy(d)
        d["status"] = status
        return self.rt.store.replace(DEPLOYMENTS, d["metadata"]["namespace"], d["metadata"]["name"], d,
                                     subresource="status")

    def _write(self, d: Obj) -> Obj:
        return self.rt.store.replace(DEPLOYMENTS, d["metadata"]["namespace"], d["metadata"]["name"], d)

    def _update_rs(self, rs: Obj) -> Obj:
        return self.rt.store.replace(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"], rs)

    # -- the sync loop --------------------------------------------------------------------------------------

    def sync(self, d: Obj) -> None:
        if deleting(d):
            return
        selector = (d.get("spec") or {}).get("selector") or {}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            status = copy.deepcopy(d.get("status") or {})
            status["observedGeneration"] = int(d["metadata"].get("generation") or 1)
            self._write_status(d, status)
            return
        rss, _ = self.rt.store.list(REPLICASETS, d["metadata"]["namespace"], owned_by(d))
        rss = [rs for rs in rss if not deleting(rs)]
        d = self.check_paused_conditions(d)
        if (d.get("spec") or {}).get("paused"):
            self.sync_scaling(d, rss)
            return
        if self.is_scaling_event(d, rss):
            self.sync_scaling(d, rss)
            return
        if is_rolling(d):
            self.rollout_rolling(d, rss)
        else:
            self.rollout_recreate(d, rss)

    def check_paused_conditions(self, d: Obj) -> Obj:
        if not has_deadline(d):
            return d
        status = copy.deepcopy(d.get("status") or {})
        cond = get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == TIMED_OUT:
            return d
        paused_cond = cond is not None and cond.get("reason") == PAUSED
        paused = bool((d.get("spec") or {}).get("paused"))
        if paused and not paused_cond:
            self._set_condition(d, status, self._condition("Progressing", "Unknown", PAUSED, "Deployment is paused"))
        elif not paused and paused_cond:
            self._set_condition(d, status, self._condition("Progressing", "Unknown", RESUMED,
                                                           "Deployment is resumed"))
        else:
            return d
        return self._write_status(d, status)

    # -- revisions and the new ReplicaSet --------------------------------------------------------------------

    def split(self, d: Obj, rss: list[Obj]) -> tuple[Obj | None, list[Obj]]:
        template = (d.get("spec") or {}).get("template") or {}
        new = None
        for rs in sorted(rss, key=by_creation):
            if hashing.equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
                new = rs
                break
        old = [rs for rs in rss if new is None or rs["metadata"]["uid"] != new["metadata"]["uid"]]
        return new, old

    def set_new_rs_annotations(self, d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
        changed = False
        rs_ann = annotations_of(rs)
        for key, value in ((d.get("metadata") or {}).get("annotations") or {}).items():
            if key in SKIP_ANNOTATIONS or rs_ann.get(key) == value:
                continue
            rs_ann[key] = value
            changed = True
        had_revision = REVISION in rs_ann
        old_text = rs_ann.get(REVISION, "")
        try:
            old_revision = int(old_text) if old_text else 0
        except ValueError:
            old_revision = 0
        if old_revision < new_revision:
            rs_ann[REVISION] = str(new_revision)
            changed = True
            if had_revision:
                history = rs_ann.get(REVISION_HISTORY, "")
                if not history:
                    rs_ann[REVISION_HISTORY] = old_text
                else:
                    parts = history.split(",")
                    total = len(history) + len(old_text) + 1
                    start = 0
                    while total > REVISION_HISTORY_MAX_CHARS and start < len(parts):
                        total -= len(parts[start]) + 1
                        start += 1
                    if total <= REVISION_HISTORY_MAX_CHARS:
                        rs_ann[REVISION_HISTORY] = ",".join(parts[start:] + [old_text])
        if not exists and self.set_replicas_annotations(d, rs):
            changed = True
        return changed

    def set_replicas_annotations(self, d: Obj, rs: Obj) -> bool:
        desired = str(spec_replicas(d))
        maximum = str(spec_replicas(d) + max_surge(d))
        rs_ann = annotations_of(rs)
        if rs_ann.get(DESIRED_REPLICAS) == desired and rs_ann.get(MAX_REPLICAS) == maximum:
            return False
        rs_ann[DESIRED_REPLICAS] = desired
        rs_ann[MAX_REPLICAS] = maximum
        return True

    def get_new_rs(self, d: Obj, rss: list[Obj], create: bool) -> tuple[Obj, Obj | None, list[Obj]]:
        """(deployment, new ReplicaSet or None, old ReplicaSets), syncing revisions and annotations."""
        new, old = self.split(d, rss)
        new_revision = max((revision_of(rs) for rs in old), default=0) + 1
        if new is not None:
            rs = copy.deepcopy(new)
            changed = self.set_new_rs_annotations(d, rs, new_revision, exists=True)
            min_ready = (d.get("spec") or {}).get("minReadySeconds") or 0
            if changed or ((rs.get("spec") or {}).get("minReadySeconds") or 0) != min_ready:
                if min_ready:
                    rs["spec"]["minReadySeconds"] = min_ready
                else:
                    rs["spec"].pop("minReadySeconds", None)
                return d, self._update_rs(rs), old  # the Deployment's revision follows on the next sync
            d = self.set_deployment_revision(d, annotations_of(rs).get(REVISION, str(new_revision)))
            status = copy.deepcopy(d.get("status") or {})
            if has_deadline(d) and get_condition(status, "Progressing") is None:
                self._set_condition(d, status, self._condition(
                    "Progressing", "True", FOUND_NEW_RS, f'Found new replica set "{rs["metadata"]["name"]}"'))
                d = self._write_status(d, status)
            return d, rs, old
        if not create:
            return d, None, old

        template = copy.deepcopy((d.get("spec") or {}).get("template") or {})
        collisions = (d.get("status") or {}).get("collisionCount")
        pod_hash = hashing.pod_template_hash(template, collisions)
        tmeta = template.setdefault("metadata", {})
        tlabels = dict(tmeta.get("labels") or {})
        tlabels[hashing.POD_TEMPLATE_HASH] = pod_hash
        tmeta["labels"] = tlabels
        selector = copy.deepcopy((d.get("spec") or {}).get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), hashing.POD_TEMPLATE_HASH: pod_hash}
        name = f'{d["metadata"]["name"]}-{pod_hash}'
        spec: Obj = {"replicas": 0, "selector": selector, "template": template}
        if (d.get("spec") or {}).get("minReadySeconds"):
            spec["minReadySeconds"] = d["spec"]["minReadySeconds"]
        new_rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": d["metadata"]["namespace"], "labels": dict(tlabels),
                         "ownerReferences": [controller_ref(d)]},
            "spec": spec,
        }
        new_rs["spec"]["replicas"] = self.new_rs_new_replicas(d, old + [new_rs], new_rs)
        self.set_new_rs_annotations(d, new_rs, new_revision, exists=False)
        try:
            created = self.rt.store.create(REPLICASETS, d["metadata"]["namespace"], new_rs)
        except errors.ApiError as err:
            if err.code != 409:
                raise
            existing = self.rt.store.find(REPLICASETS, d["metadata"]["namespace"], name)
            if existing is not None and owned_by(d)(existing) and hashing.equal_ignore_hash(
                    (existing.get("spec") or {}).get("template"), (d.get("spec") or {}).get("template")):
                return d, existing, old
            status = copy.deepcopy(d.get("status") or {})
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
            self._write_status(d, status)
            raise errors.conflict("apps", "deployments", d["metadata"]["name"], "hash collision") from err
        d = self.set_deployment_revision(d, str(new_revision))
        if has_deadline(d):
            status = copy.deepcopy(d.get("status") or {})
            self._set_condition(d, status, self._condition(
                "Progressing", "True", NEW_RS_CREATED, f'Created new replica set "{name}"'))
            d = self._write_status(d, status)
        return d, created, old

    def set_deployment_revision(self, d: Obj, revision: str) -> Obj:
        if annotations_of(d).get(REVISION) == revision:
            return d
        d = copy.deepcopy(d)
        annotations_of(d)[REVISION] = revision
        return self._write(d)

    # -- scaling -----------------------------------------------------------------------------------------------

    def new_rs_new_replicas(self, d: Obj, all_rss: list[Obj], new: Obj) -> int:
        replicas = spec_replicas(d)
        if not is_rolling(d):
            return replicas
        current = sum_spec(all_rss)
        max_total = replicas + max_surge(d)
        if current >= max_total:
            return spec_replicas(new)
        scale_up = min(max_total - current, replicas - spec_replicas(new))
        return spec_replicas(new) + scale_up

    def scale_rs(self, d: Obj, rs: Obj, count: int) -> tuple[bool, Obj]:
        if spec_replicas(rs) == count:
            return False, rs
        rs = copy.deepcopy(rs)
        rs["spec"]["replicas"] = count
        self.set_replicas_annotations(d, rs)
        return True, self._update_rs(rs)

    def is_scaling_event(self, d: Obj, rss: list[Obj]) -> bool:
        for rs in active(rss):
            desired = ((rs.get("metadata") or {}).get("annotations") or {}).get(DESIRED_REPLICAS)
            if desired is not None and desired.isdigit() and int(desired) != spec_replicas(d):
                return True
        return False

    def sync_scaling(self, d: Obj, rss: list[Obj]) -> None:
        """Upstream's ``sync``: scaling events and paused Deployments (no new ReplicaSet is created)."""
        d, new, old = self.get_new_rs(d, rss, create=False)
        self.scale(d, new, old)
        rss, _ = self.rt.store.list(REPLICASETS, d["metadata"]["namespace"], owned_by(d))
        new, old = self.split(d, [rs for rs in rss if not deleting(rs)])
        if (d.get("spec") or {}).get("paused"):
            self.cleanup(d, old)
        status = self.calculate_status(d, old + ([new] if new else []), new)
        self._write_status(d, status)

    def scale(self, d: Obj, new: Obj | None, old: list[Obj]) -> None:
        """Upstream's ``scale``: one active (or the latest) ReplicaSet takes the whole size; otherwise the
        difference is spread proportionally over the active ReplicaSets."""
        replicas = spec_replicas(d)
        newest_first = sorted(old, key=by_creation, reverse=True)
        actives = active(newest_first + ([new] if new else []))
        target: Obj | None = None
        if len(actives) == 1:
            target = actives[0]
        elif not actives and (new is not None or newest_first):
            target = new if new is not None else newest_first[0]
        if target is not None:
            if spec_replicas(target) != replicas:
                self.scale_rs(d, target, replicas)
            return
        if not actives:
            return
        if new is not None and self.saturated(d, new):
            for rs in active(old):
                self.scale_rs(d, rs, 0)
            return
        if not is_rolling(d):
            return
        allowed = replicas + max_surge(d) if replicas > 0 else 0
        to_add = allowed - sum_spec(actives)
        if to_add > 0:  # larger first; equal sizes: newer first
            actives.sort(key=lambda rs: by_creation(rs), reverse=True)
            actives.sort(key=spec_replicas, reverse=True)
        elif to_add < 0:  # larger first; equal sizes: older first
            actives.sort(key=by_creation)
            actives.sort(key=spec_replicas, reverse=True)
        added = 0
        sizes: list[int] = []
        for rs in actives:
            proportion = self.proportion(d, rs, to_add, added) if to_add else 0
            sizes.append(spec_replicas(rs) + proportion)
            added += proportion
        for i, rs in enumerate(actives):
            size = sizes[i]
            if i == 0 and to_add:
                size = max(size + to_add - added, 0)
            if spec_replicas(rs) != size or self._replicas_annotations_stale(d, rs):
                rs = copy.deepcopy(rs)
                rs["spec"]["replicas"] = size
                self.set_replicas_annotations(d, rs)
                self._update_rs(rs)

    def _replicas_annotations_stale(self, d: Obj, rs: Obj) -> bool:
        probe = copy.deepcopy(rs)
        return self.set_replicas_annotations(d, probe)

    @staticmethod
    def saturated(d: Obj, rs: Obj) -> bool:
        desired = ((rs.get("metadata") or {}).get("annotations") or {}).get(DESIRED_REPLICAS, "")
        replicas = spec_replicas(d)
        return (spec_replicas(rs) == replicas and desired.isdigit() and int(desired) == replicas
                and status_int(rs, "availableReplicas") == replicas)

    def proportion(self, d: Obj, rs: Obj, to_add: int, added: int) -> int:
        if spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
            return 0
        if spec_replicas(d) == 0:
            fraction = -spec_replicas(rs)
        else:
            target = spec_replicas(d) + max_surge(d)
            annotated = ((rs.get("metadata") or {}).get("annotations") or {}).get(MAX_REPLICAS, "")
            base = int(annotated) if annotated.isdigit() else status_int(d, "replicas")
            if base <= 0:
                fraction = 0
            else:
                exact = spec_replicas(rs) * target / base
                fraction = int(math.floor(exact + 0.5)) - spec_replicas(rs)
        allowed = to_add - added
        return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)

    # -- rolling update ---------------------------------------------------------------------------------------

    def rollout_rolling(self, d: Obj, rss: list[Obj]) -> None:
        d, new, old = self.get_new_rs(d, rss, create=True)
        if new is None:
            return
        all_rss = old + [new]
        if self.reconcile_new_rs(d, all_rss, new):
            self.sync_rollout_status(d, new)
            return
        if self.reconcile_old_rss(d, all_rss, active(old), new):
            self.sync_rollout_status(d, new)
            return
        if deployment_complete(d, d.get("status") or {}):
            self.cleanup(d, old)
        self.sync_rollout_status(d, new)

    def reconcile_new_rs(self, d: Obj, all_rss: list[Obj], new: Obj) -> bool:
        replicas = spec_replicas(d)
        if spec_replicas(new) == replicas:
            return False
        if spec_replicas(new) > replicas:
            return self.scale_rs(d, new, replicas)[0]
        return self.scale_rs(d, new, self.new_rs_new_replicas(d, all_rss, new))[0]

    def reconcile_old_rss(self, d: Obj, all_rss: list[Obj], old: list[Obj], new: Obj) -> bool:
        if sum_spec(old) == 0:
            return False
        all_count = sum_spec(all_rss)
        min_available = spec_replicas(d) - max_unavailable(d)
        new_unavailable = spec_replicas(new) - status_int(new, "availableReplicas")
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        old, cleaned = self.cleanup_unhealthy(d, old, max_scaled_down)
        scaled = self.scale_down_old_for_rolling(d, old + [new], old)
        return cleaned + scaled > 0

    def cleanup_unhealthy(self, d: Obj, old: list[Obj], max_cleanup: int) -> tuple[list[Obj], int]:
        total = 0
        result = []
        for rs in sorted(old, key=by_creation):
            if total >= max_cleanup or spec_replicas(rs) == 0 or \
                    spec_replicas(rs) == status_int(rs, "availableReplicas"):
                result.append(rs)
                continue
            count = min(max_cleanup - total, spec_replicas(rs) - status_int(rs, "availableReplicas"))
            _, rs = self.scale_rs(d, rs, spec_replicas(rs) - count)
            total += count
            result.append(rs)
        return result, total

    def scale_down_old_for_rolling(self, d: Obj, all_rss: list[Obj], old: list[Obj]) -> int:
        min_available = spec_replicas(d) - max_unavailable(d)
        available = sum_status(all_rss, "availableReplicas")
        if available <= min_available:
            return 0
        budget = available - min_available
        total = 0
        for rs in sorted(old, key=by_creation):
            if total >= budget:
                break
            if spec_replicas(rs) == 0:
                continue
            count = min(spec_replicas(rs), budget - total)
            self.scale_rs(d, rs, spec_replicas(rs) - count)
            total += count
        return total

    # -- recreate ----------------------------------------------------------------------------------------------

    def rollout_recreate(self, d: Obj, rss: list[Obj]) -> None:
        d, new, old = self.get_new_rs(d, rss, create=False)
        scaled = False
        for rs in active(old):
            changed, _ = self.scale_rs(d, rs, 0)
            scaled = scaled or changed
        if scaled:
            self.sync_rollout_status(d, new)
            return
        if self.old_pods_running(old):
            self.sync_rollout_status(d, new)
            return
        if new is None:
            d, new, old = self.get_new_rs(d, rss, create=True)
            if new is None:
                return
        self.scale_rs(d, new, spec_replicas(d))
        if deployment_complete(d, d.get("status") or {}):
            self.cleanup(d, old)
        self.sync_rollout_status(d, new)

    def old_pods_running(self, old: list[Obj]) -> bool:
        if sum_status(old, "replicas") > 0:
            return True
        for rs in old:
            pods, _ = self.rt.store.list(PODS, rs["metadata"]["namespace"], owned_by(rs))
            if any(pod_active(p) for p in pods):
                return True
        return False

    # -- pruning ------------------------------------------------------------------------------------------------

    def cleanup(self, d: Obj, old: list[Obj]) -> None:
        limit = (d.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        cleanable = [rs for rs in old if not deleting(rs)]
        diff = len(cleanable) - int(limit)
        if diff <= 0:
            return
        cleanable.sort(key=lambda rs: (revision_of(rs), by_creation(rs)))
        for rs in cleanable[:diff]:
            if status_int(rs, "replicas") != 0 or spec_replicas(rs) != 0 or \
                    int(rs["metadata"].get("generation") or 0) > status_int(rs, "observedGeneration"):
                continue
            try:
                self.rt.store.delete(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
            except errors.ApiError as err:
                if err.code != 404:
                    raise

    # -- status ----------------------------------------------------------------------------------------------

    def fresh_replicasets(self, d: Obj, new: Obj | None) -> tuple[Obj | None, list[Obj]]:
        rss, _ = self.rt.store.list(REPLICASETS, d["metadata"]["namespace"], owned_by(d))
        rss = [rs for rs in rss if not deleting(rs)]
        if new is None:
            return None, rss
        uid = new["metadata"]["uid"]
        fresh = next((rs for rs in rss if rs["metadata"]["uid"] == uid), None)
        return fresh, [rs for rs in rss if rs["metadata"]["uid"] != uid]

    def calculate_status(self, d: Obj, all_rss: list[Obj], new: Obj | None) -> Obj:
        available = sum_status(all_rss, "availableReplicas")
        total = sum_spec(all_rss)
        values = {
            "observedGeneration": int(d["metadata"].get("generation") or 1),
            "replicas": sum_status(all_rss, "replicas"),
            "updatedReplicas": status_int(new, "replicas") if new else 0,
            "readyReplicas": sum_status(all_rss, "readyReplicas"),
            "availableReplicas": available,
            "unavailableReplicas": max(total - available, 0),
        }
        status: Obj = {k: v for k, v in values.items() if v}  # omitempty
        old_status = d.get("status") or {}
        if old_status.get("conditions"):
            status["conditions"] = copy.deepcopy(old_status["conditions"])
        if old_status.get("collisionCount") is not None:
            status["collisionCount"] = old_status["collisionCount"]
        if available >= spec_replicas(d) - max_unavailable(d):
            cond = self._condition("Available", "True", MIN_AVAILABLE, "Deployment has minimum availability.")
        else:
            cond = self._condition("Available", "False", MIN_UNAVAILABLE,
                                   "Deployment does not have minimum availability.")
        self._set_condition(d, status, cond)
        return status

    def progress_time(self, d: Obj, cond: Obj) -> float:
        stamp = str(cond.get("lastUpdateTime") or "")
        known = self.rt.times.progress.get(d["metadata"]["uid"])
        if known is not None and known[0] == stamp:
            return known[1]
        try:
            return Clock.parse(stamp)
        except ValueError:
            return self.rt.now()

    def timed_out(self, d: Obj, status: Obj) -> bool:
        if not has_deadline(d):
            return False
        cond = get_condition(status, "Progressing")
        if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
            return False
        if cond.get("reason") == TIMED_OUT:
            return True
        due = self.progress_time(d, cond) + int(d["spec"]["progressDeadlineSeconds"])
        if self.rt.now() > due:
            return True
        self.rt.wake_at(due + 1e-3)
        return False

    def sync_rollout_status(self, d: Obj, new: Obj | None) -> None:
        new, old = self.fresh_replicasets(d, new)
        latest = self.rt.store.find(DEPLOYMENTS, d["metadata"]["namespace"], d["metadata"]["name"])
        if latest is None or latest["metadata"]["uid"] != d["metadata"]["uid"]:
            return
        if latest["metadata"]["resourceVersion"] != d["metadata"]["resourceVersion"]:
            raise errors.conflict("apps", "deployments", d["metadata"]["name"], "changed during sync")
        status = self.calculate_status(d, old + ([new] if new else []), new)
        if not has_deadline(d):
            if get_condition(status, "Progressing") is not None:
                remove_condition(status, "Progressing")
        current = get_condition(d.get("status") or {}, "Progressing")
        complete_before = (int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
                           and current is not None and current.get("reason") == NEW_RS_AVAILABLE)
        if has_deadline(d) and not complete_before:
            rs_name = new["metadata"]["name"] if new else None
            if deployment_complete(d, status):
                msg = f'ReplicaSet "{rs_name}" has successfully progressed.' if rs_name else \
                    f'Deployment "{d["metadata"]["name"]}" has successfully progressed.'
                self._set_condition(d, status, self._condition("Progressing", "True", NEW_RS_AVAILABLE, msg))
            elif deployment_progressing(d, status):
                msg = f'ReplicaSet "{rs_name}" is progressing.' if rs_name else \
                    f'Deployment "{d["metadata"]["name"]}" is progressing.'
                cond = self._condition("Progressing", "True", RS_UPDATED, msg)
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime", cond["lastTransitionTime"])
                    remove_condition(status, "Progressing")
                self._set_condition(d, status, cond)
            elif self.timed_out(d, status):
                msg = f'ReplicaSet "{rs_name}" has timed out progressing.' if rs_name else \
                    f'Deployment "{d["metadata"]["name"]}" has timed out progressing.'
                self._set_condition(d, status, self._condition("Progressing", "False", TIMED_OUT, msg))
        self._write_status(d, status)
