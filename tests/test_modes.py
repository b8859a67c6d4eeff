"""Tests for rollback.modes: every row of the calculate() table, the named scenarios, and run-on flags."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollback.history import History, Revision
from rollback.inputs import WorkloadRef
from rollback.modes import RUN_ON_OUTPUTS, LedgerFacts, calculate, recorded_failed, run_on_flags

WEB = WorkloadRef("Deployment", "web")


def cluster(*releases: str | None, live: int | None = None, live_release: str | None = "<from live>") -> History:
    """Revisions numbered 1..n with these change-causes; live defaults to the newest."""
    revisions = tuple(Revision(n, rel, (f"web=img:{n}",), "2024-01-01T00:00:00Z", f"web-{n}")
                      for n, rel in enumerate(releases, start=1))
    if live is None and revisions:
        live = revisions[-1].number
    if live_release == "<from live>":
        live_release = revisions[live - 1].release if live else None
    return History(WEB, revisions, live, live_release, (), 10)


EMPTY = cluster()


# --- the decision table: Octopus's rule for versions, history membership for the rest -------------------------

S_A = LedgerFacts  # LedgerFacts(last successful S, last attempted A, succeeded...)

# (id, release C, cluster, ledger facts, mode, target revision, release a rollback leaves, version-change)
TABLE = [
    # first deploy
    ("first-deploy", "1.0.0", EMPTY, None, "deploy", None, None, "none"),
    ("first-deploy-sha", "abc1234", EMPTY, None, "deploy", None, None, "none"),
    ("first-deploy-empty-ledger", "1.0.0", EMPTY, S_A(None, None), "deploy", None, None, "none"),
    # O2: C > S, C >= A: deploy (also with S and A from the live release when there is no ledger)
    ("O2-new-release", "2.0.0", cluster("1.0.0", "1.1.0"), None, "deploy", None, None, "major"),
    ("O2-new-release-ledger", "1.4", cluster("1.2", "1.3"), S_A("1.3", "1.3"), "deploy", None, None, "minor"),
    # story 1: after rolling back to 1.0.0, the newer 1.1.0 is a roll-forward (its revision can be undone to)
    ("O2-roll-forward-after-rollback", "1.1.0", cluster("1.0.0", "1.1.0", "1.0.0"), S_A("1.0.0", "1.0.0"),
     "deploy", 2, None, "minor"),
    ("O2-roll-forward-no-ledger", "1.1.0", cluster("1.0.0", "1.1.0", "1.0.0"), None, "deploy", 2, None, "minor"),
    # story 2: 1.3.0 failed and was put back; deploying 1.3.0 again is a retry: deploy
    ("O2-retry-of-failed", "1.3.0", cluster("1.2.0", "1.3.0", "1.2.0"), S_A("1.2.0", "1.3.0"),
     "deploy", 2, None, "minor"),
    ("O2-retry-failed-still-live", "1.3.0", cluster("1.2.0", "1.3.0"), S_A("1.2.0", "1.3.0"),
     "deploy", 2, None, "identical"),
    ("O2-hotfix-above-failed", "1.3.1", cluster("1.2", "1.3"), S_A("1.2", "1.3"), "deploy", None, None, "patch"),
    # O1: S < C < A: rollback relative to the failed A (Octopus's versionToCompare = A)
    ("O1-between-good-and-failed", "1.2.0", cluster("1.0.0", "1.3.0", "1.0.0"), S_A("1.0.0", "1.3.0"),
     "rollback", None, "1.3.0", "minor"),
    # O3: C < S: rollback; it leaves the live release
    ("O3-older-revision", "1.1.0", cluster("1.0.0", "1.1.0", "1.2.0"), None, "rollback", 2, "1.2.0", "minor"),
    ("O3-older-revision-ledger", "1.1", cluster("1.1", "1.2", "1.3"), S_A("1.2", "1.3"),
     "rollback", 1, "1.3", "minor"),
    ("O3-no-revision-has-it", "1.0.5", cluster("1.1.0", "1.2.0"), None, "rollback", None, "1.2.0", "minor"),
    ("O3-pruned-but-succeeded", "1.0", cluster("1.2"), S_A("1.2", "1.2", ("1.2", "1.0")),
     "rollback", None, "1.2", "minor"),
    ("O3-already-live", "1.1", cluster("1.2", "1.1"), S_A("1.2", "1.2"), "rollback", 2, "1.2", "identical"),
    # O4: C == S < A: returning to the last good release after a newer one failed blocks A, never S
    ("O4-returning-put-back", "1.2", cluster("1.1", "1.3", "1.2"), S_A("1.2", "1.3"),
     "rollback", 3, "1.3", "minor"),
    ("O4-returning-failed-live", "1.2", cluster("1.1", "1.2", "1.3"), S_A("1.2", "1.3"),
     "rollback", 2, "1.3", "minor"),
    ("O4-returning-pruned", "1.2", cluster("1.3"), S_A("1.2", "1.3"), "rollback", None, "1.3", "minor"),
    # O5: C == S >= A: redeploy
    ("O5-redeploy", "1.2.0", cluster("1.0.0", "1.1.0", "1.2.0"), None, "redeploy", 3, None, "identical"),
    ("O5-redeploy-ledger", "1.2", cluster("1.1", "1.2"), S_A("1.2", "1.2"), "redeploy", 2, None, "identical"),
    ("O5-equal-versions", "1.2.0", cluster("1.2"), None, "redeploy", None, None, "identical"),
    # pre-releases are kept and ordered as SemVer (Octopus cuts at "-" and would call these redeploys)
    ("pre-final-after-rc", "1.2.0", cluster("1.1.0", "1.2.0-rc.1"), None, "deploy", None, None, "prerelease"),
    ("pre-rc-after-final", "1.2.0-rc.1", cluster("1.2.0-rc.1", "1.2.0"), None,
     "rollback", 1, "1.2.0", "prerelease"),
    ("pre-rc10-after-rc9", "1.2.0-rc.10", cluster("1.2.0-rc.9"), None, "deploy", None, None, "prerelease"),
    ("pre-alpha-before-beta", "1.2.0-alpha", cluster("1.2.0-beta"), S_A("1.2.0-beta", "1.2.0-beta"),
     "rollback", None, "1.2.0-beta", "prerelease"),
    ("pre-ledger-rc-then-final", "1.2.0", cluster("1.2.0-rc.1"), S_A("1.2.0-rc.1", "1.2.0-rc.1"),
     "deploy", None, None, "prerelease"),
    # four-part versions (Octopus's Revision) and more parts
    ("build-fourth-part", "2021.09.23.2", cluster("2021.09.23.1"), None, "deploy", None, None, "build"),
    ("build-fifth-part", "1.2.3.4.4", cluster("1.2.3.4.5"), None, "rollback", None, "1.2.3.4.5", "build"),
    ("one-part", "2", cluster("1"), None, "deploy", None, None, "major"),
    # SHAs and free text: the history-membership rule (H1..H6)
    ("H2-sha-live", "e9a5f00", cluster("3f2a9c1", "b71e0d4", "e9a5f00"), None, "redeploy", 3, None, "identical"),
    ("H3-sha-older", "3f2a9c1", cluster("3f2a9c1", "b71e0d4", "e9a5f00"), None,
     "rollback", 1, "e9a5f00", "none"),
    ("H3-sha-newest-duplicate", "aaa1111", cluster("aaa1111", "bbb2222", "aaa1111", "ccc3333"), None,
     "rollback", 3, "ccc3333", "none"),
    ("H6-sha-new", "0c4d2aa", cluster("3f2a9c1", "b71e0d4"), None, "deploy", None, None, "none"),
    ("H1-sha-returning-live", "aaa1111", cluster("bbb2222", "aaa1111"), S_A("aaa1111", "bbb2222"),
     "rollback", 2, "bbb2222", "identical"),
    ("H4-sha-returning-pruned", "aaa1111", cluster("bbb2222"), S_A("aaa1111", "bbb2222"),
     "rollback", None, "bbb2222", "none"),
    ("H5-sha-succeeded-before", "aaa1111", cluster("bbb2222"), S_A("bbb2222", None, ("bbb2222", "aaa1111")),
     "rollback", None, "bbb2222", "none"),
    ("H6-sha-failed-attempt-other", "ccc3333", cluster("bbb2222"), S_A("aaa1111", "bbb2222"),
     "deploy", None, None, "none"),
    ("H-version-after-sha", "1.0.0", cluster("abc1234"), None, "deploy", None, None, "none"),
    ("H-tag-latest", "latest", cluster("latest", "stable"), None, "rollback", 1, "stable", "none"),
]


@pytest.mark.parametrize(("release", "history", "facts", "mode", "target", "left", "change"),
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_decision_table(release: str, history: History, facts: LedgerFacts | None, mode: str,
                        target: int | None, left: str | None, change: str) -> None:
    decision = calculate(release, history, facts)
    assert (decision.mode, decision.target_revision, decision.rolled_back_from, decision.version_change) == (
        mode, target, left, change), decision.reason


def test_every_octopus_branch_is_in_the_table() -> None:
    ids = {row[0].split("-", 1)[0] for row in TABLE}
    assert {"O1", "O2", "O3", "O4", "O5", "H1", "H2", "H3", "H4", "H5", "H6", "first", "pre"} <= ids


def test_reasons_name_the_facts_and_their_source() -> None:
    decision = calculate("1.3.0", cluster("1.2.0", "1.3.0", "1.2.0"), S_A("1.2.0", "1.3.0"))
    assert decision.reason == ("release 1.3.0 is newer than the last successful release (a retry of the failed "
                               "attempt): a deploy (last successful 1.2.0, last attempted 1.3.0 (the ledger))")
    github = S_A("1.2.0", "1.3.0", source="GitHub Deployments")
    assert "(GitHub Deployments)" in calculate("1.2.0", cluster("1.3.0"), github).reason
    assert "(the cluster)" in calculate("1.1.0", cluster("1.1.0", "1.2.0")).reason
    returning = calculate("1.2", cluster("1.1", "1.3", "1.2"), S_A("1.2", "1.3"))
    assert "a newer attempt 1.3 did not succeed: returning to it is a rollback" in returning.reason
    gone = calculate("1.0.5", cluster("1.1.0", "1.2.0"))
    assert gone.reason.endswith("no revision of deployment/web has it, so it must be deployed again")


def test_deploy_of_a_live_release_the_ledger_does_not_know_warns() -> None:
    decision = calculate("1.3", cluster("1.2", "1.3"), S_A("1.2", "1.2"))
    assert decision.mode == "deploy" and decision.target_revision == 2
    assert decision.warnings == ("release 1.3 is already live on deployment/web (revision 2) but the ledger "
                                 "records 1.2 as the last successful release: deploying it again",)


def test_stale_workload_annotation_uses_live_revision() -> None:
    # e.g. kubectl undo of a StatefulSet: the template is v1 again but the object still says v2
    history = cluster("v1", "v2", live=1, live_release="v2")
    decision = calculate("v1", history)
    assert decision.target_revision == 1
    assert decision.warnings == ("the change-cause of deployment/web is 'v2' but its live revision 1 is "
                                 "recorded as 'v1': treating 'v1' as live",)
    sha = cluster("aaa1111", "bbb2222", live=1, live_release="bbb2222")
    assert calculate("aaa1111", sha).mode == "redeploy"
    assert calculate("bbb2222", sha).mode == "redeploy"  # the object's own change-cause still counts as live


def test_no_change_cause_on_live() -> None:
    decision = calculate("1.0.0", cluster("0.9.0", None))
    assert decision.mode == "deploy" and decision.previous_release is None
    assert decision.version_change == "none"


def test_version_change_baseline_falls_back_to_ledger() -> None:
    decision = calculate("1.3.0", EMPTY, LedgerFacts("1.2.0", "1.2.0"))
    assert decision.previous_release == "1.2.0" and decision.version_change == "minor"


def test_empty_release_means_previous_revision() -> None:
    decision = calculate("", cluster("1.0.0", "1.1.0", "1.2.0"))
    assert (decision.mode, decision.target_revision, decision.version_change) == ("rollback", 2, "minor")
    assert decision.previous_release == decision.rolled_back_from == "1.2.0"
    assert "previous revision 2 (release 1.1.0)" in decision.reason
    for history in (EMPTY, cluster("1.0.0")):
        decision = calculate("", history)
        assert decision.mode == "rollback" and decision.target_revision is None
        assert "no previous revision" in decision.reason


ATTEMPTS = ("succeeded", "failed", "rolled-back", "in-progress", "applied", "not-verified", "cancelled")


@pytest.mark.parametrize(("attempts", "failed"), [
    ([], ()),
    ([("1.3", "failed")], ("1.3",)),
    ([("1.3", "rolled-back"), ("1.2", "succeeded")], ("1.3",)),
    ([("1.3", "failed"), ("1.3", "succeeded")], ()),  # a later success clears it
    ([("1.3", "succeeded"), ("1.3", "rolled-back")], ("1.3",)),
    ([("1.3", "failed"), ("1.3", "refused"), ("1.3", "unblocked")], ("1.3",)),  # not attempts
    ([("1.3", "failed"), ("1.3", "cancelled")], ()),  # the newest attempt was not a failure
    ([("1.3", "failed"), ("1.4", "applied"), ("1.2", "rolled-back")], ("1.3", "1.2")),
])
def test_recorded_failed(attempts: list[tuple[str, str]], failed: tuple[str, ...]) -> None:
    assert recorded_failed(attempts, ATTEMPTS, ("failed", "rolled-back")) == failed


# --- properties ----------------------------------------------------------------------------------------------

shas = st.sampled_from(["abc1234", "bbb2222", "ccc3333", "latest"])
versions = st.sampled_from(["1.0", "1.1", "1.2", "2.0", "1.2.0-rc.1"])


@st.composite
def histories(draw: st.DrawFn, names: st.SearchStrategy[str]) -> History:
    rels = draw(st.lists(st.none() | names, max_size=6))
    live = draw(st.integers(1, len(rels))) if rels else None
    return cluster(*rels, live=live)


@given(histories(shas), shas)
def test_without_ledger_the_cluster_decides_for_shas(history: History, release: str) -> None:
    decision = calculate(release, history)
    live_rev = history.revision(history.live)
    is_live = release in (history.live_release, live_rev.release if live_rev else None)
    in_older = any(r.release == release and r.number != history.live for r in history.revisions)
    expected = "redeploy" if is_live else "rollback" if in_older else "deploy"
    assert decision.mode == expected
    if expected == "rollback":
        assert decision.target_revision == max(
            r.number for r in history.revisions if r.release == release and r.number != history.live)


@given(histories(versions | shas), versions | shas, st.none() | versions | shas, st.none() | versions | shas)
def test_only_a_rollback_leaves_a_release_and_never_the_one_it_goes_to(
        history: History, release: str, last_ok: str | None, attempted: str | None) -> None:
    decision = calculate(release, history, LedgerFacts(last_ok, attempted))
    if decision.mode != "rollback":
        assert decision.rolled_back_from is None
    assert decision.rolled_back_from != release
    if decision.target_revision is not None:
        assert history.revision(decision.target_revision) is not None
        revision = history.revision(decision.target_revision)
        assert revision is not None
        assert revision.release == release or decision.target_revision == history.live


def test_a_rollback_onto_a_sha_never_blocks_the_sha_it_returns_to() -> None:
    """Found by the property above: the live revision has no release (deployed outside the action), the
    ledger's last successful release is the SHA in revision 2; going back to it leaves nothing to block."""
    history = History(WorkloadRef("Deployment", "web"), (
        Revision(1, None, ("web=img:1",), "2024-01-01T00:00:00Z", "web-1"),
        Revision(2, "abc1234", ("web=img:2",), "2024-01-01T00:00:00Z", "web-2")),
        live=1, live_release=None, pruned=(), history_limit=10)
    decision = calculate("abc1234", history, LedgerFacts("abc1234", None))
    assert (decision.mode, decision.target_revision, decision.rolled_back_from) == ("rollback", 2, None)


# --- run-on flags --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "true_flags"), [
    ("deploy", {"run-on-deploy", "run-on-deploy-or-rollback", "run-on-deploy-or-redeploy"}),
    ("redeploy", {"run-on-redeploy", "run-on-deploy-or-redeploy", "run-on-redeploy-or-rollback"}),
    ("rollback", {"run-on-rollback", "run-on-deploy-or-rollback", "run-on-redeploy-or-rollback"}),
    ("history", set()), ("unblock", set()), (None, set()),
])
def test_run_on_flags(mode: str | None, true_flags: set[str]) -> None:
    flags = run_on_flags(mode)
    assert tuple(flags) == RUN_ON_OUTPUTS
    assert {name for name, value in flags.items() if value == "true"} == true_flags
    assert set(flags.values()) <= {"true", "false"}
