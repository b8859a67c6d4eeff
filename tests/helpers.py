"""Shared helpers for the engine tests that run ``python -m rollback`` (``rollback.cli.main``) against kubesim.

    from helpers import make_deployment, run_cli

    def test_x(sim):
        make_deployment(sim, "web", image="registry.example/web:0")
        run = run_cli(sim, "--mode", "deploy", "--release", "1.0.0", "--images", "web=registry.example/web:1",
                      "--deployment", "web")
        assert run.code == 0 and run.outputs["mode"] == "deploy"

``run_cli`` gives the CLI an environment of its own (no variable of this machine leaks in), fresh
``GITHUB_OUTPUT``/``GITHUB_STEP_SUMMARY`` files, and parses the outputs file with the runner's rules.
``RequestLog`` records every request kubesim answers, so a test can assert that nothing was written.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kubesim
from rollback.cli import main

CHANGE_CAUSE = "kubernetes.io/change-cause"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
OWN_PREFIX = "kube-release-rollback.io/"
DEFAULT_IMAGE = "registry.example/web:0"

# Workflow commands this action may print; any other line starting with "::" is an injection.
OUR_COMMANDS = ("add-mask", "debug", "error", "warning", "notice", "group", "endgroup")


# -- objects ---------------------------------------------------------------------------------------------------


def deployment_manifest(name: str = "web", namespace: str = "default", image: str = DEFAULT_IMAGE,
                        replicas: int = 1, revision_history_limit: int | None = None, container: str = "web",
                        change_cause: str | None = None, **spec: Any) -> dict[str, Any]:
    """A Deployment with one container and ``app: NAME`` labels; extra keyword arguments go into ``spec``."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"app": name}}
    if change_cause is not None:
        meta["annotations"] = {CHANGE_CAUSE: change_cause}
    body: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": [{"name": container, "image": image}]}},
        **spec,
    }
    if revision_history_limit is not None:
        body["revisionHistoryLimit"] = revision_history_limit
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": body}


def make_deployment(sim: kubesim.Sim, name: str = "web", namespace: str = "default", image: str = DEFAULT_IMAGE,
                    replicas: int = 1, revision_history_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
    """Create the Deployment (and its namespace) in ``sim`` and wait until its controller has observed it."""
    if namespace != "default" and sim.store.find(_rt("Namespace"), None, namespace) is None:
        sim.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    sim.apply(deployment_manifest(name, namespace, image, replicas, revision_history_limit, **kwargs))
    return sim.wait_until(lambda: _observed(get_deployment(sim, name, namespace)))


def _rt(kind: str) -> Any:
    from kubesim.resources import RESOURCES

    return next(rt for rt in RESOURCES if rt.kind == kind)


def _observed(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    status = obj.get("status") or {}
    return obj if int(status.get("observedGeneration") or 0) >= int(obj["metadata"].get("generation") or 0) else None


def get_deployment(sim: kubesim.Sim, name: str = "web", namespace: str = "default") -> dict[str, Any]:
    return copy.deepcopy(sim.store.get(_rt("Deployment"), namespace, name))


def replica_sets(sim: kubesim.Sim, name: str = "web", namespace: str = "default") -> list[dict[str, Any]]:
    """The ReplicaSets the Deployment controls (controller ownerRef uid), by revision number."""
    uid = get_deployment(sim, name, namespace)["metadata"]["uid"]
    owned = [rs for rs in sim.store.list(_rt("ReplicaSet"), namespace)[0]
             if any(ref.get("controller") and ref.get("uid") == uid
                    for ref in rs["metadata"].get("ownerReferences") or [])]
    return sorted(owned, key=lambda rs: int(rs["metadata"].get("annotations", {}).get(REVISION, "0")))


def history_pairs(sim: kubesim.Sim, name: str = "web", namespace: str = "default") -> list[tuple[int, str | None]]:
    """``(revision, change-cause)`` per ReplicaSet, ascending: what ``kubectl rollout history`` lists."""
    return [(int(rs["metadata"]["annotations"][REVISION]), rs["metadata"]["annotations"].get(CHANGE_CAUSE))
            for rs in replica_sets(sim, name, namespace)]


def image_of(obj: Mapping[str, Any]) -> str:
    """The first container's image of a Deployment or ReplicaSet."""
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def app_state(sim: kubesim.Sim, namespace: str = "default") -> dict[str, str]:
    """name → resourceVersion of every Deployment and ReplicaSet in ``namespace`` (compare before/after)."""
    state = {}
    for kind in ("Deployment", "ReplicaSet"):
        for obj in sim.store.list(_rt(kind), namespace)[0]:
            state[f"{kind}/{obj['metadata']['name']}"] = obj["metadata"]["resourceVersion"]
    return state


def wait_settled(sim: kubesim.Sim, quiet: float = 0.25, timeout: float = 15.0) -> int:
    """Wait until no object changed for ``quiet`` real seconds; returns the store's resourceVersion then."""
    deadline = time.monotonic() + timeout
    last, since = sim.store.resource_version(), time.monotonic()
    while True:
        time.sleep(0.02)
        now_rv = sim.store.resource_version()
        if now_rv != last:
            last, since = now_rv, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now_rv
        if time.monotonic() > deadline:
            raise TimeoutError(f"kubesim kept changing for {timeout}s")


# -- requests --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: Mapping[str, list[str]]
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def dry_run(self) -> bool:
        return bool(self.query.get("dryRun"))


@dataclass
class RequestLog:
    """Records every request kubesim's API handles (injected failures are answered before, so not recorded).

    ``before`` runs before a request is handled and may act as a concurrent writer; it receives the request.
    """

    sim: kubesim.Sim
    before: Callable[[Any], None] | None = None
    entries: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> RequestLog:
        api = self.sim.api
        original = api.handle

        def handle(req: Any) -> Any:
            with self.lock:
                self.entries.append(Recorded(req.method, req.path, copy.deepcopy(req.query), req.content_type,
                                             bytes(req.body or b"")))
            if self.before is not None:
                self.before(req)
            return original(req)

        self._original = original
        api.handle = handle  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self.sim.api.handle = self._original  # type: ignore[method-assign]

    def writes(self, include_dry_run: bool = True) -> list[Recorded]:
        with self.lock:
            return [e for e in self.entries
                    if e.method not in ("GET", "HEAD", "OPTIONS") and (include_dry_run or not e.dry_run)]

    def changes(self, include_dry_run: bool = True) -> list[Recorded]:
        """Writes other than the run's Leases (``coordination.k8s.io``): a Lease is the lock a changing run
        takes before it reads anything (rollback/lease.py), not a change to the cluster's workloads or ledger."""
        return [e for e in self.writes(include_dry_run) if not e.path.startswith("/apis/coordination.k8s.io/")]

    def app_writes(self, include_dry_run: bool = False) -> list[Recorded]:
        """Writes to Deployments, ReplicaSets, StatefulSets, DaemonSets and pods (not e.g. the ledger)."""
        return [e for e in self.writes(include_dry_run)
                if e.path.startswith("/apis/apps/") or "/pods" in e.path]


# -- the CLI ---------------------------------------------------------------------------------------------------


class OutputFileError(ValueError):
    """The outputs file would make the runner fail the step."""


def parse_github_output(text: str) -> dict[str, str]:
    """Parse a ``GITHUB_OUTPUT`` file like the runner (``FileCommandManager`` ``EnvFileKeyValuePairs``).

    ``NAME=VALUE`` lines, or ``NAME<<DELIMITER`` followed by value lines and a line that is exactly the
    delimiter, which must end with a newline. Lines end with ``\\n`` or ``\\r\\n``; empty lines between entries
    are skipped; a later entry overrides an earlier one.
    """
    lines = text.split("\n")
    terminated = [True] * (len(lines) - 1) + [False]  # the piece after the last "\n" has no newline
    if lines and lines[-1] == "":
        lines, terminated = lines[:-1], terminated[:-1]
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    result: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if eq >= 0 and (heredoc < 0 or eq < heredoc):
            key, value = line.split("=", 1)
            if not key:
                raise OutputFileError(f"Invalid format {line!r}. Name must not be empty")
            result[key] = value
            continue
        if heredoc < 0:
            raise OutputFileError(f"Invalid format {line!r}")
        key, delimiter = line.split("<<", 1)
        if not key or not delimiter:
            raise OutputFileError(f"Invalid format {line!r}. Name must not be empty and delimiter must not be "
                                  f"empty")
        value_lines = []
        while True:
            if i >= len(lines):
                raise OutputFileError(f"Invalid value. Matching delimiter not found {delimiter!r}")
            current, has_newline = lines[i], terminated[i]
            i += 1
            if current == delimiter:
                if not has_newline:
                    raise OutputFileError("Invalid value. EOF marker missing new line.")
                break
            if not has_newline:
                raise OutputFileError("Invalid value. EOF marker missing new line.")
            value_lines.append(current)
        result[key] = "\n".join(value_lines)
    return result


@dataclass(frozen=True)
class CliRun:
    code: int
    outputs: dict[str, str]
    summary: str
    stdout: str
    stderr: str
    outputs_text: str = ""

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def commands(self, name: str) -> list[str]:
        """Messages of the ``::name ...::message`` workflow commands printed (properties dropped)."""
        found = []
        for line in self.lines:
            stripped = line.lstrip()
            if stripped.startswith((f"::{name}::", f"::{name} ")):
                found.append(stripped.split("::", 2)[2])
        return found

    @property
    def errors(self) -> list[str]:
        return self.commands("error")

    @property
    def warnings(self) -> list[str]:
        return self.commands("warning")

    def error_lines(self) -> list[str]:
        return [line.lstrip() for line in self.lines if line.lstrip().startswith("::error")]

    def result(self) -> list[dict[str, Any]]:
        return json.loads(self.outputs["result"])

    def history(self) -> list[dict[str, Any]]:
        return json.loads(self.outputs["history"])


def cli_environ(sim: kubesim.Sim | None, workdir: str, actions: bool = True) -> dict[str, str]:
    """A clean environment for one CLI run: nothing inherited from this machine."""
    home = os.path.join(workdir, "home")
    os.makedirs(home, exist_ok=True)
    env = {
        "HOME": home,
        "PATH": "/usr/bin:/bin",
        "GITHUB_OUTPUT": os.path.join(workdir, "github_output"),
        "GITHUB_STEP_SUMMARY": os.path.join(workdir, "step_summary.md"),
        "GITHUB_WORKSPACE": workdir,
        "GITHUB_ACTOR": "octocat",
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_SERVER_URL": "https://github.com",
    }
    if actions:
        env.update(GITHUB_ACTIONS="true", CI="true")
    if sim is not None:
        env["KUBECONFIG"] = sim.kubeconfig
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        open(env[name], "w").close()
    return env


def run_cli(sim: kubesim.Sim | None, *args: str, env: Mapping[str, str] | None = None, actions: bool = True,
            extra_env: Mapping[str, str] | None = None) -> CliRun:
    """Run ``python -m rollback ARGS`` in-process (``rollback.cli.main``) against ``sim``.

    Credentials come from ``KUBECONFIG`` (``sim``'s kubeconfig) unless ``env`` replaces the whole environment.
    Returns the exit code (``SystemExit`` from argparse is turned into its code), the outputs parsed with the
    runner's rules, the job summary and what was printed.
    """
    with tempfile.TemporaryDirectory(prefix="rollback-cli-") as workdir:
        environ = dict(env) if env is not None else cli_environ(sim, workdir, actions)
        if env is not None:
            for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
                environ.setdefault(name, os.path.join(workdir, name.lower()))
                if not os.path.exists(environ[name]):
                    open(environ[name], "w").close()
        environ.update(extra_env or {})
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args), environ=environ)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
        with open(environ["GITHUB_OUTPUT"], encoding="utf-8", newline="") as handle:
            outputs_text = handle.read()
        with open(environ["GITHUB_STEP_SUMMARY"], encoding="utf-8") as handle:
            summary = handle.read()
    return CliRun(code, parse_github_output(outputs_text), summary, out.getvalue(), err.getvalue(), outputs_text)


def injected_commands(stdout: str) -> list[str]:
    """Lines the runner would take as workflow commands that this action does not issue itself.

    The runner treats a line as a command when, after leading whitespace, it starts with ``::`` (or it contains
    the legacy ``##[``); only our own commands may appear.
    """
    bad = []
    for line in stdout.splitlines():
        stripped = line.lstrip()
        if "##[" in line:
            bad.append(line)
        elif stripped.startswith("::"):
            name = stripped[2:].split("::", 1)[0].split(" ", 1)[0]
            if name not in OUR_COMMANDS:
                bad.append(line)
    return bad
