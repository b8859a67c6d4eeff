"""The simulated kubelet's rules for one container, as pure functions: the crash-loop schedule and the
ConfigMap/Secret references a pod needs before its containers can start.

Crash loop (the kubelet's container back-off): a crashing container exits with code 1 ``CRASH_RUN_SECONDS``
after each start. After the first exit it is restarted at once (no back-off entry exists yet); each later exit
waits out a back-off that starts at 10 s and doubles up to 5 minutes, measured from the previous restart, while
the container is shown waiting in ``CrashLoopBackOff`` with the message ``back-off 10s restarting failed
container=NAME pod=POD_NAMESPACE(UID)``. So ``restartCount`` is 1 right after the first crash, 2 about 10 s
later, then 3 after 20 s more, and so on.

Config references: a missing non-optional ConfigMap or Secret named by ``env``/``envFrom`` makes the container
wait in ``CreateContainerConfigError`` (``configmap "x" not found``, or ``couldn't find key k in ConfigMap ns/x``
for a missing key); one named by a volume keeps the whole pod in ``ContainerCreating`` with ``FailedMount``
events (``MountVolume.SetUp failed for volume "v" : configmap "x" not found``), as a real node reports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
Finder = Callable[[str, str], Obj | None]  # (kind "configmap" | "secret", name) -> the object or None

CRASH_RUN_SECONDS = 1.0  # simulated seconds a crashing container runs before it exits
BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
CRASH_EXIT_CODE = 1


def backoff_after(restart: int) -> float:
    """The back-off waited after the exit of run ``restart`` (run 0 is restarted at once)."""
    if restart <= 0:
        return 0.0
    return min(BACKOFF_INITIAL * 2 ** (restart - 1), BACKOFF_MAX)


def go_duration(seconds: float) -> str:
    """A whole number of seconds as Go's ``time.Duration.String()`` prints it (``10s``, ``1m20s``, ``5m0s``)."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


@dataclass(frozen=True)
class CrashState:
    """Where a crashing container is at one moment."""

    restarts: int  # restartCount
    running: bool  # a run is in progress (False: waiting in CrashLoopBackOff)
    stable: bool  # past its last allowed crash: it keeps running
    started_at: float  # start of the current run (while backing off: of the run that just exited)
    last_started: float | None  # the previous run, for lastState.terminated
    last_finished: float | None
    backoff: float  # seconds of the back-off being waited (0 while running)
    next_change: float | None  # when this state changes by itself


def crash_state(first_start: float, now: float, limit: int | None = None) -> CrashState:
    """The state at ``now`` of a container that first started at ``first_start`` and crashes on every start
    (``limit``: only on its first ``limit`` starts; then it keeps running)."""
    start = first_start
    previous: tuple[float, float] | None = None
    restart = 0
    while True:
        last_started, last_finished = previous if previous is not None else (None, None)
        if limit is not None and restart >= limit:
            return CrashState(restart, True, True, start, last_started, last_finished, 0.0, None)
        finish = start + CRASH_RUN_SECONDS
        if now < finish:
            return CrashState(restart, True, False, start, last_started, last_finished, 0.0, finish)
        wait = backoff_after(restart)
        restart_at = finish if restart == 0 else start + wait
        if now < restart_at:
            return CrashState(restart, False, False, start, start, finish, wait, restart_at)
        previous = (start, finish)
        start = restart_at
        restart += 1


def _optional(ref: Mapping[str, Any]) -> bool:
    return bool(ref.get("optional"))


def _has_key(obj: Obj, key: str) -> bool:
    return key in (obj.get("data") or {}) or key in (obj.get("binaryData") or {}) or key in (
        obj.get("stringData") or {})


_KIND_TEXT = {"configmap": "ConfigMap", "secret": "Secret"}


def missing_env(container: Mapping[str, Any], namespace: str, find: Finder) -> str | None:
    """Why the kubelet cannot build this container's environment (``envFrom`` first, then ``env``), or None."""
    for source in container.get("envFrom") or []:
        for field, kind in (("configMapRef", "configmap"), ("secretRef", "secret")):
            ref = source.get(field)
            if isinstance(ref, dict) and not _optional(ref) and find(kind, str(ref.get("name", ""))) is None:
                return f'{kind} "{ref.get("name", "")}" not found'
    for var in container.get("env") or []:
        value_from = var.get("valueFrom") or {}
        for field, kind in (("configMapKeyRef", "configmap"), ("secretKeyRef", "secret")):
            ref = value_from.get(field)
            if not isinstance(ref, dict):
                continue
            name, key = str(ref.get("name", "")), str(ref.get("key", ""))
            obj = find(kind, name)
            if obj is None:
                if not _optional(ref):
                    return f'{kind} "{name}" not found'
            elif not _has_key(obj, key) and not _optional(ref):
                return f"couldn't find key {key} in {_KIND_TEXT[kind]} {namespace}/{name}"
    return None


def missing_volume(pod: Mapping[str, Any], find: Finder) -> tuple[str, str] | None:
    """(volume name, FailedMount reason) for the first volume whose ConfigMap or Secret is missing, or None."""
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = str(volume.get("name", ""))
        sources: list[tuple[str, str, bool]] = []
        if isinstance(volume.get("configMap"), dict):
            ref = volume["configMap"]
            sources.append(("configmap", str(ref.get("name", "")), _optional(ref)))
        if isinstance(volume.get("secret"), dict):
            ref = volume["secret"]
            sources.append(("secret", str(ref.get("secretName", "")), _optional(ref)))
        for projected in ((volume.get("projected") or {}).get("sources") or []):
            for field, kind in (("configMap", "configmap"), ("secret", "secret")):
                ref = projected.get(field)
                if isinstance(ref, dict):
                    sources.append((kind, str(ref.get("name", "")), _optional(ref)))
        for kind, ref_name, optional in sources:
            if not optional and find(kind, ref_name) is None:
                return name, f'{kind} "{ref_name}" not found'
    return None
