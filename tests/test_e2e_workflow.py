"""Runs the job of ``.github/workflows/e2e.yml`` against kubesim, step by step, like a tiny Actions runner.

The workflow is meant for a kind cluster on GitHub (Docker, ``uses: ./`` built from the Dockerfile), so its
shell assertions would otherwise only ever run there. Here every step runs as the runner would run it:

* ``run:`` steps: ``bash --noprofile --norc -eo pipefail`` (``shell: bash``) in ``GITHUB_WORKSPACE``, with the
  environment the runner composes (workflow ``env:`` < job ``env:`` < ``GITHUB_ENV`` < step ``env:``) and
  fresh ``GITHUB_ENV``/``GITHUB_OUTPUT``/``GITHUB_STEP_SUMMARY``/``GITHUB_PATH`` files read back afterwards;
* ``uses: ./`` steps: ``python entrypoint.py`` with ``INPUT_<NAME>`` for every input of action.yml (hyphens
  kept, the default where ``with:`` gives none) and the same environment, as the runner passes it into a
  container action; ``steps.<id>.outputs``/``outcome``/``conclusion`` are recorded for later steps;
* ``${{ }}`` expressions in ``with:``, ``env:``, ``if:`` and scripts are evaluated by a small evaluator that
  knows exactly the contexts and functions this job needs and raises ``ExpressionError`` for anything else,
  so a new expression fails the test instead of being misread.

Only the steps that need GitHub or Docker are stood in for, recognised by what they are (never by name or
index): ``actions/checkout`` (the test runs from this checkout), ``helm/kind-action`` (kubesim is the cluster,
``KUBECONFIG`` points at it from the start) and the kind-config script (``docker network inspect``). Any other
``uses:`` is an error. kubesim's clock runs fast so the failing deploy's progress deadline passes in seconds.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import parse_github_output

import kubesim

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "e2e.yml"
ACTION_YML = ROOT / "action.yml"

TIME_SCALE = 10  # progressDeadlineSeconds: 30 of the failing deploy passes in 3 real seconds
STEP_TIMEOUT = 200.0  # real seconds for a step without timeout-minutes (the action's own timeouts are <= 3m)

# Steps that cannot run here, and why. A step is stood in for only when it is one of these.
STAND_IN_ACTIONS = {
    "actions/checkout": "checks out the repository: the test runs from this checkout",
    "helm/kind-action": "creates a kind cluster: kubesim is the cluster, KUBECONFIG points at it from the start",
}
KIND_CONFIG_MARK = "docker network inspect"
KIND_CONFIG = "kind config: asks Docker for the bridge gateway"

STEP_KEYS = {"name", "id", "uses", "with", "run", "env", "if", "continue-on-error", "shell", "timeout-minutes",
             "working-directory"}
JOB_KEYS = {"name", "runs-on", "timeout-minutes", "permissions", "concurrency", "defaults", "env", "steps"}


def load_yaml(text: str) -> Any:
    """YAML as the runner reads it: every scalar is its text (``on`` stays ``on``, ``'1.0.0'`` a string)."""
    return yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader builds plain str/list/dict only


# -- expressions ----------------------------------------------------------------------------------------------


class ExpressionError(ValueError):
    """An expression this runner does not know: the test fails instead of guessing."""


STATUS_FUNCTIONS = ("success", "failure", "always", "cancelled")

_TOKEN = re.compile(r"""\s*(?:
      (?P<str>'(?:[^']|'')*')
    | (?P<num>\d+(?:\.\d+)?)
    | (?P<op>==|!=|&&|\|\||[!().])
    | (?P<id>[A-Za-z_][A-Za-z0-9_-]*)
    )""", re.X)


def _tokens(text: str) -> list[tuple[str, str]]:
    found, pos = [], 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExpressionError(f"unsupported syntax at {text[pos:]!r} in ${{{{ {text} }}}}")
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group(kind)))
        pos = match.end()
    return found


class _Parser:
    """or := and ('||' and)* ; and := eq ('&&' eq)* ; eq := unary (('=='|'!=') unary)? ;
    unary := '!' unary | '(' or ')' | literal | status-function '()' | context ('.' name)+"""

    def __init__(self, text: str):
        self.text, self.tokens, self.pos = text, _tokens(text), 0

    def parse(self) -> tuple[Any, ...]:
        node = self.or_()
        if self.pos != len(self.tokens):
            self.fail(f"unexpected {self.tokens[self.pos][1]!r}")
        return node

    def fail(self, why: str) -> None:
        raise ExpressionError(f"{why} in ${{{{ {self.text} }}}}")

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            self.fail("unexpected end")
        token = self.tokens[self.pos]
        if expected is not None and token[1] != expected:
            self.fail(f"expected {expected!r}, got {token[1]!r}")
        self.pos += 1
        return token

    def or_(self) -> tuple[Any, ...]:
        node = self.and_()
        while self.peek() == "||":
            self.take()
            node = ("or", node, self.and_())
        return node

    def and_(self) -> tuple[Any, ...]:
        node = self.eq()
        while self.peek() == "&&":
            self.take()
            node = ("and", node, self.eq())
        return node

    def eq(self) -> tuple[Any, ...]:
        node = self.unary()
        if self.peek() in ("==", "!="):
            op = self.take()[1]
            node = ("eq" if op == "==" else "ne", node, self.unary())
        return node

    def unary(self) -> tuple[Any, ...]:
        kind, value = self.take()
        if value == "!":
            return ("not", self.unary())
        if value == "(":
            node = self.or_()
            self.take(")")
            return node
        if kind == "str":
            return ("lit", value[1:-1].replace("''", "'"))
        if kind == "num":
            return ("lit", float(value))
        if kind != "id":
            self.fail(f"unexpected {value!r}")
        if value in ("true", "false"):
            return ("lit", value == "true")
        if value == "null":
            return ("lit", None)
        if self.peek() == "(":
            if value not in STATUS_FUNCTIONS:
                self.fail(f"unsupported function {value}()")
            self.take("(")
            self.take(")")
            return ("call", value)
        path = [value]
        while self.peek() == ".":
            self.take()
            kind, name = self.take()
            if kind != "id":
                self.fail(f"unsupported property {name!r}")
            path.append(name)
        return ("ctx", tuple(path))


def _has_status_call(node: tuple[Any, ...]) -> bool:
    return node[0] == "call" or any(isinstance(part, tuple) and _has_status_call(part) for part in node[1:])


def _truthy(value: Any) -> bool:
    if isinstance(value, float):
        return value != 0 and not math.isnan(value)
    return bool(value)


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool | float):
        return float(value)
    text = str(value).strip()
    try:
        return float(text) if text else 0.0
    except ValueError:
        return math.nan


def _equal(left: Any, right: Any) -> bool:
    """GitHub's loose equality: strings case-insensitively, mixed types compared as numbers."""
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if type(left) is type(right):
        return bool(left == right)
    return _number(left) == _number(right)


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


@dataclass
class ExpressionContext:
    """What an expression can see: ``steps``, ``env``, ``runner.temp`` and the job status."""

    steps: Mapping[str, StepResult]  # id -> result, only steps before the current one
    known_ids: set[str]  # every step id of the job
    env: Mapping[str, str]
    runner_temp: str
    job_failed: bool
    contexts: Mapping[str, Any] = field(default_factory=dict)  # more contexts as nested maps (inputs, needs…)

    def lookup(self, path: tuple[str, ...]) -> Any:
        head = path[0]
        if head == "steps" and len(path) >= 3:
            step_id = path[1]
            if step_id not in self.known_ids:
                raise ExpressionError(f"steps.{step_id}: no step of the job has this id")
            if step_id not in self.steps:
                raise ExpressionError(f"steps.{step_id} is read before that step runs")
            step = self.steps[step_id]
            if len(path) == 3 and path[2] in ("outcome", "conclusion"):
                return getattr(step, path[2])
            if len(path) == 4 and path[2] == "outputs":
                return step.outputs.get(path[3])
        elif head == "env" and len(path) == 2:
            return self.env.get(path[1])
        elif path == ("runner", "temp"):
            return self.runner_temp
        elif head in self.contexts:
            value: Any = self.contexts
            for name in path:
                if not isinstance(value, Mapping) or name not in value:
                    raise ExpressionError(f"unsupported context {'.'.join(path)}")
                value = value[name]
            return value
        raise ExpressionError(f"unsupported context {'.'.join(path)}")

    def evaluate(self, node: tuple[Any, ...]) -> Any:
        op = node[0]
        if op == "lit":
            return node[1]
        if op == "ctx":
            return self.lookup(node[1])
        if op == "call":
            return {"success": not self.job_failed, "failure": self.job_failed, "always": True,
                    "cancelled": False}[node[1]]
        if op == "not":
            return not _truthy(self.evaluate(node[1]))
        if op == "and":
            left = self.evaluate(node[1])
            return self.evaluate(node[2]) if _truthy(left) else left
        if op == "or":
            left = self.evaluate(node[1])
            return left if _truthy(left) else self.evaluate(node[2])
        if op in ("eq", "ne"):
            same = _equal(self.evaluate(node[1]), self.evaluate(node[2]))
            return same if op == "eq" else not same
        raise AssertionError(node)

    def substitute(self, text: str) -> str:
        """Replace every ``${{ expr }}`` in ``text`` by its value as a string."""
        return re.sub(r"\$\{\{(.*?)\}\}", lambda m: to_text(self.evaluate(_Parser(m.group(1)).parse())), text,
                      flags=re.S)

    def condition(self, text: str | None) -> bool:
        """An ``if:``: with or without ``${{ }}``; without a status function it means ``success() && (...)``."""
        source = (text or "").strip()
        if source.startswith("${{") and source.endswith("}}") and source.count("${{") == 1:
            source = source[3:-2]
        if not source:
            return not self.job_failed
        node = _Parser(source).parse()
        if not _has_status_call(node):
            node = ("and", ("call", "success"), node)
        return _truthy(self.evaluate(node))


# -- the runner -----------------------------------------------------------------------------------------------


class WorkflowError(AssertionError):
    """The workflow uses something this runner cannot run faithfully."""


@dataclass
class StepResult:
    index: int
    name: str
    id: str | None
    status: str  # "ran", "skipped" (its if: was false) or "stood in" (needs GitHub or Docker)
    outcome: str = "skipped"  # success, failure or skipped
    conclusion: str = "skipped"
    output: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    stand_in: str | None = None  # why it could not run here


@dataclass
class JobResult:
    steps: list[StepResult]

    @property
    def failed(self) -> list[StepResult]:
        return [step for step in self.steps if step.conclusion == "failure"]

    def report(self, tail: int = 6000) -> str:
        """Every step's status, then the output of the failed steps and of whatever ran after the first."""
        parts = ["steps:", *(f"  {s.index:>2} {s.status:<8} {s.outcome:<8} {s.name}" for s in self.steps)]
        first = min((s.index for s in self.failed), default=len(self.steps))
        for step in self.steps:
            if step.outcome == "failure" or (step.status == "ran" and step.index > first):
                parts += [f"--- output of step {step.index} {step.name!r} ({step.outcome}):", step.output[-tail:]]
        return "\n".join(parts)


def step_label(step: Mapping[str, Any]) -> str:
    if step.get("name"):
        return str(step["name"])
    if step.get("uses"):
        return f"Run {step['uses']}"
    return "Run " + str(step.get("run", "")).strip().splitlines()[0]


def stand_in_reason(step: Mapping[str, Any]) -> str | None:
    """Why the step cannot run here (it is then stood in for), or None when it runs; an error otherwise."""
    uses = step.get("uses")
    if uses is not None:
        if uses == "./":
            return None
        action = uses.split("@", 1)[0]
        if action in STAND_IN_ACTIONS and "@" in uses:
            return f"{action}: {STAND_IN_ACTIONS[action]}"
        raise WorkflowError(f"step {step_label(step)!r}: this runner knows no action {uses!r}; run it here or "
                            f"add it to STAND_IN_ACTIONS with the reason it cannot run")
    if KIND_CONFIG_MARK in str(step.get("run", "")):
        return KIND_CONFIG
    return None


class JobRunner:
    def __init__(self, workflow: Mapping[str, Any], action: Mapping[str, Any], kubeconfig: str, base: Path,
                 python: str = sys.executable, contexts: Mapping[str, Any] | None = None,
                 self_uses: tuple[str, ...] = (), env: Mapping[str, str] | None = None):
        """``contexts`` adds expression contexts (``inputs``, ``secrets``, ``github``, ``needs``);
        ``self_uses`` names under which a workflow uses this action (run like ``uses: ./``); ``env`` replaces
        entries of the runner's environment (e.g. ``GITHUB_API_URL`` of a local fake)."""
        if "on" not in workflow or "jobs" not in workflow:
            raise WorkflowError("not a workflow (no on: or jobs:)")
        jobs = workflow["jobs"]
        if len(jobs) != 1:
            raise WorkflowError(f"expected a single job, got {sorted(jobs)}")
        (self.job,) = jobs.values()
        unknown = set(self.job) - JOB_KEYS
        if unknown:
            raise WorkflowError(f"job keys this runner does not handle: {sorted(unknown)}")
        self.workflow, self.action, self.python = workflow, action, python
        self.workspace, self.temp, self.home, self.files = (base / d for d in ("workspace", "temp", "home",
                                                                                "file_commands"))
        for directory in (self.workspace, self.temp, self.home, self.files):
            directory.mkdir(parents=True, exist_ok=True)
        self.base_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "KUBECONFIG": kubeconfig,  # what kind-action leaves behind (there: ~/.kube/config)
            "RUNNER_TEMP": str(self.temp),
            "RUNNER_OS": "Linux",
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_WORKFLOW": str(workflow.get("name", "")),
            "GITHUB_JOB": next(iter(jobs)),
            "GITHUB_ACTOR": "octocat",
            "GITHUB_REPOSITORY": "acme/kube-release-rollback",
            "GITHUB_RUN_ID": "1234567890",
            "GITHUB_RUN_NUMBER": "1",
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": "https://api.github.com",
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
        }
        self.base_env.update(env or {})
        self.contexts = dict(contexts or {})
        self.self_uses = self_uses
        self.env_context: dict[str, str] = {**dict(workflow.get("env") or {}), **dict(self.job.get("env") or {})}
        self.path_entries: list[str] = []
        self.steps = list(self.job["steps"])
        self.known_ids = {str(s["id"]) for s in self.steps if s.get("id")}

    # shells ---------------------------------------------------------------------------------------------------

    def shell(self, step: Mapping[str, Any]) -> str:
        shell = (step.get("shell") or ((self.job.get("defaults") or {}).get("run") or {}).get("shell")
                 or ((self.workflow.get("defaults") or {}).get("run") or {}).get("shell"))
        if shell != "bash":
            raise WorkflowError(f"step {step_label(step)!r}: shell {shell!r} (this runner runs shell: bash only)")
        return shell

    # environment and file commands ------------------------------------------------------------------------------

    def file_commands(self) -> dict[str, Path]:
        token = uuid.uuid4().hex
        files = {name: self.files / f"{name.lower()}_{token}" for name in
                 ("GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_PATH", "GITHUB_STATE")}
        for path in files.values():
            path.write_text("", encoding="utf-8")
        return files

    def environment(self, step_env: Mapping[str, str], files: Mapping[str, Path]) -> dict[str, str]:
        env = {**self.base_env, **self.env_context, **step_env, **{k: str(v) for k, v in files.items()}}
        env["PATH"] = os.pathsep.join([*reversed(self.path_entries), env["PATH"]])
        return env

    def read_back(self, files: Mapping[str, Path]) -> dict[str, str]:
        """Apply GITHUB_ENV and GITHUB_PATH for later steps; return the step's outputs."""
        self.env_context.update(parse_github_output(files["GITHUB_ENV"].read_text(encoding="utf-8")))
        self.path_entries += [line for line in files["GITHUB_PATH"].read_text(encoding="utf-8").splitlines()
                              if line.strip()]
        return parse_github_output(files["GITHUB_OUTPUT"].read_text(encoding="utf-8"))

    # steps ----------------------------------------------------------------------------------------------------

    def context(self, results: list[StepResult]) -> ExpressionContext:
        return ExpressionContext({r.id: r for r in results if r.id}, self.known_ids, dict(self.env_context),
                                 str(self.temp), any(r.conclusion == "failure" for r in results),
                                 self.contexts)

    def run(self, on_step: Callable[[StepResult], None] | None = None) -> JobResult:
        results: list[StepResult] = []
        for index, step in enumerate(self.steps):
            unknown = set(step) - STEP_KEYS
            if unknown or ("uses" in step) == ("run" in step):
                raise WorkflowError(f"step {index} {step_label(step)!r}: needs exactly one of uses:/run:, "
                                    f"keys this runner does not handle: {sorted(unknown)}")
            result = self.run_step(index, step, results)
            results.append(result)
            if on_step is not None:
                on_step(result)
        return JobResult(results)

    def run_step(self, index: int, step: Mapping[str, Any], results: list[StepResult]) -> StepResult:
        name, step_id = step_label(step), step.get("id")
        result = StepResult(index, name, str(step_id) if step_id else None, "skipped")
        context = self.context(results)
        step_env = {k: context.substitute(str(v)) for k, v in (step.get("env") or {}).items()}
        with_ = {k: context.substitute(str(v)) for k, v in (step.get("with") or {}).items()}
        script = context.substitute(str(step["run"])) if "run" in step else None
        continue_on_error = context.substitute(str(step.get("continue-on-error", "false")))
        if continue_on_error not in ("true", "false"):
            raise WorkflowError(f"step {name!r}: continue-on-error {continue_on_error!r}")
        if not context.condition(step.get("if")):
            return result
        reason = None if step.get("uses") in self.self_uses else stand_in_reason(step)
        if reason is not None:
            result.status, result.stand_in = "stood in", reason
            result.outcome = result.conclusion = "success"
            return result
        timeout = float(step.get("timeout-minutes", 0)) * 60 or STEP_TIMEOUT
        cwd = self.workspace / str(step.get("working-directory", "."))
        files = self.file_commands()
        if script is not None:
            self.shell(step)
            script_path = self.temp / f"{uuid.uuid4()}.sh"
            script_path.write_text(script, encoding="utf-8")
            command = ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", str(script_path)]
            env = self.environment(step_env, files)
        else:
            unknown_inputs = set(with_) - set(self.action["inputs"])
            if unknown_inputs:
                raise WorkflowError(f"step {name!r}: inputs not in action.yml: {sorted(unknown_inputs)}")
            inputs = {"INPUT_" + key.replace(" ", "_").upper(): with_.get(key, str(spec.get("default", "")))
                      for key, spec in self.action["inputs"].items()}
            command = [self.python, str(ROOT / "entrypoint.py")]
            env = {**self.environment(step_env, files), **inputs}
        try:
            done = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, timeout=timeout)
            code, output = done.returncode, done.stdout
        except subprocess.TimeoutExpired as expired:
            code = -1
            output = (expired.output or b"").decode() if isinstance(expired.output, bytes) else expired.output or ""
            output += f"\n[step timed out after {timeout:.0f}s]"
        result.status, result.output = "ran", output + ("" if code == 0 else f"\n[exit code {code}]")
        result.outputs = self.read_back(files)
        result.outcome = "success" if code == 0 else "failure"
        result.conclusion = "success" if continue_on_error == "true" else result.outcome
        return result


# -- running e2e.yml ------------------------------------------------------------------------------------------


def workflow_text() -> str:
    return WORKFLOW.read_text(encoding="utf-8")


def action_meta() -> Any:
    return load_yaml(ACTION_YML.read_text(encoding="utf-8"))


@pytest.fixture
def fast_sim(tmp_path: Path) -> Iterator[kubesim.Sim]:
    with kubesim.serve(kubeconfig_path=str(tmp_path / "sim-kubeconfig")) as sim:
        sim.clock.scale = TIME_SCALE
        yield sim


def run_workflow(workflow: Mapping[str, Any], sim: kubesim.Sim, base: Path) -> JobResult:
    return JobRunner(workflow, action_meta(), sim.kubeconfig, base).run()


@pytest.mark.timeout(240)
def test_e2e_workflow_job_passes_against_kubesim(fast_sim: kubesim.Sim, tmp_path: Path) -> None:
    workflow = load_yaml(workflow_text())
    job = run_workflow(workflow, fast_sim, tmp_path / "runner")
    assert not job.failed, job.report()

    steps = list(next(iter(workflow["jobs"].values()))["steps"])
    assert len(job.steps) == len(steps)
    # Stood in for: only the known kinds, each recognised by what it is.
    stood_in = [s.stand_in for s in job.steps if s.status == "stood in"]
    known = {KIND_CONFIG, *(f"{a}: {why}" for a, why in STAND_IN_ACTIONS.items())}
    assert set(stood_in) <= known and len(stood_in) >= 1, stood_in
    # Every action step and every other script ran; only the failure() diagnostics were skipped by their if:.
    for step, result in zip(steps, job.steps, strict=True):
        if step.get("uses") == "./" or (step.get("run") and KIND_CONFIG_MARK not in step["run"]
                                        and "failure()" not in str(step.get("if", ""))):
            assert result.status == "ran", (result.name, job.report())
        if "failure()" in str(step.get("if", "")):
            assert result.status == "skipped", (result.name, job.report())
    # The expected failures (continue-on-error) did fail, and the job went on.
    tolerated = [s for s in job.steps if s.outcome == "failure"]
    assert tolerated and all(s.conclusion == "success" for s in tolerated), job.report()


@pytest.mark.timeout(120)
def test_a_broken_expectation_fails_the_job_at_its_step(fast_sim: kubesim.Sim, tmp_path: Path) -> None:
    workflow = load_yaml(workflow_text())
    steps = next(iter(workflow["jobs"].values()))["steps"]
    line = 'eq mode "$MODE" deploy'
    target = next(i for i, s in enumerate(steps)
                  if "steps.r1.outputs.mode" in " ".join((s.get("env") or {}).values()) and line in s.get("run", ""))
    steps[target]["run"] = steps[target]["run"].replace(line, 'eq mode "$MODE" rollback', 1)

    job = run_workflow(workflow, fast_sim, tmp_path / "runner")

    assert [s.index for s in job.failed] == [target], job.report()
    broken = job.steps[target]
    assert "::error::mode: expected 'rollback', got 'deploy'" in broken.output, broken.output
    # Later steps are skipped, except the failure() diagnostics, which run.
    for step, result in zip(steps[target + 1:], job.steps[target + 1:], strict=True):
        expected = "ran" if "failure()" in str(step.get("if", "")) else "skipped"
        assert result.status == expected, (result.name, job.report())
    assert any(s.status == "ran" and "deployment.apps/web" in s.output for s in job.steps[target + 1:]), \
        job.report()


@pytest.mark.parametrize("expression", [
    "github.ref",                          # a context the runner does not provide
    "steps.nope.outputs.mode",             # no step has this id
    "contains(steps.r1.outputs.mode, 'x')",  # a function it does not implement
    "steps.r1.outputs.mode > 'a'",         # an operator it does not implement
    "matrix['x']",
])
def test_unknown_expressions_fail_loudly(expression: str) -> None:
    context = ExpressionContext({}, {"r1"}, {}, "RUNNER_TEMP", False)
    with pytest.raises(ExpressionError):
        context.substitute("${{ " + expression + " }}")


def test_expressions_the_workflow_uses() -> None:
    r1 = StepResult(0, "r1", "r1", "ran", "failure", "success", outputs={"mode": "deploy", "rolled-back": "true"})
    ok = ExpressionContext({"r1": r1}, {"r1", "later"}, {"NS": "e2e"}, "_temp", False)
    failed = ExpressionContext({"r1": r1}, {"r1"}, {}, "_temp", True)
    assert ok.substitute("${{ steps.r1.outputs.mode }}/${{ steps.r1.outputs.rolled-back }}") == "deploy/true"
    assert ok.substitute("${{ steps.r1.outcome }} ${{ steps.r1.conclusion }}") == "failure success"
    assert ok.substitute("${{ runner.temp }}/kind.yaml ${{ env.NS }}${{ env.MISSING }}") == "_temp/kind.yaml e2e"
    assert ok.substitute("${{ 'it''s' }}") == "it's"
    assert ok.condition(None) and not failed.condition(None)
    assert not ok.condition("failure()") and failed.condition("${{ failure() }}")
    assert failed.condition("always()") and ok.condition("!cancelled()")
    assert ok.condition("steps.r1.outputs.mode == 'DEPLOY' && steps.r1.outcome != 'success'")
    assert not failed.condition("steps.r1.outputs.mode == 'deploy'")  # implicit success() &&
    assert ok.condition("steps.r1.outputs.mode == 'x' || env.NS == 'e2e'")
    with pytest.raises(ExpressionError):
        ok.substitute("${{ steps.later.outputs.mode }}")  # read before it runs
