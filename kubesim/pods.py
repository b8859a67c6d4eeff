"""How a pod reads from outside: the STATUS and RESTARTS columns of ``kubectl get pods`` (the rules of kubectl's
pod printer, computed server-side as the real API server does for Table output) and the ``pods/{name}/log``
subresource (``container``, ``previous``, ``tailLines``, ``limitBytes``, ``timestamps``), with the errors the
kubelet and API server give for a container that has no log yet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import errors
from .clock import Clock

Obj = dict[str, Any]


def display_status(pod: Obj) -> str:
    """The STATUS column: the phase, or the reason of the first container that is not running well."""
    status = pod.get("status") or {}
    reason = str(status.get("reason") or status.get("phase") or "Unknown")
    init_statuses = status.get("initContainerStatuses") or []
    init_count = len((pod.get("spec") or {}).get("initContainers") or [])
    initializing = False
    for index, container in enumerate(init_statuses):
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + str(terminated["reason"])
            elif terminated.get("signal"):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{terminated.get('exitCode')}"
        elif waiting is not None and waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + str(waiting["reason"])
        else:
            reason = f"Init:{index}/{init_count}"
        initializing = True
        break
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in status.get("conditions") or [])
    if not initializing or initialized:
        has_running = False
        for container in reversed(status.get("containerStatuses") or []):
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif terminated is not None and terminated.get("reason"):
                reason = str(terminated["reason"])
            elif terminated is not None:
                reason = (f"Signal:{terminated['signal']}" if terminated.get("signal")
                          else f"ExitCode:{terminated.get('exitCode')}")
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
        if reason == "Completed" and has_running:
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
            reason = "Running" if ready else "NotReady"
    if (pod.get("metadata") or {}).get("deletionTimestamp") and status.get("phase") not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return reason


def restarts_text(pod: Obj, now: float, age: Callable[[float], str]) -> str:
    """The RESTARTS column: ``3 (12s ago)`` with the time of the last restart, or ``0``."""
    status = pod.get("status") or {}
    restarts = 0
    last: float | None = None
    for container in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        restarts += int(container.get("restartCount") or 0)
        finished = ((container.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        if finished:
            moment = Clock.parse(finished)
            last = moment if last is None else max(last, moment)
    if restarts and last is not None:
        return f"{restarts} ({age(now - last)} ago)"
    return str(restarts)


# -- pods/log ----------------------------------------------------------------------------------------------


def _flag(query: dict[str, list[str]], name: str) -> bool:
    values = query.get(name) or []
    return bool(values) and values[-1].lower() in ("true", "1")


def _int(query: dict[str, list[str]], name: str) -> int | None:
    values = query.get(name) or []
    if not values or values[-1] == "":
        return None
    try:
        return int(values[-1])
    except ValueError:
        raise errors.bad_request(f'invalid value for {name}: "{values[-1]}"') from None


def _lines(image: str, started: str, crashed: bool, init: bool) -> list[tuple[str, str]]:
    """(timestamp, line) pairs a container of ``image`` wrote in one run that started at ``started``."""
    stamp = started.replace("Z", ".000000000Z")
    at = started
    if init and not crashed:
        text = [f"{at} INFO  init: preparing the working directory", f"{at} INFO  init: done"]
    elif crashed:
        text = [f"{at} INFO  starting {image}", f"{at} INFO  loading configuration from /etc/app/config.yaml",
                f"{at} ERROR connecting to the database at db:5432: connection refused",
                f"{at} FATAL cannot start without the database; exiting with status 1"]
    else:
        text = [f"{at} INFO  starting {image}", f"{at} INFO  listening on :8080", f"{at} INFO  ready"]
    return [(stamp, line) for line in text]


def log_text(pod: Obj, query: dict[str, list[str]]) -> bytes:
    """The body of ``GET pods/{name}/log`` (plain text), or the 400 the API server answers."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    name = str(meta.get("name", ""))
    containers = [str(c.get("name")) for c in spec.get("containers") or []]
    inits = [str(c.get("name")) for c in spec.get("initContainers") or []]
    wanted = (query.get("container") or [""])[-1]
    if not wanted:
        if len(containers) != 1:
            choices = f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
            if inits:
                choices += f" or one of the init containers: [{' '.join(inits)}]"
            raise errors.bad_request(choices)
        wanted = containers[0]
    if wanted not in containers and wanted not in inits:
        raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
    init = wanted in inits and wanted not in containers
    status = pod.get("status") or {}
    statuses = status.get("initContainerStatuses" if init else "containerStatuses") or []
    found = next((c for c in statuses if c.get("name") == wanted), None)
    if found is None:
        raise errors.bad_request(f'container "{wanted}" in pod "{name}" is waiting to start: '
                                 f'{"PodInitializing" if spec.get("initContainers") else "ContainerCreating"}')
    state = found.get("state") or {}
    last = (found.get("lastState") or {}).get("terminated")
    image = str(next((c.get("image") for c in (spec.get("initContainers" if init else "containers") or [])
                      if c.get("name") == wanted), ""))
    if _flag(query, "previous"):
        if not last or not last.get("containerID"):
            raise errors.bad_request(f'previous terminated container "{wanted}" in pod "{name}" not found')
        lines = _lines(image, str(last.get("startedAt")), int(last.get("exitCode") or 0) != 0, init)
    elif state.get("running") is not None:
        # a run of a crash-looping container crashes like the ones before it
        crashing = bool(last) and int((last or {}).get("exitCode") or 0) != 0 and not found.get("ready")
        lines = _lines(image, str(state["running"].get("startedAt")), crashing, init)
    elif state.get("terminated") is not None:
        done = state["terminated"]
        lines = _lines(image, str(done.get("startedAt")), int(done.get("exitCode") or 0) != 0, init)
    elif last:
        lines = _lines(image, str(last.get("startedAt")), int(last.get("exitCode") or 0) != 0, init)
    else:
        reason = str((state.get("waiting") or {}).get("reason") or "")
        if reason == "ErrImagePull":
            raise errors.bad_request(f'container "{wanted}" in pod "{name}" is waiting to start: image can\'t be '
                                     f'pulled')
        if reason == "ImagePullBackOff":
            raise errors.bad_request(f'container "{wanted}" in pod "{name}" is waiting to start: trying and failing '
                                     f'to pull image')
        raise errors.bad_request(f'container "{wanted}" in pod "{name}" is waiting to start: {reason}')
    tail = _int(query, "tailLines")
    if tail is not None and tail >= 0:
        lines = lines[-tail:] if tail else []
    stamped = _flag(query, "timestamps")
    body = "".join(f"{stamp} {line}\n" if stamped else f"{line}\n" for stamp, line in lines).encode()
    limit = _int(query, "limitBytes")
    if limit is not None and limit > 0:
        body = body[:limit]
    return body
