"""The simulated kubelet, plus the pod and ownership helpers every workload controller shares.

A pod "starts" when the kubelet first sees it and becomes Ready ``knobs.ready_delay`` simulated seconds later,
unless one of its images is bad (``knobs.image_is_bad``): then it stays Pending with the container waiting in
``ErrImagePull`` and, after the first pull attempt, ``ImagePullBackOff``, as a real node reports an image that
cannot be pulled. Images that crash (``knobs.image_crashes``) run and exit with code 1 over and over
(``CrashLoopBackOff``); missing ConfigMaps and Secrets block containers (``CreateContainerConfigError``) or the
pod's volumes (``FailedMount``); init containers run one after the other before the main containers (see
``containers.py``). Statuses are complete (conditions, container statuses, IPs, QoS class) so strict clients
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
from .containers import CRASH_EXIT_CODE, crash_state, go_duration, missing_env, missing_volume

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
    # the kubelet's books, by pod uid: what each container's image does, when the volumes were mounted, when a
    # container first started ("uid/initContainers/name"), when its config was last missing, events recorded
    pod_plan: dict[str, dict[str, str]] = field(default_factory=dict)
    mount_ok: dict[str, float] = field(default_factory=dict)
    container_started: dict[str, float] = field(default_factory=dict)
    config_blocked: dict[str, float] = field(default_factory=dict)
    events_recorded: set[tuple[str, str]] = field(default_factory=set)


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


def node_labels(node: str) -> dict[str, str]:
    """The labels every simulated node carries (as a kubelet registers them)."""
    return {"kubernetes.io/hostname": node, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}


def unschedulable_message(knobs: Knobs, pod: Obj) -> str | None:
    """The scheduler's message when no simulated node matches the pod's ``nodeSelector``, else None."""
    wanted = (pod.get("spec") or {}).get("nodeSelector") or {}
    nodes = node_names(knobs)
    if not wanted or any(all(node_labels(n).get(k) == v for k, v in wanted.items()) for n in nodes):
        return None
    count = len(nodes)
    return (f"0/{count} nodes are available: {count} node(s) didn't match Pod's node affinity/selector. "
            f"preemption: 0/{count} nodes are available: {count} Preemption is not helpful for scheduling.")


def create_pod(rt: Runtime, pod: Obj) -> Obj:
    owner: Obj = next((ref for ref in pod["metadata"].get("ownerReferences") or [] if ref.get("controller")), {})
    if owner.get("kind") != "DaemonSet" and unschedulable_message(rt.knobs, pod) is not None:
        pod["spec"].pop("nodeName", None)  # the scheduler finds no node: the pod is never bound
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


DEFAULT_WAITING = "ContainerCreating"
INIT_WAITING = "PodInitializing"


@dataclass
class _View:
    """One container's status at one moment, and what the pod needs to know about it."""

    status: Obj
    ready: bool = False  # main container: running and Ready
    started: bool = False  # it has run at least once (the pod is Running)
    done_at: float | None = None  # init container: when it completed
    ready_at: float | None = None


class Kubelet:
    """Moves pods through Pending → Running/Ready; or keeps them failing the way a node would report it: an image
    that cannot be pulled, a container that crash-loops, a missing ConfigMap or Secret, a failing init container.

    What a pod's images do is decided when the kubelet first sees the pod (marking an image bad later only
    affects pods started after that, as on a real node whose images were already pulled). Events are recorded
    for containers that fail (and for the starts of crashing containers), with ``involvedObject`` the pod.
    """

    def __init__(self, rt: Runtime):
        self.rt = rt

    def sync_all(self) -> None:
        live = sync_each(self.rt, PODS, self.sync_pod)
        times = self.rt.times
        for book in (times.pod_started, times.pod_ready, times.pod_plan, times.mount_ok):
            for uid in [uid for uid in book if uid not in live]:
                del book[uid]
        for keyed in (times.container_started, times.config_blocked):
            for key in [key for key in keyed if key.split("/", 1)[0] not in live]:
                del keyed[key]
        for recorded in [key for key in times.events_recorded if key[0] not in live]:
            times.events_recorded.discard(recorded)

    def sync_pod(self, pod: Obj) -> None:
        if deleting(pod) or pod_failed(pod):
            return
        rt = self.rt
        uid = pod["metadata"]["uid"]
        now = rt.now()
        started = rt.times.pod_started.setdefault(uid, now)
        self._events: list[tuple[str, str, str, str, float, str | None]] = []
        unscheduled = None if (pod.get("spec") or {}).get("nodeName") else unschedulable_message(rt.knobs, pod)
        if unscheduled is not None:
            status = self.unscheduled_status(pod, started, unscheduled)
        else:
            status = self.desired_status(pod, started, now)
        if status != pod.get("status"):
            pod["status"] = status
            rt.store.replace(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], pod,
                             subresource="status")
        for key, kind, reason, message, at, field_path in self._events:
            self._record(pod, key, kind, reason, message, at, field_path)

    # -- events -----------------------------------------------------------------------------------------------

    def _event(self, key: str, kind: str, reason: str, message: str, at: float, field_path: str | None = None
               ) -> None:
        self._events.append((key, kind, reason, message, at, field_path))

    def _record(self, pod: Obj, key: str, kind: str, reason: str, message: str, at: float,
                field_path: str | None) -> None:
        """Record one occurrence (``key``) of an event once; a repeat of the same reason and message on the same
        pod counts up the existing Event (``count``, ``lastTimestamp``), as the event recorder aggregates."""
        rt = self.rt
        uid = pod["metadata"]["uid"]
        if (uid, key) in rt.times.events_recorded:
            return
        rt.times.events_recorded.add((uid, key))
        component = "default-scheduler" if reason == "FailedScheduling" else "kubelet"
        record_pod_event(rt, pod, kind, reason, message, at, field_path, component)

    # -- status -----------------------------------------------------------------------------------------------

    def _plan(self, pod: Obj) -> dict[str, str]:
        """What each container's image does ("ok", "bad": cannot be pulled, "crash"), decided once per pod."""
        uid = pod["metadata"]["uid"]
        plan = self.rt.times.pod_plan.get(uid)
        if plan is None:
            knobs = self.rt.knobs
            spec = pod.get("spec") or {}
            plan = {}
            for key in ("initContainers", "containers"):
                for c in spec.get(key) or []:
                    image = str(c.get("image", ""))
                    plan[f"{key}/{c.get('name')}"] = ("bad" if knobs.image_is_bad(image) else
                                                      "crash" if knobs.image_crashes(image) else "ok")
            self.rt.times.pod_plan[uid] = plan
        return plan

    def _finder(self, namespace: str) -> Callable[[str, str], Obj | None]:
        from ..resources import CONFIGMAPS, SECRETS

        def find(kind: str, name: str) -> Obj | None:
            return self.rt.store.find(CONFIGMAPS if kind == "configmap" else SECRETS, namespace, name)

        return find

    def desired_status(self, pod: Obj, started: float, now: float) -> Obj:
        if not hasattr(self, "_events"):
            self._events = []
        rt = self.rt
        knobs = rt.knobs
        spec = pod.get("spec") or {}
        meta = pod["metadata"]
        uid, namespace = meta["uid"], meta.get("namespace", "")
        containers = list(spec.get("containers") or [])
        init_containers = list(spec.get("initContainers") or [])
        plan = self._plan(pod)
        find = self._finder(namespace)
        due = started + max(float(knobs.ready_delay), 0.0)
        if uid in rt.times.pod_ready:  # a longer ready_delay set later only affects pods started after that
            due = min(due, rt.times.pod_ready[uid])
        default_waiting = INIT_WAITING if init_containers else DEFAULT_WAITING
        node = spec.get("nodeName") or "node-1"
        host_ip = f"10.0.0.{(int(node.rsplit('-', 1)[-1]) if node.rsplit('-', 1)[-1].isdigit() else 1) + 1}"
        pod_ip = _ip("10.244", uid)
        wakes: list[float] = []

        # the sandbox and its volumes: ready at `due`, unless a volume's ConfigMap/Secret is missing
        sandbox_at: float | None = None
        if now < due:
            wakes.append(due)
        elif uid in rt.times.mount_ok:
            sandbox_at = rt.times.mount_ok[uid]
        else:
            blocked = missing_volume(pod, find)
            if blocked is None:
                sandbox_at = rt.times.mount_ok.setdefault(uid, now if (uid, "mount") in rt.times.events_recorded
                                                          else due)
            else:
                volume, why = blocked
                self._event("mount", "Warning", "FailedMount",
                            f'MountVolume.SetUp failed for volume "{volume}" : {why}', now)

        def waiting(container: Obj, reason: str, message: str | None = None) -> Obj:
            item = self._base(container)
            item["state"] = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
            return item

        def view(container: Obj, key: str, reach: float | None, init: bool) -> _View:
            """The status of one container that may start at ``reach`` (None: not reached yet)."""
            name = str(container.get("name", ""))
            image = str(container.get("image", ""))
            field_path = f"spec.{key}{{{name}}}"
            kind = plan.get(f"{key}/{name}", "ok")
            if kind == "bad":
                pull_at = started if not init_containers and not init else reach
                if pull_at is None or now < pull_at:
                    return _View(waiting(container, default_waiting))
                backoff_at = pull_at + max(float(knobs.ready_delay), 0.0)
                self._event(f"pull:{key}/{name}", "Normal", "Pulling", f'Pulling image "{image}"', pull_at,
                            field_path)
                self._event(f"pull-failed:{key}/{name}", "Warning", "Failed",
                            f'Failed to pull image "{image}": {pull_error(image)}', pull_at, field_path)
                self._event(f"err-pull:{key}/{name}", "Warning", "Failed", "Error: ErrImagePull", pull_at,
                            field_path)
                if now < backoff_at:
                    wakes.append(backoff_at)
                    return _View(waiting(container, "ErrImagePull", pull_error(image)))
                self._event(f"pull-backoff:{key}/{name}", "Normal", "BackOff", f'Back-off pulling image "{image}"',
                            backoff_at, field_path)
                self._event(f"err-backoff:{key}/{name}", "Warning", "Failed", "Error: ImagePullBackOff",
                            backoff_at, field_path)
                return _View(waiting(container, "ImagePullBackOff", f'Back-off pulling image "{image}"'))
            if reach is None or now < reach:
                if reach is not None:
                    wakes.append(reach)
                return _View(waiting(container, default_waiting))
            book_key = f"{uid}/{key}/{name}"
            start = rt.times.container_started.get(book_key)
            if start is None:
                problem = missing_env(container, namespace, find)
                if problem is not None:
                    rt.times.config_blocked[book_key] = now
                    self._event(f"config:{key}/{name}:{problem}", "Warning", "Failed", f"Error: {problem}", now,
                                field_path)
                    return _View(waiting(container, "CreateContainerConfigError", problem))
                start = rt.times.container_started.setdefault(
                    book_key, now if book_key in rt.times.config_blocked else reach)
            if kind == "crash":
                return self._crashing(pod, container, key, start, now, init, wakes)
            item = self._base(container)
            item["imageID"] = _image_id(image)
            item["containerID"] = _container_id(uid, name, 0)
            if init:
                item["state"] = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": rt.stamp(start),
                                                "finishedAt": rt.stamp(start),
                                                "containerID": item["containerID"]}}
                return _View(item, started=True, done_at=start)
            item["ready"] = True
            item["started"] = True
            item["state"] = {"running": {"startedAt": rt.stamp(start)}}
            return _View(item, ready=True, started=True, ready_at=start)

        init_views: list[_View] = []
        reach = sandbox_at
        for container in init_containers:
            result = view(container, "initContainers", reach, True)
            init_views.append(result)
            reach = result.done_at
        initialized = reach is not None
        main_views = [view(c, "containers", reach, False) for c in containers]

        ready = initialized and bool(main_views) and all(v.ready for v in main_views)
        if ready:
            ready_at = rt.times.pod_ready.setdefault(uid, max(v.ready_at or due for v in main_views))
        else:
            rt.times.pod_ready.pop(uid, None)
            ready_at = None
        for moment in wakes:
            if moment > now:
                rt.wake_at(moment)

        def cond(kind: str, ok: bool, at: float, reason: str | None = None, message: str | None = None) -> Obj:
            item: Obj = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None,
                         "lastTransitionTime": rt.stamp(at)}
            if reason:
                item["reason"] = reason
            if message:
                item["message"] = message
            return item

        ready_time = ready_at if ready_at is not None else started
        unready = [str(c.get("name")) for c, v in zip(containers, main_views, strict=True) if not v.ready]
        not_ready_msg = f"containers with unready status: [{' '.join(unready)}]"
        incomplete = [str(c.get("name")) for c, v in zip(init_containers, init_views, strict=True)
                      if v.done_at is None]
        init_time = reach if reach is not None else started
        conditions = [
            cond("PodReadyToStartContainers", sandbox_at is not None, sandbox_at or started),
            cond("Initialized", initialized, init_time if init_containers else started,
                 None if initialized else "ContainersNotInitialized",
                 None if initialized else f"containers with incomplete status: [{' '.join(incomplete)}]"),
            cond("Ready", ready, ready_time, None if ready else "ContainersNotReady",
                 None if ready else not_ready_msg),
            cond("ContainersReady", ready, ready_time, None if ready else "ContainersNotReady",
                 None if ready else not_ready_msg),
            cond("PodScheduled", True, started),
        ]
        status: Obj = {"phase": "Running" if initialized and any(v.started for v in main_views) else "Pending",
                       "conditions": conditions, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}]}
        if sandbox_at is not None:
            status["podIP"] = pod_ip
            status["podIPs"] = [{"ip": pod_ip}]
        status["startTime"] = rt.stamp(started)
        if init_containers:
            status["initContainerStatuses"] = [v.status for v in init_views]
        status["containerStatuses"] = [v.status for v in main_views]
        status["qosClass"] = qos_class(spec)
        return status

    def unscheduled_status(self, pod: Obj, started: float, message: str) -> Obj:
        """A pod no node can take: Pending, PodScheduled=False (Unschedulable), and the scheduler's event."""
        self._events.append(("unschedulable", "Warning", "FailedScheduling", message, started, None))
        return {"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
            "lastProbeTime": None, "lastTransitionTime": self.rt.stamp(started)}],
            "qosClass": qos_class(pod.get("spec") or {})}

    def _base(self, container: Obj) -> Obj:
        return {"name": str(container.get("name", "")), "image": _normal_image(str(container.get("image", ""))),
                "imageID": "", "ready": False, "restartCount": 0, "started": False, "lastState": {}}

    def _crashing(self, pod: Obj, container: Obj, key: str, first_start: float, now: float, init: bool,
                  wakes: list[float]) -> _View:
        """A container that exits with code 1 after each start (see ``containers.crash_state``)."""
        rt = self.rt
        meta = pod["metadata"]
        uid, name, image = meta["uid"], str(container.get("name", "")), str(container.get("image", ""))
        field_path = f"spec.{key}{{{name}}}"
        state = crash_state(first_start, now, rt.knobs.crash_limit)
        if state.next_change is not None:
            wakes.append(state.next_change)
        item = self._base(container)
        item["imageID"] = _image_id(image)
        item["restartCount"] = state.restarts
        run = state.restarts
        self._event(f"pulled:{key}/{name}:{run}", "Normal", "Pulled",
                    f'Container image "{image}" already present on machine', state.started_at, field_path)
        self._event(f"created:{key}/{name}:{run}", "Normal", "Created", f"Created container: {name}",
                    state.started_at, field_path)
        self._event(f"started:{key}/{name}:{run}", "Normal", "Started", f"Started container {name}",
                    state.started_at, field_path)
        if state.last_started is not None and state.last_finished is not None:
            exited_run = run if not state.running else run - 1
            item["lastState"] = {"terminated": {
                "exitCode": CRASH_EXIT_CODE, "reason": "Error", "startedAt": rt.stamp(state.last_started),
                "finishedAt": rt.stamp(state.last_finished), "containerID": _container_id(uid, name, exited_run)}}
        if state.running:
            item["containerID"] = _container_id(uid, name, run)
            item["started"] = True
            if state.stable and init:
                item["state"] = {"terminated": {"exitCode": 0, "reason": "Completed",
                                                "startedAt": rt.stamp(state.started_at),
                                                "finishedAt": rt.stamp(state.started_at),
                                                "containerID": item["containerID"]}}
                item["started"] = False
                return _View(item, started=True, done_at=state.started_at)
            item["state"] = {"running": {"startedAt": rt.stamp(state.started_at)}}
            if state.stable:
                item["ready"] = True
                return _View(item, ready=not init, started=True, ready_at=state.started_at)
            return _View(item, started=True)
        item["containerID"] = _container_id(uid, name, run)
        message = (f"back-off {go_duration(state.backoff)} restarting failed container={name} "
                   f"pod={meta.get('name')}_{meta.get('namespace')}({uid})")
        item["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        self._event(f"backoff:{key}/{name}:{run}", "Warning", "BackOff",
                    f"Back-off restarting failed container {name} in pod {meta.get('name')}_{meta.get('namespace')}"
                    f"({uid})", state.last_finished or now, field_path)
        return _View(item, started=True)


def pull_error(image: str) -> str:
    return (f'rpc error: code = NotFound desc = failed to pull and unpack image "{_normal_image(image)}": '
            f'not found')


def _image_id(image: str) -> str:
    return f"{_normal_image(image).rsplit(':', 1)[0]}@sha256:{_digest(image)}"


def _container_id(uid: str, name: str, run: int) -> str:
    return f"containerd://{_digest(uid + name + (str(run) if run else ''))}"


def record_pod_event(rt: Runtime, pod: Obj, kind: str, reason: str, message: str, at: float,
                     field_path: str | None = None, component: str = "kubelet") -> None:
    """Create an Event about ``pod``, or count up the one with the same reason and message (core/v1 Event, as
    the kubelet's event recorder writes them)."""
    from ..resources import EVENTS

    meta = pod["metadata"]
    namespace = meta.get("namespace", "default")
    stamp = rt.stamp(at)
    involved: Obj = {"kind": "Pod", "namespace": namespace, "name": meta.get("name"), "uid": meta.get("uid"),
                     "apiVersion": "v1", "resourceVersion": meta.get("resourceVersion")}
    if field_path:
        involved["fieldPath"] = field_path
    events, _ = rt.store.list(EVENTS, namespace)
    for event in events:
        same = event.get("involvedObject") or {}
        if (same.get("uid") == meta.get("uid") and event.get("reason") == reason and event.get("message") == message
                and same.get("fieldPath") == involved.get("fieldPath")):
            updated = copy.deepcopy(event)
            updated["count"] = int(updated.get("count") or 1) + 1
            updated["lastTimestamp"] = stamp
            try:
                rt.store.replace(EVENTS, namespace, event["metadata"]["name"], updated)
            except errors.ApiError as err:
                if not is_conflict(err):
                    raise
            return
    node = (pod.get("spec") or {}).get("nodeName") or "node-1"
    # like the recorder's "<pod>.<unix nanoseconds in hex>"; the offset keeps events of one moment apart
    suffix = f"{int(at * 1e9) + int(_digest(reason + message + (field_path or ''))[:6], 16):x}"
    event = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{meta.get('name')}.{suffix}", "namespace": namespace},
        "involvedObject": involved, "reason": reason, "message": message,
        "source": {"component": component, "host": node} if component == "kubelet" else {"component": component},
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1, "type": kind, "eventTime": None,
        "reportingComponent": component, "reportingInstance": node if component == "kubelet" else "",
    }
    try:
        rt.store.create(EVENTS, namespace, event)
    except errors.ApiError as err:
        if err.code != 409:
            raise
