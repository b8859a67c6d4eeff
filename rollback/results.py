"""Where each workload ended: ``WorkloadResult`` rows and the ``RunReport`` of a run, read back from the cluster
at the end (or marked unknown when it cannot be reached), also for runs that stopped before reading everything.
"""

from __future__ import annotations

from . import compensation, gha
from .cluster import ApiFailure
from .history import to_json_rows
from .inputs import Inputs
from .ledger import NOT_VERIFIED
from .modes import Decision
from .report import RunReport, WorkloadResult
from .targets import Context, Target
from .workloads import WorkloadError, workload_for


def early_results(inputs: Inputs, ctx: Context, targets: list[Target],
                  why: str = "not read: the run stopped before it got to it") -> tuple[WorkloadResult, ...]:
    read = {str(t.workload): result_of(inputs, t) for t in targets}
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


def finish_report(inputs: Inputs, targets: list[Target], decision: Decision | None, error: str | None = None
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
    return build_report(inputs, targets, decision, error)


def build_report(inputs: Inputs, targets: list[Target], decision: Decision | None, error: str | None = None
                 ) -> RunReport:
    results = tuple(result_of(inputs, t) for t in targets)
    return RunReport(
        mode=inputs.mode, decision=decision, results=results, reason=inputs.reason, dry_run=inputs.dry_run,
        rolled_back=False, failed_release=None, blocked_release=None, blocked=False,
        last_successful_release=None, last_attempted_release=None, error=error, release=inputs.release,
        warnings=tuple(w for t in targets for w in t.warnings),
        plan=tuple(t.plan.to_json() for t in targets if t.plan is not None),
    )


def result_of(inputs: Inputs, target: Target) -> WorkloadResult:
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


def failure_message(failed: list[Target]) -> str:
    return "; ".join(f"{t.workload}: {t.message}" for t in failed)
