"""Waiting for a rollout: a watch on the workload (not a sleep loop), with the rules of `kubectl rollout status`.

The watch resumes from the last resourceVersion it saw when the connection drops, re-lists on 410 Gone, and
the caller's deadline bounds everything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .cluster import ApiFailure
from .workloads import Obj, RolloutState, Workload

MAX_RECONNECTS = 50


@dataclass(frozen=True)
class RolloutOutcome:
    result: Literal["complete", "failed", "timeout"]
    message: str
    reconnects: int = 0
    obj: Obj | None = None

    @property
    def ok(self) -> bool:
        return self.result == "complete"


def _list_method(workload: Workload) -> Any:
    apps = workload.api.apps
    return {
        "Deployment": apps.list_namespaced_deployment,
        "StatefulSet": apps.list_namespaced_stateful_set,
        "DaemonSet": apps.list_namespaced_daemon_set,
    }[workload.kind]


def _events(response: Any) -> Any:
    """JSON watch events from a streaming response, one per line."""
    buffer = b""
    for chunk in response.stream(4096, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


def wait_for_rollout(workload: Workload, deadline: float, on_progress: Callable[[str], None],
                     clock: Callable[[], float] = time.monotonic,
                     stop_when: Callable[[Obj, RolloutState], RolloutState | None] | None = None) -> RolloutOutcome:
    """Watch ``workload`` until its rollout completes, fails (progress deadline) or ``deadline`` passes.

    ``on_progress`` receives each new status line (only when it changes). ``stop_when`` may turn a state into
    a final one (e.g. a StatefulSet pod that can never become Ready).
    """
    last_message = ""
    reconnects = 0
    obj = workload.read()

    def judge(current: Obj) -> RolloutState:
        nonlocal last_message
        state = workload.rollout_state(current)
        if stop_when is not None and not state.done:
            state = stop_when(current, state) or state
        if state.message != last_message:
            last_message = state.message
            on_progress(state.message)
        return state

    state = judge(obj)
    while True:
        if state.done:
            return RolloutOutcome("complete", state.message, reconnects, obj)
        if state.failed:
            return RolloutOutcome("failed", state.message, reconnects, obj)
        remaining = deadline - clock()
        if remaining <= 0:
            return RolloutOutcome("timeout", f"timed out waiting for {workload}: {state.message}", reconnects, obj)
        resource_version = obj["metadata"]["resourceVersion"]
        try:
            response = workload.api.stream(_list_method(workload), workload.namespace, timeout=remaining,
                                           field_selector=f"metadata.name={workload.name}",
                                           resource_version=resource_version, allow_watch_bookmarks=True)
            try:
                for event in _events(response):
                    kind = event.get("type")
                    if kind == "ERROR":
                        status = event.get("object") or {}
                        if status.get("code") == 410:  # too old: re-list and watch again from there
                            obj = workload.read()
                            break
                        raise ApiFailure(int(status.get("code") or 500), str(status.get("reason")),
                                         str(status.get("message")))
                    if kind == "BOOKMARK":
                        obj["metadata"]["resourceVersion"] = event["object"]["metadata"]["resourceVersion"]
                        continue
                    if kind == "DELETED":
                        return RolloutOutcome("failed", f"{workload} was deleted while waiting for its rollout",
                                              reconnects, obj)
                    obj = event["object"]
                    state = judge(obj)
                    if state.done or state.failed or clock() >= deadline:
                        break
            finally:
                response.release_conn()
        except ApiFailure:
            raise
        except Exception as err:  # a dropped connection: resume from the last resourceVersion we saw
            reconnects += 1
            if reconnects > MAX_RECONNECTS:
                raise ApiFailure(0, "WatchFailed", f"the watch on {workload} kept failing: {err}") from err
            time.sleep(min(0.1 * reconnects, 2.0))
            continue
        state = judge(obj)
