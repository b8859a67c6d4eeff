"""GitHub Deployments through the engine: ``python -m rollback`` on kubesim with a ``github-token``, against the
local fake GitHub API (``GITHUB_API_URL`` points at it), checking exactly what is sent: paths, bodies, headers.

deploy → a deployment + ``in_progress`` + ``success``; a failed deploy with rollback-on-failure → ``failure``
and a ``success`` deployment of the restored release; rollback → the old deployment ``inactive``, this run's
``success``; calculate reads S and A from the environment's deployments; 403 → a warning, the cluster part
unaffected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fakes.github import FakeGitHub, Request, serve
from helpers import CliRun, get_deployment, make_deployment, run_cli, wait_settled

import kubesim
from kubesim.knobs import Knobs
from kubesim.resources import CONFIGMAPS
from rollback.github.deployments import Seen, Target, deployment_body, facts_from, status_body
from rollback.github.record import outcome
from rollback.ledger import ENTRIES_KEY, LEDGER_NAME
from rollback.modes import Decision, LedgerFacts
from rollback.report import RunReport, WorkloadResult

TOKEN = "ghs_Deployments0Test1Token2zz"
REPO = "octo-org/shop"
IMAGE = "registry.example/web"
BROKEN = "registry.example/web:broken"
SHA = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
ENV = {"GITHUB_ACTOR": "mona", "GITHUB_REPOSITORY": REPO, "GITHUB_WORKFLOW": "Deploy", "GITHUB_RUN_ID": "77",
       "GITHUB_SERVER_URL": "https://github.example", "GITHUB_SHA": SHA}
RUN_URL = f"https://github.example/{REPO}/actions/runs/77"


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(ready_delay=0.05)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve(TOKEN, REPO) as fake:
        yield fake


def web(sim: kubesim.Sim, namespace: str = "staging") -> None:
    make_deployment(sim, "web", namespace, image=f"{IMAGE}:0", progressDeadlineSeconds=1)
    wait_settled(sim)


def cli(sim: kubesim.Sim, gh: FakeGitHub, *args: str, namespace: str = "staging") -> CliRun:
    run = run_cli(sim, *args, "--github-token", TOKEN, "--namespace", namespace, "--deployment", "web",
                  "--timeout", "30s", extra_env={**ENV, "GITHUB_API_URL": gh.api_url})
    for line in run.stdout.splitlines():
        assert TOKEN not in line or line == f"::add-mask::{TOKEN}", line
    assert TOKEN not in run.summary and TOKEN not in run.outputs_text
    return run


def deploy(sim: kubesim.Sim, gh: FakeGitHub, release: str, image: str | None = None, *extra: str,
           expect: int = 0) -> CliRun:
    run = cli(sim, gh, "--mode", "auto", "--release", release, "--images", f"web={image or f'{IMAGE}:{release}'}",
              *extra)
    assert run.code == expect, run.stdout
    return run


def posts(gh: FakeGitHub) -> list[Request]:
    return [r for r in gh.requests if r.method == "POST"]


def check_headers(request: Request) -> None:
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["x-github-api-version"] == "2022-11-28"


def test_deploy_creates_a_deployment_then_in_progress_then_success(sim: kubesim.Sim, github: FakeGitHub) -> None:
    web(sim)
    run = cli(sim, github, "--mode", "deploy", "--release", "1.0.0", "--images", f"web={IMAGE}:1.0.0",
              "--environment-url", "https://staging.shop.example", "--no-production-environment")
    assert run.code == 0, run.stdout
    create, in_progress, success = posts(github)
    for request in (create, in_progress, success):
        check_headers(request)
        assert request.headers["content-type"] == "application/json"
    assert create.path == f"/repos/{REPO}/deployments"
    (deployment,) = github.deployments
    assert create.body == {
        "ref": SHA, "task": "deploy", "environment": "staging", "auto_merge": False, "required_contexts": [],
        "transient_environment": False, "production_environment": False,
        "description": "kube-release-rollback deploying 1.0.0",
        "payload": {"release": "1.0.0", "workloads": ["deployment/web"], "namespace": "staging",
                    "cluster": "127.0.0.1"}}
    assert in_progress.path == success.path == github.statuses_path(deployment)
    assert in_progress.body == {"state": "in_progress", "description": "kube-release-rollback deploying 1.0.0",
                                "log_url": RUN_URL, "environment_url": "https://staging.shop.example"}
    assert success.body["state"] == "success" and success.body["log_url"] == RUN_URL
    assert success.body["description"].startswith("deploy of 1.0.0: live (revision 2)")
    assert github.states(deployment) == ["in_progress", "success"]
    assert any(f"GitHub deployment {deployment['id']} of release 1.0.0 in environment staging: success" in line
               for line in run.stdout.splitlines())
    assert run.warnings == []


def test_a_failed_deploy_put_back_is_failure_and_the_restored_release_a_new_success(sim: kubesim.Sim,
                                                                                   github: FakeGitHub) -> None:
    web(sim)
    deploy(sim, github, "1.2.0")
    github.take()
    run = deploy(sim, github, "1.3.0", BROKEN, "--rollback-on-failure", expect=2)
    assert run.outputs["rolled-back"] == "true" and run.outputs["failed-release"] == "1.3.0"
    good, bad, restored = github.deployments
    assert [good["payload"]["release"], bad["payload"]["release"], restored["payload"]["release"]] == [
        "1.2.0", "1.3.0", "1.2.0"]
    assert github.states(bad) == ["in_progress", "failure"]
    failure = next(r for r in posts(github) if r.body.get("state") == "failure")
    assert failure.body["description"].startswith("1.3.0 failed: ")
    assert github.states(restored) == ["success"]
    restored_post = next(r for r in posts(github) if r.path == f"/repos/{REPO}/deployments"
                         and r.body["payload"]["release"] == "1.2.0")
    assert restored_post.body["description"] == "restored 1.2.0 after 1.3.0 failed to roll out"
    # auto_inactive: GitHub itself marks the earlier success of the same environment inactive
    assert github.states(good) == ["in_progress", "success", "inactive"]


def test_rollback_marks_the_old_deployment_inactive_and_this_one_success(sim: kubesim.Sim,
                                                                         github: FakeGitHub) -> None:
    web(sim)
    deploy(sim, github, "1.0.0")
    deploy(sim, github, "1.1.0")
    github.take()
    run = cli(sim, github, "--mode", "rollback", "--release", "1.0.0", "--reason", "checkout returns 500",
              "--production-environment")
    assert run.code == 0 and run.outputs["rolled-back"] == "true", run.stdout
    first, left, this = github.deployments
    create = next(r for r in posts(github) if r.path == f"/repos/{REPO}/deployments")
    assert create.body["payload"] == {"release": "1.0.0", "workloads": ["deployment/web"],
                                      "namespace": "staging", "cluster": "127.0.0.1", "revision": 2}
    assert create.body["production_environment"] is True
    assert create.body["description"] == "kube-release-rollback rolling back to 1.0.0: checkout returns 500"
    assert github.states(this) == ["in_progress", "success"]
    assert github.statuses[this["id"]][-1]["description"] == (
        "rolled back to 1.0.0 (revision 4) from 1.1.0: checkout returns 500")
    assert github.states(left)[-1] == "inactive"
    inactive = next(r for r in posts(github) if r.body.get("state") == "inactive")
    assert inactive.path == github.statuses_path(left) and "environment_url" not in inactive.body
    assert inactive.body["description"].startswith("rolled back from: rolled back to 1.0.0")
    # the deployments list was read to find 1.1.0's deployment
    assert any(r.method == "GET" and r.route == f"/repos/{REPO}/deployments" and r.query["environment"] == "staging"
               for r in github.requests)


def test_calculate_reads_s_and_a_from_the_environments_deployments(sim: kubesim.Sim, github: FakeGitHub) -> None:
    web(sim, "production")
    github.add_deployment("1.1.0", "production", "in_progress", "success", "inactive")
    github.add_deployment("1.2.0", "production", "in_progress", "success")
    github.add_deployment("1.3.0", "production", "in_progress", "failure")
    github.add_deployment("0.9.0", "staging", "success")  # another environment: not counted
    github.add_deployment("", "production", "success", payload={})  # not ours (an `environment:` job's)

    def calc(release: str) -> CliRun:
        run = cli(sim, github, "--mode", "calculate", "--release", release, "--no-ledger", namespace="production")
        assert run.code == 0, run.stdout
        return run

    retry = calc("1.3.0")
    assert retry.outputs["mode"] == "deploy", retry.stdout
    assert ("deployment/web: the ledger has no entries for it; the mode is decided from the GitHub Deployments "
            "of environment production: last successful 1.2.0, last attempted 1.3.0") in retry.stdout
    assert "(GitHub Deployments)" in retry.summary
    back = calc("1.2.0")
    assert back.outputs["mode"] == "rollback" and back.outputs["version-change"] == "minor"
    assert calc("1.1.0").outputs["mode"] == "rollback"
    assert calc("1.4.0").outputs["mode"] == "deploy"
    assert [r.method for r in github.requests if r.method != "GET"] == []  # calculate writes nothing
    listed = [r for r in github.requests if r.route == f"/repos/{REPO}/deployments"]
    assert listed and all(r.query == {"environment": "production", "per_page": "30"} for r in listed)


def _ledger_moved_to_another_api_server(sim: kubesim.Sim, namespace: str) -> None:
    """The ledger's entries as if recorded through another cluster's API server (a restored or copied
    ConfigMap): their ``cluster`` is not the one this run talks to."""
    cm = sim.store.get(CONFIGMAPS, namespace, LEDGER_NAME)
    entries = json.loads(cm["data"][ENTRIES_KEY])
    assert entries and all(e["cluster"] == sim.url.split("://", 1)[1] for e in entries)
    cm["data"][ENTRIES_KEY] = json.dumps([{**e, "cluster": "old-cluster.example:443"} for e in entries])
    sim.apply(cm)


def test_a_ledger_recorded_through_another_api_server_gives_way_to_the_deployments(sim: kubesim.Sim,
                                                                                   github: FakeGitHub) -> None:
    """The ledger says 1.1.0 is the last successful release, but it was recorded through another cluster;
    the environment's GitHub Deployments say 1.2.0 succeeded and 1.3.0 failed since: they decide."""
    web(sim, "production")
    for release in ("1.0.0", "1.1.0"):
        run = cli(sim, github, "--mode", "deploy", "--release", release, "--images", f"web={IMAGE}:{release}",
                  "--no-github-deployments", namespace="production")
        assert run.code == 0, run.stdout
    _ledger_moved_to_another_api_server(sim, "production")
    github.add_deployment("1.2.0", "production", "in_progress", "success")
    github.add_deployment("1.3.0", "production", "in_progress", "failure")
    run = cli(sim, github, "--mode", "calculate", "--release", "1.3.0", namespace="production")
    assert run.code == 0, run.stdout
    assert run.outputs["mode"] == "deploy", run.stdout  # a retry of the failed 1.3.0 (from the ledger: a deploy too)
    assert ("deployment/web: the ledger's newest entry for it was recorded through another API server "
            "(old-cluster.example:443") in run.stdout
    assert "the mode is decided from the GitHub Deployments of environment production: last successful 1.2.0, " \
           "last attempted 1.3.0" in run.stdout
    back = cli(sim, github, "--mode", "calculate", "--release", "1.2.0", namespace="production")
    assert back.outputs["mode"] == "rollback", back.stdout  # C == S < A: returning after the failed 1.3.0


def test_a_ledger_recorded_through_another_api_server_is_used_with_a_warning_without_deployments(
        sim: kubesim.Sim, github: FakeGitHub) -> None:
    web(sim)
    deploy(sim, github, "1.0.0", "--no-github-deployments")
    deploy(sim, github, "1.1.0", "--no-github-deployments")
    _ledger_moved_to_another_api_server(sim, "staging")
    run = cli(sim, github, "--mode", "calculate", "--release", "1.0.0", "--no-github-deployments")
    assert run.code == 0 and run.outputs["mode"] == "rollback", run.stdout
    (warning,) = [w for w in run.warnings if "another API server" in w]
    assert "no GitHub Deployments to decide from instead, so the mode is decided from that ledger" in warning


def test_forbidden_deployments_warn_and_the_cluster_part_is_unaffected(sim: kubesim.Sim, github: FakeGitHub) -> None:
    web(sim)
    github.fail("POST", "/deployments", 403, {"message": "Resource not accessible by integration"})
    run = deploy(sim, github, "1.0.0")
    assert run.outputs["mode"] == "deploy" and run.outputs["result"]
    annotations = get_deployment(sim, "web", "staging")["metadata"]["annotations"]
    assert annotations["kubernetes.io/change-cause"] == "1.0.0"
    (warning,) = run.warnings
    assert warning.startswith("GitHub Deployments: could not create a deployment of 1.0.0: GitHub API POST "
                              f"/repos/{REPO}/deployments failed (HTTP 403: Resource not accessible by "
                              "integration); give the job `permissions: deployments: write`")
    assert "The Kubernetes part is not affected" in warning
    assert "permissions: deployments: write" in run.summary
    assert [(r.method, r.route) for r in posts(github)] == [("POST", f"/repos/{REPO}/deployments")]  # no statuses
    assert github.deployments == []


def test_github_deployments_false_makes_no_deployment_calls(sim: kubesim.Sim, github: FakeGitHub) -> None:
    web(sim)
    run = deploy(sim, github, "1.0.0", None, "--no-github-deployments")
    assert run.code == 0 and github.deployments == []
    assert all("/deployments" not in r.path for r in github.requests)


def test_dry_run_and_refused_runs_create_no_deployment(sim: kubesim.Sim, github: FakeGitHub) -> None:
    web(sim)
    deploy(sim, github, "1.0.0", None, "--dry-run")
    assert github.deployments == []
    deploy(sim, github, "1.0.0")
    deploy(sim, github, "1.1.0")
    cli(sim, github, "--mode", "rollback", "--release", "1.0.0")  # blocks 1.1.0
    count = len(github.deployments)
    refused = cli(sim, github, "--mode", "deploy", "--release", "1.1.0", "--images", f"web={IMAGE}:1.1.0")
    assert refused.code == 1 and len(github.deployments) == count


# -- the pure parts ---------------------------------------------------------------------------------------------


def test_bodies() -> None:
    target = Target("staging", "main", log_url="https://x/runs/1", environment_url=None)
    body = deployment_body(target, "1.0.0", {"cluster": "k8s.example"}, "x" * 200)
    assert "production_environment" not in body and len(body["description"]) == 140
    assert body["payload"] == {"release": "1.0.0", "cluster": "k8s.example"}
    assert status_body(target, "success", "ok") == {"state": "success", "description": "ok",
                                                   "log_url": "https://x/runs/1"}
    with pytest.raises(ValueError):
        status_body(target, "done", "")


@pytest.mark.parametrize(("seen", "expected"), [
    ([], None),
    ([Seen(1, "", "success")], None),
    ([Seen(3, "1.3.0", "failure"), Seen(2, "1.2.0", "success"), Seen(1, "1.1.0", "inactive")],
     LedgerFacts("1.2.0", "1.3.0", ("1.2.0",), "GitHub Deployments")),
    ([Seen(2, "1.2.0", "in_progress"), Seen(1, "1.1.0", "success")],
     LedgerFacts("1.1.0", "1.2.0", ("1.1.0",), "GitHub Deployments")),
    ([Seen(1, "1.0.0", "failure")], LedgerFacts(None, "1.0.0", (), "GitHub Deployments")),
])
def test_facts_from(seen: list[Seen], expected: LedgerFacts | None) -> None:
    assert facts_from(seen) == expected


def result(**kw: Any) -> WorkloadResult:
    base: dict[str, Any] = {"workload": "deployment/web", "kind": "Deployment", "name": "web",
                            "namespace": "staging", "mode": "deploy", "action": "deployed", "release": "1.1.0",
                            "previous_release": "1.0.0", "revision": 3, "previous_revision": 2,
                            "rollout": "complete"}
    return WorkloadResult(**{**base, **kw})


@pytest.mark.parametrize(("report", "state", "inactivate", "restored"), [
    (RunReport("deploy", results=(result(),), release="1.1.0"), "success", None, None),
    (RunReport("rollback", results=(result(action="rolled-back", mode="rollback", release="1.0.0",
                                           previous_release="1.1.0"),), rolled_back=True, release="1.0.0"),
     "success", "1.1.0", None),
    (RunReport("auto", decision=Decision("rollback", "minor", "1.2.0", (), "", 3, "1.3.0"),
               results=(result(action="skipped", mode="rollback", release="1.2.0", previous_release="1.2.0"),),
               release="1.2.0"), "success", None, None),
    (RunReport("deploy", results=(result(action="compensated", release="1.0.0"),), rolled_back=True,
               failed_release="1.1.0", error="timed out", release="1.1.0"), "failure", None, "1.0.0"),
    (RunReport("deploy", results=(result(action="failed", release="1.1.0"),), error="timed out",
               release="1.1.0"), "failure", None, None),
    (RunReport("deploy", results=(result(action="unchanged"),), error="no such container", release="1.1.0"),
     "error", None, None),
])
def test_outcome(report: RunReport, state: str, inactivate: str | None, restored: str | None) -> None:
    steps = outcome(report, "")
    assert (steps.state, steps.inactivate, steps.restored) == (state, inactivate, restored)


def test_a_status_that_cannot_be_posted_warns_and_later_calls_still_happen(sim: kubesim.Sim,
                                                                          github: FakeGitHub) -> None:
    web(sim)
    github.fail("POST", "/statuses", 502, {"message": "Server Error"}, times=1)  # the in_progress status
    run = deploy(sim, github, "1.0.0")
    (deployment,) = github.deployments
    assert github.states(deployment) == ["success"]
    (warning,) = run.warnings
    assert warning.startswith(f"GitHub Deployments: could not set deployment {deployment['id']} to in_progress: "
                              "GitHub API POST") and "HTTP 502: Server Error" in warning
    assert "Server Error" in run.summary


def test_an_answer_not_shaped_like_githubs_is_a_warning(sim: kubesim.Sim, github: FakeGitHub) -> None:
    web(sim)
    github.fail("POST", f"/repos/{REPO}/deployments", 201, {"unexpected": True})
    run = deploy(sim, github, "1.0.0")
    assert run.code == 0
    (warning,) = run.warnings
    assert warning.startswith("GitHub Deployments: could not create a deployment of 1.0.0: unexpected answer "
                              "(KeyError('id'))")
