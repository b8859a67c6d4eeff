"""Orchestration: inputs → history → decision → changes → wait → compensation → report.

Everything here is sequencing and logging; the decisions come from ``history.resolve`` and ``modes.calculate``
and the kind-specific calls from ``workloads``. Every workload is read and validated before anything is
written, so bad input or a missing release changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from . import gha
from .cluster import Api, ApiFailure
from .history import History, NoPreviousRevision, ReleaseNotFound, Revision, resolve, to_json_rows
from .inputs import Inputs
from .manifests import ManifestError, with_release
from .modes import Decision, LedgerFacts, calculate
from .report import Action, Rollout, RunReport, WorkloadResult
from .rollout import RolloutOutcome, wait_for_rollout
from .workloads import (
    ANNOTATION_PREFIX,
    CHANGE_CAUSE,
    Conflict,
    NotFound,
    Obj,
    StatefulSet,
    Workload,
    WorkloadError,
    same_template,
    workload_for,
)

REASON_ANNOTATION = ANNOTATION_PREFIX + "rollback-reason"
FROM_ANNOTATION = ANNOTATION_PREFIX + "rolled-back-from"
BY_ANNOTATION = ANNOTATION_PREFIX + "rolled-back-by"
AT_ANNOTATION = ANNOTATION_PREFIX + "rolled-back-at"
ROLLBACK_ANNOTATIONS = (REASON_ANNOTATION, FROM_ANNOTATION, BY_ANNOTATION, AT_ANNOTATION)
CONFLICT_RETRIES = 3
OBSERVE_WAIT = 10.0  # seconds to wait for a controller to observe a spec before reading history


class RunError(Exception):
    """The run cannot go on; ``input_name`` names the input to fix when the cause is an input."""

    def __init__(self, message: str, input_name: str | None = None):
        super().__init__(message)
        self.message = message
        self.input_name = input_name


@dataclass
class Target:
    """One workload as read at the start of the run, and what the run plans and did to it."""

    workload: Workload
    obj: Obj
    history: History
    decision: Decision | None = None
    revision: Revision | None = None  # rollback target
    duplicates: tuple[int, ...] = ()
    skipped: bool = False
    changed: bool = False
    action: Action = "unchanged"
    rollout: Rollout = "n/a"
    message: str = ""
    after: Obj | None = None
    history_after: History | None = None
    stuck_pods: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    """What the run needs from around it: the API, the clock, the actor, and how to log."""

    api: Api
    actor: str = ""
    now: Callable[[], float] = time.monotonic
    ledger_facts: Callable[[str], LedgerFacts | None] = lambda workload: None
    manifest_loader: Callable[[Inputs], list[Obj]] | None = None  # raises ManifestError


def execute(inputs: Inputs, ctx: Context) -> RunReport:
    deadline = ctx.now() + inputs.timeout
    manifests = _load_manifests(inputs, ctx)
    targets = [_read(inputs, ctx, ref, deadline, manifests) for ref in inputs.workloads]
    mode = inputs.mode
    if mode == "history":
        return _report(inputs, targets, None)
    decisions = [calculate(inputs.release, t.history, ctx.ledger_facts(str(t.workload))) for t in targets]
    for target, decision in zip(targets, decisions, strict=True):
        target.decision = decision
        for warning in decision.warnings:
            gha.warning(gha.escape_log(f"{target.workload}: {warning}"))
    overall = _overall(targets)
    if mode == "calculate":
        return _report(inputs, targets, overall)
    if mode == "auto":
        plan = {str(t.workload): (t.decision.mode if t.decision else "deploy") for t in targets}
    elif mode == "rollback":
        plan = {str(t.workload): "rollback" for t in targets}
    else:
        plan = {str(t.workload): "deploy" for t in targets}
    rollbacks = [t for t in targets if plan[str(t.workload)] == "rollback"]
    deploys = [t for t in targets if plan[str(t.workload)] != "rollback"]
    _prepare_rollbacks(inputs, rollbacks)
    for target in targets:
        if not target.skipped and target.obj:
            target.workload.check_changeable(target.obj)
    changed: list[Target] = []
    try:
        for target in rollbacks:
            _rollback(inputs, ctx, target)
            if target.changed:
                changed.append(target)
        for target in deploys:
            _deploy(inputs, target, plan[str(target.workload)], manifests)
            if target.changed:
                changed.append(target)
    except Exception:
        _compensate(inputs, ctx, changed, deadline, why="a later write failed")
        raise
    if inputs.dry_run or not inputs.wait:
        for target in targets:
            target.rollout = "not-waited" if target.changed else "n/a"
        return _finish(inputs, ctx, targets, overall)
    failed = _wait_all(inputs, ctx, changed, deadline)
    if not failed:
        return _finish(inputs, ctx, targets, overall)
    compensate = bool(rollbacks) or inputs.rollback_on_failure
    if not compensate:
        return _finish(inputs, ctx, targets, overall, error=_failure_message(failed))
    restored = _compensate(inputs, ctx, changed, ctx.now() + max(inputs.timeout, 60.0),
                           why=f"{_failure_message(failed)}")
    report = _finish(inputs, ctx, targets, decision, error=_failure_message(failed))
    if restored and deploys and inputs.rollback_on_failure:
        return replace(report, rolled_back=True, failed_release=inputs.release)
    return report


# -- reading and deciding --------------------------------------------------------------------------------------


def _load_manifests(inputs: Inputs, ctx: Context) -> dict[str, Obj]:
    """Manifest objects by workload (``deployment/web``), loaded and checked before anything is written."""
    if not inputs.manifests or inputs.mode not in ("deploy", "auto", "calculate"):
        return {}
    if ctx.manifest_loader is None:
        raise RunError("manifests are not supported here", "manifests")
    try:
        objects = ctx.manifest_loader(inputs)
    except ManifestError as err:
        raise RunError(str(err), "manifests") from None
    by_workload: dict[str, Obj] = {}
    for obj in objects:
        by_workload[f"{obj['kind'].lower()}/{obj['metadata']['name']}"] = obj
    missing = [str(ref) for ref in inputs.workloads if str(ref) not in by_workload]
    if missing:
        raise RunError(f"the manifests contain no object for {', '.join(missing)}; they contain "
                       f"{', '.join(by_workload) or 'nothing'}", "manifests")
    try:
        return {key: with_release(obj, inputs.release, inputs.namespace) for key, obj in by_workload.items()}
    except ManifestError as err:
        raise RunError(str(err), "manifests") from None


def _read(inputs: Inputs, ctx: Context, ref: Any, deadline: float, manifests: Mapping[str, Obj]) -> Target:
    workload = workload_for(ctx.api, inputs.namespace, ref)
    try:
        obj = workload.read()
    except NotFound:
        if str(workload) not in manifests:
            raise
        empty = History(workload=workload.ref, revisions=(), live=None, live_release=None, pruned=(),
                        history_limit=None)
        return Target(workload, {}, empty)  # first deploy: the manifest creates it
    settle = min(deadline, ctx.now() + OBSERVE_WAIT)
    while not workload.observed(obj) and ctx.now() < settle:
        time.sleep(0.1)
        obj = workload.read()
    return Target(workload, obj, workload.history(obj))


def _overall(targets: list[Target]) -> Decision | None:
    decisions = [t.decision for t in targets if t.decision is not None]
    if not decisions:
        return None
    modes = {d.mode for d in decisions}
    if len(modes) > 1:
        described = ", ".join(f"{t.workload}={t.decision.mode}" for t in targets if t.decision)
        gha.warning(gha.escape_log(f"the workloads need different modes ({described}); outputs report "
                                   f"{decisions[0].mode}, the first workload's"))
    return decisions[0]


def _prepare_rollbacks(inputs: Inputs, targets: list[Target]) -> None:
    """Resolve every rollback target before touching anything: all or nothing."""
    problems = []
    for target in targets:
        try:
            resolution = resolve(target.history, inputs.release)
        except (ReleaseNotFound, NoPreviousRevision) as err:
            problems.append(f"{target.workload}: {err}")
            continue
        target.revision = resolution.target
        target.duplicates = resolution.duplicates
        target.skipped = resolution.skipped
        if resolution.duplicates:
            gha.warning(gha.escape_log(
                f"{target.workload}: release {inputs.release!r} is the change-cause of several revisions "
                f"({', '.join(str(n) for n in (*resolution.duplicates, resolution.target.number))}); using the "
                f"newest, revision {resolution.target.number}"))
    if problems:
        raise RunError("nothing was changed: " + "; ".join(problems), "release")


# -- changing --------------------------------------------------------------------------------------------------


def _rollback_annotations(inputs: Inputs, ctx: Context, target: Target) -> dict[str, str | None]:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        REASON_ANNOTATION: inputs.reason or None,
        FROM_ANNOTATION: target.history.live_release,
        BY_ANNOTATION: ctx.actor or None,
        AT_ANNOTATION: stamp,
    }


def _rollback(inputs: Inputs, ctx: Context, target: Target) -> None:
    assert target.revision is not None
    if target.skipped:
        target.action = "skipped"
        target.message = (f"skipped rollback (current template already matches revision "
                          f"{target.revision.number})")
        gha.info(gha.escape_log(f"{target.workload}: {target.message}"))
        return
    for attempt in range(CONFLICT_RETRIES + 1):
        extra = _rollback_annotations(inputs, ctx, target)
        try:
            before_update_revision = (target.obj.get("status") or {}).get("updateRevision")
            target.after = target.workload.undo(target.obj, target.revision, extra, inputs.dry_run)
            break
        except Conflict:
            if attempt == CONFLICT_RETRIES:
                raise RunError(f"{target.workload} kept changing under us ({CONFLICT_RETRIES + 1} attempts); "
                               f"nothing was overwritten. Find the other writer and run again.") from None
            gha.info(gha.escape_log(f"{target.workload}: changed by someone else; re-reading and resolving again"))
            target.obj = target.workload.read()
            target.history = target.workload.history(target.obj)
            resolution = resolve(target.history, inputs.release)
            target.revision, target.skipped = resolution.target, resolution.skipped
            if target.skipped:
                target.action = "skipped"
                target.message = "skipped rollback (someone else already rolled back to it)"
                return
    target.changed = not inputs.dry_run
    target.action = "dry-run" if inputs.dry_run else "rolled-back"
    target.message = (f"{'would roll' if inputs.dry_run else 'rolled'} back to revision {target.revision.number} "
                      f"({target.revision.release or '<none>'})")
    gha.info(gha.escape_log(f"{target.workload}: {target.message}"))
    if isinstance(target.workload, StatefulSet) and inputs.force_statefulset_rollback and not inputs.dry_run:
        _unstick_statefulset(ctx, target, before_update_revision)


def _unstick_statefulset(ctx: Context, target: Target, bad_revision: str | None) -> None:
    """OrderedReady waits forever for a pod of the failed revision that never becomes Ready. After the revert,
    delete those pods (only those) so the controller recreates them from the restored template."""
    if not bad_revision:
        return
    workload = target.workload
    assert isinstance(workload, StatefulSet)
    settle = ctx.now() + OBSERVE_WAIT
    obj = workload.read()
    while ctx.now() < settle and ((obj.get("status") or {}).get("updateRevision") == bad_revision
                                  or not workload.observed(obj)):
        time.sleep(0.1)
        obj = workload.read()
    if (obj.get("status") or {}).get("updateRevision") == bad_revision:
        return
    bad_hash = bad_revision.rsplit("-", 1)[-1]
    for pod in workload.stuck_pods(obj, bad_hash) + workload.stuck_pods(obj, bad_revision):
        name = pod["metadata"]["name"]
        if name in target.stuck_pods:
            continue
        gha.info(gha.escape_log(f"{workload}: deleting pod {name}: it runs the failed revision and is not Ready, "
                                f"so OrderedReady would wait for it forever"))
        workload.delete_pod(name)
        target.stuck_pods.append(name)


def _deploy(inputs: Inputs, target: Target, planned: str, manifests: Mapping[str, Obj]) -> None:
    annotations: dict[str, str | None] = {CHANGE_CAUSE: inputs.release}
    annotations.update(dict.fromkeys(ROLLBACK_ANNOTATIONS))
    workload, obj = target.workload, target.obj
    if inputs.images:
        target.after = workload.set_images(obj, inputs.images, annotations, inputs.dry_run)
    elif manifests:
        target.after = workload.apply(manifests[str(workload)], inputs.dry_run)
    else:
        target.after = workload.annotate(obj, annotations, inputs.dry_run)
    before_template = (obj.get("spec") or {}).get("template") or {}
    template_changed = not obj or not same_template(target.after["spec"]["template"], before_template)
    release_changed = target.history.live_release != inputs.release
    target.changed = (template_changed or release_changed) and not inputs.dry_run
    if inputs.dry_run:
        target.action = "dry-run"
    elif template_changed:
        target.action = "deployed"
    elif release_changed:
        target.action = "deployed" if planned == "deploy" else "redeployed"
    else:
        target.action = "redeployed"
    what = "template and change-cause" if template_changed else "change-cause only (template unchanged)"
    if not obj:
        what = "created from the manifest"
    target.message = f"{'would deploy' if inputs.dry_run else target.action} {inputs.release}: {what}"
    gha.info(gha.escape_log(f"{workload}: {target.message}"))


# -- waiting and compensating ----------------------------------------------------------------------------------


def _wait_all(inputs: Inputs, ctx: Context, changed: list[Target], deadline: float) -> list[Target]:
    failed = []
    for target in changed:
        with gha.group(f"Waiting for {target.workload} to roll out"):
            outcome = _wait(ctx, target, deadline)
        target.rollout = outcome.result
        if not outcome.ok:
            target.message = outcome.message
            failed.append(target)
            gha.error(gha.escape_log(f"{target.workload}: {outcome.message}"))
        else:
            gha.info(gha.escape_log(f"{target.workload}: {outcome.message}"))
    return failed


def _wait(ctx: Context, target: Target, deadline: float) -> RolloutOutcome:
    def progress(line: str) -> None:
        gha.info(gha.escape_log(f"{target.workload}: {line}"))

    return wait_for_rollout(target.workload, deadline, progress, clock=ctx.now)


def _compensate(inputs: Inputs, ctx: Context, changed: list[Target], deadline: float, why: str) -> bool:
    """Put every changed workload back to the template and release it had before this run."""
    if not changed or inputs.dry_run:
        return False
    gha.warning(gha.escape_log(f"{why}: putting {len(changed)} changed workload(s) back where they were"))
    all_restored = True
    for target in changed:
        try:
            restored = _restore(inputs, ctx, target)
        except (WorkloadError, ApiFailure, RunError) as err:
            gha.error(gha.escape_log(f"{target.workload}: could not be put back: {err}"))
            target.action = "failed"
            all_restored = False
            continue
        if restored and inputs.wait:
            with gha.group(f"Waiting for {target.workload} to be restored"):
                outcome = _wait(ctx, target, deadline)
            if not outcome.ok:
                gha.error(gha.escape_log(f"{target.workload}: restoring it did not finish: {outcome.message}"))
                all_restored = False
                target.action = "failed"
                continue
        target.action = "compensated"
        target.message = (f"put back to {target.history.live_release or '<none>'} after the run failed "
                          f"({target.message or why})")
    return all_restored


def _restore(inputs: Inputs, ctx: Context, target: Target) -> bool:
    """Undo to the template that was live before the run, then put the change-cause back if it differs."""
    workload = target.workload
    if not target.obj:
        raise RunError(f"{workload} did not exist before this run; delete it or deploy a working release")
    current = workload.read()
    before_template = target.obj["spec"]["template"]
    before_notes = target.obj["metadata"].get("annotations") or {}
    restored = False
    if not same_template(current["spec"]["template"], before_template):
        history = workload.history(current)
        candidates = [r for r in history.revisions if same_template(r.template, before_template)]
        if not candidates:
            raise RunError(f"the revision that was live before the run is gone from {workload}'s history")
        revision = replace(candidates[-1], release=target.history.live_release)
        extra: dict[str, str | None] = {key: before_notes.get(key) for key in ROLLBACK_ANNOTATIONS}
        before_update_revision = (current.get("status") or {}).get("updateRevision")
        workload.undo(current, revision, extra, dry_run=False)
        if isinstance(workload, StatefulSet) and inputs.force_statefulset_rollback:
            _unstick_statefulset(ctx, target, before_update_revision)
        restored = True
        current = workload.read()
    if (current["metadata"].get("annotations") or {}).get(CHANGE_CAUSE) != target.history.live_release:
        workload.annotate(current, {CHANGE_CAUSE: target.history.live_release}, dry_run=False)
        restored = True
    return restored


def _failure_message(failed: list[Target]) -> str:
    return "; ".join(f"{t.workload}: {t.message}" for t in failed)


# -- reporting -------------------------------------------------------------------------------------------------


def _finish(inputs: Inputs, ctx: Context, targets: list[Target], decision: Decision | None,
            error: str | None = None) -> RunReport:
    for target in targets:
        if target.changed or target.action in ("compensated", "failed"):
            try:
                target.after = target.workload.read()
                target.history_after = target.workload.history(target.after)
            except (WorkloadError, ApiFailure) as err:
                gha.warning(gha.escape_log(f"{target.workload}: could not re-read after the run: {err}"))
    return _report(inputs, targets, decision, error)


def _report(inputs: Inputs, targets: list[Target], decision: Decision | None, error: str | None = None
            ) -> RunReport:
    results = tuple(_result(inputs, t) for t in targets)
    return RunReport(
        mode=inputs.mode, decision=decision, results=results, reason=inputs.reason, dry_run=inputs.dry_run,
        rolled_back=False, failed_release=None, blocked_release=None, blocked=False,
        last_successful_release=None, last_attempted_release=None, error=error, release=inputs.release,
    )


def _result(inputs: Inputs, target: Target) -> WorkloadResult:
    before = target.history
    after = target.history_after or before
    mode = target.decision.mode if target.decision else inputs.mode
    if inputs.mode in ("deploy", "rollback"):
        mode = inputs.mode
    if inputs.mode == "deploy" and target.decision and target.decision.mode == "redeploy":
        mode = "redeploy"
    revision = after.live
    release = after.live_release
    if inputs.dry_run and target.revision is not None:
        revision, release = target.revision.number, target.revision.release
    return WorkloadResult(
        workload=str(target.workload), kind=target.workload.kind, name=target.workload.name,
        namespace=inputs.namespace, mode=mode, action=target.action, release=release,
        previous_release=before.live_release, revision=revision, previous_revision=before.live,
        rollout=target.rollout, message=target.message, history=tuple(to_json_rows(after)),
        duplicates=target.duplicates, pruned=after.pruned,
    )

