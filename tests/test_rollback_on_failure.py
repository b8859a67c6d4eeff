"""``rollback-on-failure``: a deploy whose rollout fails or times out puts the previous release back and fails.

A Deployment fails fast on its progress deadline; StatefulSets and DaemonSets have none, so theirs time out.
Either way the previous release is live again at the end (template and change-cause), the step fails, and the
outputs a later step keys on (``rolled-back``, ``failed-release``, ``release``) are written even so. Without
the flag the workload is left on the failed release.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from helpers import CliRun, cli_environ, parse_github_output, run_cli

import kubesim
from kubesim.knobs import Knobs
from kubesim.resources import DAEMONSETS, DEPLOYMENTS, PODS, STATEFULSETS
from rollback.workloads import prune_empty

Obj = dict[str, Any]
CAUSE = "kubernetes.io/change-cause"
NS = "default"
RESOURCE = {"Deployment": DEPLOYMENTS, "StatefulSet": STATEFULSETS, "DaemonSet": DAEMONSETS}
NAME = {"Deployment": "web", "StatefulSet": "db", "DaemonSet": "agent"}
GOOD, BAD = "registry.example/app:1.0.0", "registry.example/app:broken-2.0.0"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def manifest(kind: str) -> Obj:
    name = NAME[kind]
    spec: Obj = {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "registry.example/app:0.9.0"}]}}}
    if kind == "Deployment":
        spec.update(replicas=3, progressDeadlineSeconds=4)  # simulated seconds: under half a second at 10x
    if kind == "StatefulSet":
        spec.update(replicas=2, serviceName=name, podManagementPolicy="OrderedReady")
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": NS}, "spec": spec}


def get(sim: kubesim.Sim, kind: str) -> Obj:
    return copy.deepcopy(sim.store.get(RESOURCE[kind], NS, NAME[kind]))


def image_and_cause(obj: Obj) -> tuple[str, str | None]:
    return (obj["spec"]["template"]["spec"]["containers"][0]["image"],
            (obj["metadata"].get("annotations") or {}).get(CAUSE))


def workload_pods(sim: kubesim.Sim, kind: str) -> list[Obj]:
    return [p for p in sim.store.list(PODS, NS)[0] if p["metadata"]["name"].startswith(NAME[kind] + "-")]


def all_pods_ready_on(sim: kubesim.Sim, kind: str, image: str) -> bool:
    found = workload_pods(sim, kind)
    return bool(found) and all(
        p["spec"]["containers"][0]["image"] == image and not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
        for p in found)


def deploy(sim: kubesim.Sim, kind: str, release: str, image: str, *args: str) -> CliRun:
    return run_cli(sim, "--namespace", NS, "--deployment", f"{kind.lower()}/{NAME[kind]}", "--mode", "deploy",
                   "--release", release, "--images", f"app={image}", *args)


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(ready_delay=0.2)


@pytest.fixture
def fast(sim: kubesim.Sim) -> kubesim.Sim:
    sim.clock.scale = 10
    return sim


def live_on_good(sim: kubesim.Sim, kind: str) -> None:
    sim.apply(manifest(kind))
    run = deploy(sim, kind, "1.0.0", GOOD, "--timeout", "30s")
    assert run.code == 0, run.stdout
    assert image_and_cause(get(sim, kind)) == (GOOD, "1.0.0")


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet"])
def test_failed_deploy_is_rolled_back_to_the_previous_release(fast: kubesim.Sim, kind: str) -> None:
    live_on_good(fast, kind)
    before = get(fast, kind)

    started = time.monotonic()
    run = deploy(fast, kind, "2.0.0", BAD, "--rollback-on-failure", "--timeout", "3s")
    took = time.monotonic() - started

    assert run.code == 2, run.stdout  # README: failed, and the changed workloads were put back
    assert run.outputs["rolled-back"] == "true"
    assert run.outputs["failed-release"] == "2.0.0"
    assert run.outputs["release"] == "1.0.0"
    assert run.outputs["skipped"] == "false"
    (result,) = run.result()
    assert result["action"] == "compensated", result
    assert result["release"] == "1.0.0"
    assert run.errors, "the step must fail with an ::error::"
    if kind == "Deployment":  # fails on its progress deadline, long before the timeout
        assert any("exceeded its progress deadline" in e for e in run.errors), run.stdout
        assert took < 3, took

    after = get(fast, kind)
    assert image_and_cause(after) == (GOOD, "1.0.0")
    # equal the way the API server compares (a ControllerRevision's template carries Go's creationTimestamp: null)
    assert prune_empty(after["spec"]["template"]) == prune_empty(before["spec"]["template"])
    # the restore was waited for: every pod runs the good image and is Ready when the step ends
    assert all_pods_ready_on(fast, kind, GOOD), [p["metadata"]["name"] for p in workload_pods(fast, kind)]


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet"])
def test_without_the_flag_the_failed_release_stays(fast: kubesim.Sim, kind: str) -> None:
    live_on_good(fast, kind)
    run = deploy(fast, kind, "2.0.0", BAD, "--timeout", "2s")
    assert run.code == 1, run.stdout
    assert run.outputs["rolled-back"] == "false"
    assert run.outputs["release"] == "2.0.0"
    assert run.outputs["failed-release"] == "2.0.0"
    (result,) = run.result()
    assert result["action"] == "failed" and result["rollout"] in ("failed", "timeout"), result
    assert image_and_cause(get(fast, kind)) == (BAD, "2.0.0")
    assert not all_pods_ready_on(fast, kind, BAD)


def test_rolled_back_step_as_a_process_exits_non_zero_with_outputs_written(fast: kubesim.Sim,
                                                                          tmp_path: Any) -> None:
    """The real ``python -m rollback`` process: exit status and the outputs file a later
    ``if: failure() && steps.x.outputs.rolled-back == 'true'`` step reads."""
    live_on_good(fast, "Deployment")
    env = cli_environ(fast, str(tmp_path))
    env["PYTHONPATH"] = ROOT
    process = subprocess.run(
        [sys.executable, "-m", "rollback", "--deployment", "web", "--mode", "deploy", "--release", "2.0.0",
         "--images", f"app={BAD}", "--rollback-on-failure", "--timeout", "20s"],
        env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert process.returncode == 2, process.stdout + process.stderr
    with open(env["GITHUB_OUTPUT"], encoding="utf-8") as handle:
        outputs = parse_github_output(handle.read())
    assert (outputs["rolled-back"], outputs["failed-release"], outputs["release"]) == ("true", "2.0.0", "1.0.0")
    with open(env["GITHUB_STEP_SUMMARY"], encoding="utf-8") as handle:
        assert "2.0.0" in handle.read()
    assert image_and_cause(get(fast, "Deployment")) == (GOOD, "1.0.0")
