"""compensation.plan, wait_budget and next_wait_end: what is put back, and how long the forward wait may go."""

from __future__ import annotations

from typing import Any

import pytest

from rollback.compensation import (
    PROGRESS_GRACE,
    RESTORE_RESERVE,
    Change,
    WaitBudget,
    compensable,
    foreign_change,
    next_wait_end,
    plan,
    wait_budget,
)

WEB_DEPLOY = Change("deployment/web", "deploy", True)
DB_DEPLOY = Change("statefulset/db", "deploy", True)
WEB_ROLLBACK = Change("deployment/web", "rollback", True)
DB_ROLLBACK = Change("statefulset/db", "rollback", True)
DB_UNTOUCHED = Change("statefulset/db", "deploy", False)


@pytest.mark.parametrize("changes, rollback_on_failure, restored, kept", [
    ((WEB_DEPLOY,), True, ["deployment/web"], []),
    ((WEB_DEPLOY,), False, [], ["deployment/web"]),
    ((WEB_ROLLBACK,), True, [], ["deployment/web"]),  # a rollback is never undone
    ((WEB_ROLLBACK,), False, [], ["deployment/web"]),
    ((WEB_ROLLBACK, DB_ROLLBACK), False, [], ["deployment/web", "statefulset/db"]),
    ((WEB_DEPLOY, DB_DEPLOY), False, ["deployment/web", "statefulset/db"], []),  # all or nothing
    ((WEB_DEPLOY, DB_UNTOUCHED), False, ["deployment/web"], []),  # nothing to put back on an untouched one
    ((WEB_ROLLBACK, DB_DEPLOY), False, ["statefulset/db"], ["deployment/web"]),  # auto: mixed modes
])
def test_plan(changes: tuple[Change, ...], rollback_on_failure: bool, restored: list[str], kept: list[str]
              ) -> None:
    steps = plan(changes, rollback_on_failure, "rollout-failed")
    assert [s.workload for s in steps if s.restore] == restored
    assert [s.workload for s in steps if not s.restore] == kept
    for step in steps:
        assert step.why
        if step.workload in kept and any(c.workload == step.workload and c.kind == "rollback" for c in changes):
            assert "never undone" in step.why


def test_plan_says_cancelled_for_a_cancelled_single_deploy() -> None:
    (step,) = plan((WEB_DEPLOY,), False, "cancelled")
    assert not step.restore and "cancelled" in step.why


@pytest.mark.parametrize("changes, rollback_on_failure, expected", [
    ((WEB_DEPLOY,), True, True),
    ((WEB_DEPLOY,), False, False),
    ((WEB_ROLLBACK,), True, False),
    ((WEB_ROLLBACK, DB_ROLLBACK), False, False),
    ((WEB_DEPLOY, DB_DEPLOY), False, True),
    ((WEB_ROLLBACK, DB_DEPLOY), False, True),
])
def test_compensable(changes: tuple[Change, ...], rollback_on_failure: bool, expected: bool) -> None:
    assert compensable(changes, rollback_on_failure) is expected


def test_nothing_to_put_back_gets_the_whole_timeout() -> None:
    assert wait_budget(100.0, 400.0, may_restore=False) == WaitBudget(400.0, 400.0, 400.0)


@pytest.mark.parametrize("timeout, soft, hard", [
    (300.0, 200.0, 300.0 - RESTORE_RESERVE),  # 5m: a moving rollout may go on until 10 s before the end
    (30.0, 20.0, 20.0),  # short: the third left is the reserve itself
    (15.0, 10.0, 10.0),
])
def test_budget_keeps_only_the_restore_reserve_for_a_moving_rollout(timeout: float, soft: float, hard: float
                                                                    ) -> None:
    budget = wait_budget(0.0, timeout, may_restore=True)
    assert (budget.soft, budget.hard, budget.deadline) == pytest.approx((soft, hard, timeout))
    assert budget.progress_grace >= PROGRESS_GRACE


BUDGET = WaitBudget(soft=200.0, hard=290.0, deadline=300.0, progress_grace=30.0)


@pytest.mark.parametrize("now, last_progress, expected", [
    (0.0, None, 200.0),  # before the soft end: wait until it
    (150.0, 140.0, 200.0),
    (200.0, None, None),  # at the soft end, never moved: stop (the restore gets the last third)
    (200.0, 150.0, None),  # last progress 50 s ago, grace 30 s: stalled
    (200.0, 190.0, 220.0),  # moved 10 s ago: go on until the grace runs out
    (250.0, 249.0, 279.0),
    (280.0, 279.0, 290.0),  # capped at the hard end
    (290.0, 289.9, None),  # the hard end: stop
])
def test_next_wait_end(now: float, last_progress: float | None, expected: float | None) -> None:
    assert next_wait_end(BUDGET, now, last_progress) == expected


def _obj(image: str, cause: str | None, replicas: int = 2, rv: str = "1") -> dict[str, Any]:
    notes = {"kubernetes.io/change-cause": cause} if cause is not None else {}
    return {"metadata": {"annotations": notes, "resourceVersion": rv},
            "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": "web"}},
                                                        "spec": {"containers": [{"name": "web", "image": image}]}}}}


@pytest.mark.parametrize("live, foreign", [
    (_obj("web:2", "2.0.0"), None),
    (_obj("web:2", "2.0.0", replicas=5, rv="9"), None),  # scaled, status changed: still our release
    (_obj("web:hotfix", "2.0.0"), ("web=web:hotfix", "2.0.0")),  # kubectl set image keeps the change-cause
    (_obj("web:2", "2.0.1"), ("web=web:2", "2.0.1")),
    (_obj("web:1", None), ("web=web:1", None)),
])
def test_foreign_change(live: dict[str, Any], foreign: tuple[str, str | None] | None) -> None:
    found = foreign_change("deployment/web", _obj("web:2", "2.0.0"), live)
    if foreign is None:
        assert found is None
    else:
        assert found is not None and (found.images, found.change_cause) == ((foreign[0],), foreign[1])
        assert "changed by someone else" in found.describe() and foreign[0] in found.describe()


def test_nothing_written_is_never_a_foreign_change() -> None:
    assert foreign_change("deployment/web", None, _obj("web:hotfix", "x")) is None


# -- the wiring in run.py: the forward wait goes on past the soft end while the rollout moves ------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _scripted_wait(clock: _Clock, script: list[tuple[float, list[str], str]]) -> Any:
    """A stand-in for rollout.wait_for_rollout: each call advances the clock to its deadline (or to the
    scripted moment the rollout completes), reports the scripted status lines, and returns."""
    from rollback.rollout import RolloutOutcome

    calls: list[float] = []

    def wait(workload: Any, deadline: float, on_progress: Any, **_: Any) -> RolloutOutcome:
        calls.append(deadline)
        for at, lines, result in script:
            if at < clock.now:
                continue  # already reported by an earlier slice
            if at > deadline:
                break
            clock.now = at
            for line in lines:
                on_progress(line)
            if result == "complete":
                return RolloutOutcome("complete", lines[-1])
        clock.now = max(clock.now, deadline)
        return RolloutOutcome("timeout", "timed out waiting")

    wait.calls = calls  # type: ignore[attr-defined]
    return wait


@pytest.mark.parametrize("script, result, slices", [
    # one replica more every 8 s: still moving at the soft end (200 s), so it waits on (to 230 s, then to
    # 254 s: 30 s after the last new line) and sees it complete at 232 s, before the hard end (290 s)
    ([(t, [f"{n} of 30 updated"], "complete" if n == 29 else "moving") for n, t in
      ((n, float(8 * n)) for n in range(30))], "complete", 3),
    # stalled since 100 s: stops at the soft end, the last third is left for putting it back
    ([(0.0, ["0 of 3"], ""), (100.0, ["1 of 3"], "")], "timeout", 1),
])
def test_the_forward_wait_goes_on_while_the_rollout_moves(monkeypatch: pytest.MonkeyPatch,
                                                          script: list[tuple[float, list[str], str]],
                                                          result: str, slices: int) -> None:
    from rollback import run

    clock = _Clock()
    wait = _scripted_wait(clock, script)
    monkeypatch.setattr(run, "wait_for_rollout", wait)
    ctx = type("Ctx", (), {"now": staticmethod(clock)})()
    target = type("T", (), {"workload": "deployment/web"})()
    outcome = run._wait_forward(ctx, target, WaitBudget(soft=200.0, hard=290.0, deadline=300.0,  # type: ignore[arg-type]
                                                        progress_grace=30.0))
    assert outcome.result == result
    assert len(wait.calls) == slices and max(wait.calls) <= 290.0
