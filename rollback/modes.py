"""Deployment mode calculation: is this release a deploy, a redeploy or a rollback? (pure, no I/O)

This is Octopus's "Calculate Deployment Mode" step (OctopusDeploy/Library, v5) wherever the releases compare
as versions, and a history-membership rule where they do not (commit SHAs, free-text tags). The full table is
in :func:`calculate` and in the README ("How the mode is decided").
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from rollback.history import History, NoPreviousRevision, resolve
from rollback.versions import VersionChange, compare, parse, version_change

DecisionMode = Literal["deploy", "redeploy", "rollback"]

RUN_ON_OUTPUTS: tuple[str, ...] = (
    "run-on-deploy", "run-on-redeploy", "run-on-rollback", "run-on-deploy-or-rollback",
    "run-on-deploy-or-redeploy", "run-on-redeploy-or-rollback",
)


@dataclass(frozen=True)
class LedgerFacts:
    """What the release history knows about this workload/environment (Octopus CurrentForEnvironment etc.)."""

    last_successful: str | None  # S: newest release whose run succeeded
    last_attempted: str | None  # A: newest release any run tried, successful or not
    succeeded: tuple[str, ...] = ()  # every release recorded as deployed successfully
    source: str = "the ledger"  # where these facts come from, for the log: "the ledger" | "GitHub Deployments"
    failed: tuple[str, ...] = ()  # releases whose newest attempt failed (see ``recorded_failed``)


@dataclass(frozen=True)
class Decision:
    mode: DecisionMode
    version_change: VersionChange  # the release against the release it is compared with (see calculate)
    previous_release: str | None  # the live release before this run (the baseline)
    warnings: tuple[str, ...]
    reason: str  # why this mode, in one sentence for the log and summary
    target_revision: int | None = None  # the revision that has the release: the live one when it is live,
    # else the newest older one; None when no revision has it (it must be deployed from images/manifests)
    rolled_back_from: str | None = None  # rollback: the release being left (the one to block); else None
    passed_over: tuple[str, ...] = ()  # empty release: releases recorded as failed that were not chosen


def calculate(release: str, history: History, ledger: LedgerFacts | None = None) -> Decision:
    """Decide the mode for deploying ``release`` (C) to the workload whose history is given.

    S is the last successful release and A the last attempted one, from ``ledger`` when it knows a last
    successful release, else S = A = the live release (the workload's change-cause, else its live
    revision's). When C and S both parse as versions (``rollback.versions``: SemVer pre-releases ordered as
    SemVer says, never cut off at ``-``), Octopus's rule decides:

    ==  ===================  ========  =================================================================
    #   C against S and A    mode      released blocked by a successful rollback (``rolled_back_from``)
    ==  ===================  ========  =================================================================
    O1  C > S, C < A         rollback  A (C returns below a newer attempt that failed)
    O2  C > S, C >= A        deploy    nothing (a new release, or a retry of the failed A)
    O3  C < S                rollback  the live release (S when C itself is live)
    O4  C == S, C < A        rollback  A (back to the last good release after a failed newer one), never S
    O5  C == S, C >= A       redeploy  nothing
    ==  ===================  ========  =================================================================

    A that is not a version counts as "not greater than C". Otherwise (no S at all: a first deploy; or C or S
    is a SHA or free text) the history-membership rule decides, comparing strings only:

    ==  ===================================================================================  ========
    #   release is                                                                            mode
    ==  ===================================================================================  ========
    H1  live (change-cause of the workload or of its live revision), S equal and A differs   rollback
    H2  live, anything else                                                                  redeploy
    H3  in an older revision                                                                 rollback
    H4  in no revision, but equal to S while A differs (returning after a failed attempt)    rollback
    H5  in no revision, but recorded as succeeded before (not S)                             rollback
    H6  anything else (first deploy included)                                                deploy
    ==  ===================================================================================  ========

    In H1 and H4 the release left is A; in H3 and H5 the live release.

    ``target_revision`` says where the release is in the revision history whatever the mode: a deploy or
    redeploy of a release that an older revision has can be done by undoing to it when no images or
    manifests are given. ``version_change`` compares C with A in O1/O4 (what Octopus compares with) and
    otherwise with the live release (else S). Unlike Octopus v5 it is set for deploys too (v5 reports
    ``Identical`` for every deploy), and it has ``patch``, ``build`` (4th part) and ``prerelease``.

    An empty ``release`` means the previous revision (``kubectl rollout undo`` without ``--to-revision``): a
    rollback to the second-highest revision; with fewer than two revisions, a rollback decision without a
    target whose reason says so (``history.resolve`` raises ``NoPreviousRevision`` for it).
    """
    workload = str(history.workload)
    live_revision = history.revision(history.live)
    live_revision_release = live_revision.release if live_revision else None
    baseline = history.live_release or live_revision_release or (ledger.last_successful if ledger else None)
    if not release:
        return _previous_revision(history, baseline, ledger.failed if ledger else ())
    warnings: list[str] = []
    facts = ledger if ledger is not None and ledger.last_successful is not None else None
    last_ok = facts.last_successful if facts else baseline
    attempted = (facts.last_attempted or last_ok) if facts else last_ok
    source = facts.source if facts else "the cluster"

    is_live = release in (history.live_release, live_revision_release)
    if is_live and release != history.live_release:
        warnings.append(
            f"the change-cause of {workload} is {history.live_release!r} but its live revision "
            f"{history.live} is recorded as {release!r}: treating {release!r} as live"
        )
    older = [rev.number for rev in history.revisions if rev.release == release and rev.number != history.live]
    target = history.live if is_live else (max(older) if older else None)

    if parse(release) is not None and parse(last_ok) is not None:
        mode, reason, left, compared = _octopus(release, last_ok, attempted, source)
        if mode == "rollback" and left is None:
            # the release this rollback leaves: the live one; when C is live already, S (what was left
            # outside this action, or by a rollback whose record was lost)
            left = baseline if not is_live else (last_ok if last_ok != release else None)
        if mode == "rollback" and target is None:
            reason += f"; no revision of {workload} has it, so it must be deployed again"
        if mode == "deploy" and is_live:
            warnings.append(f"release {release} is already live on {workload} (revision {history.live}) but "
                            f"{source} records {last_ok} as the last successful release: deploying it again")
        return Decision(mode, version_change(compared or baseline or last_ok, release), baseline,
                        tuple(warnings), reason, target, left if mode == "rollback" else None)
    return _by_history(release, history, facts, warnings, target, older, baseline)


def _octopus(c: str, s: str | None, a: str | None, source: str
             ) -> tuple[DecisionMode, str, str | None, str | None]:
    """(mode, reason, release left by a rollback, release compared with) by Octopus's v5 rule."""
    facts = f"last successful {s}, last attempted {a} ({source})"
    below_attempt = compare(c, a) == -1
    order = compare(c, s)
    if order == 1:
        if below_attempt:
            return ("rollback", f"release {c} is newer than the last successful release but older than the last "
                    f"attempted one, which did not succeed: a rollback ({facts})", a, a)
        again = " (a retry of the failed attempt)" if compare(c, a) == 0 and a != s else ""
        return ("deploy", f"release {c} is newer than the last successful release{again}: a deploy ({facts})",
                None, None)
    if order == -1:
        return ("rollback", f"release {c} is older than the last successful release: a rollback ({facts})",
                None, None)
    if below_attempt:
        return ("rollback", f"release {c} is the last successful release and a newer attempt {a} did not "
                f"succeed: returning to it is a rollback ({facts})", a, a)
    return "redeploy", f"release {c} is the last successful release: a redeploy ({facts})", None, None


def _by_history(release: str, history: History, facts: LedgerFacts | None, warnings: list[str],
                target: int | None, older: list[int], baseline: str | None) -> Decision:
    """The rule for releases that do not compare as versions (SHAs, tags): where the release is."""
    workload = str(history.workload)
    last_ok = facts.last_successful if facts else None
    attempted = (facts.last_attempted or last_ok) if facts else None
    returning = facts is not None and attempted != last_ok and release == last_ok
    succeeded_before = facts is not None and release in facts.succeeded and release != last_ok
    failed_note = (f"{facts.source if facts else 'the ledger'} shows a failed attempt of {attempted} after the "
                   f"last successful {last_ok}")
    mode: DecisionMode
    if target is not None and target == history.live:
        if returning:
            mode = "rollback"
            reason = (f"release {release} is live on {workload}, but {failed_note}: returning to it is a "
                      "rollback (the workload itself needs no undo)")
        else:
            mode = "redeploy"
            reason = f"release {release} is already live on {workload} (revision {history.live})"
    elif older:
        mode = "rollback"
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
    rolled_back_from = (attempted if returning else baseline) if mode == "rollback" else None
    if rolled_back_from == release:  # the live revision has no release, and the ledger's S is the one returned to
        rolled_back_from = None
    return Decision(mode, version_change(baseline, release), baseline, tuple(warnings), reason, target,
                    rolled_back_from)


def _previous_revision(history: History, baseline: str | None, failed: tuple[str, ...] = ()) -> Decision:
    """An empty release: roll back to the previous revision, like ``kubectl rollout undo``, except that a
    revision whose release is recorded as failed is passed over for the newest older one that is not."""
    try:
        resolution = resolve(history, "")
    except NoPreviousRevision as err:
        return Decision("rollback", "none", baseline, (), str(err), None, baseline)
    target = resolution.target
    if target.release and target.release in failed:
        newest = max(rev.number for rev in history.revisions)
        older = sorted((rev for rev in history.revisions if rev.number < newest), key=lambda rev: -rev.number)
        good = next((rev for rev in older if not (rev.release and rev.release in failed)), None)
        skipped = [rev for rev in older if rev.release in failed and (good is None or rev.number > good.number)]
        names = tuple(dict.fromkeys(str(rev.release) for rev in skipped))
        listed = ", ".join(f"{rev.release} (revision {rev.number})" for rev in skipped)
        if good is None:
            return Decision("rollback", "none", baseline, (), (
                f"no release given, and every older revision of {history.workload} carries a release recorded "
                f"as failed: {listed}; give the release to roll back to"), None, baseline, names)
        target = good
        return Decision("rollback", version_change(baseline, target.release), baseline, (),
                        f"no release given: rolling {history.workload} back to revision {target.number} (release "
                        f"{target.release or '<none>'}), passing over releases recorded as failed: {listed}",
                        target.number, baseline, names)
    reason = (f"no release given: rolling {history.workload} back to the previous revision {target.number} "
              f"(release {target.release or '<none>'})")
    return Decision("rollback", version_change(baseline, target.release), baseline, (), reason, target.number,
                    baseline)


def recorded_failed(attempts: Iterable[tuple[str, str]], attempt_results: Collection[str],
                    failed_results: Collection[str]) -> tuple[str, ...]:
    """Releases whose newest attempt ended in one of ``failed_results``, from ``(release, result)`` pairs
    oldest first; results not in ``attempt_results`` (refused, unblocked, ...) are not attempts."""
    last: dict[str, str] = {}
    for release, result in attempts:
        if result in attempt_results:
            last[release] = result
    return tuple(release for release, result in last.items() if result in failed_results)


def run_on_flags(mode: str | None) -> dict[str, str]:
    """The six ``run-on-*`` outputs as ``"true"``/``"false"`` for a decided mode (others: all false)."""
    deploy, redeploy, rollback = mode == "deploy", mode == "redeploy", mode == "rollback"
    values = (deploy, redeploy, rollback, deploy or rollback, deploy or redeploy, redeploy or rollback)
    return {name: "true" if value else "false" for name, value in zip(RUN_ON_OUTPUTS, values, strict=True)}
