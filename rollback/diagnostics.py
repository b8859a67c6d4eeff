"""Why a rollout is failing, in the cluster's words, while it is still being waited for.

Only the pods of the new revision are judged (the new ReplicaSet's ``pod-template-hash``, or the
``controller-revision-hash`` of the StatefulSet's update revision / the DaemonSet's current ControllerRevision):
old pods may be failing for reasons this release did not cause. :func:`classify` (pure) turns their statuses
into findings, each *final* once it is a state the pod will not leave by itself:

- ``image-pull``: a container waiting in ``ErrImagePull``, ``ImagePullBackOff``, ...; final after
  ``image_pull_seconds`` (``InvalidImageName``, ``ErrImageNeverPull``: at once);
- ``crash-loop``: waiting in ``CrashLoopBackOff``, or ``restartCount >= crash_restarts`` after an exit and not
  Ready; final at once (``RunContainerError``: after ``config_seconds``);
- ``config-missing``: waiting in ``CreateContainerConfigError``/``CreateContainerError``, or every container
  still being created and a ``FailedMount`` event; final after ``config_seconds``;
- ``init-container``: any of these on an init container;
- ``unschedulable``: ``PodScheduled=False`` with reason ``Unschedulable``; final after ``unschedulable_seconds``.

"Seen for N seconds" is measured on the caller's clock from the first time this run saw that state, so a
transient state (one failed pull, a ConfigMap created a second after the Deployment) is not failed on.

:class:`PodWatch` does the I/O: it lists the new revision's pods, and for a diagnosis reads their Events and
the last log lines of the failing container (``pods/{name}/log?container=&tailLines=20``, the previous instance
for a crash loop). A 403 on any of these is said once and then that part is skipped: the rollout is still
waited for, with less detail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .cluster import ApiFailure, resource_path

Obj = dict[str, Any]
Failure = Literal["image-pull", "crash-loop", "config-missing", "init-container", "unschedulable"]

HASH_LABEL = "pod-template-hash"
REVISION_HASH_LABEL = "controller-revision-hash"
MAX_PODS = 3  # pods described in a diagnosis; the rest are counted
MAX_EVENTS = 8  # newest events kept per pod
LOG_LINES = 20
PROBE_SECONDS = 2.0  # how often the pods are looked at while waiting

PULL_NOW = frozenset({"InvalidImageName", "ErrImageNeverPull"})
PULL_LATER = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageInspect", "RegistryUnavailable",
                        "SignatureValidationFailed"})
CONFIG = frozenset({"CreateContainerConfigError", "CreateContainerError"})
START = frozenset({"RunContainerError"})
CREATING = "-/creating"  # the "seen" key of a pod whose containers are all still being created


@dataclass(frozen=True)
class Thresholds:
    """When a state counts as one the pod will not leave by itself (seconds on the waiting step's clock)."""

    image_pull_seconds: float = 5.0
    config_seconds: float = 5.0
    crash_restarts: int = 2
    unschedulable_seconds: float = 60.0


@dataclass(frozen=True)
class Finding:
    """One container (or pod) of the new revision in a failing state (``final_in``: seconds until it is final,
    if nothing changes)."""

    failure: Failure
    pod: str
    container: str | None  # None: about the pod (unschedulable, a volume)
    reason: str  # the cluster's reason: CrashLoopBackOff, ImagePullBackOff, Unschedulable, FailedMount, ...
    message: str
    final: bool
    init: bool = False
    restart_count: int = 0
    exit_code: int | None = None  # of the last terminated instance
    terminated_reason: str | None = None  # Error, OOMKilled, ...
    seen_for: float = 0.0
    final_in: float | None = None


def _terminated(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    last = (status.get("lastState") or {}).get("terminated")
    if isinstance(last, dict):
        return last
    now = (status.get("state") or {}).get("terminated")
    return now if isinstance(now, dict) and int(now.get("exitCode") or 0) != 0 else None


def _container_finding(pod: str, status: Mapping[str, Any], init: bool, thresholds: Thresholds,
                       seen_for: Callable[[str], float]) -> Finding | None:
    name = str(status.get("name", ""))
    waiting = (status.get("state") or {}).get("waiting") or {}
    reason = str(waiting.get("reason") or "")
    message = str(waiting.get("message") or "")
    restarts = int(status.get("restartCount") or 0)
    last = _terminated(status)
    exit_code = int(last["exitCode"]) if last is not None and last.get("exitCode") is not None else None
    last_reason = str(last.get("reason")) if last is not None and last.get("reason") else None

    def found(failure: Failure, final_after: float | None, why: str = reason, text: str = message) -> Finding:
        key = f"{name}/{failure}"  # ErrImagePull turning into ImagePullBackOff is the same failure going on
        since = seen_for(key)
        final = final_after is None or since >= final_after
        return Finding("init-container" if init else failure, pod, name, why, text, final, init, restarts,
                       exit_code, last_reason, since, None if final or final_after is None else final_after - since)

    if reason in PULL_NOW:
        return found("image-pull", None)
    if reason in PULL_LATER:
        return found("image-pull", thresholds.image_pull_seconds)
    if reason in CONFIG:
        return found("config-missing", thresholds.config_seconds)
    if reason == "CrashLoopBackOff":
        return found("crash-loop", None)
    if reason in START:
        return found("crash-loop", thresholds.config_seconds)
    if last is not None and restarts >= thresholds.crash_restarts and not status.get("ready"):
        why = last_reason or "Error"
        return found("crash-loop", None, why, f"restarted {restarts} times; the last instance exited with code "
                                              f"{exit_code}")
    return None


def _creating(status: Mapping[str, Any]) -> bool:
    waiting = (status.get("state") or {}).get("waiting") or {}
    return waiting.get("reason") in ("ContainerCreating", "PodInitializing")


def classify(pods: Sequence[Mapping[str, Any]], now: float, seen: Mapping[str, float],
             thresholds: Thresholds = Thresholds(),
             mount_failures: Mapping[str, str] | None = None) -> tuple[list[Finding], dict[str, float]]:
    """Findings about ``pods`` (all of the new revision) and the updated "first seen" times.

    ``seen`` maps ``"<pod uid>/<container>/<failure>"`` to when that state was first seen; a state not seen now
    drops out, so a state that comes back starts over. ``mount_failures``: pod name → message of a
    ``FailedMount`` event, for pods whose containers are still being created.
    """
    findings: list[Finding] = []
    still: dict[str, float] = {}

    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name", ""))):
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        name, uid = str(meta.get("name", "")), str(meta.get("uid", meta.get("name", "")))
        status = pod.get("status") or {}

        def seen_for(key: str, uid: str = uid) -> float:
            full = f"{uid}/{key}"
            first = seen.get(full, now)
            still[full] = first
            return now - first

        pod_findings: list[Finding] = []
        for init, key in ((True, "initContainerStatuses"), (False, "containerStatuses")):
            for container in status.get(key) or []:
                finding = _container_finding(name, container, init, thresholds, seen_for)
                if finding is not None:
                    pod_findings.append(finding)
        scheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            since = seen_for("-/Unschedulable")
            pod_findings.append(Finding("unschedulable", name, None, "Unschedulable",
                                        str(scheduled.get("message") or ""),
                                        since >= thresholds.unschedulable_seconds, seen_for=since,
                                        final_in=max(0.0, thresholds.unschedulable_seconds - since)))
        all_statuses = list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])
        if not pod_findings and all_statuses and all(_creating(c) for c in all_statuses):
            since = seen_for(CREATING)  # slow is fine; slow with a FailedMount event is a missing volume source
            mount = (mount_failures or {}).get(name)
            if mount:
                pod_findings.append(Finding("config-missing", name, None, "FailedMount", mount,
                                            since >= thresholds.config_seconds, seen_for=since,
                                            final_in=max(0.0, thresholds.config_seconds - since)))
        findings.extend(pod_findings)
    return findings, still


def stuck_creating(pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Pods whose containers are all still being created (the ones a ``FailedMount`` event may explain)."""
    result = []
    for pod in pods:
        status = pod.get("status") or {}
        statuses = list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])
        if statuses and all(_creating(c) for c in statuses) and not (pod.get("metadata") or {}).get(
                "deletionTimestamp"):
            result.append(pod)
    return result


# -- the diagnosis -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodReport:
    """A failing pod as the diagnosis shows it."""

    finding: Finding
    events: tuple[tuple[str, str], ...] = ()  # (reason, message), newest last
    logs: tuple[str, ...] = ()  # the failing container's last lines

    def to_json(self) -> dict[str, Any]:
        f = self.finding
        return {"pod": f.pod, "container": f.container, "init_container": f.init, "failure": f.failure,
                "reason": f.reason, "message": f.message, "restart_count": f.restart_count,
                "exit_code": f.exit_code, "terminated_reason": f.terminated_reason,
                "events": [{"reason": r, "message": m} for r, m in self.events], "logs": list(self.logs)}


@dataclass(frozen=True)
class Diagnosis:
    """Why one workload's rollout failed (or is failing), from the pods of its new revision."""

    workload: str  # "deployment/web"
    failure: Failure
    reason: str  # the first failing pod's reason, e.g. CrashLoopBackOff
    pods: tuple[PodReport, ...]  # at most MAX_PODS
    more: int = 0  # failing pods not listed
    notes: tuple[str, ...] = ()  # what could not be read, and why
    final: bool = True  # False: described at a deadline or timeout, not yet a state it will not leave

    def headline(self) -> str:
        """One line: the first pod, container, reason and message."""
        return describe(self.pods[0].finding) + (f" (and {self.failing - 1} more failing pods)"
                                                 if self.failing > 1 else "")

    @property
    def failing(self) -> int:
        return len(self.pods) + self.more

    def log_text(self, cause: str = "") -> str:
        """The multi-line text of the one ``::error::`` for this workload (``cause``: why the wait ended, when
        it was not this diagnosis, e.g. the progress deadline)."""
        lines = [f"{self.workload}: {cause + '; ' if cause else ''}{self.failing} pod(s) of the new revision "
                 f"failing ({self.failure})"]
        for report in self.pods:
            lines.append(f"- {describe(report.finding)}")
            if report.events:
                lines.append("  events (newest last):")
                lines.extend(f"    {reason}: {message}" for reason, message in report.events)
            if report.logs:
                lines.append(f"  last {len(report.logs)} log lines of {report.finding.container}:")
                lines.extend(f"    {line}" for line in report.logs)
        if self.more:
            lines.append(f"- and {self.more} more failing pod(s)")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"failure": self.failure, "reason": self.reason, "final": self.final,
                "pods": [p.to_json() for p in self.pods], "more_pods": self.more, "notes": list(self.notes)}


def describe(finding: Finding) -> str:
    """``pod web-1 container app: CrashLoopBackOff (back-off 10s ...); restarts 2, last exit code 1 (Error)``."""
    where = f"pod {finding.pod}"
    if finding.container:
        where += f" {'init container' if finding.init else 'container'} {finding.container}"
    text = f"{where}: {finding.reason}"
    if finding.message:
        text += f" ({finding.message})"
    extra = []
    if finding.restart_count:
        extra.append(f"restarts {finding.restart_count}")
    if finding.exit_code is not None:
        extra.append(f"last exit code {finding.exit_code}" + (f" ({finding.terminated_reason})"
                                                               if finding.terminated_reason else ""))
    return text + ("; " + ", ".join(extra) if extra else "")


def choose(findings: Sequence[Finding], final_only: bool) -> tuple[list[Finding], int]:
    """The findings to describe (one per pod, final ones first, at most MAX_PODS) and how many pods are left."""
    candidates = [f for f in findings if f.final] if final_only else sorted(findings, key=lambda f: not f.final)
    per_pod: dict[str, Finding] = {}
    for finding in candidates:
        per_pod.setdefault(finding.pod, finding)
    chosen = list(per_pod.values())
    return chosen[:MAX_PODS], max(0, len(chosen) - MAX_PODS)


def newest_events(events: Sequence[Mapping[str, Any]], uid: str | None) -> tuple[tuple[str, str], ...]:
    """(reason, message) of the events about one pod (``uid``: that instance only), newest last."""
    def when(event: Mapping[str, Any]) -> tuple[str, int]:
        stamp = str(event.get("lastTimestamp") or event.get("eventTime") or
                    (event.get("metadata") or {}).get("creationTimestamp") or "")
        version = str((event.get("metadata") or {}).get("resourceVersion") or "")
        return stamp, int(version) if version.isdigit() else 0  # timestamps have whole seconds: written later

    mine = [e for e in events if uid is None or (e.get("involvedObject") or {}).get("uid") in (None, uid)]
    mine.sort(key=when)
    pairs = []
    for event in mine[-MAX_EVENTS:]:
        count = int(event.get("count") or 1)
        message = str(event.get("message") or "") + (f" (x{count})" if count > 1 else "")
        pairs.append((str(event.get("reason") or ""), message))
    return tuple(pairs)


# -- which pods are the new revision's -----------------------------------------------------------------------


@dataclass(frozen=True)
class Revision:
    """How to find the new revision's pods: this label value, on pods controlled by ``owner_uid``."""

    label: str
    value: str
    owner_uid: str


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    from .workloads import same_template

    return same_template(a, b)


def _controlled_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("controller") and ref.get("uid") == uid for ref in refs)


def deployment_revision(deployment: Mapping[str, Any], replica_sets: Sequence[Mapping[str, Any]]) -> Revision | None:
    """The new ReplicaSet: the one controlled by the Deployment whose template is the Deployment's."""
    uid = str((deployment.get("metadata") or {}).get("uid", ""))
    template = (deployment.get("spec") or {}).get("template") or {}
    for rs in replica_sets:
        labels = (rs.get("metadata") or {}).get("labels") or {}
        if (_controlled_by(rs, uid) and HASH_LABEL in labels
                and _same((rs.get("spec") or {}).get("template") or {}, template)):
            return Revision(HASH_LABEL, str(labels[HASH_LABEL]), str((rs.get("metadata") or {}).get("uid", "")))
    return None


def statefulset_revision(statefulset: Mapping[str, Any]) -> Revision | None:
    """The update revision, once the controller has seen the current spec (before that it names the old one)."""
    meta, status = statefulset.get("metadata") or {}, statefulset.get("status") or {}
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return None
    update = status.get("updateRevision")
    return Revision(REVISION_HASH_LABEL, str(update), str(meta.get("uid", ""))) if update else None


def daemonset_revision(daemonset: Mapping[str, Any], revisions: Sequence[Mapping[str, Any]]) -> Revision | None:
    """The newest ControllerRevision controlled by the DaemonSet whose template is the DaemonSet's."""
    from .workloads import DaemonSet

    uid = str((daemonset.get("metadata") or {}).get("uid", ""))
    template = (daemonset.get("spec") or {}).get("template") or {}
    matching = [cr for cr in revisions if _controlled_by(cr, uid) and _same(DaemonSet.template_of(cr), template)]
    if not matching:
        return None
    newest = max(matching, key=lambda cr: int(cr.get("revision") or 0))
    value = ((newest.get("metadata") or {}).get("labels") or {}).get(REVISION_HASH_LABEL)
    return Revision(REVISION_HASH_LABEL, str(value), uid) if value else None


# -- reading the cluster -------------------------------------------------------------------------------------


@dataclass
class PodWatch:
    """Looks at the new revision's pods of one workload while its rollout is waited for.

    ``check(obj)`` returns a final :class:`Diagnosis` as soon as one exists (else None); ``explain(obj)``
    describes whatever is failing now (for a rollout that failed or timed out otherwise). ``note`` is called
    once for each kind of read the credentials may not do.
    """

    workload: Any  # rollback.workloads.Workload
    note: Callable[[str], None]
    clock: Callable[[], float] = time.monotonic
    thresholds: Thresholds = field(default_factory=Thresholds)
    seen: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    forbidden: set[str] = field(default_factory=set)  # "pods", "events", "pods/log"
    next_due: float | None = None  # when the earliest pending finding turns final (look again then)
    _revision: tuple[int, Revision] | None = None

    @property
    def api(self) -> Any:
        return self.workload.api

    @property
    def namespace(self) -> str:
        return str(self.workload.namespace)

    def _refused(self, what: str, err: ApiFailure, consequence: str) -> None:
        if what in self.forbidden:
            return
        self.forbidden.add(what)
        text = (f"{self.workload}: could not read {what} in namespace {self.namespace} ({err.status} "
                f"{err.reason}): {consequence}; grant the verbs in the README's RBAC section for this detail")
        self.notes.append(f"{what} not read: {err.status} {err.reason}")
        self.note(text)

    def revision(self, obj: Obj) -> Revision | None:
        generation = int((obj.get("metadata") or {}).get("generation") or 0)
        if self._revision is not None and self._revision[0] == generation:
            return self._revision[1]
        kind = self.workload.kind
        found: Revision | None
        if kind == "Deployment":
            found = deployment_revision(obj, self.workload.replica_sets(obj))
        elif kind == "StatefulSet":
            found = statefulset_revision(obj)
        else:
            found = daemonset_revision(obj, self.workload.controller_revisions(obj))
        if found is not None:
            self._revision = (generation, found)
        return found

    def pods(self, obj: Obj) -> list[Obj] | None:
        """The new revision's pods, or None when they cannot be known (yet, or at all)."""
        if "pods" in self.forbidden:
            return None
        try:
            revision = self.revision(obj)
            if revision is None:
                return None
            from .workloads import selector_string

            selector = selector_string((obj.get("spec") or {}).get("selector"))
            selector = f"{selector},{revision.label}={revision.value}" if selector else \
                f"{revision.label}={revision.value}"
            listed = self.api.get(resource_path("", self.namespace, "pods"), labelSelector=selector)
        except ApiFailure as err:
            if err.status in (401, 403):
                self._refused("pods", err, "waiting for the rollout without watching its pods (no fail-fast)")
                return None
            raise
        return [p for p in listed.get("items") or [] if _controlled_by(p, revision.owner_uid)]

    def _events(self, pod: Mapping[str, Any]) -> list[Obj]:
        if "events" in self.forbidden:
            return []
        name = str((pod.get("metadata") or {}).get("name", ""))
        try:
            listed = self.api.get(resource_path("", self.namespace, "events"),
                                  fieldSelector=f"involvedObject.name={name},involvedObject.kind=Pod")
        except ApiFailure as err:
            if err.status in (401, 403):
                self._refused("events", err, "the diagnosis has no events")
                return []
            if err.status in (400, 404):
                return []
            raise
        return list(listed.get("items") or [])

    def _logs(self, finding: Finding, pod: Mapping[str, Any]) -> tuple[str, ...]:
        if "pods/log" in self.forbidden or not finding.container:
            return ()
        previous = finding.failure in ("crash-loop", "init-container") and finding.exit_code is not None
        path = resource_path("", self.namespace, "pods", finding.pod) + "/log"
        try:
            text = read_text(self.api, path, container=finding.container, tailLines=LOG_LINES,
                             previous="true" if previous else None)
        except ApiFailure as err:
            if err.status in (401, 403):
                self._refused("pods/log", err, "the diagnosis has no log lines")
            return ()  # 400: the container has no log yet (waiting to start)
        lines = text.splitlines()
        return tuple(lines[-LOG_LINES:])

    def _mount_failures(self, pods: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        """FailedMount messages for pods stuck creating for longer than the config threshold."""
        failures: dict[str, str] = {}
        for pod in stuck_creating(pods)[:MAX_PODS]:
            uid = str((pod.get("metadata") or {}).get("uid", ""))
            first = self.seen.get(f"{uid}/{CREATING}")  # from the last look: the events are read only when due
            if first is None or self.clock() - first < self.thresholds.config_seconds:
                continue
            for reason, message in reversed(newest_events(self._events(pod), uid)):
                if reason == "FailedMount":
                    failures[str(pod["metadata"]["name"])] = message
                    break
        return failures

    def _findings(self, obj: Obj) -> tuple[list[Finding], dict[str, Mapping[str, Any]]] | None:
        pods = self.pods(obj)
        if pods is None:
            return None
        mounts = self._mount_failures(pods)
        findings, self.seen = classify(pods, self.clock(), self.seen, self.thresholds, mounts)
        return findings, {str((p.get("metadata") or {}).get("name", "")): p for p in pods}

    def check(self, obj: Obj) -> Diagnosis | None:
        """A final diagnosis once a pod of the new revision is in a state it will not leave by itself."""
        found = self._findings(obj)
        if found is None:
            return None
        findings, pods = found
        waits = [f.final_in for f in findings if f.final_in is not None]
        self.next_due = self.clock() + min(waits) if waits else None
        if not any(f.final for f in findings):
            return None
        return self._diagnose(findings, pods, final_only=True)

    def explain(self, obj: Obj) -> Diagnosis | None:
        """Whatever is failing now (final or not), for a rollout that failed or timed out; None if nothing."""
        try:
            found = self._findings(obj)
        except ApiFailure:
            return None
        if found is None or not found[0]:
            return None
        return self._diagnose(found[0], found[1], final_only=False)

    def _diagnose(self, findings: Sequence[Finding], pods: Mapping[str, Mapping[str, Any]], final_only: bool
                  ) -> Diagnosis:
        chosen, more = choose(findings, final_only)
        reports = []
        for finding in chosen:
            pod = pods.get(finding.pod) or {}
            uid = (pod.get("metadata") or {}).get("uid")
            try:
                events = newest_events(self._events(pod), str(uid) if uid else None) if pod else ()
                logs = self._logs(finding, pod)
            except ApiFailure as err:  # detail only: a failed read must not hide the diagnosis
                self.notes.append(f"detail of pod {finding.pod} not read: {err.status} {err.reason}")
                events, logs = (), ()
            reports.append(PodReport(finding, events, logs))
        first = chosen[0]
        return Diagnosis(str(self.workload), first.failure, first.reason, tuple(reports), more,
                         tuple(dict.fromkeys(self.notes)), final=all(f.final for f in chosen))


def read_text(api: Any, path: str, **query: Any) -> str:
    """A plain-text GET (``pods/{name}/log``) through ``cluster.Api``: the streaming answer, read whole."""
    response = api.request("GET", path, stream=True, **query)
    try:
        return bytes(response.read()).decode("utf-8", "replace")
    finally:
        response.release_conn()
