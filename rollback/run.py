"""Orchestration: inputs → history → decision → changes → wait → compensation → report.

Everything here is sequencing and logging; the decisions come from ``history.resolve``, ``modes.calculate`` and
``compensation``, the kind-specific calls from ``workloads``. The rooms it calls: ``prepare`` (images per
workload, pre-flight checks and the plan, before any write), ``recording`` (ledger, blocks, GitHub), ``results``
(where each workload ended); the data they share is in ``targets``. Every workload is read and validated before
anything is written, so bad input or a missing release changes nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from . import compensation, gha, preflight
from .cancellation import CANCEL_BUDGET, CANCEL_FINISH, Cancelled
from .cluster import ApiFailure
from .diagnostics import PodWatch
from .github import record as github_record
from .history import History, NoPreviousRevision, ReleaseNotFound, Resolution, resolve
from .inputs import ImageSpec, Inputs, Mode
from .lease import LEASE_DURATION, LeaseHeld, Leases
from .ledger import APPLIED, NOT_VERIFIED, Block, LedgerState
from .manifests import ManifestError, with_release
from .modes import Decision, calculate
from .prepare import (
    check_before_writing,
    images_by_workload,
    images_for_plan,
    require_template_change,
    show_plan,
)
from .recording import (
    calculated_report,
    find_block,
    github_begin,
    ledger_facts,
    load_ledger,
    reconcile_interrupted,
    record_run,
    refuse_blocked,
    settle_write_ahead,
    unblock,
    write_ahead,
)
from .report import RunReport
from .results import build_report, early_results, failure_message, finish_report
from .rollout import RolloutOutcome, explained, wait_for_rollout
from .targets import ChangedByOthers, Context, RunError, Target
from .workloads import (
    ANNOTATION_PREFIX,
    CHANGE_CAUSE,
    Conflict,
    NotFound,
    Obj,
    StatefulSet,
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


CHANGING_MODES = ("auto", "deploy", "rollback")


def execute(inputs: Inputs, ctx: Context) -> RunReport:
    """Run the requested mode and record it in the ledger, holding the workloads' leases while it runs."""
    if inputs.mode == "unblock":
        return unblock(inputs, ctx)
    deadline = ctx.api.work_deadline(ctx.now() + inputs.timeout)  # leaves time to read back and record
    leases = ctx.leases if inputs.mode in CHANGING_MODES and not inputs.dry_run else None  # taken in _run
    try:
        if leases is not None and inputs.wait_for_lease:
            # waiting for another run: take the leases first, so that everything is read after it finished
            _take_leases(inputs, ctx, leases, deadline)
        return _execute(inputs, ctx, deadline)
    except (RunError, WorkloadError, ApiFailure) as err:
        if not hasattr(err, "results"):  # stopped before any workload was read: each is listed, not known
            err.results = early_results(inputs, ctx, [])  # type: ignore[union-attr]
        raise
    finally:
        if leases is not None:
            for workload in leases.lost:
                gha.warning(gha.escape_log(f"{workload}: another run took over this run's lease while it ran (it "
                                           f"could not renew it for {LEASE_DURATION} s); what is live there may "
                                           f"be that run's doing"))
            leases.release()


def _take_leases(inputs: Inputs, ctx: Context, leases: Leases, deadline: float) -> None:
    """One run per workload at a time (lease.py): refused at once, naming the holder, unless
    wait-for-lease asks to wait (within the timeout). Taken once every check passed and before the first
    write (a refused run leaves nothing behind, not even a Lease); what changed between this run's read and
    the lease is caught by the resourceVersion precondition every write carries."""
    activity = _activity(inputs)
    try:
        with ctx.cancellation.interruptible() if inputs.wait_for_lease else contextlib.nullcontext():
            taken = leases.acquire([str(ref) for ref in inputs.workloads], activity,
                                   wait_until=deadline if inputs.wait_for_lease else None, clock=ctx.now)
    except LeaseHeld as err:
        raise RunError(str(err)) from None
    except ApiFailure as err:
        if err.status != 403 or inputs.mode != "rollback":
            raise
        # Nothing about the leases stops a rollback mid-incident: it goes on, unprotected, and says so.
        gha.warning(gha.escape_log(f"could not take the workloads' leases ({err.status} {err.reason}: "
                                   f"{err.message}); rolling back anyway, but another run on the same workload "
                                   f"would not be held off. Grant leases get, create and update (README, RBAC)"))
        return
    except Cancelled:
        leases.release()
        raise
    for item in taken:
        previous = item.decision.previous
        if item.decision.action == "take" and previous is not None and previous.identity:  # not a released one
            gha.info(gha.escape_log(f"{item.workload}: took over the lease of {previous.description} "
                                    f"({item.decision.why})"))
    leases.keep_renewed(deadline + LEASE_DURATION, clock=ctx.now)


def _activity(inputs: Inputs) -> str:
    """What this run is doing, for the lease and the ledger: ``deploying 1.3.0``, ``rolling back to 1.2.0``."""
    doing = {"deploy": "deploying", "rollback": "rolling back to", "auto": "deploying or rolling back to"}
    return f"{doing.get(inputs.mode, inputs.mode)} {inputs.release or 'the previous revision'}"


def _execute(inputs: Inputs, ctx: Context, deadline: float) -> RunReport:
    try:
        state = load_ledger(inputs, ctx)
    except RunError as err:  # nothing read or changed yet: the error still says where every workload is
        err.results = early_results(inputs, ctx, [])  # type: ignore[attr-defined]
        raise
    if state is None and ctx.ledger is not None:  # unusable (see load_ledger): not read, not written
        ctx = replace(ctx, ledger=None)
    # Looked up once (it may cost a GitHub request): calculate warns, deploy/auto refuse, the ledger notes
    # an override.
    block = find_block(inputs, ctx, state) if inputs.mode in ("auto", "deploy", "calculate", "rollback") else None
    targets: list[Target] = []
    try:
        report = _run(inputs, ctx, state, targets, block, deadline)
    except (RunError, WorkloadError, ApiFailure) as err:
        if not any(t.changed or t.action in ("compensated", "failed") for t in targets):
            # nothing was changed (or it was all put back before anything else): a plain error, which still
            # says where every workload is (the ones not read yet: unchanged, not known)
            settle_write_ahead(inputs, ctx, targets)
            err.results = early_results(inputs, ctx, targets)  # type: ignore[union-attr]
            github_record.failed(ctx.deployments, err.message if isinstance(err, (RunError, ApiFailure))
                                 else str(err))
            raise
        # A write failed after other workloads were changed and put back: report where each one ended, and
        # record it, instead of losing that in an exception.
        message = err.message if isinstance(err, (RunError, ApiFailure)) else str(err)
        report = finish_report(inputs, targets, _overall(targets), error=message)
    report = record_run(inputs, ctx, state, targets, report, block)
    if ctx.notes:  # e.g. an interrupted earlier run: in the job summary too, not only in the log
        report = replace(report, warnings=(*report.warnings, *ctx.notes))
    return github_record.finish(ctx.deployments, inputs, report)


def _run(inputs: Inputs, ctx: Context, state: LedgerState | None, targets: list[Target], block: Block | None,
         deadline: float | None = None) -> RunReport:
    if deadline is None:
        deadline = ctx.api.work_deadline(ctx.now() + inputs.timeout)  # leaves time to read back and record
    manifests = _load_manifests(inputs, ctx)
    targets.extend(_read(inputs, ctx, ref, deadline, manifests) for ref in inputs.workloads)
    for target in targets:
        _log_history(target)
    mode = inputs.mode
    if mode == "history":
        return build_report(inputs, targets, None)
    for target in targets:
        target.decision = calculate(inputs.release, target.history, ledger_facts(ctx, state, str(target.workload)))
        if mode != "rollback":  # the decision's warnings are about deploying; a rollback does not deploy
            for warning in target.decision.warnings:
                gha.warning(gha.escape_log(f"{target.workload}: {warning}"))
    overall = _overall(targets)
    if mode == "calculate":
        for target in targets:  # tell the plan job now, not when the change is refused
            for finding in preflight.ownership_findings(str(target.workload), preflight.managers(target.obj),
                                                        inputs.allow_managed):
                gha.warning(gha.escape_log(finding.message if finding.level == "warning" else
                                           f"deploying or rolling back would be refused: {finding.message}"))
                target.warnings.append(finding.message)
        as_auto = replace(inputs, mode=Mode.AUTO)  # what auto would do with this decision
        show_plan(inputs, targets, {str(t.workload): _planned(as_auto, t) for t in targets}, manifests,
                  images_for_plan(inputs, targets), calculate_only=True)
        return calculated_report(inputs, targets, overall, block)
    plan = {str(t.workload): _planned(inputs, t) for t in targets}
    rollbacks = [t for t in targets if plan[str(t.workload)] == "rollback"]
    deploys = [t for t in targets if plan[str(t.workload)] != "rollback"]
    refusal = refuse_blocked(inputs, targets, overall, block)
    if refusal is not None:
        return refusal
    _prepare_rollbacks(inputs, rollbacks)
    require_template_change(inputs, deploys, plan)
    images = images_by_workload(inputs, deploys)
    manifests = check_before_writing(inputs, ctx, targets, rollbacks, manifests)
    for target in targets:  # like kubectl, a paused Deployment is refused even when the target is live
        if target.obj:
            target.workload.check_changeable(target.obj)
    show_plan(inputs, targets, plan, manifests, images)
    if ctx.leases is not None and not inputs.dry_run and not ctx.leases.taken:
        _take_leases(inputs, ctx, ctx.leases, deadline)
        # now no other run works on these workloads: an in-progress entry of another run is from one that died
        state = reconcile_interrupted(inputs, ctx, state, targets)
    github_begin(inputs, ctx, targets)
    changed: list[Target] = []
    cancel = ctx.cancellation
    try:
        cancel.check()  # a signal before the first write: stop with nothing changed
        write_ahead(inputs, ctx, rollbacks, deploys, plan, images)
        for target in rollbacks:
            _rollback(inputs, ctx, target, deadline)
            if target.changed:
                target.written = target.after
                changed.append(target)
            cancel.check()
        for target in deploys:
            _deploy(inputs, target, plan[str(target.workload)], manifests, images.get(str(target.workload), ()))
            if target.changed:
                target.written = target.after
                changed.append(target)
            cancel.check()
    except Cancelled as cancelled:
        return _cancelled(inputs, ctx, targets, overall, cancelled, deadline)
    except Exception as err:
        _compensate(inputs, ctx, _to_restore(inputs, targets, "write-failed"), deadline,
                    why=f"a later write failed ({err})")
        raise
    if inputs.dry_run or not inputs.wait:
        for target in targets:
            target.rollout = "not-waited" if target.changed else "n/a"
            if target.changed:
                target.unverified = APPLIED
        return finish_report(inputs, targets, overall)
    # Only deploys are ever put back (a rollback is never undone); when one may be, the forward wait leaves
    # room for it without cutting off a rollout that is still moving (compensation.wait_budget).
    may_restore = compensation.compensable(_changes(targets), inputs.rollback_on_failure)
    try:
        with cancel.interruptible():
            failed = _wait_all(ctx, changed, compensation.wait_budget(ctx.now(), deadline, may_restore),
                               inputs.fail_fast)
    except Cancelled as cancelled:
        return _cancelled(inputs, ctx, targets, overall, cancelled, deadline)
    if not failed:
        return finish_report(inputs, targets, overall)
    message = failure_message(failed)
    failed_release = inputs.release if deploys else None
    restored = _compensate(inputs, ctx, _to_restore(inputs, targets, "rollout-failed"), deadline, why=message)
    report = replace(finish_report(inputs, targets, overall, error=message), failed_release=failed_release,
                     cancelled=ctx.cancellation.requested)
    if restored and deploys and inputs.rollback_on_failure:
        return replace(report, rolled_back=True)
    return report


def _cancelled(inputs: Inputs, ctx: Context, targets: list[Target], overall: Decision | None,
               cancelled: Cancelled, deadline: float) -> RunReport:
    """A signal stopped the run: put back what the plan says (writes only, within CANCEL_BUDGET), and report
    where every workload is. The ledger records the changed ones as ``cancelled``."""
    why = f"{cancelled}"
    gha.warning(gha.escape_log(f"{why}: stopping"))
    for target in targets:
        if target.changed and target.action not in ("compensated", "failed") and target.rollout != "complete":
            target.action = "failed"
            target.rollout = "n/a"
            target.message = f"{target.message}; cancelled before its rollout finished".lstrip("; ")
    budget = min(deadline, ctx.now() + CANCEL_BUDGET)
    # Every request from here on (putting back, reading back, the ledger) ends before the runner's SIGTERM,
    # also against a slow or hung API server: the step's request deadline moves in.
    soon = ctx.api.clock() + CANCEL_BUDGET + CANCEL_FINISH
    ctx.api.deadline = soon if ctx.api.deadline is None else min(ctx.api.deadline, soon)
    restored = _compensate(inputs, ctx, _to_restore(inputs, targets, "cancelled"), budget, why=why, wait=False)
    report = replace(finish_report(inputs, targets, overall, error=f"{why}; see each workload's message for where it "
                                                               f"was left"), cancelled=True)
    if restored and inputs.rollback_on_failure and any(t.revision is None and t.changed for t in targets):
        report = replace(report, rolled_back=True)
    return report


def _changes(targets: list[Target]) -> list[compensation.Change]:
    return [compensation.Change(str(t.workload), "rollback" if t.revision is not None else "deploy", t.changed)
            for t in targets]


def _to_restore(inputs: Inputs, targets: list[Target], trigger: compensation.Trigger) -> list[Target]:
    """The changed workloads the compensation plan puts back; the others keep what this run wrote, and
    their message says why."""
    steps = {s.workload: s for s in compensation.plan(_changes(targets), inputs.rollback_on_failure, trigger)}
    restore = []
    for target in targets:
        step = steps.get(str(target.workload))
        if step is None:
            continue
        if step.restore:
            restore.append(target)
        elif target.action == "failed":
            target.message = f"{target.message}; {step.why}" if target.message else step.why
    return restore


def _planned(inputs: Inputs, target: Target) -> str:
    """What this run does to one workload: the requested mode, or for auto the calculated one."""
    if inputs.mode == "rollback":
        return "rollback"
    if inputs.mode != "auto" or target.decision is None:
        return "deploy"
    decision = target.decision
    if decision.mode == "rollback" and decision.target_revision is None and (inputs.images or inputs.manifests):
        return "deploy"  # returning to a release whose revision is gone: deploy it again from images/manifests
    if (decision.mode != "rollback" and decision.target_revision not in (None, target.history.live)
            and not (inputs.images or inputs.manifests)):
        return "rollback"  # a deploy of a release an older revision has, and nothing to deploy it from: undo to it
    return decision.mode


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


def _log_history(target: Target) -> None:
    """The revision history in the log, like `kubectl rollout history`, with the live revision marked."""
    with gha.group(f"History of {target.workload} in namespace {target.workload.namespace}"):
        if not target.history.revisions:
            gha.info("No rollout history found.")
        for revision in target.history.revisions:
            marker = "  <- live" if revision.number == target.history.live else ""
            gha.info(f"{revision.number:>8}  {revision.release or '<none>'}  {', '.join(revision.images)}{marker}")
        if target.history.pruned:
            gha.info(f"pruned by revisionHistoryLimit: {', '.join(map(str, target.history.pruned))}")


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
            resolution = _resolve_previous(inputs, target) or resolve(target.history, inputs.release)
        except (ReleaseNotFound, NoPreviousRevision, RunError) as err:
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
        BY_ANNOTATION: ctx.github.actor,
        AT_ANNOTATION: stamp,
    }


def _rollback(inputs: Inputs, ctx: Context, target: Target, deadline: float) -> None:
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
    if inputs.mode == "auto" and target.decision is not None and target.decision.mode != "rollback":
        # a roll-forward to a release an older revision has (modes.calculate): the undo is only the means
        target.action = "dry-run" if inputs.dry_run else "deployed"
        target.message = (f"{'would deploy' if inputs.dry_run else 'deployed'} {inputs.release} by restoring "
                          f"the template of revision {target.revision.number}")
    gha.info(gha.escape_log(f"{target.workload}: {target.message}"))
    if isinstance(target.workload, StatefulSet) and inputs.force_statefulset_rollback and not inputs.dry_run:
        _unstick_statefulset(ctx, target, before_update_revision, deadline)


def _unstick_statefulset(ctx: Context, target: Target, bad_revision: str | None, deadline: float) -> None:
    """OrderedReady waits forever for a pod of a failed revision that never becomes Ready. After the revert,
    delete the not-Ready pods that are not on the restored revision (only those) so the controller recreates
    them from the restored template."""
    if not bad_revision:
        return
    workload = target.workload
    assert isinstance(workload, StatefulSet)
    settle = min(deadline, ctx.now() + OBSERVE_WAIT)
    obj = workload.read()
    while ctx.now() < settle and ((obj.get("status") or {}).get("updateRevision") == bad_revision
                                  or not workload.observed(obj)):
        time.sleep(0.1)
        obj = workload.read()
    if (obj.get("status") or {}).get("updateRevision") == bad_revision:
        return
    for pod in workload.blocking_pods(obj):
        name = pod["metadata"]["name"]
        if name in target.stuck_pods:
            continue
        gha.info(gha.escape_log(f"{workload}: deleting pod {name}: it runs the failed revision and is not Ready, "
                                f"so OrderedReady would wait for it forever"))
        workload.delete_pod(name)
        target.stuck_pods.append(name)


def _deploy(inputs: Inputs, target: Target, planned: str, manifests: Mapping[str, Obj],
            images: tuple[ImageSpec, ...]) -> None:
    annotations: dict[str, str | None] = {CHANGE_CAUSE: inputs.release}
    annotations.update(dict.fromkeys(ROLLBACK_ANNOTATIONS))
    workload = target.workload
    for attempt in range(CONFLICT_RETRIES + 1):
        obj = target.obj
        try:
            if images:
                target.after = workload.set_images(obj, images, annotations, inputs.dry_run)
            elif manifests:
                target.after = workload.apply(manifests[str(workload)], inputs.dry_run)
            else:
                target.after = workload.annotate(obj, annotations, inputs.dry_run)
            break
        except Conflict:
            # Our write carries the resourceVersion we read; a status update or another writer got in
            # between. Re-read and write again (the patch only sets images and annotations).
            if attempt == CONFLICT_RETRIES:
                raise RunError(f"{workload} kept changing under us ({CONFLICT_RETRIES + 1} attempts); nothing "
                               f"was overwritten. Find the other writer and run again.") from None
            target.obj = workload.read()
            target.history = workload.history(target.obj)
            workload.check_changeable(target.obj)
    assert target.after is not None
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


def _wait_all(ctx: Context, changed: list[Target], budget: compensation.WaitBudget, fail_fast: bool = False
              ) -> list[Target]:
    failed: list[Target] = []
    for target in changed:
        if failed and fail_fast:  # the run fails anyway: put things back now instead of waiting for the rest
            gha.info(gha.escape_log(f"{target.workload}: not waited for, {failed[0].workload} already failed"))
            continue
        with gha.group(f"Waiting for {target.workload} to roll out"):
            outcome = _wait_forward(ctx, target, budget, fail_fast)
        target.rollout = outcome.result
        target.diagnosis = outcome.diagnosis
        target.failure_reason = outcome.reason
        if outcome.diagnosis is not None:  # one annotation per workload, naming pods, containers and reasons
            gha.error(outcome.diagnosis.log_text(outcome.cause),
                      title=f"{target.workload}: {outcome.diagnosis.reason}")
        if outcome.result == "not-waited":
            target.unverified = NOT_VERIFIED  # OnDelete: changed, but no rollout to verify it
            gha.notice(gha.escape_log(outcome.message))
        if not outcome.ok:  # reported once, as the run's error; compensation may still put it back
            target.message = outcome.message
            target.action = "failed"
            failed.append(target)
            gha.info(gha.escape_log(f"{target.workload}: rollout {outcome.result}: {outcome.message}"))
    return failed


def _wait_forward(ctx: Context, target: Target, budget: compensation.WaitBudget, fail_fast: bool = False
                  ) -> RolloutOutcome:
    """Wait until the soft end of the budget, and on while the rollout keeps printing new status lines
    (compensation.next_wait_end), never past the hard end."""
    last_line = ""
    last_progress: float | None = None

    def progress(line: str) -> None:
        nonlocal last_line, last_progress
        if line != last_line:  # each slice of the wait starts by judging the object again: not news
            if last_line:
                last_progress = ctx.now()
            last_line = line
            gha.info(gha.escape_log(f"{target.workload}: {line}"))

    def note(text: str) -> None:
        gha.warning(gha.escape_log(text))

    pods = PodWatch(target.workload, note, clock=ctx.now)  # one per workload: its findings age across slices
    end = compensation.next_wait_end(budget, ctx.now(), last_progress)
    while True:
        # each slice's timeout is not the end of the wait: explained once, when it is
        outcome = wait_for_rollout(target.workload, end if end is not None else ctx.now(), progress,
                                   clock=ctx.now, pods=pods, fail_fast=fail_fast, explain=False)
        if outcome.result != "timeout":
            return explained(outcome, pods)
        end = compensation.next_wait_end(budget, ctx.now(), last_progress)
        if end is None:
            return explained(outcome, pods)
        gha.info(gha.escape_log(f"{target.workload}: still rolling out (last progress "
                                f"{ctx.now() - (last_progress or ctx.now()):.0f}s ago): waiting on"))


def _wait(ctx: Context, target: Target, deadline: float, fail_fast: bool = False) -> RolloutOutcome:
    def progress(line: str) -> None:
        gha.info(gha.escape_log(f"{target.workload}: {line}"))

    def note(text: str) -> None:
        gha.warning(gha.escape_log(text))

    pods = PodWatch(target.workload, note, clock=ctx.now)
    return wait_for_rollout(target.workload, deadline, progress, clock=ctx.now, pods=pods, fail_fast=fail_fast)


def _compensate(inputs: Inputs, ctx: Context, changed: list[Target], deadline: float, why: str,
                wait: bool = True) -> bool:
    """Put every changed workload back to the template and release it had before this run."""
    if not changed or inputs.dry_run:
        return False
    gha.warning(gha.escape_log(f"{why}: putting {len(changed)} changed workload(s) back where they were"))
    all_restored = True
    for target in changed:
        try:
            restored = _restore(inputs, ctx, target, deadline)
        except ChangedByOthers as err:
            gha.error(gha.escape_log(err.message))
            target.action = "failed"
            target.message = err.message
            all_restored = False
            continue
        except (WorkloadError, ApiFailure, RunError) as err:
            gha.error(gha.escape_log(f"{target.workload}: could not be put back: {err}"))
            target.action = "failed"
            all_restored = False
            continue
        note = ""
        if restored and inputs.wait and wait and ctx.cancellation.requested:
            note = "; the step was cancelled before its rollout finished"  # writes only, once cancelled
            target.rollout = "n/a"
        elif restored and inputs.wait and wait:
            try:
                with gha.group(f"Waiting for {target.workload} to be restored"), ctx.cancellation.interruptible():
                    outcome = _wait(ctx, target, deadline)
            except Cancelled as cancelled:  # stop waiting; the other workloads are still put back (writes)
                outcome = RolloutOutcome("timeout", f"{cancelled} before its restore finished rolling out")
                note = "; the step was cancelled before its rollout finished"
            target.rollout = outcome.result
            if outcome.result == "failed":
                gha.error(gha.escape_log(f"{target.workload}: restoring it failed: {outcome.message}"))
                all_restored = False
                target.action = "failed"
                continue
            if outcome.result == "timeout" and not note:  # the template is back; the timeout bounds the step
                note = "; its rollout had not finished when the timeout ran out"
                gha.warning(gha.escape_log(f"{target.workload}: put back, but {outcome.message}"))
        target.action = "compensated"
        target.message = (f"put back to {target.history.live_release or '<none>'} after the run failed "
                          f"({target.message or why}){note}")
    return all_restored


def _restore(inputs: Inputs, ctx: Context, target: Target, deadline: float) -> bool:
    """Undo to the template that was live before the run, then put the change-cause back if it differs.

    Every write is preconditioned on the object just read (a ``test`` of its resourceVersion, or the
    resourceVersion in the patch), and that object must still be what this run wrote: if someone else
    changed it since (an operator's ``kubectl set image ... hotfix`` during the wait), nothing is written
    (``ChangedByOthers``). A conflict (a status update, or a writer in between) means: read, check, again.
    """
    workload = target.workload
    if not target.obj:
        raise RunError(f"{workload} did not exist before this run; delete it or deploy a working release")
    before_template = target.obj["spec"]["template"]
    before_notes = target.obj["metadata"].get("annotations") or {}
    restored = False
    for attempt in range(CONFLICT_RETRIES + 1):
        current = workload.read()
        if not restored:
            foreign = compensation.foreign_change(str(workload), target.written, current)
            if foreign is not None:
                target.foreign = foreign
                raise ChangedByOthers(f"{foreign.describe()}; not put back (changes made by others are reported, "
                                      f"never reverted)")
        try:
            if not same_template(current["spec"]["template"], before_template):
                history = workload.history(current)
                candidates = [r for r in history.revisions if same_template(r.template, before_template)]
                if not candidates:
                    raise RunError(f"the revision that was live before the run is gone from {workload}'s history")
                revision = replace(candidates[-1], release=target.history.live_release)
                extra: dict[str, str | None] = {key: before_notes.get(key) for key in ROLLBACK_ANNOTATIONS}
                before_update_revision = (current.get("status") or {}).get("updateRevision")
                workload.undo(current, revision, extra, dry_run=False)
                restored = True
                if isinstance(workload, StatefulSet) and inputs.force_statefulset_rollback:
                    _unstick_statefulset(ctx, target, before_update_revision, deadline)
                current = workload.read()
            if (current["metadata"].get("annotations") or {}).get(CHANGE_CAUSE) != target.history.live_release:
                workload.annotate(current, {CHANGE_CAUSE: target.history.live_release}, dry_run=False)
                restored = True
            return restored
        except Conflict:
            if attempt == CONFLICT_RETRIES:
                raise RunError(f"{workload} kept changing while it was being put back ({CONFLICT_RETRIES + 1} "
                               f"attempts); nothing was overwritten") from None
    return restored




def _resolve_previous(inputs: Inputs, target: Target) -> Resolution | None:
    """An empty-release rollback goes where the decision says: past revisions recorded as failed."""
    decision = target.decision
    if inputs.release or decision is None:
        return None
    if decision.target_revision is None:
        if decision.passed_over:
            raise RunError(decision.reason)
        return None  # resolve() says why there is no previous revision
    revision = target.history.revision(decision.target_revision)
    if revision is None or not decision.passed_over:
        return None
    gha.notice(gha.escape_log(f"{target.workload}: {decision.reason}"))
    return Resolution(revision, revision.number == target.history.live, ())
