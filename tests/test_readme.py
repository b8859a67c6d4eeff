"""The README stays true to the code: its commands, flags, inputs, outputs and workflow snippets exist and lint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from test_repo_lint import ACTION_YML, ROOT, actionlint, load_yaml, make_project, output, self_use_problems

from rollback.cli import _parser
from rollback.inputs import INPUT_NAMES
from rollback.report import OUTPUT_NAMES

README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README.read_text(encoding="utf-8")) if lang == language]


def as_workflow(snippet: str) -> str | None:
    """A README YAML snippet as the text of a complete workflow: whole workflows as they are, a list of steps
    or a `jobs:` fragment wrapped in the smallest workflow around it. Kubernetes manifests are not workflows."""
    loaded = yaml.safe_load(snippet)
    if isinstance(loaded, list):
        steps = "".join(f"      {line}\n" if line else "\n" for line in snippet.splitlines())
        return f"on: push\npermissions: {{}}\njobs:\n  job:\n    runs-on: ubuntu-latest\n    steps:\n{steps}"
    if isinstance(loaded, dict) and "jobs" in loaded:
        return snippet if re.search(r"^on:", snippet, re.MULTILINE) else "on: workflow_dispatch\n" + snippet
    return None


def test_readme_starts_with_the_two_commands() -> None:
    first_block = blocks("sh")[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:", makefile, re.MULTILINE) and re.search(r"^test:", makefile, re.MULTILINE)
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def table_names(heading: str) -> set[str]:
    """Backticked names in the first column of the table under ``## heading``."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([a-z][a-z0-9-]*)`", line.split("|")[1]))
    return names


def test_every_input_and_output_is_documented_and_nothing_else() -> None:
    meta = load_yaml(ACTION_YML)
    assert table_names("Inputs") == set(meta["inputs"]) == set(INPUT_NAMES)
    assert table_names("Outputs") == set(meta["outputs"]) == set(OUTPUT_NAMES)


def test_cli_flags_in_the_readme_exist() -> None:
    known = {option for action in _parser()._actions for option in action.option_strings}
    text = README.read_text(encoding="utf-8")
    used = set()
    for line in re.findall(r"python -m rollback[^\n`]*", text):
        used.update(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", line))
    cli_paragraph = text.split("CLI flags are the input names", 1)[1].split("\n\n", 1)[0]
    used.update(re.findall(r"`(--[a-z][a-z-]*)", cli_paragraph))
    assert used, "the README shows no CLI flag at all?"
    assert used <= known, f"flags in the README that the CLI does not have: {sorted(used - known)}"


def workflow_snippets() -> list[tuple[int, str]]:
    found = []
    for index, snippet in enumerate(blocks("yaml")):
        workflow = as_workflow(snippet)
        if workflow is not None:
            found.append((index, workflow))
    return found


def test_readme_has_workflow_snippets() -> None:
    assert len(workflow_snippets()) >= 3


@pytest.mark.parametrize("index,workflow", workflow_snippets(), ids=lambda v: f"block-{v}" if isinstance(v, int)
                         else "")
def test_workflow_snippets_lint_and_use_real_inputs(tmp_path: Path, index: int, workflow: str) -> None:
    meta = load_yaml(ACTION_YML)
    assert self_use_problems(yaml.safe_load(workflow), workflow, set(meta["inputs"]), set(meta["outputs"])) == []
    project = make_project(tmp_path)
    path = project / ".github" / "workflows" / f"readme-{index}.yml"
    path.write_text(workflow, encoding="utf-8")
    proc = actionlint([path.relative_to(project)], cwd=project)
    assert proc.returncode == 0, output(proc)


def test_the_snippet_check_can_fail() -> None:
    meta = load_yaml(ACTION_YML)
    broken = "- id: x\n  uses: kube-release-rollback/kube-release-rollback@v1\n  with:\n    releas: 1\n"
    workflow = as_workflow(broken)
    assert workflow is not None
    assert self_use_problems(yaml.safe_load(workflow), broken, set(meta["inputs"]), set(meta["outputs"]))


def test_rbac_role_in_the_readme_is_a_valid_role() -> None:
    roles = [yaml.safe_load(b) for b in blocks("yaml") if "kind: Role" in b]
    assert len(roles) == 1
    rules = roles[0]["rules"]
    granted = {(group, resource, verb) for rule in rules for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    # the calls the engine makes (rollback/workloads.py, rollout.py, ledger.py)
    for needed in [("apps", "deployments", "patch"), ("apps", "deployments", "watch"),
                   ("apps", "replicasets", "list"), ("apps", "controllerrevisions", "list"),
                   ("", "pods", "delete"), ("", "configmaps", "update")]:
        assert needed in granted, needed


def test_the_promotion_workflow_in_the_readme_is_the_example_file() -> None:
    promote = (ROOT / "examples" / "promote.yml").read_text(encoding="utf-8")
    assert promote in blocks("yaml"), "README's promotion workflow differs from examples/promote.yml"
