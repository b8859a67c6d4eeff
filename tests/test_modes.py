"""Tests for rollback.modes: every row of the calculate() table, the named scenarios, and run-on flags."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollback.history import History, Revision
from rollback.inputs import WorkloadRef
from rollback.modes import RUN_ON_OUTPUTS, Decision, LedgerFacts, calculate, run_on_flags

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


# --- cluster-state rules (no ledger) -------------------------------------------------------------------------

def test_first_deploy_with_empty_history() -> None:
    decision = calculate("1.0.0", EMPTY)
    assert decision == Decision("deploy", "none", None, (), "release 1.0.0 is not in the revision history of "
                                "deployment/web: a new deploy", None, None)


def test_redeploy_when_live() -> None:
    decision = calculate("1.2.0", cluster("1.0.0", "1.1.0", "1.2.0"))
    assert (decision.mode, decision.version_change, decision.previous_release) == ("redeploy", "identical",
                                                                                   "1.2.0")
    assert decision.target_revision == 3 and decision.warnings == () and decision.rolled_back_from is None


def test_plain_rollback_to_older_revision() -> None:
    decision = calculate("1.1.0", cluster("1.0.0", "1.1.0", "1.2.0"))
    assert (decision.mode, decision.version_change, decision.target_revision) == ("rollback", "minor", 2)
    assert decision.rolled_back_from == "1.2.0" and decision.warnings == ()
    assert "revision 2 of deployment/web" in decision.reason


def test_rollback_picks_newest_older_revision() -> None:
    assert calculate("v1", cluster("v1", "v2", "v1", "v3")).target_revision == 3


def test_deploy_new_higher_release() -> None:
    decision = calculate("2.0.0", cluster("1.0.0", "1.1.0"))
    assert (decision.mode, decision.version_change, decision.warnings) == ("deploy", "major", ())


def test_deploy_lower_version_not_in_history_warns() -> None:
    decision = calculate("1.0.5", cluster("1.1.0", "1.2.0"))
    assert decision.mode == "deploy" and decision.version_change == "minor"
    assert decision.warnings == ("release 1.0.5 is lower than the live release 1.2.0 but is not in history: "
                                 "deploying it as a new release",)


def test_rollback_to_higher_version_warns() -> None:
    # 2.0.0 was deployed, then an older 1.9.0 hotfix line went live; going back to 2.0.0 is a rollback
    decision = calculate("2.0.0", cluster("2.0.0", "1.9.0"))
    assert decision.mode == "rollback" and decision.version_change == "major"
    assert decision.warnings == ("release 2.0.0 is higher than the live release 1.9.0 but was deployed before "
                                 "it: rolling back to it",)


def test_prerelease_and_release_are_different_releases() -> None:
    history = cluster("1.1.0", "1.2.0-rc.1")
    decision = calculate("1.2.0", history)
    assert decision.mode == "deploy" and decision.version_change == "other" and decision.warnings == ()
    assert calculate("1.2.0-rc.1", history).mode == "redeploy"
    rollback = calculate("1.2.0-rc.1", cluster("1.2.0-rc.1", "1.2.0"))
    assert rollback.mode == "rollback" and rollback.version_change == "other"


def test_sha_releases() -> None:
    history = cluster("3f2a9c1", "b71e0d4", "e9a5f00")
    assert calculate("e9a5f00", history).mode == "redeploy"
    decision = calculate("3f2a9c1", history)
    assert (decision.mode, decision.version_change, decision.warnings) == ("rollback", "none", ())
    decision = calculate("0c4d2aa", history)
    assert (decision.mode, decision.version_change, decision.warnings) == ("deploy", "none", ())


def test_calver_and_five_part_versions() -> None:
    assert calculate("2021.09.23.2", cluster("2021.09.23.1")).version_change == "other"
    assert calculate("1.2.3.4.5", cluster("1.2.3.4.4")).version_change == "other"
    assert calculate("2", cluster("1")).version_change == "major"


def test_stale_workload_annotation_uses_live_revision() -> None:
    # e.g. kubectl undo of a StatefulSet: the template is v1 again but the object still says v2
    history = cluster("v1", "v2", live=1, live_release="v2")
    decision = calculate("v1", history)
    assert decision.mode == "redeploy" and decision.target_revision == 1
    assert decision.warnings == ("the change-cause of deployment/web is 'v2' but its live revision 1 is "
                                 "recorded as 'v1': treating 'v1' as live",)
    assert calculate("v2", history).mode == "redeploy"  # the object's own change-cause still counts as live


def test_no_change_cause_on_live() -> None:
    decision = calculate("1.0.0", cluster("0.9.0", None))
    assert decision.mode == "deploy" and decision.previous_release is None
    assert decision.version_change == "none"


def test_empty_release_means_previous_revision() -> None:
    decision = calculate("", cluster("1.0.0", "1.1.0", "1.2.0"))
    assert (decision.mode, decision.target_revision, decision.version_change) == ("rollback", 2, "minor")
    assert decision.previous_release == decision.rolled_back_from == "1.2.0"
    assert "previous revision 2 (release 1.1.0)" in decision.reason
    for history in (EMPTY, cluster("1.0.0")):
        decision = calculate("", history)
        assert decision.mode == "rollback" and decision.target_revision is None
        assert "no previous revision" in decision.reason


# --- ledger rules: one test per row of the table -----------------------------------------------------------

def test_row1_live_but_returning_after_failed_attempt_is_rollback() -> None:
    # 1.3 failed and was compensated: 1.2 is live again; deploying 1.2 now is a rollback (Octopus semantics)
    history = cluster("1.1", "1.3", "1.2")
    decision = calculate("1.2", history, LedgerFacts("1.2", "1.3"))
    assert decision.mode == "rollback" and decision.target_revision == 3
    assert decision.rolled_back_from == "1.3"  # the good live release must not be the one blocked
    assert "failed attempt of 1.3 after the last successful 1.2" in decision.reason


def test_row2_live_without_failed_attempt_is_redeploy() -> None:
    decision = calculate("1.2", cluster("1.1", "1.2"), LedgerFacts("1.2", "1.2"))
    assert decision.mode == "redeploy" and decision.rolled_back_from is None
    assert calculate("1.2", cluster("1.1", "1.2"), LedgerFacts("1.2", None)).mode == "redeploy"


def test_row3_older_revision_is_rollback_whatever_the_ledger_says() -> None:
    # deploy lower version after a failed higher one: 1.3 failed and is still live (no rollback-on-failure)
    history = cluster("1.1", "1.2", "1.3")
    decision = calculate("1.2", history, LedgerFacts("1.2", "1.3"))
    assert (decision.mode, decision.target_revision, decision.rolled_back_from) == ("rollback", 2, "1.3")
    assert calculate("1.1", history, LedgerFacts("1.3", "1.3")).mode == "rollback"


def test_row4_absent_and_returning_is_rollback() -> None:
    # history pruned down to the failed release only
    history = cluster("1.3")
    decision = calculate("1.2", history, LedgerFacts("1.2", "1.3"))
    assert decision.mode == "rollback" and decision.target_revision is None
    assert decision.rolled_back_from == "1.3" and "must be deployed again" in decision.reason
    lower = calculate("1.1", history, LedgerFacts("1.2", "1.3"))  # below both S and A
    assert lower.mode == "rollback" and lower.target_revision is None


def test_row5_absent_but_succeeded_before_is_rollback() -> None:
    decision = calculate("1.0", cluster("1.2"), LedgerFacts("1.2", "1.2", ("1.0", "1.1", "1.2")))
    assert decision.mode == "rollback" and decision.target_revision is None
    assert decision.rolled_back_from == "1.2"
    assert "records it as deployed successfully before" in decision.reason
    # SHAs: no version order needed
    assert calculate("aaa1111", cluster("bbb2222"), LedgerFacts("bbb2222", None, ("aaa1111",))).mode == (
        "rollback")


def test_row6_absent_but_equal_to_last_successful_deploys_with_warning() -> None:
    decision = calculate("1.2", cluster("1.1"), LedgerFacts("1.2", "1.2"))
    assert decision.mode == "deploy"
    assert decision.warnings == ("the ledger records 1.2 as the last successful release, but no revision of "
                                 "deployment/web has it (history pruned or changed outside this action): "
                                 "deploying it again",)


def test_row7_absent_otherwise_deploys() -> None:
    assert calculate("1.4", cluster("1.2", "1.3"), LedgerFacts("1.2", "1.3")).mode == "deploy"
    # a hotfix between the last good and the failed release is a deploy, not Octopus's rollback
    decision = calculate("1.2.1", cluster("1.2", "1.3"), LedgerFacts("1.2", "1.3"))
    assert decision.mode == "deploy"
    assert decision.warnings == ("release 1.2.1 is lower than the last attempted release 1.3 (which failed) "
                                 "but not lower than the last successful release 1.2: deploying it as a new "
                                 "release",)
    # lower than S without a failed attempt: a new release, warned like the cluster rule
    lower = calculate("1.0", cluster("1.2"), LedgerFacts("1.2", "1.2"))
    assert lower.mode == "deploy" and "lower than the live release 1.2" in lower.warnings[0]
    # SHAs with a failed attempt: no order, so not "returning" unless it is the last successful one
    assert calculate("ccc3333", cluster("bbb2222"), LedgerFacts("aaa1111", "bbb2222")).mode == "deploy"
    assert calculate("aaa1111", cluster("bbb2222"), LedgerFacts("aaa1111", "bbb2222")).mode == "rollback"


def test_ledger_without_last_successful_falls_back_to_cluster() -> None:
    facts = LedgerFacts(None, "1.3", ())
    assert calculate("1.2", cluster("1.3"), facts) == calculate("1.2", cluster("1.3"))


def test_ledger_prerelease_is_not_the_release() -> None:
    # last successful 1.2.0-rc.1; 1.2.0 was never deployed: the final release is a new deploy
    decision = calculate("1.2.0", cluster("1.2.0-rc.1"), LedgerFacts("1.2.0-rc.1", "1.2.0-rc.1"))
    assert decision.mode == "deploy" and decision.version_change == "other"


def test_version_change_baseline_falls_back_to_ledger() -> None:
    decision = calculate("1.3.0", EMPTY, LedgerFacts("1.2.0", "1.2.0"))
    assert decision.previous_release == "1.2.0" and decision.version_change == "minor"


# --- properties ----------------------------------------------------------------------------------------------

releases = st.sampled_from(["1.0", "1.1", "1.2", "2.0", "abc1234", "1.2.0-rc.1"])


@st.composite
def histories(draw: st.DrawFn) -> History:
    rels = draw(st.lists(st.none() | releases, max_size=6))
    live = draw(st.integers(1, len(rels))) if rels else None
    return cluster(*rels, live=live)


@given(histories(), releases)
def test_without_ledger_the_cluster_decides(history: History, release: str) -> None:
    decision = calculate(release, history)
    live_rev = history.revision(history.live)
    is_live = release in (history.live_release, live_rev.release if live_rev else None)
    in_older = any(r.release == release and r.number != history.live for r in history.revisions)
    expected = "redeploy" if is_live else "rollback" if in_older else "deploy"
    assert decision.mode == expected
    if expected == "rollback":
        assert decision.target_revision == max(
            r.number for r in history.revisions if r.release == release and r.number != history.live)


@given(histories(), releases, st.none() | releases, st.none() | releases, st.lists(releases, max_size=3))
def test_ledger_only_adds_rollbacks_when_release_is_not_live(history: History, release: str,
                                                            last_ok: str | None, attempted: str | None,
                                                            succeeded: list[str]) -> None:
    plain = calculate(release, history)
    with_ledger = calculate(release, history, LedgerFacts(last_ok, attempted, tuple(succeeded)))
    if plain.mode == "rollback":
        assert with_ledger.mode == "rollback" and with_ledger.target_revision == plain.target_revision
    if with_ledger.mode != plain.mode:
        assert with_ledger.mode == "rollback"
    if with_ledger.mode == "rollback":
        assert with_ledger.rolled_back_from is not None or history.live_release is None


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
