"""The ReplicaSet controller: keep ``spec.replicas`` pods alive and report what they are doing."""

from __future__ import annotations

from typing import Any

from .. import errors
from ..resources import PODS, REPLICASETS
from .kubelet import (
    Obj,
    Runtime,
    create_pod,
    deleting,
    new_pod,
    owned_by,
    pick_node,
    pod_active,
    pod_available,
    pod_ready,
    ready_since,
    sync_each,
)


def _deletion_rank(rt: Runtime, pod: Obj) -> tuple[Any, ...]:
    """Sort key: pods to delete first come first (upstream's preference, simplified)."""
    status = pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase", ""), 0)
    ready = pod_ready(pod)
    since = ready_since(rt, pod) or 0.0
    restarts = sum(int(c.get("restartCount", 0)) for c in status.get("containerStatuses") or [])
    started = rt.times.pod_started.get(pod["metadata"]["uid"], 0.0)
    return (bool((pod.get("spec") or {}).get("nodeName")), phase_rank, ready, -since, -restarts, -started,
            pod["metadata"]["name"])


def labels_match(pod: Obj, wanted: dict[str, str]) -> bool:
    have = (pod.get("metadata") or {}).get("labels") or {}
    return all(have.get(k) == v for k, v in wanted.items())


class ReplicaSetController:
    def __init__(self, rt: Runtime):
        self.rt = rt

    def sync_all(self) -> None:
        sync_each(self.rt, REPLICASETS, self.sync)

    def sync(self, rs: Obj) -> None:
        rt = self.rt
        store = rt.store
        meta = rs["metadata"]
        ns = meta["namespace"]
        spec = rs.get("spec") or {}
        pods, _ = store.list(PODS, ns, owned_by(rs))
        active = [p for p in pods if pod_active(p)]
        wanted = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
        if not deleting(rs):
            diff = len(active) - wanted
            if diff < 0:
                template = spec.get("template") or {}
                for _ in range(-diff):
                    pod = new_pod(template, rs, generate_name=meta["name"] + "-")
                    pod["spec"]["nodeName"] = pick_node(rt.knobs, f"{meta['uid']}/{len(active)}")
                    active.append(create_pod(rt, pod))
            elif diff > 0:
                doomed = sorted(active, key=lambda p: _deletion_rank(rt, p))[:diff]
                for pod in doomed:
                    try:
                        store.delete(PODS, ns, pod["metadata"]["name"])
                    except errors.ApiError as err:
                        if err.code != 404:
                            raise
                gone = {p["metadata"]["uid"] for p in doomed}
                active = [p for p in active if p["metadata"]["uid"] not in gone]
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        status: Obj = {"replicas": len(active)}
        counts = {
            "fullyLabeledReplicas": sum(1 for p in active if labels_match(p, template_labels)),
            "readyReplicas": sum(1 for p in active if pod_ready(p)),
            "availableReplicas": sum(1 for p in active if pod_available(rt, p, min_ready)),
        }
        status.update({k: v for k, v in counts.items() if v})  # omitempty, as the API server renders it
        if meta.get("generation"):
            status["observedGeneration"] = int(meta["generation"])
        if status != rs.get("status"):
            rs["status"] = status
            store.replace(REPLICASETS, ns, meta["name"], rs, subresource="status")
