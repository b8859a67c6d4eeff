"""Deployment mode calculation: is this release a deploy, a redeploy or a rollback? (pure, no I/O)

This is the "Calculate Deployment Mode" step, decided by cluster state first (it works for SHAs and tags) and
by the release ledger's facts where the cluster alone cannot tell. Version order is only a second opinion: it
feeds ``version_change`` and warnings, and the one ledger rule marked below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rollback.history import History, NoPreviousRevision, resolve
from rollback.versions import VersionChange, compare, version_change

DecisionMode = Literal["deploy", "redeploy", "rollback"]

RUN_ON_OUTPUTS: tuple[str, ...] = (
    "run-on-deploy", "run-on-redeploy", "run-on-rollback", "run-on-deploy-or-rollback",
    "run-on-deploy-or-redeploy", "run-on-redeploy-or-rollback",
)


@dataclass(frozen=True)
class LedgerFacts:
    """What the release ledger knows about this workload/environment (Octopus CurrentForEnvironment etc.)."""

    last_successful: str | None  # newest release whose run succeeded
    last_attempted: str | None  # newest release any run tried, successful or not
    succeeded: tuple[str, ...] = ()  # every release the ledger records as deployed successfully


@dataclass(frozen=True)
class Decision:
    mode: DecisionMode
    version_change: VersionChange  # the release against previous_release
    previous_release: str | None  # the live release before this run (the baseline)
    warnings: tuple[str, ...]
    reason: str  # why this mode, in one sentence for the log and summary
    target_revision: int | None = None  # rollback: revision to undo to (None: not in history, must deploy);
    # redeploy: the live revision; deploy: None
    rolled_back_from: str | None = None  # rollback: the release being left (the one to block); else None


def calculate(release: str, history: History, ledger: LedgerFacts | None = None) -> Decision:
    """Decide the mode for deploying ``release`` to the workload whose history is given.

    Facts: where the release is in the cluster (the **live** revision, an **older** revision, or **absent**),
    and from the ledger, when it has a last successful release S (A = last attempted, or S when unknown):

    - *failed attempt*: A differs from S (the newest run did not succeed);
    - *returning*: a failed attempt, and the release is S itself, or orders below both A and S (both must
      parse as versions; this is the only rule that uses version order).

    ==  ===============  =========================================================  ========
    #   release is       ledger                                                     mode
    ==  ===============  =========================================================  ========
    1   live             returning (a failed attempt came after it)                 rollback
    2   live             anything else, or no ledger                                redeploy
    3   older revision   anything                                                   rollback
    4   absent           returning                                                  rollback
    5   absent           recorded as succeeded before (in ``succeeded``), not S     rollback
    6   absent           equal to S without a failed attempt (warned)               deploy
    7   absent           anything else, or no ledger                                deploy
    ==  ===============  =========================================================  ========

    "Live" means the workload's change-cause equals the release, or the live revision's does (the workload
    annotation is stale, warned). Row 1 is an undo that finds the target already live (skipped), but the
    workflow's run-on-rollback steps still run, as Octopus would. Rows 4 and 5 have no revision to undo to
    (``target_revision`` None): the release has to be deployed again from images or manifests. Different
    strings are different releases: ``1.2.0-rc.1`` is not ``1.2.0``; no pre-release tag is dropped.

    ``version_change`` compares the release with the live release (the workload's change-cause, else the
    live revision's, else the ledger's S). Warnings say when version order disagrees with the mode.

    ``rolled_back_from`` names the release a rollback leaves, the one to block: the failed attempt A when
    *returning* (rows 1 and 4; in row 1 the live release is the good one and must not be blocked), otherwise
    the live release.

    An empty ``release`` means the previous revision (``kubectl rollout undo`` without ``--to-revision``): a
    rollback to the second-highest revision; with fewer than two revisions, a rollback decision without a
    target whose reason says so (``history.resolve`` raises ``NoPreviousRevision`` for it).
    """
    workload = str(history.workload)
    live_revision = history.revision(history.live)
    live_revision_release = live_revision.release if live_revision else None
    baseline = history.live_release or live_revision_release or (ledger.last_successful if ledger else None)
    if not release:
        return _previous_revision(history, baseline)
    warnings: list[str] = []

    facts = ledger if ledger is not None and ledger.last_successful is not None else None
    last_ok = facts.last_successful if facts else None
    attempted = (facts.last_attempted or last_ok) if facts else None
    failed_attempt = facts is not None and attempted != last_ok
    returning = failed_attempt and (
        release == last_ok or (compare(release, attempted) == -1 and compare(release, last_ok) == -1)
    )
    succeeded_before = facts is not None and release in facts.succeeded and release != last_ok
    failed_note = f"the ledger shows a failed attempt of {attempted} after the last successful {last_ok}"

    older = [rev for rev in history.revisions if rev.release == release and rev.number != history.live]
    mode: DecisionMode
    target: int | None = None
    if release in (history.live_release, live_revision_release):
        if release != history.live_release:
            warnings.append(
                f"the change-cause of {workload} is {history.live_release!r} but its live revision "
                f"{history.live} is recorded as {release!r}: treating {release!r} as live"
            )
        target = history.live
        if returning:
            mode = "rollback"
            reason = (f"release {release} is live on {workload}, but {failed_note}: returning to it is a "
                      "rollback (the workload itself needs no undo)")
        else:
            mode = "redeploy"
            reason = f"release {release} is already live on {workload} (revision {history.live})"
    elif older:
        mode = "rollback"
        target = max(rev.number for rev in older)
        reason = (f"release {release} is in revision {target} of {workload}; live is "
                  f"{history.live_release or '<none>'} (revision {history.live})")
    elif returning or succeeded_before:
        mode = "rollback"
        why = failed_note if returning else "the ledger records it as deployed successfully before"
        reason = (f"release {release} is not in the revision history of {workload}, but {why}: going back "
                  "to it is a rollback (it must be deployed again)")
    else:
        mode = "deploy"
        reason = f"release {release} is not in the revision history of {workload}: a new deploy"
        if facts is not None and release == last_ok:
            warnings.append(
                f"the ledger records {release} as the last successful release, but no revision of {workload} "
                "has it (history pruned or changed outside this action): deploying it again"
            )
        elif failed_attempt and compare(release, attempted) == -1:
            warnings.append(
                f"release {release} is lower than the last attempted release {attempted} (which failed) but "
                f"not lower than the last successful release {last_ok}: deploying it as a new release"
            )
        elif compare(release, baseline) == -1:
            warnings.append(
                f"release {release} is lower than the live release {baseline} but is not in history: "
                "deploying it as a new release"
            )
    if mode == "rollback" and compare(release, baseline) == 1:
        warnings.append(
            f"release {release} is higher than the live release {baseline} but was deployed before it: rolling "
            "back to it"
        )
    rolled_back_from = (attempted if returning else baseline) if mode == "rollback" else None
    return Decision(mode, version_change(baseline, release), baseline, tuple(warnings), reason, target,
                    rolled_back_from)


def _previous_revision(history: History, baseline: str | None) -> Decision:
    """An empty release: roll back to the previous revision, like ``kubectl rollout undo``."""
    try:
        resolution = resolve(history, "")
    except NoPreviousRevision as err:
        return Decision("rollback", "none", baseline, (), str(err), None, baseline)
    target = resolution.target
    reason = (f"no release given: rolling {history.workload} back to the previous revision {target.number} "
              f"(release {target.release or '<none>'})")
    return Decision("rollback", version_change(baseline, target.release), baseline, (), reason, target.number,
                    baseline)


def run_on_flags(mode: str | None) -> dict[str, str]:
    """The six ``run-on-*`` outputs as ``"true"``/``"false"`` for a decided mode (others: all false)."""
    deploy, redeploy, rollback = mode == "deploy", mode == "redeploy", mode == "rollback"
    values = (deploy, redeploy, rollback, deploy or rollback, deploy or redeploy, redeploy or rollback)
    return {name: "true" if value else "false" for name, value in zip(RUN_ON_OUTPUTS, values, strict=True)}
