"""Repository lint gates, run by `make test` (issue 6).

`make test` must fail when a workflow, the Dockerfile or action.yml regresses, or when action.yml and the code
disagree about the inputs and outputs. Each gate here is paired with a test that breaks a copy of the checked
file (in a temporary directory) and asserts the gate catches it, so a gate that silently stopped checking
(tool missing, wrong flags, config exempting too much) fails the suite instead of passing it.

Tools: actionlint, shellcheck, zizmor and hadolint come from the dev extra in pyproject.toml (wheels that ship
the binaries), installed into .venv by `make`.
"""

from __future__ import annotations

import copy
import importlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ACTION_YML = ROOT / "action.yml"
DOCKERFILE = ROOT / "Dockerfile"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.yml"))

# How the examples, the reusable workflow and the e2e workflow refer to this action.
SELF_USES = re.compile(r"^(\./?|\$/\.?/?|kube-release-rollback/kube-release-rollback@.+)$")

BOOLEAN_INPUTS = {
    "insecure-skip-tls-verify",
    "wait",
    "dry-run",
    "rollback-on-failure",
    "force-statefulset-rollback",
    "block",
    "allow-blocked",
    "ledger",
}
# The documented contract (issues 3-6): these defaults are what users rely on when they omit an input.
EXPECTED_DEFAULTS = {
    "namespace": "",  # issue 12: the kubeconfig context's namespace, else default
    "mode": "auto",
    "insecure-skip-tls-verify": "false",
    "wait": "true",
    "timeout": "5m",
    "dry-run": "false",
    "rollback-on-failure": "false",
    "force-statefulset-rollback": "true",
    "block": "true",
    "allow-blocked": "false",
    "github-token": "",
    "ledger": "true",
}
KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


# --------------------------------------------------------------------------------------------------------
# helpers


def tool(name: str) -> str:
    """Path of a lint tool: .venv/bin (where `make` installs it) first, then PATH."""
    for directory in (Path(sys.executable).parent, ROOT / ".venv" / "bin"):
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run `make venv` (the dev extra in pyproject.toml provides it)")
    return found


def run(args: list[str], cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_CONFIG"}}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def output(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def actionlint(files: Iterable[Path | str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # An explicit shellcheck path: actionlint silently skips shellcheck when the command is not found.
    args = [tool("actionlint"), "-no-color", "-oneline", f"-shellcheck={tool('shellcheck')}", "-pyflakes="]
    return run(args + [str(f) for f in files], cwd=cwd)


def zizmor(inputs: Iterable[Path | str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    args = [tool("zizmor"), "--offline", "--no-progress", "--color=never", "--format=plain"]
    return run(args + [str(i) for i in inputs], cwd=cwd)


def hadolint(dockerfile: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return run([tool("hadolint"), "--no-color", str(dockerfile)], cwd=cwd)


def rel(paths: Iterable[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def make_project(tmp_path: Path) -> Path:
    """A throwaway repository root holding copies of the action's files (actionlint needs a .git marker
    to resolve `uses: ./`)."""
    (tmp_path / ".git").mkdir()
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(ACTION_YML, tmp_path / "action.yml")
    shutil.copy(DOCKERFILE, tmp_path / "Dockerfile")
    return tmp_path


BASE_DIGEST = "9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7"  # the Dockerfile's, for mutations


def replace_once(text: str, old: str, new: str) -> str:
    assert old in text, f"mutation anchor not found (the file changed?): {old!r}"
    return text.replace(old, new, 1)


# --------------------------------------------------------------------------------------------------------
# the files exist (otherwise every gate below would pass vacuously)


def test_expected_files_exist() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"ci.yml", "e2e.yml", "release.yml", "rollback.yml"} <= names, names
    assert {"rollback-dispatch.yml", "deploy-pipeline.yml"} <= {p.name for p in EXAMPLES}
    for path in (ACTION_YML, DOCKERFILE, ROOT / ".dockerignore", ROOT / "entrypoint.py"):
        assert path.is_file(), path


# --------------------------------------------------------------------------------------------------------
# actionlint


def test_actionlint_workflows_and_examples_clean() -> None:
    proc = actionlint(rel(WORKFLOWS + EXAMPLES))
    assert proc.returncode == 0, output(proc)


ACTIONLINT_BREAKAGES = {
    # name: (file, old, new, expected text in the report)
    "unknown-input-to-the-action": (
        "e2e.yml",
        "          mode: deploy\n",
        "          mode: deploy\n          no-such-input: x\n",
        'input "no-such-input" is not defined',
    ),
    "unknown-input-in-the-reusable-workflow": (
        "rollback.yml",
        "          timeout: ${{ inputs.timeout }}\n",
        "          timeout: ${{ inputs.timeout }}\n          no-such-input: x\n",
        'input "no-such-input" is not defined',
    ),
    "undefined-output-of-the-action": (
        "e2e.yml",
        "steps.r1.outputs.mode }}",
        "steps.r1.outputs.no-such-output }}",
        'property "no-such-output" is not defined',
    ),
    "shellcheck-finding-in-run": (
        "ci.yml",
        "        run: make test\n",
        "        run: make $MAKE_TARGET\n",
        "SC2086",
    ),
    "unknown-event": (
        "ci.yml",
        "  pull_request:\n",
        "  pull_requests:\n",
        'unknown Webhook event "pull_requests"',
    ),
    "bad-job-dependency": (
        "release.yml",
        "    needs: image\n",
        "    needs: imagee\n",
        'job "publish" needs job "imagee" which does not exist',
    ),
}


@pytest.mark.parametrize("case", sorted(ACTIONLINT_BREAKAGES))
def test_actionlint_catches_a_broken_copy(tmp_path: Path, case: str) -> None:
    name, old, new, expected = ACTIONLINT_BREAKAGES[case]
    project = make_project(tmp_path)
    broken = project / ".github" / "workflows" / name
    broken.write_text(replace_once((ROOT / ".github" / "workflows" / name).read_text(), old, new))
    proc = actionlint([broken.relative_to(project)], cwd=project)
    assert proc.returncode != 0, output(proc)
    assert expected in proc.stdout, output(proc)


# --------------------------------------------------------------------------------------------------------
# zizmor (offline, default persona and severity: any finding fails)


def test_zizmor_clean() -> None:
    proc = zizmor([".github/", *rel(EXAMPLES)])
    assert proc.returncode == 0, output(proc)
    assert "No findings to report" in proc.stdout + proc.stderr, output(proc)


ZIZMOR_BAD_WORKFLOW = """\
name: bad
on:
  issues:
permissions:
  contents: write
jobs:
  greet:
    name: greet
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.issue.title }}"
"""


def test_zizmor_catches_a_broken_workflow(tmp_path: Path) -> None:
    workflow = tmp_path / ".github" / "workflows" / "bad.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(ZIZMOR_BAD_WORKFLOW)
    proc = zizmor([".github/"], cwd=tmp_path)
    assert proc.returncode != 0, output(proc)
    for audit in ("template-injection", "unpinned-uses", "artipacked"):
        assert audit in proc.stdout, output(proc)


def test_zizmor_catches_a_regression_in_a_real_workflow(tmp_path: Path) -> None:
    text = replace_once(
        (ROOT / ".github/workflows/ci.yml").read_text(), "persist-credentials: false", "fetch-depth: 1"
    )
    workflow = tmp_path / ".github" / "workflows" / "ci.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(text)
    shutil.copy(ROOT / ".github" / "zizmor.yml", tmp_path / ".github" / "zizmor.yml")
    proc = zizmor([".github/"], cwd=tmp_path)
    assert proc.returncode != 0, output(proc)
    assert "artipacked" in proc.stdout, output(proc)


def test_zizmor_config_exempts_only_the_action_itself(tmp_path: Path) -> None:
    """The unpinned-uses policy lets the action's own `...@v1` reference through, and nothing else."""
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    shutil.copy(ROOT / ".github" / "zizmor.yml", tmp_path / ".github" / "zizmor.yml")
    template = (
        "name: w\non: workflow_dispatch\npermissions: {}\njobs:\n"
        "  j:\n    name: j\n    runs-on: ubuntu-latest\n    steps:\n      - uses: USES\n"
    )
    (workflows / "self.yml").write_text(
        template.replace("USES", "kube-release-rollback/kube-release-rollback@v1")
    )
    proc = zizmor([".github/"], cwd=tmp_path)
    assert proc.returncode == 0, output(proc)
    (workflows / "other.yml").write_text(template.replace("USES", "someone-else/kube-release-rollback@v1"))
    proc = zizmor([".github/"], cwd=tmp_path)
    assert proc.returncode != 0, output(proc)
    assert "unpinned-uses" in proc.stdout and "other.yml" in proc.stdout, output(proc)


# --------------------------------------------------------------------------------------------------------
# hadolint and the shape of the image


def test_hadolint_clean() -> None:
    proc = hadolint(Path("Dockerfile"))
    assert proc.returncode == 0, output(proc)


def test_hadolint_catches_a_broken_copy(tmp_path: Path) -> None:
    text = re.sub(r"FROM python:3\.11-slim@sha256:[0-9a-f]{64} AS build", "FROM python:latest AS build",
                  DOCKERFILE.read_text())
    assert "python:latest" in text
    text = replace_once(
        text, "COPY requirements.txt", "RUN apt-get update && apt-get install curl\nCOPY requirements.txt"
    )
    broken = tmp_path / "Dockerfile"
    broken.write_text(text)
    proc = hadolint(broken, cwd=tmp_path)
    assert proc.returncode != 0, output(proc)
    for rule in ("DL3007", "DL3008", "DL3015"):
        assert rule in proc.stdout, output(proc)


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def image_problems(dockerfile: str, dockerignore: str) -> list[str]:
    problems = []
    instructions = dockerfile_instructions(dockerfile)
    stages = [args for keyword, args in instructions if keyword == "FROM"]
    bases = {args.split()[0] for args in stages}
    if not stages or len(bases) != 1 or not re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", min(bases)):
        problems.append(f"every stage must be python:3.11-slim pinned by one digest (tag@sha256:...): {stages}")
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    if not any(re.search(r'compileall [^&]*sysconfig[^&]*\["stdlib"\]', run) for run in runs):
        problems.append("the runtime stage must byte-compile the standard library (the base ships no .pyc)")
    copied = set()
    for keyword, args in instructions:
        if keyword == "ADD":
            problems.append(f"ADD is not used (COPY only): {args}")
        if keyword == "COPY" and "--from=" not in args:
            copied.update(args.split()[:-1])
        if keyword == "USER":
            problems.append("no USER: GitHub runs container actions as the default user (root)")
    if copied != {"requirements.txt", "rollback/", "entrypoint.py"}:
        problems.append(
            f"the image must get only requirements.txt, rollback/ and entrypoint.py, got {sorted(copied)}"
        )
    entrypoints = [args for keyword, args in instructions if keyword == "ENTRYPOINT"]
    if len(entrypoints) != 1 or not re.fullmatch(
        r'\["/[^"]*python[^"]*", "/app/entrypoint\.py"\]', entrypoints[-1]
    ):
        problems.append(
            f"ENTRYPOINT must be exec form with an absolute python and /app/entrypoint.py: {entrypoints}"
        )
    env = " ".join(args for keyword, args in instructions if keyword == "ENV")
    for setting in ("PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"):
        if setting not in env:
            problems.append(f"ENV {setting} is missing")
    if "pip install --no-cache-dir" not in dockerfile or "-r /tmp/requirements.txt" not in dockerfile:
        problems.append("dependencies must come from requirements.txt with pip install --no-cache-dir")
    ignore = [line.strip() for line in dockerignore.splitlines() if line.strip() and not line.startswith("#")]
    if not ignore or ignore[0] != "*":
        problems.append(".dockerignore must start by excluding everything ('*')")
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    # One `rollback/<package>/*.py` line per package: the classic builder does not descend into a directory
    # `*` excluded for a `**` re-include, which left rollback's subpackages out of the image.
    packages = {f"rollback/{p.parent.relative_to(ROOT / 'rollback').as_posix()}/*.py".replace("/./", "/")
                for p in (ROOT / "rollback").rglob("__init__.py")}
    if allowed != {"requirements.txt", "entrypoint.py"} | packages:
        problems.append(f".dockerignore must re-include exactly requirements.txt, entrypoint.py and one "
                        f"rollback/<package>/*.py line per package ({sorted(packages)}), got {sorted(allowed)}")
    return problems


def test_image_contents() -> None:
    assert image_problems(DOCKERFILE.read_text(), (ROOT / ".dockerignore").read_text()) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("COPY rollback/ /app/rollback/", "COPY . /app/"),
        ("COPY entrypoint.py /app/entrypoint.py", "COPY entrypoint.py /app/entrypoint.py\nUSER nobody"),
        ('ENTRYPOINT ["/opt/venv/bin/python", "/app/entrypoint.py"]', "ENTRYPOINT python /app/entrypoint.py"),
        ("PYTHONUNBUFFERED=1", "PYTHONUNBUFFERED=0"),
        (" AS build", "\nFROM python:3.12 AS build"),
        (f"slim@sha256:{BASE_DIGEST} AS build", "slim AS build"),  # a tag only
        (f"slim@sha256:{BASE_DIGEST}\n", "slim@sha256:" + "0" * 64 + "\n"),  # two different digests
        ("python -m compileall -q -j 0", "true"),
    ],
)
def test_image_contents_check_catches_a_broken_copy(old: str, new: str) -> None:
    broken = replace_once(DOCKERFILE.read_text(), old, new)
    assert image_problems(broken, (ROOT / ".dockerignore").read_text()) != []


def test_dockerignore_check_catches_a_broken_copy() -> None:
    dockerignore = (ROOT / ".dockerignore").read_text()
    assert image_problems(DOCKERFILE.read_text(), dockerignore + "!kubesim/\n") != []
    assert image_problems(DOCKERFILE.read_text(), dockerignore.replace("\n*\n", "\n", 1)) != []
    assert image_problems(DOCKERFILE.read_text(), dockerignore.replace("!rollback/*.py", "!rollback/")) != []
    # a package without its line (the classic builder would leave it out of the image)
    assert image_problems(DOCKERFILE.read_text(), dockerignore.replace("!rollback/github/*.py\n", "")) != []
    assert image_problems(DOCKERFILE.read_text(), dockerignore.replace("!rollback/github/*.py", "!rollback/**/*.py")
                          ) != []


def requirements_problems(text: str) -> list[str]:
    """requirements.txt is the image's exact runtime closure: `name==version` lines only."""
    problems = []
    pins = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
        if match is None:
            problems.append(f"not an exact pin: {line!r}")
        else:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    if not pins.get("kubernetes", "").startswith("37."):
        problems.append(
            f"kubernetes must be pinned to 37.x (pyproject: >=37,<38), got {pins.get('kubernetes')!r}"
        )
    if not pins.get("pyyaml", "").startswith("6."):
        problems.append(f"PyYAML must be pinned to 6.x (pyproject: >=6,<7), got {pins.get('pyyaml')!r}")
    return problems


def test_requirements_are_exact_pins() -> None:
    assert requirements_problems((ROOT / "requirements.txt").read_text()) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [("\nkubernetes==37.0.2\n", "\nkubernetes>=37\n"), ("\nkubernetes==37.0.2\n", "\nkubernetes==36.0.3\n")],
)
def test_requirements_check_catches_a_broken_copy(old: str, new: str) -> None:
    assert requirements_problems(replace_once((ROOT / "requirements.txt").read_text(), old, new)) != []


# --------------------------------------------------------------------------------------------------------
# action.yml


def action_problems(meta: Mapping[str, Any]) -> list[str]:
    problems = []
    for key in ("name", "description", "author"):
        if not isinstance(meta.get(key), str) or not meta[key].strip():
            problems.append(f"{key} is missing")
    branding = meta.get("branding") or {}
    if not branding.get("icon") or not branding.get("color"):
        problems.append("branding needs icon and color")
    runs = meta.get("runs") or {}
    if runs.get("using") != "docker":
        problems.append(f"runs.using must be 'docker', got {runs.get('using')!r}")
    if runs.get("image") != "Dockerfile":
        problems.append(
            f"runs.image must be 'Dockerfile' on main (release.yml rewrites it), got {runs.get('image')!r}"
        )
    if "args" in runs:
        problems.append("runs.args must not be used: inputs reach the container as INPUT_<NAME> variables")
    inputs = meta.get("inputs") or {}
    for name, spec in inputs.items():
        spec = spec or {}
        if not KEBAB.match(str(name)):
            problems.append(f"input {name!r} is not kebab-case")
        if not isinstance(spec.get("description"), str) or not spec["description"].strip():
            problems.append(f"input {name!r} has no description")
        if not isinstance(spec.get("required"), bool):
            problems.append(f"input {name!r} must say required: true/false")
        if "default" in spec:
            default = spec["default"]
            if not isinstance(default, str):
                problems.append(f"input {name!r}: default {default!r} must be a quoted string (e.g. 'false')")
            elif default.lower() in {"true", "false"} and default not in {"true", "false"}:
                problems.append(f"input {name!r}: boolean default must be 'true' or 'false', got {default!r}")
        if name in BOOLEAN_INPUTS and spec.get("default") not in {"true", "false"}:
            problems.append(
                f"boolean input {name!r} needs default 'true' or 'false', got {spec.get('default')!r}"
            )
        if name in EXPECTED_DEFAULTS and spec.get("default") != EXPECTED_DEFAULTS[name]:
            problems.append(
                f"input {name!r}: default {spec.get('default')!r}, documented {EXPECTED_DEFAULTS[name]!r}"
            )
    outputs = meta.get("outputs") or {}
    for name, spec in outputs.items():
        spec = spec or {}
        if not KEBAB.match(str(name)):
            problems.append(f"output {name!r} is not kebab-case")
        if not isinstance(spec.get("description"), str) or not spec["description"].strip():
            problems.append(f"output {name!r} has no description")
        if "value" in spec:
            problems.append(f"output {name!r}: 'value' is for composite actions only")
    if not inputs or not outputs:
        problems.append("action.yml declares no inputs or no outputs")
    return problems


def test_action_yml_is_valid() -> None:
    assert action_problems(load_yaml(ACTION_YML)) == []


def _drop_description(meta: dict[str, Any]) -> None:
    del meta["inputs"]["release"]["description"]


def _unquoted_boolean(meta: dict[str, Any]) -> None:
    meta["inputs"]["dry-run"]["default"] = False  # what `default: false` (unquoted) loads as


def _changed_default(meta: dict[str, Any]) -> None:
    meta["inputs"]["wait"]["default"] = "false"


def _node_action(meta: dict[str, Any]) -> None:
    meta["runs"] = {"using": "node24", "main": "index.js"}


def _args(meta: dict[str, Any]) -> None:
    meta["runs"]["args"] = ["${{ inputs.release }}"]


def _output_without_description(meta: dict[str, Any]) -> None:
    meta["outputs"]["mode"] = {}


def _snake_case_input(meta: dict[str, Any]) -> None:
    meta["inputs"]["dry_run"] = meta["inputs"].pop("dry-run")


def _no_branding(meta: dict[str, Any]) -> None:
    del meta["branding"]


ACTION_BREAKAGES = [
    _drop_description,
    _unquoted_boolean,
    _changed_default,
    _node_action,
    _args,
    _output_without_description,
    _snake_case_input,
    _no_branding,
]


@pytest.mark.parametrize("breakage", ACTION_BREAKAGES, ids=lambda f: f.__name__.strip("_"))
def test_action_yml_check_catches_a_broken_copy(breakage: Any) -> None:
    meta = copy.deepcopy(load_yaml(ACTION_YML))
    breakage(meta)
    assert action_problems(meta) != []


def test_boolean_defaults_are_quoted_in_the_file() -> None:
    """YAML would load an unquoted false as a bool; action.yml keeps every boolean default quoted."""
    text = ACTION_YML.read_text()
    unquoted = re.findall(r"^\s+default:\s*(?:true|false)\s*$", text, flags=re.MULTILINE)
    assert unquoted == []


# --------------------------------------------------------------------------------------------------------
# action.yml <-> code (rollback.inputs.INPUT_NAMES, rollback.report.OUTPUT_NAMES)


def normalise(name: str) -> str:
    name = name.strip().lower()
    return name.removeprefix("input_")


def code_names(module: str, attribute: str) -> set[str]:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"cannot import {module} ({exc}); it must define {attribute} for the action.yml check")
    names = getattr(mod, attribute, None)
    if names is None:
        pytest.fail(f"{module} has no {attribute}: the action.yml check needs the names the code uses")
    if isinstance(names, str) or not isinstance(names, Iterable):
        pytest.fail(f"{module}.{attribute} must be a collection of names, got {type(names).__name__}")
    return {normalise(str(n)) for n in names}


def drift(kind: str, declared: Iterable[str], used: Iterable[str], module: str) -> list[str]:
    declared_set, used_set = {normalise(n) for n in declared}, set(used)
    problems = []
    if missing := sorted(used_set - declared_set):
        problems.append(f"{kind}s used by {module} but not declared in action.yml: {missing}")
    if unused := sorted(declared_set - used_set):
        problems.append(f"{kind}s declared in action.yml but not used by {module}: {unused}")
    return problems


def test_action_inputs_match_the_code() -> None:
    used = code_names("rollback.inputs", "INPUT_NAMES")
    assert drift("input", load_yaml(ACTION_YML)["inputs"], used, "rollback.inputs.INPUT_NAMES") == []


def test_action_outputs_match_the_code() -> None:
    used = code_names("rollback.report", "OUTPUT_NAMES")
    assert drift("output", load_yaml(ACTION_YML)["outputs"], used, "rollback.report.OUTPUT_NAMES") == []


def test_drift_check_catches_both_directions() -> None:
    declared = set(load_yaml(ACTION_YML)["inputs"])
    code = (declared - {"dry-run"}) | {"read-but-undeclared"}
    problems = drift("input", declared, code, "code")
    assert len(problems) == 2, problems
    assert "read-but-undeclared" in problems[0] and "dry-run" in problems[1]


# --------------------------------------------------------------------------------------------------------
# every use of the action in workflows and examples passes only real inputs and reads only real outputs
# (actionlint checks `uses: ./` itself, but not the `owner/kube-release-rollback@v1` form)


def self_use_problems(
    workflow: Mapping[str, Any], text: str, inputs: set[str], outputs: set[str]
) -> list[str]:
    problems = []
    step_ids = set()
    for job_id, job in (workflow.get("jobs") or {}).items():
        for step in (job or {}).get("steps") or []:
            if not SELF_USES.match(str(step.get("uses", ""))):
                continue
            if step.get("id"):
                step_ids.add(step["id"])
            for key in step.get("with") or {}:
                if key not in inputs:
                    problems.append(f"job {job_id}: input {key!r} is not in action.yml")
    for step_id, name in re.findall(r"steps\.([A-Za-z_][\w-]*)\.outputs\.([\w-]+)", text):
        if step_id in step_ids and name not in outputs:
            problems.append(f"steps.{step_id}.outputs.{name} is not an output in action.yml")
    return problems


def _action_names() -> tuple[set[str], set[str]]:
    meta = load_yaml(ACTION_YML)
    return set(meta["inputs"]), set(meta["outputs"])


@pytest.mark.parametrize("path", WORKFLOWS + EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_uses_of_the_action_match_action_yml(path: Path) -> None:
    inputs, outputs = _action_names()
    text = path.read_text()
    assert self_use_problems(load_yaml(path), text, inputs, outputs) == []


def test_uses_check_catches_a_broken_copy() -> None:
    inputs, outputs = _action_names()
    path = ROOT / "examples" / "deploy-pipeline.yml"
    text = replace_once(
        path.read_text(), "steps.deploy.outputs.run-on-rollback", "steps.deploy.outputs.run-on-undo"
    )
    text = replace_once(
        text, "          rollback-on-failure: 'true'\n", "          rollback_on_failure: 'true'\n"
    )
    problems = self_use_problems(yaml.safe_load(text), text, inputs, outputs)
    assert any("run-on-undo" in p for p in problems), problems
    assert any("rollback_on_failure" in p for p in problems), problems
