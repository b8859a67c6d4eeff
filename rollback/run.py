"""Orchestration: inputs → history → decision → changes → wait → compensation → report.

Everything here is sequencing and logging; the decisions come from ``history.resolve`` and ``modes.calculate``
and the kind-specific calls from ``workloads``. Every workload is read and validated before anything is
written, so bad input or a missing release changes nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from . import compensation, gha, preflight
from . import plan as change_plan
from .cancellation import CANCEL_BUDGET, CANCEL_FINISH, Cancellation, Cancelled
from .cluster import Api, ApiFailure
from .diagnostics import Diagnosis, PodWatch
from .github import record as github_record
from .github.deployments import Recorder
from .github.releases import GitHubReleases
from .history import History, NoPreviousRevision, ReleaseNotFound, Resolution, Revision, resolve, to_json_rows
from .inputs import ImageSpec, Inputs, Mode
from .lease import LEASE_DURATION, LeaseHeld, Leases
from .ledger import (
    APPLIED,
    ATTEMPT_RESULTS,
    CANCELLED,
    FAILED,
    IN_PROGRESS,
    NOT_VERIFIED,
    REFUSED,
    ROLLED_BACK,
    SUCCEEDED,
    UNBLOCKED,
    Block,
    ConfigMapLedger,
    Entry,
    GitHubContext,
    LedgerError,
    LedgerState,
    describe_run,
    interrupted,
)
from .manifests import ManifestError, with_release
from .modes import Decision, LedgerFacts, calculate, recorded_failed
from .report import Action, Rollout, RunReport, WorkloadResult
from .rollout import RolloutOutcome, explained, wait_for_rollout
from .workloads import (
    ANNOTATION_PREFIX,
    CHANGE_CAUSE,
    FIELD_MANAGER,
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
    written: Obj | None = None  # the workload as this run's write left it (the answer to that write)
    foreign: compensation.ForeignChange | None = None  # someone else changed it after this run's write
    unverified: str | None = None  # ledger.APPLIED / NOT_VERIFIED: written, but no rollout verified it
    ahead: bool = False  # a write-ahead (in-progress) ledger entry was written for it
    live_unknown: bool = False  # it could not be read back at the end: what is live is unknown
    history_after: History | None = None
    stuck_pods: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # pre-flight warnings, for the summary
    managed_by: tuple[str, ...] = ()  # managers overridden with allow-managed: true (recorded in the ledger)
    plan: change_plan.WorkloadPlan | None = None
    diagnosis: Diagnosis | None = None  # why its rollout failed, from the new revision's pods
    failure_reason: str = ""  # the cluster's reason for the failure (CrashLoopBackOff, ProgressDeadlineExceeded)


@dataclass(frozen=True)
class Context:
    """What the run needs from around it: the API, the clock, who is acting, the ledger and GitHub."""

    api: Api
    github: GitHubContext = field(default_factory=GitHubContext)
    now: Callable[[], float] = time.monotonic
    ledger: ConfigMapLedger | None = None  # None: `ledger: false`
    releases: GitHubReleases | None = None  # None: no github-token (blocks stay in the cluster)
    deployments: Recorder | None = None  # None: no github-token, or github-deployments: false
    manifest_loader: Callable[[Inputs], list[Obj]] | None = None  # raises ManifestError
    leases: Leases | None = None  # None: no leases taken (tests of the engine alone)
    cancellation: Cancellation = field(default_factory=Cancellation)  # cli.run installs its signal handlers
    notes: list[str] = field(default_factory=list)  # run-level warnings for the job summary


CHANGING_MODES = ("auto", "deploy", "rollback")


def execute(inputs: Inputs, ctx: Context) -> RunReport:
    """Run the requested mode and record it in the ledger, holding the workloads' leases while it runs."""
    if inputs.mode == "unblock":
        return _unblock(inputs, ctx)
    deadline = ctx.api.work_deadline(ctx.now() + inputs.timeout)  # leaves time to read back and record
    leases = ctx.leases if inputs.mode in CHANGING_MODES and not inputs.dry_run else None  # taken in _run
    try:
        if leases is not None and inputs.wait_for_lease:
            # waiting for another run: take the leases first, so that everything is read after it finished
            _take_leases(inputs, ctx, leases, deadline)
        return _execute(inputs, ctx, deadline)
    except (RunError, WorkloadError, ApiFailure) as err:
        if not hasattr(err, "results"):  # stopped before any workload was read: each is listed, not known
            err.results = _early_results(inputs, ctx, [])  # type: ignore[union-attr]
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
        if item.decision.action == "take" and item.decision.previous is not None:
            gha.info(gha.escape_log(f"{item.workload}: took over the lease of {item.decision.previous.description} "
                                    f"({item.decision.why})"))
    leases.keep_renewed(deadline + LEASE_DURATION, clock=ctx.now)


def _activity(inputs: Inputs) -> str:
    """What this run is doing, for the lease and the ledger: ``deploying 1.3.0``, ``rolling back to 1.2.0``."""
    doing = {"deploy": "deploying", "rollback": "rolling back to", "auto": "deploying or rolling back to"}
    return f"{doing.get(inputs.mode, inputs.mode)} {inputs.release or 'the previous revision'}"


def _execute(inputs: Inputs, ctx: Context, deadline: float) -> RunReport:
    try:
        state = _load_ledger(inputs, ctx)
    except RunError as err:  # nothing read or changed yet: the error still says where every workload is
        err.results = _early_results(inputs, ctx, [])  # type: ignore[attr-defined]
        raise
    if state is None and ctx.ledger is not None:  # unusable (see _load_ledger): not read, not written
        ctx = replace(ctx, ledger=None)
    # Looked up once (it may cost a GitHub request): calculate warns, deploy/auto refuse, the ledger notes
    # an override.
    block = _find_block(inputs, ctx, state) if inputs.mode in ("auto", "deploy", "calculate", "rollback") else None
    targets: list[Target] = []
    try:
        report = _run(inputs, ctx, state, targets, block, deadline)
    except (RunError, WorkloadError, ApiFailure) as err:
        if not any(t.changed or t.action in ("compensated", "failed") for t in targets):
            # nothing was changed (or it was all put back before anything else): a plain error, which still
            # says where every workload is (the ones not read yet: unchanged, not known)
            _settle_write_ahead(inputs, ctx, targets)
            err.results = _early_results(inputs, ctx, targets)  # type: ignore[union-attr]
            github_record.failed(ctx.deployments, err.message if isinstance(err, (RunError, ApiFailure))
                                 else str(err))
            raise
        # A write failed after other workloads were changed and put back: report where each one ended, and
        # record it, instead of losing that in an exception.
        message = err.message if isinstance(err, (RunError, ApiFailure)) else str(err)
        report = _finish(inputs, targets, _overall(targets), error=message)
    report = _record(inputs, ctx, state, targets, report, block)
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
        return _report(inputs, targets, None)
    for target in targets:
        target.decision = calculate(inputs.release, target.history, _facts(ctx, state, str(target.workload)))
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
        _show_plan(inputs, targets, {str(t.workload): _planned(as_auto, t) for t in targets}, manifests,
                   _images_for_plan(inputs, targets), calculate_only=True)
        return _calculated(inputs, targets, overall, block)
    plan = {str(t.workload): _planned(inputs, t) for t in targets}
    rollbacks = [t for t in targets if plan[str(t.workload)] == "rollback"]
    deploys = [t for t in targets if plan[str(t.workload)] != "rollback"]
    refusal = _refuse_blocked(inputs, targets, overall, block)
    if refusal is not None:
        return refusal
    _prepare_rollbacks(inputs, rollbacks)
    _require_template_change(inputs, deploys, plan)
    images = _images_by_workload(inputs, deploys)
    manifests = _preflight(inputs, ctx, targets, rollbacks, manifests)
    for target in targets:  # like kubectl, a paused Deployment is refused even when the target is live
        if target.obj:
            target.workload.check_changeable(target.obj)
    _show_plan(inputs, targets, plan, manifests, images)
    if ctx.leases is not None and not inputs.dry_run and not ctx.leases.taken:
        _take_leases(inputs, ctx, ctx.leases, deadline)
        # now no other run works on these workloads: an in-progress entry of another run is from one that died
        state = _reconcile_interrupted(inputs, ctx, state, targets)
    _github_begin(inputs, ctx, targets)
    changed: list[Target] = []
    cancel = ctx.cancellation
    try:
        cancel.check()  # a signal before the first write: stop with nothing changed
        _write_ahead(inputs, ctx, rollbacks, deploys, plan, images)
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
        return _finish(inputs, targets, overall)
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
        return _finish(inputs, targets, overall)
    message = _failure_message(failed)
    failed_release = inputs.release if deploys else None
    restored = _compensate(inputs, ctx, _to_restore(inputs, targets, "rollout-failed"), deadline, why=message)
    report = replace(_finish(inputs, targets, overall, error=message), failed_release=failed_release,
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
    report = replace(_finish(inputs, targets, overall, error=f"{why}; see each workload's message for where it "
                                                               f"was left"), cancelled=True)
    if restored and inputs.rollback_on_failure and any(t.revision is None and t.changed for t in targets):
        report = replace(report, rolled_back=True)
    return report


def _identity(ctx: Context) -> str | None:
    """This run's identity in the ledger: its lease holder (None without leases)."""
    return ctx.leases.me.holder if ctx.leases is not None else None


def _write_ahead(inputs: Inputs, ctx: Context, rollbacks: list[Target], deploys: list[Target],
                 plan: Mapping[str, str], images: Mapping[str, tuple[ImageSpec, ...]]) -> None:
    """Before the first workload write: an ``in-progress`` entry per workload to be written (release, the
    intended change, this run), completed by ``_record``. If the run dies, the next run finds it
    (``_reconcile_interrupted``). A ledger that cannot be written does not stop the run: it warns."""
    me = _identity(ctx)
    if ctx.ledger is None or me is None or inputs.dry_run:
        return
    ahead: list[tuple[Target, Entry]] = []
    for target in rollbacks:
        if target.skipped or target.revision is None:
            continue
        ahead.append((target, Entry.new(
            ctx.github, namespace=inputs.namespace, workload=str(target.workload),
            release=inputs.release or target.revision.release or "", mode="rollback", result=IN_PROGRESS,
            images=target.revision.images, reason=inputs.reason)))
        if inputs.block and target.history.live_release != (inputs.release or target.revision.release):
            ahead[-1] = (target, replace(ahead[-1][1], would_block=target.history.live_release))
    for target in deploys:
        ahead.append((target, Entry.new(
            ctx.github, namespace=inputs.namespace, workload=str(target.workload), release=inputs.release,
            mode=plan[str(target.workload)], result=IN_PROGRESS,
            images=[str(i) for i in images.get(str(target.workload), ())], reason=inputs.reason)))
    if not ahead:
        return

    def change(current: LedgerState) -> LedgerState:
        for _, entry in ahead:
            current = current.with_entry(replace(entry, run=me))
        return current

    try:
        ctx.ledger.update(change)
    except (LedgerError, ApiFailure) as err:  # also the timeout running out
        gha.warning(gha.escape_log(f"the release ledger was not updated before the change (the run goes on "
                                   f"without a write-ahead record): {err}"))
        return
    for target, _ in ahead:
        target.ahead = True


def _settle_write_ahead(inputs: Inputs, ctx: Context, targets: list[Target]) -> None:
    """The run stopped with an error before any change it knows of: its write-ahead entries must not stay
    ``in-progress``. A workload still as it was read loses its entry (nothing happened to it); one that is
    not (a write whose answer was lost may have landed) gets it completed from the cluster, as ``interrupted``
    by this run."""
    me = _identity(ctx)
    ahead = [t for t in targets if t.ahead]
    if ctx.ledger is None or me is None or not ahead:
        return
    untouched: list[str] = []
    live: dict[str, str | None] = {}
    for target in ahead:
        try:
            current = target.workload.read()
        except (WorkloadError, ApiFailure):
            continue  # unknown: left in-progress, for the next run to complete from the cluster
        if (same_template(current["spec"]["template"], (target.obj.get("spec") or {}).get("template") or {})
                and (current["metadata"].get("annotations") or {}).get(CHANGE_CAUSE) == target.history.live_release):
            untouched.append(str(target.workload))
        else:
            live[str(target.workload)] = (current["metadata"].get("annotations") or {}).get(CHANGE_CAUSE)

    def change(current: LedgerState) -> LedgerState:
        current = current.without_in_progress(me, untouched)
        for entry in current.in_progress(live):
            if entry.run == me:
                done, block = interrupted(entry, live[entry.workload], "this run (it stopped on an error)")
                current = replace(current, entries=tuple(done if e is entry else e for e in current.entries))
                if block is not None and current.block_for(block.release) is None:
                    current = current.with_block(block)
        return current

    try:
        ctx.ledger.update(change)
    except (LedgerError, ApiFailure) as err:  # also the timeout running out
        gha.warning(gha.escape_log(f"the release ledger was not updated: {err}"))


def _reconcile_interrupted(inputs: Inputs, ctx: Context, state: LedgerState | None, targets: list[Target]
                           ) -> LedgerState | None:
    """In-progress entries of other runs on these workloads belong to runs that died: this run holds the
    workloads' leases, so theirs are gone, and they never completed the entry. Say so, and complete them
    from the cluster (``ledger.interrupted``): result ``interrupted``, and the block an interrupted
    rollback implied."""
    me = _identity(ctx)
    if state is None or ctx.ledger is None or me is None:
        return state
    live = {str(t.workload): t.history.live_release for t in targets}
    found = state.in_progress(live, exclude_run=me)
    if not found:
        return state
    for entry in found:
        doing = "rolling back to" if entry.mode == "rollback" else "deploying"
        note = (f"{describe_run(entry)} was interrupted while {doing} {entry.release} on {entry.workload} (started "
                f"{entry.time}; it never completed its ledger entry). {entry.workload} runs "
                f"{live[entry.workload] or '<none>'} now; recording that run as interrupted")
        gha.warning(gha.escape_log(note))
        ctx.notes.append(note)

    def change(current: LedgerState) -> LedgerState:
        for entry in current.in_progress(live, exclude_run=me):
            done, block = interrupted(entry, live[entry.workload], f"run {me}")
            current = replace(current, entries=tuple(done if e is entry else e for e in current.entries))
            if block is not None and current.block_for(block.release) is None:
                current = current.with_block(block)
                gha.notice(gha.escape_log(f"blocked release {block.release}: the interrupted run rolled back "
                                          f"from it, and its rollback is live"))
        return current

    try:
        return ctx.ledger.update(change)
    except (LedgerError, ApiFailure) as err:  # also the timeout running out
        gha.warning(gha.escape_log(f"the interrupted run could not be recorded in the release ledger: {err}"))
        return change(state)


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


def _containers_of(target: Target) -> set[str]:
    spec = ((target.obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return {str(c.get("name")) for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])}


def _images_by_workload(inputs: Inputs, targets: list[Target]) -> dict[str, tuple[ImageSpec, ...]]:
    """Which ``images`` lines each deployed workload gets, checked before anything is written.

    A ``WORKLOAD:CONTAINER=IMAGE`` line goes to that workload (which must be listed and have the container); a
    bare ``CONTAINER=IMAGE`` line to the workloads with that container that no line names, and to only one of
    them unless ``images-apply-to-all`` is true. Every line must fit some workload, and every workload must get
    a line."""
    if not inputs.images or not targets:
        return {}
    listed = ", ".join(str(t.workload) for t in targets)
    for item in (i for i in inputs.images if i.workload is not None):
        matches = [t for t in targets if item.applies_to(t.workload.ref)]
        if not matches:
            raise RunError(f"nothing was changed: the images line {item} names a workload this run does not deploy; "
                           f"it deploys {listed}", "images")
        if len(matches) > 1:
            raise RunError(f"nothing was changed: the images line {item} fits several workloads "
                           f"({', '.join(str(t.workload) for t in matches)}); write KIND/NAME:CONTAINER=IMAGE",
                           "images")
        if item.container not in _containers_of(matches[0]):
            raise RunError(f"nothing was changed: {matches[0].workload} has no container {item.container!r} "
                           f"(images line {item}); its containers are "
                           f"{', '.join(sorted(_containers_of(matches[0]))) or 'none'}", "images")
    result: dict[str, tuple[ImageSpec, ...]] = {}
    used: set[ImageSpec] = set()
    for target in targets:
        names = _containers_of(target)
        named = [i for i in inputs.images if i.workload is not None and i.applies_to(target.workload.ref)]
        covered = {i.container for i in named}
        mine = tuple(named + [i for i in inputs.images
                              if i.workload is None and i.container in names and i.container not in covered])
        if not mine:
            raise RunError(f"nothing was changed: {target.workload} has none of the containers named in images "
                           f"({', '.join(sorted({i.container for i in inputs.images}))}); its containers are "
                           f"{', '.join(sorted(names)) or 'none'}. List only the workloads this release changes, "
                           f"or add an image for one of its containers", "images")
        result[str(target.workload)] = mine
        used.update(mine)
    unused = [str(item) for item in inputs.images if item not in used]
    if unused:
        raise RunError(f"nothing was changed: no workload has a container for {', '.join(unused)}", "images")
    if not inputs.images_apply_to_all:
        for item in (i for i in inputs.images if i.workload is None):
            receivers = [name for name, lines in result.items() if item in lines]
            if len(receivers) > 1:
                example = receivers[0].split("/", 1)[1]
                raise RunError(f"nothing was changed: the images line {item} is ambiguous: container "
                               f"{item.container!r} is in {', '.join(receivers)}. Give each workload its own line "
                               f"as WORKLOAD:CONTAINER=IMAGE (e.g. {example}:{item.container}={item.image}), or set "
                               f"images-apply-to-all: true if all of them get this image", "images")
    return result


def _images_for_plan(inputs: Inputs, targets: list[Target]) -> dict[str, tuple[ImageSpec, ...]]:
    """calculate: the images each workload would get, or none when the lines do not fit (deploy would say why)."""
    try:
        return _images_by_workload(inputs, [t for t in targets if t.obj])
    except RunError:
        return {}


def _require_template_change(inputs: Inputs, deploys: list[Target], planned: Mapping[str, str]) -> None:
    """A deploy without images or manifests would only write the change-cause: for a Deployment the controller
    copies it onto the live revision, relabelling a revision that runs another release's images. Refused unless
    the release is already live (a redeploy) or annotate-only is given on purpose."""
    if inputs.images or inputs.manifests or inputs.annotate_only:
        return
    for target in deploys:
        if planned[str(target.workload)] != "deploy" or not target.obj:
            continue
        if target.decision is not None and target.decision.mode == "redeploy":
            continue
        live = target.history.live_release
        raise RunError(f"nothing was changed: mode {inputs.mode} of release {inputs.release} got neither images nor "
                       f"manifests, so it would change no template and only label what {target.workload} runs now "
                       f"({live or 'no release'}) as {inputs.release}. Give images or manifests (an empty workflow "
                       f"expression?), or set annotate-only: true to relabel the live revision on purpose", "images")


def _preflight(inputs: Inputs, ctx: Context, targets: list[Target], rollbacks: list[Target],
               manifests: dict[str, Obj]) -> dict[str, Obj]:
    """The pre-flight checks (``preflight.py``), before any write: who manages each workload, the ConfigMaps and
    Secrets the target template needs, and HPAs that own the replicas of a manifest's workload. Errors stop the
    run; returns the manifests to apply (``replicas`` left out where an HPA scales the workload)."""
    reader = preflight.Reader(ctx.api, inputs.namespace)
    findings: list[preflight.Finding] = []
    for target in targets:
        if not target.obj:
            continue
        found = preflight.managers(target.obj)
        findings += preflight.ownership_findings(str(target.workload), found, inputs.allow_managed)
        if inputs.allow_managed:
            target.managed_by = tuple(m.name for m in found if m.certain)
    if not any(f.level == "error" for f in findings):
        for target in rollbacks:
            if target.revision is None or target.skipped:
                continue
            refs = preflight.config_refs(target.revision.template)
            findings += preflight.config_findings(
                str(target.workload), refs, reader.states(refs), target.revision.created,
                f"revision {target.revision.number} ({target.revision.release or 'no release'})")
        for key, manifest in manifests.items():
            refs = preflight.config_refs((manifest.get("spec") or {}).get("template") or {})
            findings += preflight.config_findings(key, refs, reader.states(refs), None,
                                                  f"the manifest of release {inputs.release}")
    result = dict(manifests)
    by_name = {str(t.workload): t for t in targets}
    for key, manifest in manifests.items():
        owner = by_name.get(key)
        if owner is None:
            continue
        hpas = preflight.hpas_targeting(reader.hpas(), owner.workload.ref)
        result[key], note = preflight.manifest_without_replicas(manifest, owner.obj, hpas, FIELD_MANAGER)
        if note:
            gha.notice(gha.escape_log(f"{key}: {note}"))
            owner.warnings.append(f"{key}: {note}")
    if reader.forbidden:  # said once for the run
        message = (f"could not check everything before writing: the API server refused to "
                   f"{', '.join(reader.forbidden)}, so those checks were skipped; grant the permission (see the "
                   f"README's RBAC section) to have them done")
        gha.warning(gha.escape_log(message))
        if targets:
            targets[0].warnings.append(message)
    errors = [f for f in findings if f.level == "error"]
    for finding in findings:
        if finding.level == "warning":
            gha.warning(gha.escape_log(finding.message))
            by_name[finding.workload].warnings.append(finding.message)
    if len(errors) > 1:
        for finding in errors[:-1]:
            gha.error(gha.escape_log(finding.message))
    if errors:
        raise RunError(errors[-1].message if len(errors) == 1 else
                       f"{len(errors)} pre-flight checks failed (each is above); the last: {errors[-1].message}")
    return result


def _show_plan(inputs: Inputs, targets: list[Target], planned: Mapping[str, str], manifests: Mapping[str, Obj],
               images: Mapping[str, tuple[ImageSpec, ...]], calculate_only: bool = False) -> None:
    """Work out the exact change per workload (``plan.py``) and show it in a ``Plan`` group before writing."""
    for target in targets:
        target.plan = _plan_for(inputs, target, planned[str(target.workload)], manifests,
                                images.get(str(target.workload), ()), calculate_only)
    with gha.group("Plan"):
        for line in change_plan.log_lines([t.plan for t in targets if t.plan is not None]):
            gha.info(gha.escape_log(line))


def _plan_for(inputs: Inputs, target: Target, planned: str, manifests: Mapping[str, Obj],
              images: tuple[ImageSpec, ...], calculate_only: bool) -> change_plan.WorkloadPlan:
    workload, history = str(target.workload), target.history
    before = (target.obj.get("spec") or {}).get("template") or {}
    notes = [w for w in target.warnings if w.startswith(f"{workload}: HorizontalPodAutoscaler")]
    if planned == "rollback":
        revision = target.revision
        if revision is None and calculate_only:
            try:
                resolution = resolve(history, inputs.release)
                revision = None if resolution.skipped else resolution.target
            except (ReleaseNotFound, NoPreviousRevision) as err:
                return change_plan.WorkloadPlan(workload, "rollback", history.live, history.live_release, None, None,
                                         notes=(str(err),))
        if revision is None or target.skipped:
            return change_plan.WorkloadPlan(workload, "skip", history.live, history.live_release, history.live,
                                     history.live_release, notes=("the target revision is already live",))
        changes = change_plan.template_changes(before, revision.template) + change_plan.release_change(
            history.live_release, revision.release)
        newest = max((r.number for r in history.revisions), default=revision.number)
        if revision.number < newest:  # like kubectl's undo, the controller renumbers the revision returned to
            notes.append(f"revision {revision.number} becomes revision {newest + 1}")
        return change_plan.WorkloadPlan(workload, "rollback", history.live, history.live_release, revision.number,
                                 revision.release, changes, tuple(notes))
    after = before
    if images:
        after = change_plan.with_images(before, images)
    elif workload in manifests:
        if calculate_only:
            notes.append("deploy shows the field-level diff of the manifest (a server-side dry run)")
        else:  # what the server would make of the manifest: a server-side dry run of the same apply
            after = (target.workload.apply(manifests[workload], dry_run=True).get("spec") or {}).get("template") or {}
    action = "redeploy" if target.decision is not None and target.decision.mode == "redeploy" else "deploy"
    if not images and workload not in manifests:
        notes.append("no template change: only the change-cause is written")
    changes = change_plan.template_changes(before, after) + change_plan.release_change(history.live_release,
                                                                                        inputs.release)
    return change_plan.WorkloadPlan(workload, action, history.live, history.live_release, None, inputs.release,
                                    changes, tuple(notes))


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


class ChangedByOthers(RunError):
    """Compensation found the workload changed by someone else since this run's write: it is left alone."""


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


def _failure_message(failed: list[Target]) -> str:
    return "; ".join(f"{t.workload}: {t.message}" for t in failed)


# -- reporting -------------------------------------------------------------------------------------------------


def _early_results(inputs: Inputs, ctx: Context, targets: list[Target],
                   why: str = "not read: the run stopped before it got to it") -> tuple[WorkloadResult, ...]:
    read = {str(t.workload): _result(inputs, t) for t in targets}
    results = []
    for ref in inputs.workloads:
        if str(ref) in read:
            results.append(read[str(ref)])
            continue
        workload = workload_for(ctx.api, inputs.namespace, ref)
        results.append(WorkloadResult(
            workload=str(ref), kind=workload.kind, name=workload.name, namespace=inputs.namespace,
            mode=inputs.mode, action="unchanged", release="unknown", previous_release=None, revision=None,
            previous_revision=None, rollout="n/a", message=why, unknown=True))
    return tuple(results)


def _finish(inputs: Inputs, targets: list[Target], decision: Decision | None, error: str | None = None
            ) -> RunReport:
    """The report, with every workload read back from the cluster: outputs say what is live at exit (or
    ``unknown`` when the cluster cannot be reached), never what was live at the start."""
    for target in targets:
        if target.obj or target.changed or target.action in ("compensated", "failed"):
            try:
                target.after = target.workload.read()
                target.history_after = target.workload.history(target.after)
            except (WorkloadError, ApiFailure) as err:
                target.live_unknown = True
                gha.warning(gha.escape_log(f"{target.workload}: could not read it back after the run, so what is "
                                           f"live now is unknown: {err}"))
                continue
            if target.action in ("deployed", "redeployed", "rolled-back"):
                # success is recorded only for what is still live: not for a template someone else replaced
                foreign = compensation.foreign_change(str(target.workload), target.written, target.after)
                if foreign is not None:
                    target.foreign = foreign
                    target.unverified = NOT_VERIFIED
                    target.action = "failed"
                    target.rollout = "n/a"
                    target.message = f"{foreign.describe()}; this run's change is no longer live"
                    gha.error(gha.escape_log(target.message))
                    error = f"{error}; {target.message}" if error else target.message
    return _report(inputs, targets, decision, error)


def _report(inputs: Inputs, targets: list[Target], decision: Decision | None, error: str | None = None
            ) -> RunReport:
    results = tuple(_result(inputs, t) for t in targets)
    return RunReport(
        mode=inputs.mode, decision=decision, results=results, reason=inputs.reason, dry_run=inputs.dry_run,
        rolled_back=False, failed_release=None, blocked_release=None, blocked=False,
        last_successful_release=None, last_attempted_release=None, error=error, release=inputs.release,
        warnings=tuple(w for t in targets for w in t.warnings),
        plan=tuple(t.plan.to_json() for t in targets if t.plan is not None),
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
    if target.live_unknown:
        revision, release = None, "unknown"
    if target.action == "dry-run":  # what would be live: the rollback target, or the deployed release
        if target.revision is not None:
            revision, release = target.revision.number, target.revision.release
        else:
            release = inputs.release
    return WorkloadResult(
        workload=str(target.workload), kind=target.workload.kind, name=target.workload.name,
        namespace=inputs.namespace, mode=mode, action=target.action, release=release,
        previous_release=before.live_release, revision=revision, previous_revision=before.live,
        rollout=target.rollout, message=target.message, history=tuple(to_json_rows(after)),
        duplicates=target.duplicates, pruned=after.pruned, unknown=target.live_unknown,
        diagnosis=target.diagnosis.to_json() if target.diagnosis is not None else None,
        failure_reason=target.failure_reason,
    )



# -- the ledger and blocks -------------------------------------------------------------------------------------


def _load_ledger(inputs: Inputs, ctx: Context) -> LedgerState | None:
    if ctx.ledger is None:
        return None
    try:
        return ctx.ledger.load()
    except LedgerError as err:
        if err.status == 401:
            raise RunError("the Kubernetes API answered 401 Unauthorized: the credentials were rejected; check "
                           "the kubeconfig or token input", "kubeconfig") from None
        if err.status == 0:
            raise RunError(f"{err}; check the server address in the kubeconfig and that the runner can reach it "
                           f"(a container action cannot reach the runner's 127.0.0.1)", "kubeconfig") from None
        if err.status is None or inputs.mode == "rollback":
            # A corrupt ledger (not JSON, wrong type, unknown format) never stops a run, and nothing about the
            # ledger stops a rollback: warn, leave the ConfigMap as it is, go on without its facts.
            gha.warning(gha.escape_log(f"{err}. This run goes on without the release ledger: its content is left "
                                       f"untouched, nothing is recorded, and the mode is calculated from the "
                                       f"revision history alone"))
            return None
        raise RunError(f"the release ledger could not be read: {err} (grant the permissions in the README's "
                       f"RBAC section, or set ledger: false to run without it)", "ledger") from None


def _facts(ctx: Context, state: LedgerState | None, workload: str) -> LedgerFacts | None:
    """S, A and the failed releases of one workload: from the ledger when it has entries for it, else from
    the GitHub Deployments of the environment (with a github-token), else none (the cluster decides)."""
    if state is None or not state.entries_for(workload):
        github = ctx.deployments.facts() if ctx.deployments is not None else None
        if github is not None and github.last_successful is not None:
            gha.info(gha.escape_log(
                f"{workload}: the ledger has no entries for it; the mode is decided from the GitHub Deployments "
                f"of environment {ctx.deployments.target.environment if ctx.deployments else ''}: last "
                f"successful {github.last_successful}, last attempted {github.last_attempted}"))
            return github
        return None
    facts = state.facts(workload)
    failed = recorded_failed(((e.release, e.result) for e in state.entries_for(workload)), ATTEMPT_RESULTS,
                             (FAILED, ROLLED_BACK))
    return replace(facts, failed=failed)


def _github_begin(inputs: Inputs, ctx: Context, targets: list[Target]) -> None:
    """Right before the first change: this run's GitHub deployment, in_progress (the first workload's
    release; an empty-release rollback names the release of the revision it goes to)."""
    first = targets[0] if targets else None
    revision = first.revision if first is not None and inputs.mode == "rollback" else None
    release = inputs.release or (revision.release if revision is not None else None) or ""
    github_record.begin(ctx.deployments, inputs, release, revision.number if revision is not None else None)


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


def _calculated(inputs: Inputs, targets: list[Target], decision: Decision | None, block: Block | None
                ) -> RunReport:
    """`mode: calculate`: the mode, and whether the release is blocked (``blocked``), so a plan job can stop."""
    report = _report(inputs, targets, decision)
    if block is None:
        return report
    gha.warning(gha.escape_log(f"{block.describe()}: deploying it would be refused (mode: unblock lifts the "
                               f"block)"))
    return replace(report, blocked=True, blocked_release=block.release)


def _refuse_blocked(inputs: Inputs, targets: list[Target], decision: Decision | None, block: Block | None
                    ) -> RunReport | None:
    """Deploy/auto refuse a blocked release (blocked in this namespace's ledger or on its GitHub Release);
    an explicit rollback to it only warns: a blocked release may still be the one to return to."""
    if block is None:
        return None
    if inputs.mode == "rollback":
        gha.warning(gha.escape_log(f"rolling back to a blocked release: {block.describe()}. The block stays; "
                                   f"lift it with mode: unblock once the release is known to be good"))
        return None
    if inputs.allow_blocked:
        gha.warning(gha.escape_log(f"{block.describe()}; deploying it anyway because allow-blocked is true "
                                   f"(recorded in the ledger)"))
        return None
    message = (f"refused: {block.describe()}. Deploy a fixed release instead, or unblock it by running this "
               f"action with mode: unblock and release: {inputs.release} (or allow-blocked: true for one run)")
    for target in targets:
        target.action = "refused"
        target.message = "release is blocked"
    report = _report(inputs, targets, decision, error=message)
    return replace(report, blocked=True, blocked_release=inputs.release)


def _find_block(inputs: Inputs, ctx: Context, state: LedgerState | None) -> Block | None:
    """The block on ``release``: in this namespace's ledger, else on its GitHub Release (with a token)."""
    if not inputs.release:
        return None
    block = state.block_for(inputs.release) if state is not None else None
    if block is None and ctx.releases is not None:
        check = ctx.releases.check_block(inputs.release)
        block = check.block
        if block is None and check.outcome.status not in ("done", "no-such-release"):
            gha.warning(gha.escape_log(f"could not check whether release {inputs.release} is blocked on GitHub: "
                                       f"{check.outcome.message}"))
    return block


def _entry_result(report: RunReport, target: Target) -> str | None:
    """The ledger result for one workload, or None when there is nothing to record."""
    if report.dry_run or target.action in ("unchanged", "dry-run"):
        return None
    if target.action == "refused":
        return REFUSED
    if report.cancelled and (target.changed or target.action == "compensated"):
        return CANCELLED
    if target.unverified is not None and target.action != "compensated":
        return target.unverified  # applied (wait: false) or not-verified: only a verified rollout succeeds
    if target.action == "compensated":
        return ROLLED_BACK
    if target.action == "failed" or target.rollout in ("failed", "timeout"):
        return FAILED
    return SUCCEEDED


def _record(inputs: Inputs, ctx: Context, state: LedgerState | None, targets: list[Target], report: RunReport,
            block: Block | None) -> RunReport:
    """Write this run's entries (and the block a rollback sets) to the ledger; fill the ledger outputs."""
    entries = []
    blocks: list[Block] = []
    for target, result in zip(targets, report.results, strict=True):
        outcome = _entry_result(report, target)
        if outcome is None or inputs.mode in ("history", "calculate"):
            continue
        release = result.release or inputs.release
        if outcome in (FAILED, ROLLED_BACK, REFUSED, CANCELLED) or result.mode != "rollback":
            # The release attempted, not the one live after the run: a failed rollback to the previous
            # revision (no release given) attempted that revision's release.
            attempted = (target.revision.release or "") if target.revision is not None else release
            release = inputs.release or attempted
        entries.append(Entry.new(
            ctx.github, namespace=inputs.namespace, workload=result.workload, release=release or "",
            mode=result.mode, result=outcome, revision=result.revision,
            images=tuple(result.history[-1]["images"]) if result.history else (), reason=inputs.reason))
        # The release a successful rollback left, to block: an undo leaves the live release; a rollback with
        # nothing to undo (the target already live after a failed attempt was put back) or done as a deploy
        # (auto, the target's revision is gone) leaves what the decision names (the failed attempt, or live).
        bad = None
        if outcome == SUCCEEDED and result.mode == "rollback":
            if target.action == "rolled-back":
                bad = target.history.live_release
            elif target.action in ("skipped", "deployed", "redeployed") and target.decision is not None:
                bad = target.decision.rolled_back_from
        if (inputs.block and bad and bad != release
                and bad not in {b.release for b in blocks}):
            blocks.append(Block.new(ctx.github, release=bad, namespace=inputs.namespace,
                                    reason=inputs.reason or f"rolled back to {release}"))
    managed = {str(t.workload): t.managed_by for t in targets if t.managed_by}
    if managed:  # allow-managed: true overrode a GitOps/Helm owner; the ledger says which
        entries = [replace(e, managed_by=managed.get(e.workload, ())) for e in entries]
    if entries and inputs.allow_blocked and block is not None:
        # allow_blocked marks a run that deployed a blocked release on purpose, not every run with the input set
        entries = [replace(e, allow_blocked=e.result != REFUSED) for e in entries]
    me = _identity(ctx)
    entries = [replace(e, run=me) for e in entries]
    ahead = any(t.ahead for t in targets)
    ledger_error = None
    if ctx.ledger is not None and (entries or blocks or ahead):
        def change(current: LedgerState) -> LedgerState:
            current = current.without_in_progress(me)  # this run's write-ahead entries, completed below
            for entry in entries:
                current = current.with_entry(entry)
            for new_block in blocks:
                current = current.with_block(new_block)
            return current

        try:
            state = ctx.ledger.update(change)
        except (LedgerError, ApiFailure) as err:  # also the timeout running out
            ledger_error = str(err)
            gha.warning(gha.escape_log(f"the release ledger was not updated: {err}"))
    report = replace(report, rolled_back=report.rolled_back or _rolled_back(report, targets))
    recorded: list[str] = []
    for new_block in blocks:
        places = [] if ctx.ledger is None or ledger_error else [f"the ledger of namespace {inputs.namespace}"]
        if _mark_github(ctx, new_block, bool(places)):
            places.append(f"GitHub Release {new_block.release}")
        if places:
            recorded.append(new_block.release)
            gha.notice(gha.escape_log(f"blocked release {new_block.release} (recorded in {' and '.join(places)}): "
                                      f"it cannot be deployed again until it is unblocked (mode: unblock)"))
    if blocks and (ledger_error or len(recorded) < len(blocks)):
        names = ", ".join(b.release for b in blocks)
        if ledger_error:
            where = f"the release ledger refused the write ({ledger_error})"
            if recorded:
                where += "; only the GitHub Release carries it, which runs without a github-token do not check"
        elif inputs.ledger:  # the ledger could not be used (unreadable content): the run went on without it
            where = ("the release ledger is unusable (see the warning above), and no GitHub Release was marked "
                     "(no github-token, or see the warnings above)")
        else:
            where = "ledger is false, and no GitHub Release was marked (no github-token, or see the warning above)"
        message = (f"the rollback is done, but the block of {names} was not recorded in the ledger: {where}. "
                   f"Until it is, deploys in namespace {inputs.namespace} will not refuse {names}: fix the cause "
                   f"and run the same rollback again (it is skipped, and records the block)")
        report = replace(report, error=report.error or message)
    if recorded:  # say only what was recorded: empty when the block is nowhere
        report = replace(report, blocked_release=recorded[0])
    return _with_ledger(report, targets, state)


def _rolled_back(report: RunReport, targets: list[Target]) -> bool:
    """An older release is live because of this run: an undo, or a calculated rollback deployed from images
    (a failed deploy put back by rollback-on-failure is set where it happens)."""
    if report.dry_run or report.error is not None:
        return False
    return any(result.mode == "rollback" and target.action in ("rolled-back", "deployed", "redeployed")
               for target, result in zip(targets, report.results, strict=True))


def _mark_github(ctx: Context, block: Block, in_ledger: bool) -> bool:
    """Mark the GitHub Release blocked; True when it carries the block now."""
    if ctx.releases is None:
        if in_ledger:
            gha.notice(gha.escape_log(f"GitHub Releases are not used (no github-token, or no GITHUB_REPOSITORY): "
                                      f"the block of {block.release} is kept in the in-cluster ledger only, other "
                                      f"environments will not see it"))
        return False
    outcome = ctx.releases.block(block.release, replace(block, source="github-release"))
    (gha.notice if outcome.level == "notice" else gha.warning)(gha.escape_log(outcome.message))
    return outcome.ok


def _with_ledger(report: RunReport, targets: list[Target], state: LedgerState | None) -> RunReport:
    if state is None:
        return report
    first = str(targets[0].workload) if targets else None
    facts = state.facts(first)
    workloads = {str(t.workload) for t in targets}
    entries = tuple(e.to_json() for e in reversed(state.entries) if not workloads or e.workload in workloads)
    return replace(report, last_successful_release=facts.last_successful,
                   last_attempted_release=facts.last_attempted, ledger_entries=entries,
                   blocks=tuple(b.to_json() for b in state.blocks))


def _unblock(inputs: Inputs, ctx: Context) -> RunReport:
    """`mode: unblock`: remove the block of ``release`` from the ledger and the GitHub Release."""
    release = inputs.release
    found = False
    state = None
    if ctx.ledger is None and ctx.releases is None:
        raise RunError(f"nothing to unblock {release} in: ledger is false and no github-token was given", "ledger")
    if ctx.ledger is not None:
        def change(current: LedgerState) -> LedgerState:
            nonlocal found
            found = current.block_for(release) is not None
            if not found:
                return current
            entry = Entry.new(ctx.github, namespace=inputs.namespace, workload="*", release=release,
                              mode="unblock", result=UNBLOCKED, reason=inputs.reason)
            return current.without_block(release).with_entry(entry)

        try:
            state = ctx.ledger.update(change, dry_run=inputs.dry_run)
        except LedgerError as err:
            raise RunError(f"the release ledger could not be updated: {err}", "ledger") from None
        gha.info(gha.escape_log(f"release {release} {'unblocked' if found else 'was not blocked'} in the ledger "
                                f"of namespace {inputs.namespace}"))
    if ctx.releases is not None and not inputs.dry_run:
        outcome = ctx.releases.unblock(release, ctx.github.actor, run_url=ctx.github.run_url)
        (gha.notice if outcome.level == "notice" else gha.warning)(gha.escape_log(outcome.message))
    elif ctx.releases is None:
        gha.notice(gha.escape_log(f"no github-token given: only the in-cluster ledger was checked; a block "
                                  f"recorded on the GitHub Release {release} stays"))
    report = RunReport(mode="unblock", reason=inputs.reason, dry_run=inputs.dry_run, release=release)
    return _with_ledger(report, [], state)
