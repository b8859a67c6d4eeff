"""The small caller between a run and GitHub Deployments: when to create, what status, what to inactivate.

``begin`` runs right before the run changes anything; ``finish`` once the outcome is known (after the
ledger); ``failed`` when the run stopped with an error before its report. The decisions are in ``outcome``
(pure: a report in, the GitHub steps out), the calls in ``rollback.github.deployments.Recorder``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rollback import gha
from rollback.github.deployments import Recorder, clip
from rollback.inputs import Inputs
from rollback.report import RunReport


def begin(recorder: Recorder | None, inputs: Inputs, release: str, revision: int | None) -> None:
    """A deployment of ``release`` ``in_progress`` (not for dry runs, calculate, history or unblock)."""
    if recorder is None or inputs.dry_run or inputs.mode not in ("auto", "deploy", "rollback") or not release:
        return
    if revision is not None:
        recorder.payload = {**recorder.payload, "revision": revision}
    what = "rolling back to" if inputs.mode == "rollback" else "deploying"
    recorder.start(release, _with_reason(f"kube-release-rollback {what} {release}", inputs.reason))


@dataclass(frozen=True)
class Steps:
    """What to tell GitHub about a finished run."""

    state: str | None  # final status of this run's deployment (None: nothing to post)
    description: str
    inactivate: str | None = None  # release whose deployment is no longer live
    restored: str | None = None  # release put back after a failed deploy: a new `success` deployment
    restored_description: str = ""


def outcome(report: RunReport, reason: str) -> Steps:
    """The GitHub steps for a finished run (pure)."""
    first = report.results[0] if report.results else None
    live = first.release if first else None
    previous = first.previous_release if first else None
    revision = f" (revision {first.revision})" if first and first.revision is not None else ""
    rollback = report.applied_mode == "rollback" and report.rolled_back
    if rollback and not report.failed_release:
        left = (report.decision.rolled_back_from if report.decision else None) or previous
        description = _with_reason(f"rolled back to {live}{revision}" + (f" from {left}" if left else ""),
                                   reason)
        return Steps("success", description, inactivate=left if left != live else None)
    if report.error is None:
        return Steps("success", f"{report.applied_mode} of {report.release or live}: live{revision}")
    if report.rolled_back and report.failed_release:
        return Steps("failure", f"{report.failed_release} failed: {report.error}",
                     inactivate=None, restored=live,
                     restored_description=f"restored {live} after {report.failed_release} failed to roll out")
    changed = any(r.action in ("failed", "compensated") for r in report.results)
    return Steps("failure" if changed else "error", report.error)


def finish(recorder: Recorder | None, inputs: Inputs, report: RunReport) -> RunReport:
    """Post the final status (and inactivate / record the restored release); warnings go into the report."""
    if recorder is None:
        return report
    if recorder.deployment_id is not None:
        steps = outcome(report, inputs.reason)
        if steps.state is not None:
            recorder.status(steps.state, steps.description)
        if steps.inactivate:
            recorder.inactivate(steps.inactivate, clip(f"rolled back from: {steps.description}"))
        if steps.restored:
            recorder.record(steps.restored, "success", steps.restored_description)
    return _report(recorder, report)


def failed(recorder: Recorder | None, message: str) -> None:
    """The run stopped with an error before it had a report: the started deployment ends in ``error``."""
    if recorder is not None and recorder.deployment_id is not None:
        recorder.status("error", message)
        _log(recorder)


def _report(recorder: Recorder, report: RunReport) -> RunReport:
    _log(recorder)
    if not recorder.warnings:
        return report
    return replace(report, warnings=(*report.warnings, *recorder.warnings))


def _log(recorder: Recorder) -> None:
    for note in recorder.notes:
        gha.info(gha.escape_log(note))
    recorder.notes.clear()
    for warning in recorder.warnings:
        if warning not in recorder.logged:
            gha.warning(gha.escape_log(warning))
            recorder.logged.append(warning)


def _with_reason(text: str, reason: str) -> str:
    return clip(f"{text}: {reason}" if reason.strip() else text)
