"""The container contract: ``entrypoint.py`` run as the runner runs a Docker container action, against kubesim.

The process gets exactly what ``docker run`` gets from the runner (reference: github-container-actions.md
§5.2): every input declared in ``action.yml`` as ``INPUT_<NAME>`` with hyphens kept and the default filled in
where the workflow gives none, ``GITHUB_OUTPUT``/``GITHUB_STEP_SUMMARY`` files, ``GITHUB_WORKSPACE`` as the
working directory, ``HOME`` somewhere else, ``CI=true``, ``GITHUB_ACTIONS=true`` and the ``GITHUB_*`` context,
and no ``KUBECONFIG``: the credentials come from the ``kubeconfig`` input (content, plain or base64).
Only ``rollback/`` and ``entrypoint.py`` are copied next to each other, as the Dockerfile does.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import CHANGE_CAUSE, get_deployment, history_pairs, make_deployment, parse_github_output

import kubesim
from kubesim.knobs import Knobs

ROOT = Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
TOKEN = "kubesim-token-4f1c9e27d8b3a605"
IMG = "registry.example/web:"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/app of the image: the engine and the entrypoint, nothing else of the repository."""
    target = tmp_path_factory.mktemp("app")
    shutil.copytree(ROOT / "rollback", target / "rollback", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "entrypoint.py", target / "entrypoint.py")
    return target


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[kubesim.Sim]:
    """kubesim that only answers requests carrying TOKEN (the kubeconfig holds it)."""
    knobs = Knobs(ready_delay=0)
    knobs.grant(TOKEN, "github-actions")
    with kubesim.serve(knobs=knobs, token=TOKEN, kubeconfig_path=str(tmp_path / "kubeconfig")) as sim:
        make_deployment(sim, "web", namespace="shop", image=IMG + "1.0.0", change_cause="1.0.0", replicas=2)
        yield sim


def input_defaults() -> dict[str, str]:
    """``INPUT_<NAME>`` for every input of action.yml, set to its default (``""`` without one)."""
    return {"INPUT_" + name.replace(" ", "_").upper(): str(spec.get("default", ""))
            for name, spec in ACTION["inputs"].items()}


@dataclass(frozen=True)
class ContainerRun:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    outputs_text: str
    summary: str
    workspace_after: list[str]

    def error_lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith("::error")]


def run_container(app: Path, tmp_path: Path, inputs: Mapping[str, str], name: str = "step") -> ContainerRun:
    """Run the entrypoint like ``docker run --workdir /github/workspace -e ...``; ``inputs``: action input
    name → value as the workflow's ``with:`` gives it."""
    base = tmp_path / name
    workspace, home, temp, commands = (base / d for d in ("workspace", "home", "runner_temp", "file_commands"))
    for directory in (workspace, home, temp, commands):
        directory.mkdir(parents=True)
    (workspace / "README.md").write_text("checked-out repository\n")
    files = {n: commands / n.lower() for n in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_STATE",
                                                 "GITHUB_ENV", "GITHUB_PATH")}
    for path in files.values():
        path.write_text("")
    env = {
        "PATH": os.path.dirname(sys.executable) + ":/usr/local/bin:/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": str(home),
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "RUNNER_TEMP": str(temp),
        "RUNNER_OS": "Linux",
        "GITHUB_ACTOR": "octocat",
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_RUN_ID": "987654321",
        "GITHUB_RUN_NUMBER": "17",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": "https://api.github.com",
        "GITHUB_EVENT_NAME": "workflow_dispatch",
        "GITHUB_WORKFLOW": "deploy",
        "GITHUB_JOB": "deploy",
        "GITHUB_SHA": "3f9c2ab0e1d2c3b4a5968778695a4b3c2d1e0f9a",
        "GITHUB_REF": "refs/heads/main",
        **{name: str(path) for name, path in files.items()},
        **input_defaults(),
    }
    for key, value in inputs.items():
        assert key in ACTION["inputs"], f"{key} is not an input of action.yml"
        env["INPUT_" + key.upper()] = value
    assert "KUBECONFIG" not in env
    result = subprocess.run([sys.executable, str(app / "entrypoint.py")], cwd=workspace, env=env,
                            capture_output=True, text=True, timeout=60)
    outputs_text = files["GITHUB_OUTPUT"].read_text(encoding="utf-8")
    return ContainerRun(result.returncode, result.stdout, result.stderr, parse_github_output(outputs_text),
                        outputs_text, files["GITHUB_STEP_SUMMARY"].read_text(encoding="utf-8"),
                        sorted(os.listdir(workspace)))


def kubeconfig_text(sim: kubesim.Sim) -> str:
    return Path(sim.kubeconfig).read_text(encoding="utf-8")


def assert_secrets_masked(run: ContainerRun, *secrets: str, connected: bool = True) -> None:
    """Each secret appears in the log only inside ``::add-mask::`` lines, which come before anything else.
    ``connected``: the run got as far as using the kubeconfig, so its token must have been masked."""
    lines = run.stdout.splitlines()
    masks = [line[len("::add-mask::"):] for line in lines if line.startswith("::add-mask::")]
    first_other = next((i for i, line in enumerate(lines) if not line.startswith("::add-mask::")), len(lines))
    if connected:
        assert TOKEN in masks
    assert all(not line.startswith("::add-mask::") for line in lines[first_other:])
    for secret in secrets:
        for line in lines[first_other:]:
            assert secret not in line
        assert secret not in run.stderr
        assert secret not in run.outputs_text and secret not in run.summary


def secret_pieces(sim: kubesim.Sim) -> tuple[str, ...]:
    content = kubeconfig_text(sim)
    return (TOKEN, content, content.strip(), base64.b64encode(content.encode()).decode())


# -- the three modes -------------------------------------------------------------------------------------------


def test_deploy_rollback_and_calculate_through_the_container_environment(app: Path, tmp_path: Path,
                                                                         cluster: kubesim.Sim) -> None:
    common = {"deployment": "deployment/web\n", "namespace": "shop", "timeout": "60s"}  # a YAML | block
    plain = kubeconfig_text(cluster)
    encoded = base64.b64encode(plain.encode()).decode()

    deploy = run_container(app, tmp_path, {**common, "kubeconfig": plain, "mode": "deploy", "release": "1.1.0",
                                           "images": f"web={IMG}1.1.0\n"}, "deploy")
    assert deploy.code == 0, deploy.stdout + deploy.stderr
    assert set(deploy.outputs) == set(ACTION["outputs"])
    out = deploy.outputs
    assert (out["mode"], out["release"], out["previous-release"]) == ("deploy", "1.1.0", "1.0.0")
    assert (out["revision"], out["previous-revision"], out["skipped"]) == ("2", "1", "false")
    assert (out["run-on-deploy"], out["run-on-rollback"], out["version-change"]) == ("true", "false", "minor")
    assert history_pairs(cluster, namespace="shop") == [(1, "1.0.0"), (2, "1.1.0")]
    assert "| deployment/web |" in deploy.summary and "1.1.0" in deploy.summary
    assert_secrets_masked(deploy, *secret_pieces(cluster))

    deploy2 = run_container(app, tmp_path, {**common, "kubeconfig": encoded, "release": "1.2.0",
                                            "images": f"web={IMG}1.2.0"}, "auto-deploy")
    assert deploy2.code == 0, deploy2.stdout
    assert deploy2.outputs["mode"] == "deploy"

    calculate = run_container(app, tmp_path, {**common, "kubeconfig": encoded, "mode": "calculate",
                                              "release": "1.1.0"}, "calculate")
    assert calculate.code == 0, calculate.stdout
    out = calculate.outputs
    assert (out["mode"], out["run-on-rollback"], out["run-on-deploy-or-rollback"], out["run-on-deploy"]) == (
        "rollback", "true", "true", "false")
    assert (out["release"], out["version-change"]) == ("1.2.0", "minor")
    assert "Calculated mode for 1.1.0: rollback" in calculate.summary
    assert "| **3** | 1.2.0 |" in calculate.summary  # the history table marks the live revision
    assert history_pairs(cluster, namespace="shop") == [(1, "1.0.0"), (2, "1.1.0"), (3, "1.2.0")]
    assert_secrets_masked(calculate, *secret_pieces(cluster))

    rollback = run_container(app, tmp_path, {**common, "kubeconfig": encoded, "mode": "rollback",
                                             "release": "1.1.0", "reason": "checkout returns 500"}, "rollback")
    assert rollback.code == 0, rollback.stdout + rollback.stderr
    out = rollback.outputs
    assert (out["mode"], out["release"], out["previous-release"], out["skipped"]) == (
        "rollback", "1.1.0", "1.2.0", "false")
    assert (out["revision"], out["previous-revision"]) == ("4", "3")
    assert history_pairs(cluster, namespace="shop") == [(1, "1.0.0"), (3, "1.2.0"), (4, "1.1.0")]
    deployment = get_deployment(cluster, namespace="shop")
    assert deployment["metadata"]["annotations"][CHANGE_CAUSE] == "1.1.0"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == IMG + "1.1.0"
    assert "checkout returns 500" in rollback.summary
    assert_secrets_masked(rollback, *secret_pieces(cluster))

    again = run_container(app, tmp_path, {**common, "kubeconfig": plain, "mode": "rollback", "release": "1.1.0"},
                          "rollback-again")
    assert again.code == 0 and again.outputs["skipped"] == "true"

    for run in (deploy, deploy2, calculate, rollback, again):
        assert run.workspace_after == ["README.md"]  # nothing left in the (root-owned, in a real job) workspace
        assert run.error_lines() == []
        assert run.outputs_text.endswith("\n")


def test_history_mode_output_is_json_rows(app: Path, tmp_path: Path, cluster: kubesim.Sim) -> None:
    import json

    run = run_container(app, tmp_path, {"deployment": "web", "namespace": "shop", "mode": "history",
                                        "kubeconfig": kubeconfig_text(cluster)})
    assert run.code == 0, run.stdout
    rows: list[dict[str, Any]] = json.loads(run.outputs["history"])
    assert [(r["revision"], r["release"], r["images"], r["current"]) for r in rows] == [
        (1, "1.0.0", ["web=" + IMG + "1.0.0"], True)]


# -- failures --------------------------------------------------------------------------------------------------


def test_unknown_mode_fails_before_connecting(app: Path, tmp_path: Path, cluster: kubesim.Sim) -> None:
    rv = cluster.store.resource_version()
    run = run_container(app, tmp_path, {"deployment": "web", "namespace": "shop", "mode": "explode",
                                        "release": "1.0.0", "kubeconfig": kubeconfig_text(cluster)})
    assert run.code == 1
    [error] = run.error_lines()
    assert error.startswith("::error title=Invalid input%3A mode::")
    assert cluster.store.resource_version() == rv
    assert_secrets_masked(run, *secret_pieces(cluster), connected=False)


def test_no_credentials_names_the_kubeconfig_input(app: Path, tmp_path: Path, cluster: kubesim.Sim) -> None:
    """No kubeconfig input and no KUBECONFIG: HOME has no ~/.kube/config either (a container cannot see the
    runner's), so the step fails telling what to set."""
    run = run_container(app, tmp_path, {"deployment": "web", "namespace": "shop", "mode": "history"})
    assert run.code == 1
    [error] = run.error_lines()
    assert error.startswith("::error title=Invalid input%3A kubeconfig::")
    assert "KUBECONFIG" in error


def test_kubeconfig_input_that_is_a_path_is_refused_with_a_hint(app: Path, tmp_path: Path,
                                                                 cluster: kubesim.Sim) -> None:
    run = run_container(app, tmp_path, {"deployment": "web", "namespace": "shop", "mode": "history",
                                        "kubeconfig": cluster.kubeconfig})
    assert run.code == 1
    [error] = run.error_lines()
    assert error.startswith("::error title=Invalid input%3A kubeconfig::") and "file path" in error


def test_release_not_in_history_fails_with_outputs_written(app: Path, tmp_path: Path, cluster: kubesim.Sim
                                                          ) -> None:
    run = run_container(app, tmp_path, {"deployment": "web", "namespace": "shop", "mode": "rollback",
                                        "release": "0.9.0", "kubeconfig": kubeconfig_text(cluster)})
    assert run.code == 1
    [error] = run.error_lines()
    assert "Releases available (newest first): 1.0.0" in error
    assert set(run.outputs) == set(ACTION["outputs"])
    assert run.outputs["skipped"] == "false"
    assert history_pairs(cluster, namespace="shop") == [(1, "1.0.0")]
    assert_secrets_masked(run, *secret_pieces(cluster))


@pytest.mark.parametrize("ledger", [
    "false",
    "true",
])
def test_rejected_token_is_reported_without_printing_it(app: Path, tmp_path: Path, cluster: kubesim.Sim,
                                                        ledger: str) -> None:
    config = yaml.safe_load(kubeconfig_text(cluster))
    wrong = "wrong-token-0b1d7e5c3a9f2468"
    config["users"][0]["user"]["token"] = wrong
    run = run_container(app, tmp_path, {"deployment": "web", "namespace": "shop", "mode": "history",
                                        "kubeconfig": yaml.safe_dump(config), "ledger": ledger})
    assert run.code == 1
    [error] = run.error_lines()
    assert "401" in error and "credentials were rejected" in error and "kubeconfig" in error, run.stdout
    assert "configmaps" not in error and "ledger" not in error
    lines = run.stdout.splitlines()
    assert f"::add-mask::{wrong}" in lines
    assert not any(wrong in line for line in lines if not line.startswith("::add-mask::"))
    assert wrong not in run.stderr and wrong not in run.outputs_text and wrong not in run.summary
