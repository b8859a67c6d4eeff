"""The simulated kubelet, plus the pod and ownership helpers every workload controller shares.

A pod "starts" when the kubelet first sees it and becomes Ready ``knobs.ready_delay`` simulated seconds later,
unless one of its images is bad (``knobs.image_is_bad``): then it stays Pending with the container waiting in
``ErrImagePull`` and, after the first pull attempt, ``ImagePullBackOff``, as a real node reports an image that
cannot be pulled. Statuses are complete (conditions, container statuses, IPs, QoS class) so strict clients
deserialise them.

Precise times live in ``TimeBook`` keyed by uid because API timestamps only have second precision.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import errors
from ..clock import Clock
from ..knobs import Knobs
from ..resources import PODS, ResourceType
from ..store import Store

Obj = dict[str, Any]

log = logging.getLogger("kubesim.controllers")


# -- shared runtime -------------------------------------------------------------------------------------------


@dataclass
class TimeBook:
    """Precise simulated times (seconds since the epoch) keyed by object uid."""

    pod_started: dict[str, float] = field(default_factory=dict)
    pod_ready: dict[str, float] = field(default_factory=dict)
    # deployment uid -> (Progressing lastUpdateTime as written, the precise time behind it)
    progress: dict[str, tuple[str, float]] = field(default_factory=dict)


@dataclass
class Runtime:
    """What a controller needs: the store, the knobs, the clock, precise times and a way to ask for a wake-up."""

    store: Store
    knobs: Knobs
    clock: Clock
    wake_at: Callable[[float], None]
    times: TimeBook = field(default_factory=TimeBook)

    def now(self) -> float:
        return self.clock.now()

    def stamp(self, at: float | None = None) -> str:
        return self.clock.timestamp(at)


# -- ownership ------------------------------------------------------------------------------------------------


def controller_ref(owner: Obj) -> Obj:
    return {
        "apiVersion": owner.get("apiVersion", "apps/v1"),
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_uid(obj: Obj) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            uid = ref.get("uid")
            return str(uid) if uid is not None else None
    return None


def owned_by(owner: Obj) -> Callable[[Obj], bool]:
    uid = owner["metadata"]["uid"]
    return lambda obj: controller_uid(obj) == uid


def annotations_of(obj: Obj) -> dict[str, str]:
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta.get("annotations"), dict):
        meta["annotations"] = {}
    result: dict[str, str] = meta["annotations"]
    return result


def labels_of(obj: Obj) -> dict[str, str]:
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta.get("labels"), dict):
        meta["labels"] = {}
    result: dict[str, str] = meta["labels"]
    return result


def deleting(obj: Obj) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def is_conflict(err: errors.ApiError) -> bool:
    return err.code in (404, 409)


def sync_each(rt: Runtime, resource: ResourceType, sync: Callable[[Obj], None]) -> set[str]:
    """Run ``sync`` on every object of ``resource``; one that changed or vanished under us (409/404) waits for
    the next round, like a requeue. Returns the uids seen, so callers can forget state of deleted objects."""
    objects, _ = rt.store.list(resource)
    for obj in objects:
        try:
            sync(obj)
        except errors.ApiError as err:
            if not is_conflict(err):
                raise
            log.debug("%s %s: %s", resource.singular, obj["metadata"]["name"], err.message)
    return {obj["metadata"]["uid"] for obj in objects}


# -- pod predicates -------------------------------------------------------------------------------------------


def pod_condition(pod: Obj, kind: str) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def pod_ready(pod: Obj) -> bool:
    cond = pod_condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def pod_running_and_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and pod_ready(pod)


def pod_active(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and not deleting(pod)


def pod_failed(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def ready_since(rt: Runtime, pod: Obj) -> float | None:
    """Precise time the pod became Ready (falls back to the condition's second-precision timestamp)."""
    if not pod_ready(pod):
        return None
    uid = pod["metadata"]["uid"]
    if uid in rt.times.pod_ready:
        return rt.times.pod_ready[uid]
    cond = pod_condition(pod, "Ready") or {}
    stamp = cond.get("lastTransitionTime")
    return Clock.parse(stamp) if isinstance(stamp, str) else rt.now()


def pod_available(rt: Runtime, pod: Obj, min_ready_seconds: int) -> bool:
    """Ready for at least ``min_ready_seconds``; asks for a wake-up when it will become available."""
    since = ready_since(rt, pod)
    if since is None:
        return False
    if min_ready_seconds <= 0:
        return True
    due = since + min_ready_seconds
    if rt.now() >= due:
        return True
    rt.wake_at(due)
    return False


def pod_images(pod_or_template: Obj) -> list[str]:
    spec = pod_or_template.get("spec") or {}
    return [str(c.get("image", "")) for key in ("initContainers", "containers") for c in spec.get(key) or []]


# -- creating pods ---------------------------------------------------------------------------------------------

_DEFAULT_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
)


def node_names(knobs: Knobs) -> list[str]:
    return [f"node-{i}" for i in range(1, max(int(knobs.daemonset_nodes), 1) + 1)]


def pick_node(knobs: Knobs, key: str) -> str:
    """A stable pseudo-random node for a non-DaemonSet pod ("the scheduler")."""
    nodes = node_names(knobs)
    return nodes[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(nodes)]


def qos_class(spec: Obj) -> str:
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests_any = limits_any = False
    guaranteed = bool(containers)
    for container in containers:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or {}
        requests_any = requests_any or bool(requests)
        limits_any = limits_any or bool(limits)
        for res in ("cpu", "memory"):
            if res not in limits or requests.get(res, limits[res]) != limits[res]:
                guaranteed = False
    if guaranteed:
        return "Guaranteed"
    if requests_any or limits_any:
        return "Burstable"
    return "BestEffort"


def new_pod(template: Obj, owner: Obj, *, name: str | None = None, generate_name: str | None = None,
            extra_labels: dict[str, str] | None = None, node: str | None = None) -> Obj:
    """A complete Pod object from a pod template, controlled by ``owner`` (API-server defaults applied)."""
    template = copy.deepcopy(template or {})
    tmeta = template.get("metadata") or {}
    meta: Obj = {"namespace": owner["metadata"]["namespace"]}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_name or owner["metadata"]["name"] + "-"
    pod_labels = dict(tmeta.get("labels") or {})
    pod_labels.update(extra_labels or {})
    if pod_labels:
        meta["labels"] = pod_labels
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    meta["ownerReferences"] = [controller_ref(owner)]
    spec: Obj = template.get("spec") or {}
    spec.setdefault("containers", [])
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = list(spec.get("tolerations") or [])
    for default in _DEFAULT_TOLERATIONS:
        if not any(t.get("key") == default["key"] for t in tolerations):
            tolerations.append(dict(default))
    spec["tolerations"] = tolerations
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            container.setdefault("resources", {})
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("imagePullPolicy", "IfNotPresent")
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {"phase": "Pending", "qosClass": qos_class(spec)},
    }


def create_pod(rt: Runtime, pod: Obj) -> Obj:
    created = rt.store.create(PODS, pod["metadata"]["namespace"], pod)
    rt.times.pod_started[created["metadata"]["uid"]] = rt.now()
    return created


# -- the kubelet ------------------------------------------------------------------------------------------------


def _normal_image(image: str) -> str:
    """How containerd reports an image reference: registry and tag filled in."""
    if "@" in image:
        return image
    name = image
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + (name if "/" in name else "library/" + name)
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _ip(prefix: str, key: str) -> str:
    digest = int(_digest(key)[:8], 16)
    return f"{prefix}.{(digest >> 8) % 254 + 1}.{digest % 254 + 1}"


class Kubelet:
    """Moves pods through Pending → Running/Ready, or keeps them in an image-pull failure."""

    def __init__(self, rt: Runtime):
        self.rt = rt

    def sync_all(self) -> None:
        live = sync_each(self.rt, PODS, self.sync_pod)
        for book in (self.rt.times.pod_started, self.rt.times.pod_ready):
            for uid in [uid for uid in book if uid not in live]:
                del book[uid]

    def sync_pod(self, pod: Obj) -> None:
        if deleting(pod) or pod_failed(pod):
            return
        rt = self.rt
        uid = pod["metadata"]["uid"]
        now = rt.now()
        started = rt.times.pod_started.setdefault(uid, now)
        status = self.desired_status(pod, started, now)
        if status != pod.get("status"):
            pod["status"] = status
            rt.store.replace(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], pod,
                             subresource="status")

    def desired_status(self, pod: Obj, started: float, now: float) -> Obj:
        rt = self.rt
        knobs = rt.knobs
        spec = pod.get("spec") or {}
        uid = pod["metadata"]["uid"]
        containers = list(spec.get("containers") or [])
        init_containers = list(spec.get("initContainers") or [])
        bad = [c for c in init_containers + containers if knobs.image_is_bad(str(c.get("image", "")))]
        due = started + max(float(knobs.ready_delay), 0.0)
        node = spec.get("nodeName") or "node-1"
        started_stamp = rt.stamp(started)
        status: Obj = {"phase": "Pending"}
        host_ip = f"10.0.0.{(int(node.rsplit('-', 1)[-1]) if node.rsplit('-', 1)[-1].isdigit() else 1) + 1}"
        pod_ip = _ip("10.244", uid)
        if uid in rt.times.pod_ready:
            # Once running, a pod stays running: its images were pulled, so marking an image bad (or a longer
            # ready_delay) later only affects pods started after that, as on a real node.
            state = "running"
        elif bad:
            state = "backoff" if now >= due else "pulling"
            if now < due:
                rt.wake_at(due)
        elif now >= due:
            state = "running"
        else:
            state = "creating"
            rt.wake_at(due)
        if state == "running":
            ready_at = rt.times.pod_ready.setdefault(uid, due)
        else:
            rt.times.pod_ready.pop(uid, None)
            ready_at = None
        ready = state == "running"
        sandbox = state != "creating"
        if state == "creating":
            unready = [str(c.get("name")) for c in containers]
        else:
            unready = [str(c.get("name")) for c in containers if knobs.image_is_bad(str(c.get("image", "")))]

        def cond(kind: str, ok: bool, at: float, reason: str | None = None, message: str | None = None) -> Obj:
            item: Obj = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None,
                         "lastTransitionTime": rt.stamp(at)}
            if reason:
                item["reason"] = reason
            if message:
                item["message"] = message
            return item

        ready_time = ready_at if ready_at is not None else started
        not_ready_msg = f"containers with unready status: [{' '.join(unready)}]"
        conditions = [
            cond("PodReadyToStartContainers", sandbox, started),
            cond("Initialized", True, started),
            cond("Ready", ready, ready_time, None if ready else "ContainersNotReady",
                 None if ready else not_ready_msg),
            cond("ContainersReady", ready, ready_time, None if ready else "ContainersNotReady",
                 None if ready else not_ready_msg),
            cond("PodScheduled", True, started),
        ]
        status["conditions"] = conditions
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
        if sandbox:
            status["podIP"] = pod_ip
            status["podIPs"] = [{"ip": pod_ip}]
        status["startTime"] = started_stamp
        if ready:
            status["phase"] = "Running"

        def container_status(container: Obj, init: bool) -> Obj:
            image = str(container.get("image", ""))
            name = str(container.get("name", ""))
            item: Obj = {"name": name, "image": _normal_image(image), "imageID": "", "ready": False,
                         "restartCount": 0, "started": False, "lastState": {}}
            if knobs.image_is_bad(image):
                if state == "backoff":
                    waiting = {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
                else:
                    waiting = {"reason": "ErrImagePull",
                               "message": f'rpc error: code = NotFound desc = failed to pull and unpack image '
                                          f'"{_normal_image(image)}": not found'}
                item["state"] = {"waiting": waiting}
            elif state == "creating":
                item["state"] = {"waiting": {"reason": "ContainerCreating"}}
            else:
                item["imageID"] = f"{_normal_image(image).rsplit(':', 1)[0]}@sha256:{_digest(image)}"
                item["containerID"] = f"containerd://{_digest(uid + name)}"
                if init:
                    item["state"] = {"terminated": {"exitCode": 0, "reason": "Completed",
                                                    "startedAt": started_stamp, "finishedAt": started_stamp,
                                                    "containerID": item["containerID"]}}
                else:
                    item["ready"] = True
                    item["started"] = True
                    item["state"] = {"running": {"startedAt": rt.stamp(ready_time)}}
            return item

        if init_containers:
            status["initContainerStatuses"] = [container_status(c, True) for c in init_containers]
        status["containerStatuses"] = [container_status(c, False) for c in containers]
        status["qosClass"] = qos_class(spec)
        return status
