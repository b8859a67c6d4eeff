"""The mode rule and blocks as a user meets them: ``python -m rollback`` on kubesim, release after release.

Two stories from issue 11, which the old "is it in an older revision" rule got wrong:

1. after rolling back to 1.0.0, ``auto 1.1.0`` (a newer release) is a deploy, and blocks nothing;
2. ``auto 1.3.0`` fails and is put back, the cause is fixed, ``auto 1.3.0`` again is a deploy (the pipeline
   runs its migrations) and blocks nothing; the good 1.2.0 stays deployable.

Then what a block may claim: only what was recorded (the ledger refusing the write fails the step after the
rollback, ``blocked-release`` empty), ``calculate`` of a blocked release says ``blocked=true``, an explicit
rollback to a blocked release warns, an empty-release rollback passes over releases recorded as failed, and
``rolled-back`` is true whenever this run made an older release live.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import CliRun, app_state, get_deployment, make_deployment, run_cli, wait_settled

import kubesim
from kubesim.knobs import Knobs
from kubesim.resources import CONFIGMAPS

NS = "shop"
LEDGER = "kube-release-rollback-ledger"
IMAGE = "registry.example/web"
BROKEN = "registry.example/web:broken"  # pods of this image never become Ready


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(ready_delay=0.05)


def web(sim: kubesim.Sim, history_limit: int | None = None) -> None:
    make_deployment(sim, "web", NS, image=f"{IMAGE}:0", progressDeadlineSeconds=1,
                    revision_history_limit=history_limit)
    wait_settled(sim)


def cli(sim: kubesim.Sim, *args: str) -> CliRun:
    return run_cli(sim, *args, "--namespace", NS, "--deployment", "web", "--timeout", "30s",
                   extra_env={"GITHUB_ACTOR": "mona", "GITHUB_REPOSITORY": "octo-org/shop"})


def auto(sim: kubesim.Sim, release: str, image: str | None = None, *extra: str, expect: int = 0) -> CliRun:
    run = cli(sim, "--mode", "auto", "--release", release, "--images", f"web={image or f'{IMAGE}:{release}'}",
              *extra)
    assert run.code == expect, run.stdout
    return run


def calculate(sim: kubesim.Sim, release: str) -> CliRun:
    run = cli(sim, "--mode", "calculate", "--release", release)
    assert run.code == 0, run.stdout
    return run


def blocks(sim: kubesim.Sim) -> list[str]:
    cm = sim.store.find(CONFIGMAPS, NS, LEDGER)
    return [b["release"] for b in json.loads(cm["data"]["blocks.json"])] if cm else []


def entries(sim: kubesim.Sim) -> list[dict[str, Any]]:
    cm = sim.store.find(CONFIGMAPS, NS, LEDGER)
    return json.loads(cm["data"]["entries.json"]) if cm else []


def live(sim: kubesim.Sim) -> tuple[str, str]:
    obj = get_deployment(sim, "web", NS)
    return (obj["metadata"]["annotations"]["kubernetes.io/change-cause"],
            obj["spec"]["template"]["spec"]["containers"][0]["image"])


# -- the two stories -------------------------------------------------------------------------------------------


def test_story_1_a_newer_release_after_a_rollback_is_a_deploy_and_blocks_nothing(sim: kubesim.Sim) -> None:
    web(sim)
    auto(sim, "1.0.0")
    auto(sim, "1.1.0")
    auto(sim, "1.2.0")
    back = auto(sim, "1.0.0")
    assert back.outputs["mode"] == "rollback" and back.outputs["rolled-back"] == "true"
    assert back.outputs["blocked-release"] == "1.2.0" and blocks(sim) == ["1.2.0"]

    plan = calculate(sim, "1.1.0")
    assert (plan.outputs["mode"], plan.outputs["run-on-rollback"], plan.outputs["blocked"]) == (
        "deploy", "false", "false"), plan.stdout
    forward = auto(sim, "1.1.0")
    assert forward.outputs["mode"] == "deploy" and forward.outputs["run-on-deploy"] == "true"
    assert forward.outputs["rolled-back"] == "false" and forward.outputs["blocked-release"] == ""
    assert blocks(sim) == ["1.2.0"]  # the good 1.0.0 is not blocked
    assert live(sim) == ("1.1.0", f"{IMAGE}:1.1.0")
    # Without images the release's older revision is restored: the template really is 1.1.0's.
    auto(sim, "1.0.0")  # back again (1.1.0 blocked now), then forward by revision only
    assert blocks(sim) == ["1.2.0", "1.1.0"]
    cli(sim, "--mode", "unblock", "--release", "1.1.0")
    by_revision = cli(sim, "--mode", "auto", "--release", "1.1.0")
    assert by_revision.code == 0 and by_revision.outputs["mode"] == "deploy", by_revision.stdout
    assert by_revision.result()[0]["action"] == "deployed"
    assert live(sim) == ("1.1.0", f"{IMAGE}:1.1.0")
    assert blocks(sim) == ["1.2.0"]


def test_story_2_a_retried_release_is_a_deploy_and_the_good_one_stays_deployable(sim: kubesim.Sim) -> None:
    web(sim)
    auto(sim, "1.2.0")
    failed = auto(sim, "1.3.0", BROKEN, "--rollback-on-failure", expect=2)
    assert failed.outputs["rolled-back"] == "true" and failed.outputs["failed-release"] == "1.3.0"
    assert live(sim)[0] == "1.2.0" and blocks(sim) == []

    plan = calculate(sim, "1.3.0")  # the cause is fixed: try 1.3.0 again
    assert (plan.outputs["mode"], plan.outputs["run-on-rollback"]) == ("deploy", "false"), plan.stdout
    assert "a retry of the failed attempt" in plan.summary
    retry = auto(sim, "1.3.0", f"{IMAGE}:1.3.0-fixed", "--rollback-on-failure")
    assert retry.outputs["mode"] == "deploy" and retry.outputs["blocked-release"] == ""
    assert retry.outputs["rolled-back"] == "false"
    assert blocks(sim) == [] and live(sim) == ("1.3.0", f"{IMAGE}:1.3.0-fixed")

    # 1.2.0 was never blocked: going back to it is an ordinary rollback (which blocks 1.3.0, the one left).
    back = auto(sim, "1.2.0")
    assert back.outputs["mode"] == "rollback" and back.outputs["blocked"] == "false"
    assert back.outputs["blocked-release"] == "1.3.0" and blocks(sim) == ["1.3.0"]


def test_returning_to_the_good_release_after_a_failed_newer_one_blocks_the_failed_one(sim: kubesim.Sim) -> None:
    web(sim)
    auto(sim, "1.2.0")
    auto(sim, "1.3.0", BROKEN, expect=1)  # failed and left so
    plan = calculate(sim, "1.2.0")
    assert plan.outputs["mode"] == "rollback" and plan.outputs["version-change"] == "minor"
    back = auto(sim, "1.2.0")
    assert back.outputs["rolled-back"] == "true" and back.outputs["blocked-release"] == "1.3.0"
    assert blocks(sim) == ["1.3.0"] and live(sim)[0] == "1.2.0"


# -- blocks say only what was recorded --------------------------------------------------------------------------


def test_a_block_the_ledger_refuses_fails_the_step_after_the_rollback(sim: kubesim.Sim) -> None:
    web(sim)
    auto(sim, "1.0.0")
    auto(sim, "1.1.0")
    sim.knobs.fail_next(20, method="PUT", path=f"/namespaces/{NS}/configmaps/{LEDGER}", status=403)
    back = cli(sim, "--mode", "rollback", "--release", "1.0.0", "--reason", "checkout broken")
    assert back.code == 1, back.stdout
    assert live(sim)[0] == "1.0.0"  # the rollback itself is done
    assert back.outputs["rolled-back"] == "true" and back.outputs["blocked-release"] == ""
    (error,) = back.errors
    assert error.startswith("the rollback is done, but the block of 1.1.0 was not recorded in the ledger: the "
                            "release ledger refused the write (not allowed to write the release ledger"), error
    assert "deploys in namespace shop will not refuse 1.1.0" in error and "run the same rollback again" in error
    assert not any("cannot be deployed again" in line for line in back.stdout.splitlines())
    assert blocks(sim) == []
    # What the error says is so: 1.1.0 is not refused. Running the rollback again records the block.
    sim.knobs.failures.clear()
    again = cli(sim, "--mode", "rollback", "--release", "1.0.0", "--reason", "checkout broken")
    assert again.code == 0 and again.outputs["skipped"] == "true", again.stdout
    assert again.outputs["blocked-release"] == "1.1.0" and blocks(sim) == ["1.1.0"]


def test_without_ledger_or_github_a_block_cannot_be_recorded_and_the_step_fails(sim: kubesim.Sim) -> None:
    web(sim)
    auto(sim, "1.0.0")
    auto(sim, "1.1.0")
    back = cli(sim, "--mode", "rollback", "--release", "1.0.0", "--no-ledger")
    assert back.code == 1 and live(sim)[0] == "1.0.0"
    assert back.outputs["blocked-release"] == "" and back.outputs["rolled-back"] == "true"
    (error,) = back.errors
    assert "ledger is false, and no GitHub Release was marked (no github-token" in error
    plain = cli(sim, "--mode", "rollback", "--release", "1.1.0", "--no-ledger", "--no-block")
    assert plain.code == 0 and plain.errors == [] and plain.outputs["blocked-release"] == ""


def test_calculate_of_a_blocked_release_says_blocked(sim: kubesim.Sim) -> None:
    web(sim)
    auto(sim, "1.0.0")
    auto(sim, "1.1.0")
    auto(sim, "1.0.0")
    before = app_state(sim, NS)
    plan = calculate(sim, "1.1.0")
    assert (plan.outputs["blocked"], plan.outputs["blocked-release"], plan.outputs["mode"]) == (
        "true", "1.1.0", "deploy")
    assert "⛔ blocked: deploying this release would be refused" in plan.summary
    assert app_state(sim, NS) == before
    assert calculate(sim, "1.0.0").outputs["blocked"] == "false"


def test_explicit_rollback_to_a_blocked_release_warns_and_proceeds(sim: kubesim.Sim) -> None:
    web(sim)
    auto(sim, "1.0.0")
    auto(sim, "1.1.0")
    auto(sim, "1.0.0")  # blocks 1.1.0
    auto(sim, "1.2.0")
    back = cli(sim, "--mode", "rollback", "--release", "1.1.0")
    assert back.code == 0 and live(sim)[0] == "1.1.0", back.stdout
    assert any(w.startswith("rolling back to a blocked release: release 1.1.0 was blocked by mona")
               for w in back.warnings)
    assert blocks(sim) == ["1.1.0", "1.2.0"]  # 1.1.0 stays blocked; 1.2.0 (left) is blocked now


def test_empty_release_rollback_passes_over_a_release_recorded_as_failed(sim: kubesim.Sim) -> None:
    web(sim)
    auto(sim, "1.1.0")
    auto(sim, "1.2.0")
    auto(sim, "1.3.0", BROKEN, "--rollback-on-failure", expect=2)  # 1.3.0's revision is now the previous one
    back = cli(sim, "--mode", "rollback", "--reason", "1.2.0 too")
    assert back.code == 0, back.stdout
    assert live(sim)[0] == "1.1.0"
    notices = back.commands("notice")
    assert any("passing over releases recorded as failed: 1.3.0 (revision 4)" in n for n in notices), back.stdout
    assert back.outputs["blocked-release"] == "1.2.0"


def test_empty_release_rollback_with_only_failed_releases_behind_fails_with_the_list(sim: kubesim.Sim) -> None:
    web(sim, history_limit=1)  # only the live revision and one older one are kept
    auto(sim, "1.2.0")
    auto(sim, "1.3.0", BROKEN, "--rollback-on-failure", expect=2)
    before = app_state(sim, NS)
    back = cli(sim, "--mode", "rollback")
    assert back.code == 1
    (error,) = back.errors
    assert "every older revision of deployment/web carries a release recorded as failed: 1.3.0 (revision" in error
    assert "give the release to roll back to" in error
    assert app_state(sim, NS) == before


def test_rolled_back_is_true_for_every_rollback_that_made_an_older_release_live(sim: kubesim.Sim) -> None:
    web(sim)
    auto(sim, "1.0.0")
    auto(sim, "1.1.0")
    explicit = cli(sim, "--mode", "rollback", "--release", "1.0.0", "--no-block")
    assert explicit.outputs["rolled-back"] == "true" and explicit.outputs["failed-release"] == ""
    skipped = cli(sim, "--mode", "rollback", "--release", "1.0.0", "--no-block")
    assert skipped.outputs["skipped"] == "true" and skipped.outputs["rolled-back"] == "false"
    dry = cli(sim, "--mode", "rollback", "--release", "1.1.0", "--dry-run")
    assert dry.outputs["rolled-back"] == "false"
    assert auto(sim, "1.2.0").outputs["rolled-back"] == "false"
    calculated = auto(sim, "1.0.0", None, "--no-block")
    assert calculated.outputs["mode"] == "rollback" and calculated.outputs["rolled-back"] == "true"
    assert [e["result"] for e in entries(sim)][-1] == "succeeded"
