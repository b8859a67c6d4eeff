"""Waiting for a rollout: a watch on the workload (not a sleep loop), with the rules of `kubectl rollout status`.

The watch resumes from the last resourceVersion it saw when the connection drops or the server answers with a
transient error (408, 429, 5xx: an API server restarting behind a load balancer), reads the object again on
410 Gone (in the stream or as the answer), and the caller's deadline bounds everything, the back-off included.

With ``fail_fast`` and a ``diagnostics.PodWatch``, the pods of the new revision are looked at every
``diagnostics.PROBE_SECONDS`` as well (the watch is re-opened that often), and the wait ends as soon as one of
them is in a state it will not leave by itself, so a rollback or compensation can start at once. A rollout that
fails or times out otherwise is explained from its pods too, when they can be read.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .cluster import ApiFailure
from .diagnostics import PROBE_SECONDS, Diagnosis, PodWatch
from .workloads import Obj, RolloutState, Workload

MAX_RECONNECTS = 50  # consecutive failed attempts (an event received resets the count)
# answers worth watching again after a pause; 0: the API server could not be reached (cluster.UNREACHABLE)
RETRY_STATUSES = frozenset({0, 408, 429, 500, 502, 503, 504})
GONE = 410


@dataclass(frozen=True)
class RolloutOutcome:
    result: Literal["complete", "failed", "timeout", "not-waited"]
    message: str  # with a diagnosis that did not end the wait itself: the cause, then the diagnosis headline
    reconnects: int = 0
    obj: Obj | None = None
    diagnosis: Diagnosis | None = None  # why, from the new revision's pods (failed or timed out)
    reason: str = ""  # the cluster's reason: CrashLoopBackOff, ..., ProgressDeadlineExceeded; "Timeout"
    cause: str = ""  # why the wait ended when the diagnosis did not end it (progress deadline, timeout)

    @property
    def ok(self) -> bool:
        return self.result in ("complete", "not-waited")


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
                     stop_when: Callable[[Obj, RolloutState], RolloutState | None] | None = None,
                     pods: PodWatch | None = None, fail_fast: bool = False, explain: bool = True
                     ) -> RolloutOutcome:
    """Watch ``workload`` until its rollout completes, fails (progress deadline, or with ``fail_fast`` a pod of
    the new revision that will not recover) or ``deadline`` passes.

    ``on_progress`` receives each new status line (only when it changes). ``stop_when`` may turn a state into
    a final one (e.g. a StatefulSet pod that can never become Ready). ``pods`` explains a failure from the
    new revision's pods (``explain``: False leaves that to the caller, see :func:`explained`), and with
    ``fail_fast`` ends the wait on one.
    """
    outcome = _wait(workload, deadline, on_progress, clock, stop_when, pods if fail_fast else None)
    return explained(outcome, pods) if explain else outcome


def explained(outcome: RolloutOutcome, pods: PodWatch | None) -> RolloutOutcome:
    """A failed or timed-out outcome with its reason, and the new revision's failing pods when readable."""
    if outcome.result not in ("failed", "timeout") or outcome.diagnosis is not None:
        return outcome
    reason = "Timeout" if outcome.result == "timeout" else (
        "ProgressDeadlineExceeded" if "exceeded its progress deadline" in outcome.message else "")
    diagnosis = pods.explain(outcome.obj) if pods is not None and outcome.obj is not None else None
    if diagnosis is None:
        return RolloutOutcome(outcome.result, outcome.message, outcome.reconnects, outcome.obj, None, reason)
    return RolloutOutcome(outcome.result, f"{outcome.message}; {diagnosis.headline()}", outcome.reconnects,
                          outcome.obj, diagnosis, diagnosis.reason, cause=outcome.message)


def _wait(workload: Workload, deadline: float, on_progress: Callable[[str], None], clock: Callable[[], float],
          stop_when: Callable[[Obj, RolloutState], RolloutState | None] | None, probe: PodWatch | None
          ) -> RolloutOutcome:
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
    if not state.waitable:
        return RolloutOutcome("not-waited", state.message, reconnects, obj)
    failures = 0  # consecutive, for the back-off and the give-up point
    next_probe = clock()
    while True:
        if state.done:
            return RolloutOutcome("complete", state.message, reconnects, obj)
        if state.failed:
            return RolloutOutcome("failed", state.message, reconnects, obj)
        if probe is not None and clock() >= next_probe:
            diagnosis = probe.check(obj)
            if diagnosis is not None:
                return RolloutOutcome("failed", diagnosis.headline(), reconnects, obj, diagnosis, diagnosis.reason)
            next_probe = min(clock() + PROBE_SECONDS, probe.next_due or float("inf"))
        remaining = deadline - clock()
        if remaining <= 0:
            return RolloutOutcome("timeout", f"timed out waiting for {workload}: {state.message}", reconnects, obj)
        resource_version = obj["metadata"]["resourceVersion"]
        # whole seconds (the server's timeoutSeconds): rounding down would end the watch early and open another
        window = remaining if probe is None else min(remaining, float(max(1, math.ceil(next_probe - clock()))))
        try:
            response = workload.api.watch(workload.path(workload.plural), timeout=window,
                                          fieldSelector=f"metadata.name={workload.name}",
                                          resourceVersion=resource_version, allowWatchBookmarks=True)
            try:
                for event in _events(response):
                    kind = event.get("type")
                    if kind == "ERROR":
                        status = event.get("object") or {}
                        raise ApiFailure(int(status.get("code") or 500), str(status.get("reason")),
                                         str(status.get("message")))
                    failures = 0
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
                    if probe is not None and clock() >= next_probe:
                        break
            finally:
                response.release_conn()
        except ApiFailure as err:
            if err.status == GONE:  # the server no longer reaches back that far: read it and watch from there
                obj = workload.read()
                state = judge(obj)
                continue
            if err.status not in RETRY_STATUSES:
                raise
            failures += 1
            reconnects += 1
            if failures > MAX_RECONNECTS:
                raise
            _pause(failures, deadline, clock)
            continue
        except Exception as err:  # a dropped connection: resume from the last resourceVersion we saw
            failures += 1
            reconnects += 1
            if failures > MAX_RECONNECTS:
                raise ApiFailure(0, "WatchFailed", f"the watch on {workload} kept failing: {err}") from err
            _pause(failures, deadline, clock)
            continue
        state = judge(obj)


def _pause(failures: int, deadline: float, clock: Callable[[], float]) -> None:
    """Back off before watching again: 0.1 s more per consecutive failure, at most 2 s, never past the deadline."""
    time.sleep(max(0.0, min(0.1 * failures, 2.0, deadline - clock())))
