"""The release ledger and blocks through the engine: ``python -m rollback`` (``rollback.cli.main``) on kubesim.

Each test runs the CLI as a workflow step would and checks what a workflow sees (exit code, the outputs file
parsed with the runner's rules, the job summary, the log) and what the run left in the cluster: the ledger
ConfigMap ``kube-release-rollback-ledger`` of the namespace and the Deployment itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    CliRun,
    app_state,
    cli_environ,
    get_deployment,
    make_deployment,
    parse_github_output,
    run_cli,
    wait_settled,
)

import kubesim
from kubesim.knobs import Knobs
from kubesim.resources import CONFIGMAPS

ROOT = Path(__file__).resolve().parent.parent
NS = "staging"
LEDGER = "kube-release-rollback-ledger"
IMAGE = "registry.example/web"
BROKEN = "registry.example/web:broken"  # the "broken" marker: pods never become Ready
SHA_A = "3f1c2e9a7b6d5c4e3f2a1b0c9d8e7f6a5b4c3d2e"
SHA_B = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"

GITHUB = {
    "GITHUB_ACTOR": "mona",
    "GITHUB_REPOSITORY": "octo-org/shop",
    "GITHUB_WORKFLOW": "Deploy",
    "GITHUB_RUN_ID": "101",
    "GITHUB_SERVER_URL": "https://github.example",
    "GITHUB_EVENT_NAME": "push",
}
RUN_URL = "https://github.example/octo-org/shop/actions/runs/101"
ROLLBACK_BY = {**GITHUB, "GITHUB_ACTOR": "hubot", "GITHUB_WORKFLOW": "Rollback", "GITHUB_RUN_ID": "103",
               "GITHUB_EVENT_NAME": "workflow_dispatch"}


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(ready_delay=0.05)


def web(sim: kubesim.Sim, name: str = "web", history_limit: int | None = None) -> dict[str, Any]:
    """deployment/NAME in NS, one replica, a 1 s progress deadline (a broken image fails fast), rolled out."""
    make_deployment(sim, name, NS, image=f"{IMAGE}:0", revision_history_limit=history_limit,
                    progressDeadlineSeconds=1)
    wait_settled(sim)  # its first rollout is over: status writes no longer change its resourceVersion
    return get_deployment(sim, name, NS)


def cli(sim: kubesim.Sim, *args: str, who: dict[str, str] = GITHUB, workload: str = "web") -> CliRun:
    return run_cli(sim, *args, "--namespace", NS, "--deployment", workload, "--timeout", "30s", extra_env=who)


def deploy(sim: kubesim.Sim, release: str, image: str | None = None, *extra: str, expect: int = 0,
           who: dict[str, str] = GITHUB, workload: str = "web") -> CliRun:
    run = cli(sim, "--mode", "deploy", "--release", release, "--images", f"web={image or f'{IMAGE}:{release}'}",
              *extra, who=who, workload=workload)
    assert run.code == expect, run.stdout
    return run


def calculate(sim: kubesim.Sim, release: str, *extra: str) -> CliRun:
    run = cli(sim, "--mode", "calculate", "--release", release, *extra)
    assert run.code == 0, run.stdout
    return run


def ledger(sim: kubesim.Sim, namespace: str = NS) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(entries oldest first, blocks) of the namespace's ledger ConfigMap; ([], []) when there is none."""
    cm = sim.store.find(CONFIGMAPS, namespace, LEDGER)
    if cm is None:
        return [], []
    assert cm["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kube-release-rollback"
    data = cm["data"]
    assert data["format"] == "1"
    return json.loads(data["entries.json"]), json.loads(data["blocks.json"])


def last_entry(sim: kubesim.Sim) -> dict[str, Any]:
    return ledger(sim)[0][-1]


def resource_version(sim: kubesim.Sim, name: str = "web") -> str:
    return str(get_deployment(sim, name, NS)["metadata"]["resourceVersion"])


def change_cause(sim: kubesim.Sim, name: str = "web") -> str | None:
    return (get_deployment(sim, name, NS)["metadata"].get("annotations") or {}).get("kubernetes.io/change-cause")


# -- 1. entries after deploy, rollback and failed deploys -----------------------------------------------------


def test_entries_after_deploy_rollback_and_failed_deploys(sim: kubesim.Sim) -> None:
    web(sim)
    assert ledger(sim) == ([], [])

    first = deploy(sim, "1.0.0")
    (entry,), blocks = ledger(sim)
    assert blocks == []
    assert time.strftime("%Y-%m-%dT", time.gmtime()) in entry.pop("time")
    assert entry.pop("run").startswith("octo-org/shop/runs/101/attempt/1/mona/")  # the run's lease holder
    assert entry == {
        "namespace": NS, "workload": "deployment/web", "release": "1.0.0", "mode": "deploy",
        "result": "succeeded", "revision": 2, "images": [f"web={IMAGE}:1.0.0"], "reason": "", "actor": "mona",
        "repository": "octo-org/shop", "workflow": "Deploy", "run_url": RUN_URL, "event": "push",
        "allow_blocked": False, "would_block": None,
        "managed_by": [], "cluster": sim.url.split("://", 1)[1],  # the API server it was recorded through
    }
    assert first.outputs["last-successful-release"] == "1.0.0"
    assert first.outputs["last-attempted-release"] == "1.0.0"

    deploy(sim, "1.1.0")
    back = cli(sim, "--mode", "rollback", "--release", "1.0.0", "--reason", "checkout returns 500",
               who=ROLLBACK_BY)
    assert back.code == 0, back.stdout
    entry = last_entry(sim)
    assert {k: entry[k] for k in ("release", "mode", "result", "revision", "images", "reason", "actor",
                                  "workflow", "event", "run_url")} == {
        "release": "1.0.0", "mode": "rollback", "result": "succeeded", "revision": 4,
        "images": [f"web={IMAGE}:1.0.0"], "reason": "checkout returns 500", "actor": "hubot",
        "workflow": "Rollback", "event": "workflow_dispatch",
        "run_url": "https://github.example/octo-org/shop/actions/runs/103",
    }
    assert back.outputs["last-successful-release"] == "1.0.0"
    assert back.outputs["last-attempted-release"] == "1.0.0"
    assert back.outputs["blocked-release"] == "1.1.0"

    # A broken 1.2.0, rolled back by the action (rollback-on-failure): attempted, not successful.
    failed = deploy(sim, "1.2.0", BROKEN, "--rollback-on-failure", expect=2)
    assert failed.outputs["rolled-back"] == "true" and failed.outputs["failed-release"] == "1.2.0"
    entry = last_entry(sim)
    assert (entry["release"], entry["mode"], entry["result"]) == ("1.2.0", "deploy", "rolled-back")
    assert entry["actor"] == "mona" and entry["run_url"] == RUN_URL
    assert failed.outputs["last-successful-release"] == "1.0.0"
    assert failed.outputs["last-attempted-release"] == "1.2.0"
    assert change_cause(sim) == "1.0.0"

    # A broken 1.3.0 left as it is: failed.
    left = deploy(sim, "1.3.0", BROKEN, expect=1)
    entry = last_entry(sim)
    assert (entry["release"], entry["mode"], entry["result"]) == ("1.3.0", "deploy", "failed")
    assert entry["images"] == [f"web={BROKEN}"]
    assert left.outputs["rolled-back"] == "false" and left.outputs["failed-release"] == "1.3.0"
    assert left.outputs["last-successful-release"] == "1.0.0"
    assert left.outputs["last-attempted-release"] == "1.3.0"
    assert change_cause(sim) == "1.3.0"

    entries, blocks = ledger(sim)
    assert [(e["release"], e["mode"], e["result"]) for e in entries] == [
        ("1.0.0", "deploy", "succeeded"), ("1.1.0", "deploy", "succeeded"), ("1.0.0", "rollback", "succeeded"),
        ("1.2.0", "deploy", "rolled-back"), ("1.3.0", "deploy", "failed"),
    ]
    assert [(b["release"], b["reason"], b["actor"]) for b in blocks] == [("1.1.0", "checkout returns 500", "hubot")]

    # The job summary shows the ledger next to the history: newest first, who, why, and what is blocked.
    summary = left.summary
    assert "- Last successful release: 1.0.0" in summary and "- Last attempted release: 1.3.0" in summary
    assert "### Blocked releases" in summary and "checkout returns 500" in summary
    table = summary[summary.index("### Release ledger"):summary.index("### History of")]
    rows = [line for line in table.splitlines() if line.startswith("| 20")]
    assert [row.split(" | ")[2:5] for row in rows] == [
        ["1.3.0", "deploy", "failed"], ["1.2.0", "deploy", "rolled-back"], ["1.0.0", "rollback", "succeeded"],
        ["1.1.0", "deploy", "succeeded"], ["1.0.0", "deploy", "succeeded"],
    ]
    assert f"[run]({RUN_URL})" in table and "hubot" in table


def test_failed_rollback_to_the_previous_revision_records_the_release_it_attempted(sim: kubesim.Sim) -> None:
    """No release given: the rollback attempts the previous revision's release (1.0.0, broken); it fails and,
    like kubectl's undo, stays in place (a rollback is never undone). The entry is about 1.0.0, failed, and
    nothing is blocked."""
    web(sim)
    deploy(sim, "1.0.0", BROKEN, "--no-wait")
    deploy(sim, "1.1.0")
    run = cli(sim, "--mode", "rollback", "--reason", "try the previous one")
    assert run.code == 1, run.stdout
    assert change_cause(sim) == "1.0.0"
    entry = last_entry(sim)
    assert (entry["release"], entry["mode"], entry["result"]) == ("1.0.0", "rollback", "failed")
    assert run.outputs["last-attempted-release"] == "1.0.0"
    assert run.outputs["last-successful-release"] == "1.1.0"
    assert run.outputs["blocked-release"] == "" and ledger(sim)[1] == []


def test_no_ledger_writes_nothing(sim: kubesim.Sim) -> None:
    web(sim)
    run = deploy(sim, "1.0.0", None, "--no-ledger")
    assert ledger(sim) == ([], [])
    assert run.outputs["last-successful-release"] == "" and run.outputs["last-attempted-release"] == ""


def test_dry_run_and_calculate_record_nothing(sim: kubesim.Sim) -> None:
    web(sim)
    deploy(sim, "1.0.0")
    before = ledger(sim)
    deploy(sim, "1.1.0", None, "--dry-run")
    calculate(sim, "1.1.0")
    history = cli(sim, "--mode", "history")
    assert history.code == 0
    # history shows the ledger next to the revision history
    assert "### Release ledger (newest 1 of 1)" in history.summary and "### History of" in history.summary
    assert history.outputs["last-successful-release"] == "1.0.0"
    assert ledger(sim) == before


# -- 2. mode calculation with the ledger ----------------------------------------------------------------------


def mode(run: CliRun) -> str:
    return run.outputs["mode"]


def test_calculate_first_deploy_redeploy_and_plain_rollback(sim: kubesim.Sim) -> None:
    web(sim)
    first = calculate(sim, "1.0.0")
    assert mode(first) == "deploy" and first.outputs["run-on-deploy"] == "true"
    assert first.outputs["last-successful-release"] == "" and first.outputs["last-attempted-release"] == ""
    assert ledger(sim) == ([], [])  # calculate never writes

    deploy(sim, "1.0.0")
    again = calculate(sim, "1.0.0")
    assert mode(again) == "redeploy" and again.outputs["run-on-redeploy"] == "true"

    deploy(sim, "1.1.0")
    assert mode(calculate(sim, "1.2.0")) == "deploy"
    back = calculate(sim, "1.0.0")
    assert mode(back) == "rollback" and back.outputs["run-on-rollback"] == "true"
    assert back.outputs["version-change"] == "minor"
    assert back.outputs["last-successful-release"] == "1.1.0"


def test_release_live_after_a_failed_attempt_is_a_rollback(sim: kubesim.Sim) -> None:
    """Row 1: 1.3.0 failed and the action put 1.2.0 back; 1.2.0 is live, and going "to" it is a rollback."""
    web(sim)
    deploy(sim, "1.2.0")
    deploy(sim, "1.3.0", BROKEN, "--rollback-on-failure", expect=2)
    assert change_cause(sim) == "1.2.0"

    run = calculate(sim, "1.2.0")
    assert mode(run) == "rollback"
    assert run.outputs["last-successful-release"] == "1.2.0" and run.outputs["last-attempted-release"] == "1.3.0"
    assert mode(calculate(sim, "1.2.0", "--no-ledger")) == "redeploy"  # the history alone cannot tell


def test_lower_release_after_a_failed_higher_one_is_a_rollback(sim: kubesim.Sim) -> None:
    """Row 4: 1.3.0 failed (left so); 1.1.0 was pruned from the history but orders below both 1.3.0 and the
    last successful 1.2.0: a rollback, though only the ledger can tell."""
    web(sim, history_limit=0)
    deploy(sim, "1.1.0")
    deploy(sim, "1.2.0")
    deploy(sim, "1.3.0", BROKEN, expect=1)
    assert "1.1.0" not in json.dumps(calculate(sim, "1.2.0").history())

    run = calculate(sim, "1.1.0")
    assert mode(run) == "rollback", run.summary
    # Without the ledger S is the live release (the failed 1.3.0): 1.1.0 is still older, a rollback.
    assert mode(calculate(sim, "1.1.0", "--no-ledger")) == "rollback"
    # 1.2.0 is still in the history (its pods still serve): a rollback either way.
    assert mode(calculate(sim, "1.2.0")) == "rollback"


def test_release_that_succeeded_before_but_was_pruned_is_a_rollback(sim: kubesim.Sim) -> None:
    """Row 5: 1.0.0 deployed successfully earlier, its revision is pruned: the ledger still knows."""
    web(sim, history_limit=0)
    deploy(sim, "1.0.0")
    deploy(sim, "1.1.0")
    assert mode(calculate(sim, "1.0.0")) == "rollback"
    assert mode(calculate(sim, "1.0.0", "--no-ledger")) == "rollback"  # older than the live 1.1.0
    assert mode(calculate(sim, "0.9.0")) == "rollback"  # older than the last successful: Octopus's rule
    assert mode(calculate(sim, "1.2.0")) == "deploy"


def test_pre_release_and_release_are_different_releases(sim: kubesim.Sim) -> None:
    web(sim)
    deploy(sim, "1.3.0-rc.1")
    run = calculate(sim, "1.3.0")
    assert mode(run) == "deploy" and run.outputs["version-change"] != "none"
    assert mode(calculate(sim, "1.3.0-rc.1")) == "redeploy"
    deploy(sim, "1.3.0")
    assert mode(calculate(sim, "1.3.0-rc.1")) == "rollback"
    assert mode(calculate(sim, "1.3.0")) == "redeploy"
    entries, _ = ledger(sim)
    assert [e["release"] for e in entries] == ["1.3.0-rc.1", "1.3.0"]


def test_sha_releases(sim: kubesim.Sim) -> None:
    web(sim)
    assert mode(calculate(sim, SHA_A)) == "deploy"
    deploy(sim, SHA_A, f"{IMAGE}:a")
    assert mode(calculate(sim, SHA_A)) == "redeploy"
    deploy(sim, SHA_B, f"{IMAGE}:b")
    run = calculate(sim, SHA_A)
    assert mode(run) == "rollback" and run.outputs["last-successful-release"] == SHA_B
    assert mode(calculate(sim, SHA_A[:7])) == "deploy"  # a prefix is another release
    back = cli(sim, "--mode", "auto", "--release", SHA_A, "--reason", "b is bad")
    assert back.code == 0 and mode(back) == "rollback"
    assert change_cause(sim) == SHA_A
    assert back.outputs["blocked-release"] == SHA_B
    assert [b["release"] for b in ledger(sim)[1]] == [SHA_B]


# -- 3. blocks: rollback blocks, deploy refuses, allow-blocked, unblock ---------------------------------------


def test_rollback_blocks_the_release_rolled_back_from_and_deploys_refuse_it(sim: kubesim.Sim) -> None:
    web(sim)
    deploy(sim, "1.0.0")
    deploy(sim, "1.1.0")
    back = cli(sim, "--mode", "rollback", "--release", "1.0.0", "--reason", "checkout returns 500",
               who=ROLLBACK_BY)
    assert back.code == 0, back.stdout
    assert back.outputs["blocked-release"] == "1.1.0" and back.outputs["blocked"] == "false"
    (block,) = ledger(sim)[1]
    when = block.pop("time")
    assert time.strftime("%Y-%m-%dT", time.gmtime()) in when
    assert block == {"release": "1.1.0", "namespace": NS, "reason": "checkout returns 500", "actor": "hubot",
                     "run_url": "https://github.example/octo-org/shop/actions/runs/103", "source": "ledger"}
    assert any("blocked release 1.1.0" in n for n in back.commands("notice"))
    assert any("in-cluster ledger only" in n for n in back.commands("notice"))  # no github-token

    before_rv, before_state = resource_version(sim), app_state(sim, NS)
    entries_before = len(ledger(sim)[0])
    planned = cli(sim, "--mode", "calculate", "--release", "1.1.0", who=GITHUB)  # the plan job hears it first
    # newer than the last successful 1.0.0: a deploy (Octopus's rule), and blocked, so the plan job can stop
    assert planned.code == 0 and planned.outputs["mode"] == "deploy", planned.stdout
    assert planned.outputs["blocked"] == "true" and planned.outputs["blocked-release"] == "1.1.0"
    assert any("release 1.1.0 was blocked by hubot" in w and "would be refused" in w
               for w in planned.commands("warning")), planned.stdout
    for args in (("--mode", "deploy", "--images", f"web={IMAGE}:1.1.0"),
                 ("--mode", "auto", "--images", f"web={IMAGE}:1.1.0"),
                 ("--mode", "auto")):
        refused = cli(sim, *args, "--release", "1.1.0", who=GITHUB)
        assert refused.code == 1, refused.stdout
        assert refused.outputs["blocked"] == "true" and refused.outputs["blocked-release"] == "1.1.0"
        (error,) = refused.errors
        assert f"refused: release 1.1.0 was blocked by hubot at {when}" in error
        assert block["reason"] in error and "in namespace staging" in error
        assert "mode: unblock and release: 1.1.0" in error and "allow-blocked" in error
        assert "runs/103" in error
        assert "refused: the release is blocked" in refused.summary
        assert refused.result()[0]["action"] == "refused"
        assert resource_version(sim) == before_rv and app_state(sim, NS) == before_state
        assert change_cause(sim) == "1.0.0"
        entry = last_entry(sim)
        assert (entry["release"], entry["result"], entry["actor"], entry["allow_blocked"]) == (
            "1.1.0", "refused", "mona", False)
    assert len(ledger(sim)[0]) == entries_before + 3
    assert ledger(sim)[1][0]["release"] == "1.1.0"  # still blocked

    # A refused run is not an attempt: the facts are unchanged.
    assert refused.outputs["last-successful-release"] == "1.0.0"
    assert refused.outputs["last-attempted-release"] == "1.0.0"

    # Other releases deploy as usual; allow-blocked on a release that is not blocked overrides nothing.
    deploy(sim, "1.1.1", None, "--allow-blocked")
    assert last_entry(sim)["allow_blocked"] is False

    # allow-blocked deploys it once, and says so in the ledger; the block stays.
    forced = deploy(sim, "1.1.0", None, "--allow-blocked")
    assert forced.outputs["blocked"] == "false"
    assert any("allow-blocked" in w for w in forced.warnings)
    entry = last_entry(sim)
    assert (entry["release"], entry["result"], entry["allow_blocked"]) == ("1.1.0", "succeeded", True)
    assert change_cause(sim) == "1.1.0"
    assert [b["release"] for b in ledger(sim)[1]] == ["1.1.0"]


def test_rollback_to_the_live_release_after_a_failed_attempt_blocks_the_failed_release(sim: kubesim.Sim) -> None:
    """1.3.0 failed and rollback-on-failure put 1.2.0 back; the operator then rolls back to 1.2.0 with a reason.
    Nothing needs undoing (skipped), but the release rolled back from is 1.3.0, and it must be blocked, or the
    promotion workflow would take it to production (row 1 of the modes table: ``rolled_back_from``)."""
    web(sim)
    deploy(sim, "1.2.0")
    deploy(sim, "1.3.0", BROKEN, "--rollback-on-failure", expect=2)
    before = resource_version(sim)
    back = cli(sim, "--mode", "rollback", "--release", "1.2.0", "--reason", "1.3.0 crashes on start",
               who=ROLLBACK_BY)
    assert back.code == 0, back.stdout
    assert back.outputs["skipped"] == "true" and back.outputs["mode"] == "rollback"
    assert back.outputs["blocked-release"] == "1.3.0"
    assert [(b["release"], b["reason"], b["actor"]) for b in ledger(sim)[1]] == [
        ("1.3.0", "1.3.0 crashes on start", "hubot")]
    assert resource_version(sim) == before
    entry = last_entry(sim)
    assert (entry["release"], entry["mode"], entry["result"]) == ("1.2.0", "rollback", "succeeded")
    refused = cli(sim, "--mode", "auto", "--release", "1.3.0", "--images", f"web={IMAGE}:1.3.1")
    assert refused.code == 1 and refused.outputs["blocked"] == "true"


def test_auto_rollback_to_a_pruned_release_blocks_the_release_left(sim: kubesim.Sim) -> None:
    """Row 5 in auto mode: 1.0.0's revision is gone, so the "rollback" deploys its images again; it is still a
    rollback (outputs say so), and it blocks 1.1.0 like an undo would."""
    web(sim, history_limit=0)
    deploy(sim, "1.0.0")
    deploy(sim, "1.1.0")
    back = cli(sim, "--mode", "auto", "--release", "1.0.0", "--images", f"web={IMAGE}:1.0.0", "--reason", "slow")
    assert back.code == 0, back.stdout
    assert back.outputs["mode"] == "rollback" and back.outputs["run-on-rollback"] == "true"
    assert change_cause(sim) == "1.0.0"
    assert back.outputs["blocked-release"] == "1.1.0"
    assert [b["release"] for b in ledger(sim)[1]] == ["1.1.0"]
    assert last_entry(sim)["mode"] == "rollback" and last_entry(sim)["result"] == "succeeded"


def test_forced_deploy_of_an_older_release_blocks_nothing(sim: kubesim.Sim) -> None:
    """mode: deploy is not a rollback, even when the release is an older one."""
    web(sim)
    deploy(sim, "1.0.0")
    deploy(sim, "1.1.0")
    run = deploy(sim, "1.0.0")
    assert run.outputs["blocked-release"] == "" and ledger(sim)[1] == []
    assert last_entry(sim)["mode"] == "deploy"


def test_no_block_blocks_nothing(sim: kubesim.Sim) -> None:
    web(sim)
    deploy(sim, "1.0.0")
    deploy(sim, "1.1.0")
    back = cli(sim, "--mode", "rollback", "--release", "1.0.0", "--no-block", "--reason", "just testing")
    assert back.code == 0
    assert back.outputs["blocked-release"] == ""
    assert ledger(sim)[1] == []
    assert last_entry(sim)["reason"] == "just testing"
    deploy(sim, "1.1.0")


def test_unblock_removes_the_block_and_records_who(sim: kubesim.Sim) -> None:
    web(sim)
    deploy(sim, "1.0.0")
    deploy(sim, "1.1.0")
    assert cli(sim, "--mode", "rollback", "--release", "1.0.0", "--reason", "bad", who=ROLLBACK_BY).code == 0
    assert ledger(sim)[1] != []

    fixer = {**GITHUB, "GITHUB_ACTOR": "octocat", "GITHUB_RUN_ID": "110", "GITHUB_EVENT_NAME": "workflow_dispatch"}
    lifted = cli(sim, "--mode", "unblock", "--release", "1.1.0", "--reason", "false alarm", who=fixer)
    assert lifted.code == 0, lifted.stdout
    assert lifted.outputs["mode"] == "unblock" and lifted.outputs["blocked"] == "false"
    entries, blocks = ledger(sim)
    assert blocks == []
    entry = entries[-1]
    assert {k: entry[k] for k in ("workload", "release", "mode", "result", "reason", "actor", "run_url", "event")} == {
        "workload": "*", "release": "1.1.0", "mode": "unblock", "result": "unblocked", "reason": "false alarm",
        "actor": "octocat", "run_url": "https://github.example/octo-org/shop/actions/runs/110",
        "event": "workflow_dispatch",
    }
    assert "only the in-cluster ledger" in " ".join(lifted.commands("notice"))
    assert "unblocked" in lifted.summary

    # Unblocking again finds nothing to do and writes nothing.
    again = cli(sim, "--mode", "unblock", "--release", "1.1.0", who=fixer)
    assert again.code == 0 and "was not blocked" in again.stdout
    assert ledger(sim)[0] == entries

    # The facts still say 1.0.0 (unblock is not an attempt); now 1.1.0 deploys.
    assert again.outputs["last-successful-release"] == "1.0.0"
    deploy(sim, "1.1.0")
    assert change_cause(sim) == "1.1.0" and last_entry(sim)["result"] == "succeeded"


def test_blocks_are_per_namespace(sim: kubesim.Sim) -> None:
    """Without a github-token the block stays in the namespace's ledger: another namespace may deploy it."""
    web(sim)
    make_deployment(sim, "web", "production", image=f"{IMAGE}:0")
    deploy(sim, "1.0.0")
    deploy(sim, "1.1.0")
    assert cli(sim, "--mode", "rollback", "--release", "1.0.0").code == 0
    run = run_cli(sim, "--mode", "deploy", "--release", "1.1.0", "--images", f"web={IMAGE}:1.1.0",
                  "--namespace", "production", "--deployment", "web", "--timeout", "30s", extra_env=GITHUB)
    assert run.code == 0, run.stdout
    assert ledger(sim, "production")[1] == []


# -- 5. two processes at once ---------------------------------------------------------------------------------


class HoldFirstLedgerWrite:
    """A kubesim request hook that makes two writers collide for sure.

    Each run reads the ledger twice before it writes: when it starts, and for the write itself. The first
    write is held until the other run has read it twice too (4 reads in all) or written it, so one of the
    two writes carries a stale resourceVersion, gets 409 Conflict, and must re-read and re-apply its entry.
    """

    def __init__(self, namespace: str, hold: float = 15.0) -> None:
        self.path = f"/api/v1/namespaces/{namespace}/configmaps/{LEDGER}"
        self.hold = hold
        self.lock = threading.Lock()
        self.held = threading.Event()
        self.other = threading.Event()
        self.seen: list[str] = []

    def __call__(self, method: str, path: str) -> None:
        if path.split("?")[0] != self.path:
            return
        with self.lock:
            self.seen.append(method)
            first = method == "PUT" and not self.held.is_set()
            if first:
                self.held.set()
            if self.held.is_set() and (self.seen.count("GET") >= 4 or self.seen.count("PUT") >= 2):
                self.other.set()
        if first:
            self.other.wait(self.hold)


def test_two_processes_deploying_at_once_both_land(sim: kubesim.Sim, tmp_path: Path) -> None:
    web(sim, "web")
    web(sim, "api")
    deploy(sim, "0.1.0", workload="api")  # the ledger exists: both runs replace it
    hook = HoldFirstLedgerWrite(NS)
    sim.knobs.on_request = hook
    start_at = time.time() + 1.5  # both interpreters are up before either deploys
    barrier = (
        "import runpy, sys, time; "
        f"time.sleep(max(0.0, {start_at} - time.time())); "
        "sys.argv = ['rollback', *sys.argv[1:]]; "
        "runpy.run_module('rollback', run_name='__main__')"
    )
    procs, envs = [], []
    for name in ("web", "api"):
        workdir = tmp_path / name
        workdir.mkdir()
        env = cli_environ(sim, str(workdir))
        env.update(GITHUB, GITHUB_ACTOR=f"{name}-bot", PYTHONPATH=str(ROOT))
        envs.append(env)
        procs.append(subprocess.Popen(
            [sys.executable, "-c", barrier, "--mode", "deploy", "--release", f"2.0.0-{name}",
             "--images", f"web={IMAGE}:2-{name}", "--namespace", NS, "--deployment", name, "--timeout", "30s"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=60) for p in procs]
    sim.knobs.on_request = None
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, out + err
    assert hook.other.is_set(), hook.seen  # the writes really overlapped
    assert hook.seen.count("PUT") >= 3, hook.seen  # and one of them was retried after a conflict

    entries, _ = ledger(sim)
    assert len(entries) == 3
    landed = {(e["workload"], e["release"], e["actor"], e["result"]) for e in entries[1:]}
    assert landed == {("deployment/web", "2.0.0-web", "web-bot", "succeeded"),
                      ("deployment/api", "2.0.0-api", "api-bot", "succeeded")}
    for name, env in zip(("web", "api"), envs, strict=True):
        with open(env["GITHUB_OUTPUT"], encoding="utf-8") as handle:
            outputs = parse_github_output(handle.read())
        assert outputs["mode"] == "deploy" and outputs["release"] == f"2.0.0-{name}"
        assert outputs["last-successful-release"] == f"2.0.0-{name}"
        assert change_cause(sim, name) == f"2.0.0-{name}"
