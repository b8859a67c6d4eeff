"""``examples/deploy-pipeline.yml`` run job after job against kubesim and the local fake GitHub API: the two
stories of issue 11 as a user's pipeline lives them.

Each job runs on the tiny runner of ``test_e2e_workflow.py`` (its steps as the runner runs them, the action as
a container action through ``entrypoint.py``). This driver adds what a multi-job workflow needs: ``needs``
(in order, with each job's ``result`` and ``outputs``), the job's ``if:``, and the ``inputs``, ``secrets`` and
``github`` contexts. The repository's ``scripts/migrate.sh`` (the example's own migration script, not part of
this repository) is a stand-in that records that it ran and with which version change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from fakes.github import FakeGitHub, serve
from helpers import make_deployment
from test_e2e_workflow import ROOT, ExpressionContext, JobRunner, WorkflowError, action_meta, load_yaml

import kubesim
from kubesim.resources import CONFIGMAPS

PIPELINE = ROOT / "examples" / "deploy-pipeline.yml"
SELF = "kube-release-rollback/kube-release-rollback@v1"
TOKEN = "ghs_Pipeline0Example1Token2zz"
NS = "shop"
IMAGE = "ghcr.io/example/shop-web"
DRIVER_JOB_KEYS = ("needs", "if", "outputs", "environment")  # handled here; the rest by JobRunner
MIGRATE = """#!/usr/bin/env bash
set -euo pipefail
echo "${VERSION_CHANGE}" >> "${GITHUB_WORKSPACE}/migrations.log"
"""


def run_pipeline(sim: kubesim.Sim, github: FakeGitHub, base: Path, release: str) -> dict[str, dict[str, Any]]:
    """Every job of the pipeline for ``release``: job id → {result, outputs, steps}."""
    workflow = load_yaml(PIPELINE.read_text(encoding="utf-8"))
    kubeconfig = Path(sim.kubeconfig).read_text(encoding="utf-8")
    contexts: dict[str, Any] = {
        "inputs": {"release": release},
        "secrets": {"KUBECONFIG": kubeconfig, "DATABASE_URL": "postgres://stand-in"},
        "github": {"token": TOKEN, "run_id": "1234567890"},
    }
    done: dict[str, dict[str, Any]] = {}
    for job_id, job in workflow["jobs"].items():
        needs = job.get("needs") or []
        needs = [needs] if isinstance(needs, str) else list(needs)
        missing = [n for n in needs if n not in done]
        if missing:
            raise WorkflowError(f"job {job_id} needs {missing}, which come later (this driver runs in order)")
        needed = {n: {"result": done[n]["result"], "outputs": done[n]["outputs"]} for n in needs}
        condition = str(job.get("if", ""))
        if "failure()" in condition:
            raise WorkflowError(f"job {job_id}: failure() in a job's if: is not handled by this driver")
        gate = ExpressionContext({}, set(), dict(workflow.get("env") or {}), "",
                                 not all(n["result"] == "success" for n in needed.values()),
                                 {**contexts, "needs": needed})
        if not gate.condition(condition or None):
            done[job_id] = {"result": "skipped", "outputs": {}, "steps": []}
            continue
        single = {"name": workflow.get("name"), "on": workflow["on"], "env": workflow.get("env") or {},
                  "defaults": workflow.get("defaults") or {},
                  "jobs": {job_id: {k: v for k, v in job.items() if k not in DRIVER_JOB_KEYS}}}
        runner = JobRunner(single, action_meta(), sim.kubeconfig, base / f"{release}-{job_id}",
                           contexts={**contexts, "needs": needed}, self_uses=(SELF,),
                           env={"GITHUB_API_URL": github.api_url, "GITHUB_REPOSITORY": github.repository,
                                "GITHUB_WORKSPACE": str(base / "workspace")})
        scripts = base / "workspace" / "scripts"
        scripts.mkdir(parents=True, exist_ok=True)
        (scripts / "migrate.sh").write_text(MIGRATE, encoding="utf-8")
        os.chmod(scripts / "migrate.sh", 0o755)
        runner.workspace = base / "workspace"
        result = runner.run()
        after = ExpressionContext({r.id: r for r in result.steps if r.id}, runner.known_ids,
                                  dict(runner.env_context), str(runner.temp), bool(result.failed), runner.contexts)
        outputs = {name: after.substitute(str(value)) for name, value in (job.get("outputs") or {}).items()}
        done[job_id] = {"result": "failure" if result.failed else "success", "outputs": outputs,
                        "steps": result.steps, "report": result.report()}
    return done


def migrations(base: Path) -> list[str]:
    log = base / "workspace" / "migrations.log"
    return log.read_text(encoding="utf-8").split() if log.exists() else []


def deploy_outputs(jobs: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    step = next(s for s in jobs["deploy"]["steps"] if s.id == "deploy")
    return dict(step.outputs)


def blocks(sim: kubesim.Sim) -> list[str]:
    cm = sim.store.find(CONFIGMAPS, NS, "kube-release-rollback-ledger")
    return [b["release"] for b in json.loads(cm["data"]["blocks.json"])] if cm else []


@pytest.fixture
def pipeline_sim(tmp_path: Path) -> Iterator[kubesim.Sim]:
    with kubesim.serve(kubeconfig_path=str(tmp_path / "sim-kubeconfig")) as sim:
        sim.clock.scale = 10
        sim.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        make_deployment(sim, "web", NS, image=f"{IMAGE}:0", progressDeadlineSeconds=5)
        yield sim


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve(TOKEN, "acme/shop") as fake:
        yield fake


def ran(jobs: Mapping[str, Mapping[str, Any]], job: str, step_name: str) -> bool:
    return any(s.name == step_name and s.status == "ran" for s in jobs[job]["steps"])


@pytest.mark.timeout(400)
def test_a_retried_release_is_a_deploy_and_runs_its_migrations(pipeline_sim: kubesim.Sim, github: FakeGitHub,
                                                                tmp_path: Path) -> None:
    base = tmp_path / "runner"
    first = run_pipeline(pipeline_sim, github, base, "1.2.0")
    assert first["deploy"]["result"] == "success", first["deploy"]["report"]
    assert migrations(base) == ["none"]

    pipeline_sim.knobs.bad_images.add(f"{IMAGE}:1.3.0")  # 1.3.0 does not start: it fails and is put back
    failed = run_pipeline(pipeline_sim, github, base, "1.3.0")
    assert failed["plan"]["outputs"]["mode"] == "deploy" and failed["migrate"]["result"] == "success"
    assert failed["deploy"]["result"] == "failure"
    outputs = deploy_outputs(failed)
    assert (outputs["rolled-back"], outputs["failed-release"], outputs["release"]) == ("true", "1.3.0", "1.2.0")
    assert ran(failed, "deploy", "Tell people the deploy was undone")

    pipeline_sim.knobs.bad_images.discard(f"{IMAGE}:1.3.0")  # the cause is fixed: run 1.3.0 again
    retry = run_pipeline(pipeline_sim, github, base, "1.3.0")
    assert retry["plan"]["outputs"]["mode"] == "deploy", retry["plan"]["report"]
    assert retry["plan"]["outputs"]["run-on-rollback"] == "false"
    assert retry["migrate"]["result"] == "success"  # the migrations of 1.3.0 run again
    assert migrations(base) == ["none", "minor", "minor"]
    assert retry["deploy"]["result"] == "success", retry["deploy"]["report"]
    outputs = deploy_outputs(retry)
    assert (outputs["mode"], outputs["release"], outputs["blocked-release"]) == ("deploy", "1.3.0", "")
    assert ran(retry, "deploy", "Smoke test the new release")
    assert not ran(retry, "deploy", "Warm caches after a rollback")
    assert blocks(pipeline_sim) == []  # the good 1.2.0 was never blocked

    # The Environments page: 1.2.0 success, 1.3.0 failure, 1.2.0 restored, then 1.3.0 success (newest last).
    history = [(d["payload"]["release"], github.latest_state(d)) for d in github.deployments]
    assert [h[0] for h in history] == ["1.2.0", "1.3.0", "1.2.0", "1.3.0"]
    assert history[1][1] == "failure" and history[3][1] == "success"
    assert {d["environment"] for d in github.deployments} == {"production"}


@pytest.mark.timeout(400)
def test_a_newer_release_after_a_rollback_is_a_deploy_and_blocks_nothing(pipeline_sim: kubesim.Sim,
                                                                         github: FakeGitHub, tmp_path: Path) -> None:
    base = tmp_path / "runner"
    for release in ("1.0.0", "1.1.0", "1.2.0"):
        assert run_pipeline(pipeline_sim, github, base, release)["deploy"]["result"] == "success"
    back = run_pipeline(pipeline_sim, github, base, "1.0.0")
    assert back["plan"]["outputs"]["mode"] == "rollback" and back["migrate"]["result"] == "skipped"
    assert back["deploy"]["result"] == "success", back["deploy"]["report"]
    assert ran(back, "deploy", "Warm caches after a rollback")
    assert deploy_outputs(back)["rolled-back"] == "true" and blocks(pipeline_sim) == ["1.2.0"]
    assert migrations(base) == ["none", "minor", "minor"]

    forward = run_pipeline(pipeline_sim, github, base, "1.1.0")
    assert forward["plan"]["outputs"]["mode"] == "deploy", forward["plan"]["report"]
    assert forward["migrate"]["result"] == "success" and migrations(base)[-1] == "minor"
    outputs = deploy_outputs(forward)
    assert (outputs["mode"], outputs["blocked-release"], outputs["rolled-back"]) == ("deploy", "", "false")
    assert blocks(pipeline_sim) == ["1.2.0"]  # the good 1.0.0 is not blocked

    blocked = run_pipeline(pipeline_sim, github, base, "1.2.0")  # the plan job stops a blocked release
    assert blocked["plan"]["result"] == "failure" and blocked["migrate"]["result"] == "skipped"
    assert blocked["deploy"]["result"] == "skipped"
    assert ran(blocked, "plan", "Stop if the release is blocked")
