"""What a run records and what it reads from records: the release ledger (the write-ahead ``in-progress`` entry,
the entries and blocks at the end, interrupted runs reconciled), blocks checked in the ledger and on GitHub Releases,
GitHub Deployments, and ``mode: unblock``. Only what was recorded is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from . import gha
from .cluster import ApiFailure
from .github import record as github_record
from .inputs import ImageSpec, Inputs
from .ledger import (
    ATTEMPT_RESULTS,
    CANCELLED,
    FAILED,
    IN_PROGRESS,
    REFUSED,
    ROLLED_BACK,
    SUCCEEDED,
    UNBLOCKED,
    Block,
    Entry,
    LedgerError,
    LedgerState,
    describe_run,
    interrupted,
)
from .modes import Decision, LedgerFacts, recorded_failed
from .report import RunReport
from .results import build_report
from .targets import Context, RunError, Target
from .workloads import CHANGE_CAUSE, WorkloadError, same_template


def run_identity(ctx: Context) -> str | None:
    """This run's identity in the ledger: its lease holder (None without leases)."""
    return ctx.leases.me.holder if ctx.leases is not None else None


def write_ahead(inputs: Inputs, ctx: Context, rollbacks: list[Target], deploys: list[Target],
                plan: Mapping[str, str], images: Mapping[str, tuple[ImageSpec, ...]]) -> None:
    """Before the first workload write: an ``in-progress`` entry per workload to be written (release, the
    intended change, this run), completed by ``record_run``. If the run dies, the next run finds it
    (``reconcile_interrupted``). A ledger that cannot be written does not stop the run: it warns."""
    me = run_identity(ctx)
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
            current = current.with_entry(replace(entry, run=me, cluster=ctx.cluster))
        return current

    try:
        ctx.ledger.update(change)
    except (LedgerError, ApiFailure) as err:  # also the timeout running out
        gha.warning(gha.escape_log(f"the release ledger was not updated before the change (the run goes on "
                                   f"without a write-ahead record): {err}"))
        return
    for target, _ in ahead:
        target.ahead = True


def settle_write_ahead(inputs: Inputs, ctx: Context, targets: list[Target]) -> None:
    """The run stopped with an error before any change it knows of: its write-ahead entries must not stay
    ``in-progress``. A workload still as it was read loses its entry (nothing happened to it); one that is
    not (a write whose answer was lost may have landed) gets it completed from the cluster, as ``interrupted``
    by this run."""
    me = run_identity(ctx)
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


def reconcile_interrupted(inputs: Inputs, ctx: Context, state: LedgerState | None, targets: list[Target]
                          ) -> LedgerState | None:
    """In-progress entries of other runs on these workloads belong to runs that died: this run holds the
    workloads' leases, so theirs are gone, and they never completed the entry. Say so, and complete them
    from the cluster (``ledger.interrupted``): result ``interrupted``, and the block an interrupted
    rollback implied."""
    me = run_identity(ctx)
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


def load_ledger(inputs: Inputs, ctx: Context) -> LedgerState | None:
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


def ledger_facts(ctx: Context, state: LedgerState | None, workload: str) -> LedgerFacts | None:
    """S, A and the failed releases of one workload: from the ledger when it has entries for it that were
    recorded through this cluster's API server, else from the GitHub Deployments of the environment (with a
    github-token), else the ledger's (another cluster's, with a warning) or none (the cluster decides)."""
    entries = state.entries_for(workload) if state is not None else ()
    newest = entries[-1].cluster if entries else None
    foreign = newest is not None and ctx.cluster is not None and newest != ctx.cluster
    if not entries or foreign:
        why = ("the ledger has no entries for it" if not entries else
               f"the ledger's newest entry for it was recorded through another API server ({newest}, this run "
               f"talks to {ctx.cluster}: a restored or copied ledger)")
        github = ctx.deployments.facts() if ctx.deployments is not None else None
        if github is not None and github.last_successful is not None:
            gha.info(gha.escape_log(
                f"{workload}: {why}; the mode is decided from the GitHub Deployments of environment "
                f"{ctx.deployments.target.environment if ctx.deployments else ''}: last successful "
                f"{github.last_successful}, last attempted {github.last_attempted}"))
            return github
        if not entries:
            return None
        gha.warning(gha.escape_log(f"{workload}: {why}; no GitHub Deployments to decide from instead, so the mode "
                                   f"is decided from that ledger"))
    assert state is not None  # it has entries
    facts = state.facts(workload)
    failed = recorded_failed(((e.release, e.result) for e in entries), ATTEMPT_RESULTS,
                             (FAILED, ROLLED_BACK))
    return replace(facts, failed=failed)


def github_begin(inputs: Inputs, ctx: Context, targets: list[Target]) -> None:
    """Right before the first change: this run's GitHub deployment, in_progress (the first workload's
    release; an empty-release rollback names the release of the revision it goes to)."""
    first = targets[0] if targets else None
    revision = first.revision if first is not None and inputs.mode == "rollback" else None
    release = inputs.release or (revision.release if revision is not None else None) or ""
    github_record.begin(ctx.deployments, inputs, release, revision.number if revision is not None else None)


def calculated_report(inputs: Inputs, targets: list[Target], decision: Decision | None, block: Block | None
                      ) -> RunReport:
    """`mode: calculate`: the mode, and whether the release is blocked (``blocked``), so a plan job can stop."""
    report = build_report(inputs, targets, decision)
    if block is None:
        return report
    gha.warning(gha.escape_log(f"{block.describe()}: deploying it would be refused (mode: unblock lifts the "
                               f"block)"))
    return replace(report, blocked=True, blocked_release=block.release)


def refuse_blocked(inputs: Inputs, targets: list[Target], decision: Decision | None, block: Block | None
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
    report = build_report(inputs, targets, decision, error=message)
    return replace(report, blocked=True, blocked_release=inputs.release)


def find_block(inputs: Inputs, ctx: Context, state: LedgerState | None) -> Block | None:
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


def record_run(inputs: Inputs, ctx: Context, state: LedgerState | None, targets: list[Target], report: RunReport,
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
    me = run_identity(ctx)
    entries = [replace(e, run=me, cluster=ctx.cluster) for e in entries]
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


def unblock(inputs: Inputs, ctx: Context) -> RunReport:
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
