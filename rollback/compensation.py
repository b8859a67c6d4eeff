"""What a failed run puts back, and how the timeout is shared between waiting and putting back (pure).

Two rules keep a run from making an incident worse:

- **A rollback is never undone.** ``kubectl rollout undo`` never reverts itself: if the rollback's rollout
  fails or times out, the rollback stays, the step fails and says what is still not Ready. Putting the bad
  release back would be the worst thing to do mid-incident. So only *deploys* are ever put back: a deploy with
  ``rollback-on-failure``, and every deploy of a run with several workloads (all or nothing).
- **A progressing rollout is not cut off early.** When a failure could be put back, part of the timeout must
  be left for that. The forward wait gets a *soft* end (two thirds of the timeout) and a *hard* end (the
  timeout minus what the restore's writes need, ``RESTORE_RESERVE``). Between the two it goes on as long as
  the rollout keeps moving: a new status line (one more replica updated, available or ready) within the last
  ``progress_grace`` seconds. A stalled rollout stops at the soft end and its restore gets the last third,
  enough to wait for the restore's rollout too; a moving one may use nearly all of the timeout (a Deployment
  that stalls fails fast on its own ``progressDeadlineSeconds`` anyway).

``plan`` decides per workload; ``wait_budget`` and ``next_wait_end`` compute the deadlines. run.py does the
I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .workloads import CHANGE_CAUSE, images_of, same_template

RESTORE_RESERVE = 10.0  # seconds kept at least for the restore's writes (a few requests) when it may be needed
PROGRESS_GRACE = 10.0  # a rollout that printed a new status line this recently is still moving (at least)

ChangeKind = Literal["rollback", "deploy"]
Trigger = Literal["rollout-failed", "write-failed", "cancelled"]


@dataclass(frozen=True)
class Change:
    """One workload of the run: what kind of change this run made to it, and whether it made one."""

    workload: str  # "deployment/web"
    kind: ChangeKind  # a deploy/redeploy is "deploy"; an undo to an older revision is "rollback"
    changed: bool  # this run wrote it (and the write landed)


@dataclass(frozen=True)
class Step:
    """What to do with one changed workload when the run fails."""

    workload: str
    restore: bool  # put it back to the template and release it had before the run
    why: str  # one line for the log and the result message


def compensable(changes: Sequence[Change], rollback_on_failure: bool) -> bool:
    """Could a failure of this run be put back? Only deploys are ever put back (see ``plan``)."""
    return any(c.kind == "deploy" for c in changes) and (rollback_on_failure or len(changes) > 1)


def plan(changes: Sequence[Change], rollback_on_failure: bool, trigger: Trigger) -> tuple[Step, ...]:
    """One step per changed workload: restore it, or keep it and say why."""
    several = len(changes) > 1
    steps = []
    for change in changes:
        if not change.changed:
            continue
        if change.kind == "rollback":
            steps.append(Step(change.workload, False, "a rollback is never undone (like kubectl rollout undo): "
                                                      "it stays in place"))
        elif several:
            steps.append(Step(change.workload, True, "a release of several workloads is all or nothing"))
        elif rollback_on_failure:
            steps.append(Step(change.workload, True, "rollback-on-failure is true"))
        else:
            left = "cancelled" if trigger == "cancelled" else "failed"
            steps.append(Step(change.workload, False, f"left on the {left} release (rollback-on-failure is false)"))
    return tuple(steps)


@dataclass(frozen=True)
class WaitBudget:
    """Deadlines (same clock as ``time.monotonic``) for the forward rollout wait."""

    soft: float  # stop here unless the rollout is still moving
    hard: float  # never wait past this
    deadline: float  # the step's own deadline (the restore's wait may use up to here)
    progress_grace: float = PROGRESS_GRACE


def wait_budget(start: float, deadline: float, may_restore: bool) -> WaitBudget:
    """The forward wait's deadlines: the whole timeout when nothing would be put back, else soft = two
    thirds, hard = the timeout minus ``RESTORE_RESERVE`` (never before the soft end)."""
    if not may_restore:
        return WaitBudget(deadline, deadline, deadline)
    total = max(0.0, deadline - start)
    soft = deadline - total / 3
    hard = max(soft, deadline - min(total / 3, RESTORE_RESERVE))
    return WaitBudget(soft, hard, deadline, max(PROGRESS_GRACE, total / 10))


def next_wait_end(budget: WaitBudget, now: float, last_progress: float | None) -> float | None:
    """Where the forward wait should end next, or None when it must stop now.

    Before the soft end: the soft end. After it: while the last new status line is at most
    ``progress_grace`` old, until that grace runs out (capped at the hard end); then stop.
    """
    if now < budget.soft:
        return budget.soft
    if now >= budget.hard or last_progress is None:
        return None
    end = last_progress + budget.progress_grace
    if end <= now:
        return None
    return min(end, budget.hard)


@dataclass(frozen=True)
class ForeignChange:
    """The workload is no longer what this run wrote: someone else changed it since."""

    workload: str
    images: tuple[str, ...]  # "container=image" as live now
    change_cause: str | None  # as live now

    def describe(self) -> str:
        cause = repr(self.change_cause) if self.change_cause is not None else "none"
        return (f"{self.workload} was changed by someone else after this run wrote it: it now runs "
                f"{', '.join(self.images) or 'no containers'} with change-cause {cause}")


def foreign_change(workload: str, written: Mapping[str, Any] | None, live: Mapping[str, Any]
                   ) -> ForeignChange | None:
    """Compare the live object with the answer to this run's write: pod template and change-cause.

    None when they agree (status, replicas and other annotations may differ: controllers and scalers change
    them, that is not a change of release) or when this run wrote nothing.
    """
    if written is None:
        return None
    written_cause = ((written.get("metadata") or {}).get("annotations") or {}).get(CHANGE_CAUSE)
    live_cause = ((live.get("metadata") or {}).get("annotations") or {}).get(CHANGE_CAUSE)
    live_template = (live.get("spec") or {}).get("template") or {}
    if same_template(live_template, (written.get("spec") or {}).get("template") or {}) and live_cause == written_cause:
        return None
    return ForeignChange(workload, images_of(live_template), live_cause)
