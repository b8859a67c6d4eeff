"""Blocks across environments through the engine: ``python -m rollback`` on kubesim with a ``github-token``,
against a local HTTP server standing in for the GitHub REST API (``GITHUB_API_URL`` points at it).

The fake API records every request, so the tests check exactly what a run sends (method, path, headers,
JSON body), what it does with 404 and 403 answers, and that the token shows up nowhere but in the
``::add-mask::`` command that hides it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fakes.github import FakeGitHub, serve
from helpers import CliRun, RequestLog, app_state, get_deployment, make_deployment, run_cli, wait_settled

import kubesim
from kubesim.knobs import Knobs
from kubesim.resources import CONFIGMAPS

TOKEN = "ghs_Fake0Token1For2Tests3Only4zz"
OWNER, REPO = "octo-org", "shop"
IMAGE = "registry.example/web"
LEDGER = "kube-release-rollback-ledger"
STAGING, PRODUCTION = "staging", "production"
PREFIX = "⛔ BLOCKED: "

GITHUB = {
    "GITHUB_ACTOR": "mona",
    "GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
    "GITHUB_WORKFLOW": "Deploy",
    "GITHUB_RUN_ID": "101",
    "GITHUB_SERVER_URL": "https://github.example",
    "GITHUB_EVENT_NAME": "push",
}
ROLLBACK_BY = {**GITHUB, "GITHUB_ACTOR": "hubot", "GITHUB_WORKFLOW": "Rollback", "GITHUB_RUN_ID": "103",
               "GITHUB_EVENT_NAME": "workflow_dispatch"}
ROLLBACK_RUN = f"https://github.example/{OWNER}/{REPO}/actions/runs/103"
REASON = "checkout returns 500 for EUR carts"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve(TOKEN, f"{OWNER}/{REPO}") as fake:
        yield fake


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(ready_delay=0.05)


def web(sim: kubesim.Sim, namespace: str = STAGING) -> None:
    make_deployment(sim, "web", namespace, image=f"{IMAGE}:0", progressDeadlineSeconds=1)
    wait_settled(sim)  # rolled out: status writes no longer change its resourceVersion


def cli(sim: kubesim.Sim, gh: FakeGitHub, *args: str, namespace: str = STAGING, token: bool = True,
        who: dict[str, str] = GITHUB) -> CliRun:
    """One run; the token on the command line like ``with: github-token: ${{ secrets.GITHUB_TOKEN }}``
    (GitHub Deployments are tested in test_github_deployments.py)."""
    extra = ("--github-token", TOKEN, "--no-github-deployments") if token else ()  # Releases only here
    run = run_cli(sim, *args, *extra, "--namespace", namespace, "--deployment", "web", "--timeout", "30s",
                  extra_env={**who, "GITHUB_API_URL": gh.api_url})
    assert_token_hidden(run)
    return run


def deploy(sim: kubesim.Sim, gh: FakeGitHub, release: str, namespace: str = STAGING, token: bool = True,
           expect: int = 0) -> CliRun:
    run = cli(sim, gh, "--mode", "deploy", "--release", release, "--images", f"web={IMAGE}:{release}",
              namespace=namespace, token=token)
    assert run.code == expect, run.stdout
    return run


def rollback(sim: kubesim.Sim, gh: FakeGitHub, release: str, token: bool = True) -> CliRun:
    run = cli(sim, gh, "--mode", "rollback", "--release", release, "--reason", REASON, token=token,
              who=ROLLBACK_BY)
    assert run.code == 0, run.stdout
    return run


def assert_token_hidden(run: CliRun) -> None:
    """The token is printed only in ``::add-mask::`` (which the runner consumes and hides)."""
    for line in run.stdout.splitlines():
        if TOKEN in line:
            assert line == f"::add-mask::{TOKEN}", line
    assert TOKEN not in run.stderr
    assert TOKEN not in run.summary and TOKEN not in run.outputs_text


def ledger_blocks(sim: kubesim.Sim, namespace: str = STAGING) -> list[dict[str, Any]]:
    cm = sim.store.find(CONFIGMAPS, namespace, LEDGER)
    return json.loads(cm["data"]["blocks.json"]) if cm else []


def ledger_entries(sim: kubesim.Sim, namespace: str = STAGING) -> list[dict[str, Any]]:
    cm = sim.store.find(CONFIGMAPS, namespace, LEDGER)
    return json.loads(cm["data"]["entries.json"]) if cm else []


def staging_rolled_back(sim: kubesim.Sim, gh: FakeGitHub, prefix: str = "") -> tuple[dict[str, Any], CliRun]:
    """v1.0.0 and v1.1.0 deployed to staging, then a rollback to v1.0.0: v1.1.0 is blocked."""
    gh.prefix = prefix
    release = gh.add("v1.1.0", name="Shop 1.1.0", body="Faster checkout.")
    web(sim)
    deploy(sim, gh, "v1.0.0")
    deploy(sim, gh, "v1.1.0")
    gh.take()
    return release, rollback(sim, gh, "v1.0.0")


# -- marking the GitHub Release ----------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "/api/v3"], ids=["github.com", "enterprise-server"])
def test_rollback_marks_the_github_release_of_the_bad_release(sim: kubesim.Sim, github: FakeGitHub,
                                                              prefix: str) -> None:
    release, run = staging_rolled_back(sim, github, prefix)
    assert run.outputs["blocked-release"] == "v1.1.0"
    check, get, patch = github.requests  # is the release rolled back to blocked? then mark the one left
    assert (check.method, check.path, check.body) == ("GET", github.tag_path("v1.0.0"), None)
    assert (get.method, get.path, get.body) == ("GET", github.tag_path("v1.1.0"), None)
    assert (patch.method, patch.path) == ("PATCH", github.release_path(release))
    assert patch.path.startswith(f"{prefix}/repos/{OWNER}/{REPO}/releases/")
    for request in (get, patch):
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["accept"] == "application/vnd.github+json"
        assert request.headers["x-github-api-version"] == "2022-11-28"
    assert patch.headers["content-type"] == "application/json"
    assert set(patch.body) == {"name", "body"}  # nothing else (draft, prerelease, latest) is touched
    assert patch.body["name"] == PREFIX + "Shop 1.1.0"
    body = patch.body["body"]
    assert body.startswith("Faster checkout.")
    assert REASON in body and "@hubot" in body and ROLLBACK_RUN in body and f"`{STAGING}`" in body
    assert "mode: unblock" in body
    data = json.loads(body.split("<!-- kube-release-rollback:data ", 1)[1].split(" -->", 1)[0])
    assert {k: data[k] for k in ("release", "namespace", "reason", "actor", "run_url", "name")} == {
        "release": "v1.1.0", "namespace": STAGING, "reason": REASON, "actor": "hubot", "run_url": ROLLBACK_RUN,
        "name": "Shop 1.1.0"}
    assert any("marked GitHub Release v1.1.0 as blocked" in n for n in run.commands("notice"))
    assert ledger_blocks(sim)[0]["release"] == "v1.1.0"  # the ledger has it too


def test_a_release_blocked_in_staging_is_refused_in_production(sim: kubesim.Sim, github: FakeGitHub) -> None:
    release, _ = staging_rolled_back(sim, github)
    web(sim, PRODUCTION)
    deploy(sim, github, "v1.0.0", PRODUCTION)
    github.take()
    assert ledger_blocks(sim, PRODUCTION) == []  # production's own ledger knows nothing of it

    before = app_state(sim, PRODUCTION)
    rv = get_deployment(sim, "web", PRODUCTION)["metadata"]["resourceVersion"]
    for mode in ("deploy", "auto"):
        with RequestLog(sim) as log:
            refused = cli(sim, github, "--mode", mode, "--release", "v1.1.0", "--images", f"web={IMAGE}:v1.1.0",
                          namespace=PRODUCTION)
        assert refused.code == 1, refused.stdout
        assert refused.outputs["blocked"] == "true" and refused.outputs["blocked-release"] == "v1.1.0"
        (error,) = refused.errors
        assert "refused: release v1.1.0 was blocked by hubot" in error
        assert f"in namespace {STAGING}" in error and REASON in error and ROLLBACK_RUN in error
        assert "mode: unblock and release: v1.1.0" in error
        assert log.app_writes(include_dry_run=True) == []
        assert app_state(sim, PRODUCTION) == before
        assert get_deployment(sim, "web", PRODUCTION)["metadata"]["resourceVersion"] == rv
        (check,) = github.take()  # one read of the GitHub Release, no write
        assert (check.method, check.path) == ("GET", github.tag_path("v1.1.0"))
        assert check.headers["authorization"] == f"Bearer {TOKEN}"
        entry = ledger_entries(sim, PRODUCTION)[-1]
        assert (entry["release"], entry["result"], entry["actor"]) == ("v1.1.0", "refused", "mona")
    assert release["name"] == PREFIX + "Shop 1.1.0"

    # allow-blocked deploys it anyway, once, and the production ledger records the override.
    forced = cli(sim, github, "--mode", "deploy", "--release", "v1.1.0", "--images", f"web={IMAGE}:v1.1.0",
                 "--allow-blocked", namespace=PRODUCTION)
    assert forced.code == 0, forced.stdout
    assert any("deploying it anyway because allow-blocked is true" in w and "hubot" in w for w in forced.warnings)
    entry = ledger_entries(sim, PRODUCTION)[-1]
    assert (entry["release"], entry["result"], entry["allow_blocked"]) == ("v1.1.0", "succeeded", True)
    # checked once (the refusal check and the ledger's override note share it), never changed
    assert [(r.method, r.path) for r in github.take()] == [("GET", github.tag_path("v1.1.0"))]
    assert release["name"] == PREFIX + "Shop 1.1.0"  # still blocked for everyone else

    # Without a token production cannot see the staging block (documented): it deploys.
    deploy(sim, github, "v1.1.0", PRODUCTION, token=False)
    assert github.requests == []


def test_unblock_with_a_token_removes_the_mark_and_production_may_deploy(sim: kubesim.Sim,
                                                                          github: FakeGitHub) -> None:
    release, _ = staging_rolled_back(sim, github)
    web(sim, PRODUCTION)
    github.take()

    fixer = {**GITHUB, "GITHUB_ACTOR": "octocat", "GITHUB_RUN_ID": "110"}
    lifted = cli(sim, github, "--mode", "unblock", "--release", "v1.1.0", "--reason", "fixed upstream", who=fixer)
    assert lifted.code == 0, lifted.stdout
    get, patch = github.take()
    assert (get.method, get.path) == ("GET", github.tag_path("v1.1.0"))
    assert (patch.method, patch.path) == ("PATCH", github.release_path(release))
    assert patch.headers["authorization"] == f"Bearer {TOKEN}"
    assert patch.body["name"] == "Shop 1.1.0"  # the original name is back
    assert "kube-release-rollback:block" not in patch.body["body"]
    assert "Unblocked by @octocat" in patch.body["body"]
    assert f"https://github.example/{OWNER}/{REPO}/actions/runs/110" in patch.body["body"]
    assert patch.body["body"].startswith("Faster checkout.")
    assert any("removed the block from GitHub Release v1.1.0" in n for n in lifted.commands("notice"))
    assert ledger_blocks(sim) == []
    entry = ledger_entries(sim)[-1]
    assert (entry["release"], entry["result"], entry["actor"]) == ("v1.1.0", "unblocked", "octocat")

    run = deploy(sim, github, "v1.1.0", PRODUCTION)
    assert run.outputs["blocked"] == "false"
    assert github.calls() == [("GET", github.tag_path("v1.1.0"))]  # checked, not changed
    deploy(sim, github, "v1.1.0", STAGING)


def test_unblock_from_another_environment_lifts_the_github_mark(sim: kubesim.Sim, github: FakeGitHub) -> None:
    """Production's ledger never had the block; unblocking there still lifts the GitHub mark, and says so."""
    release, _ = staging_rolled_back(sim, github)
    web(sim, PRODUCTION)
    lifted = cli(sim, github, "--mode", "unblock", "--release", "v1.1.0", namespace=PRODUCTION)
    assert lifted.code == 0, lifted.stdout
    assert "was not blocked in the ledger of namespace production" in lifted.stdout
    assert release["name"] == "Shop 1.1.0"
    assert ledger_entries(sim, PRODUCTION) == []  # nothing to record there
    deploy(sim, github, "v1.1.0", PRODUCTION)


# -- when GitHub cannot help -------------------------------------------------------------------------------------


def test_no_github_release_for_the_tag_is_a_notice_and_the_ledger_still_blocks(sim: kubesim.Sim,
                                                                               github: FakeGitHub) -> None:
    web(sim)
    deploy(sim, github, "v1.0.0")
    deploy(sim, github, "v1.1.0")
    github.take()
    run = rollback(sim, github, "v1.0.0")
    # 404 for both: v1.0.0 is not blocked, and v1.1.0 has no GitHub Release to mark
    assert github.calls() == [("GET", github.tag_path("v1.0.0")), ("GET", github.tag_path("v1.1.0"))]
    notices = " ".join(run.commands("notice"))
    assert "no GitHub Release with tag v1.1.0 in octo-org/shop" in notices
    assert "in-cluster ledger only" in notices
    assert run.warnings == []
    assert run.outputs["blocked-release"] == "v1.1.0"
    assert ledger_blocks(sim)[0]["release"] == "v1.1.0"
    refused = deploy(sim, github, "v1.1.0", expect=1)
    assert refused.outputs["blocked"] == "true"


def test_forbidden_is_a_warning_and_the_run_still_succeeds(sim: kubesim.Sim, github: FakeGitHub) -> None:
    release = github.add("v1.1.0", name="Shop 1.1.0")
    web(sim)
    deploy(sim, github, "v1.0.0")
    deploy(sim, github, "v1.1.0")
    github.take()
    github.force["PATCH"] = (403, {"message": "Resource not accessible by integration"})
    run = rollback(sim, github, "v1.0.0")
    assert run.code == 0
    assert [m for m, _ in github.calls()] == ["GET", "GET", "PATCH"]
    (warning,) = [w for w in run.warnings if "GitHub Release" in w]
    assert "could not block GitHub Release v1.1.0" in warning and "contents: write" in warning
    assert "Resource not accessible by integration" in warning
    assert run.outputs["blocked-release"] == "v1.1.0" and ledger_blocks(sim)[0]["release"] == "v1.1.0"
    assert not release["name"].startswith(PREFIX)
    assert get_deployment(sim, "web", STAGING)["metadata"]["annotations"]["kubernetes.io/change-cause"] == "v1.0.0"


def test_github_unreachable_while_checking_warns_and_the_ledger_decides(sim: kubesim.Sim,
                                                                        github: FakeGitHub) -> None:
    web(sim)
    github.force["GET"] = (502, {"message": "Bad gateway"})
    run = deploy(sim, github, "v1.0.0")
    assert any("could not check whether release v1.0.0 is blocked on GitHub" in w for w in run.warnings)


def test_without_a_token_the_block_stays_in_the_cluster_and_github_is_never_called(sim: kubesim.Sim,
                                                                                   github: FakeGitHub) -> None:
    release = github.add("v1.1.0")
    web(sim)
    deploy(sim, github, "v1.0.0", token=False)
    deploy(sim, github, "v1.1.0", token=False)
    run = rollback(sim, github, "v1.0.0", token=False)
    assert github.requests == []
    assert any("no github-token, or no GITHUB_REPOSITORY): the block of v1.1.0 is kept in the in-cluster ledger "
               "only" in n
               for n in run.commands("notice"))
    assert release["name"] == "Shop v1.1.0"
    assert ledger_blocks(sim)[0]["release"] == "v1.1.0"
    lifted = cli(sim, github, "--mode", "unblock", "--release", "v1.1.0", token=False)
    assert lifted.code == 0
    assert "no github-token given: only the in-cluster ledger was checked" in " ".join(lifted.commands("notice"))
    assert github.requests == [] and ledger_blocks(sim) == []

    # Neither a ledger nor a token: nothing could be unblocked, and the run says so instead of succeeding.
    nowhere = cli(sim, github, "--mode", "unblock", "--release", "v1.1.0", "--no-ledger", token=False)
    assert nowhere.code == 1
    (error,) = nowhere.errors
    assert "nothing to unblock v1.1.0 in" in error


# -- a block says only where it was recorded ---------------------------------------------------------------------


def test_ledger_refusing_the_block_fails_the_step_even_when_the_github_release_holds_it(sim: kubesim.Sim,
                                                                                        github: FakeGitHub) -> None:
    release = github.add("v1.1.0", name="Shop 1.1.0")
    web(sim)
    deploy(sim, github, "v1.0.0")
    deploy(sim, github, "v1.1.0")
    sim.knobs.fail_next(20, method="PUT", path=f"/namespaces/{STAGING}/configmaps/{LEDGER}", status=403)
    run = cli(sim, github, "--mode", "rollback", "--release", "v1.0.0", who=ROLLBACK_BY)
    assert run.code == 1, run.stdout
    assert get_deployment(sim, "web", STAGING)["metadata"]["annotations"]["kubernetes.io/change-cause"] == "v1.0.0"
    assert release["name"] == PREFIX + "Shop 1.1.0"  # GitHub has it ...
    assert run.outputs["blocked-release"] == "v1.1.0" and run.outputs["rolled-back"] == "true"
    (error,) = run.errors  # ... the ledger does not, and the step says so
    assert "the block of v1.1.0 was not recorded in the ledger" in error
    assert "only the GitHub Release carries it, which runs without a github-token do not check" in error
    assert ledger_blocks(sim) == []


def test_without_a_ledger_the_github_release_alone_holds_the_block(sim: kubesim.Sim, github: FakeGitHub) -> None:
    release = github.add("v1.1.0", name="Shop 1.1.0")
    web(sim)
    deploy(sim, github, "v1.0.0")
    deploy(sim, github, "v1.1.0")
    run = cli(sim, github, "--mode", "rollback", "--release", "v1.0.0", "--no-ledger", who=ROLLBACK_BY)
    assert run.code == 0 and run.errors == [], run.stdout
    assert run.outputs["blocked-release"] == "v1.1.0" and release["name"] == PREFIX + "Shop 1.1.0"
    assert any("recorded in GitHub Release v1.1.0" in n for n in run.commands("notice"))
    missing = cli(sim, github, "--mode", "rollback", "--release", "v1.1.0", "--no-ledger")
    # v1.1.0 is blocked: the rollback to it warns and proceeds; v1.0.0, left, has no GitHub Release to mark
    assert any(w.startswith("rolling back to a blocked release: release v1.1.0") for w in missing.warnings)
    assert missing.code == 1 and missing.outputs["blocked-release"] == ""
    assert "ledger is false, and no GitHub Release was marked" in missing.errors[0]
