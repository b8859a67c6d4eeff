"""Waiting for a rollout: one watch (not a poll loop), progress lines only when they change, reconnects from the
last resourceVersion when the stream drops, re-lists on 410 Gone, and ``timeout`` bounds the whole step.

Every request the CLI sends is recorded (``RequestLog``), so "it watches" is asserted by counting: while a
rollout takes seconds, the workload is read a fixed handful of times and watched once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any, cast

import pytest
from helpers import CliRun, RequestLog, cli_environ, run_cli

import kubesim
from kubesim import errors
from kubesim.knobs import Knobs
from kubesim.resources import DAEMONSETS, DEPLOYMENTS, STATEFULSETS
from rollback.diagnostics import PROBE_SECONDS
from rollback.workloads import KINDS

Obj = dict[str, Any]
NS = "default"
RESOURCE = {"Deployment": DEPLOYMENTS, "StatefulSet": STATEFULSETS, "DaemonSet": DAEMONSETS}
PLURAL = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}
NAME = {"Deployment": "web", "StatefulSet": "db", "DaemonSet": "agent"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WATCH = "[?&]watch=(true|True|1)"


def manifest(kind: str, replicas: int = 3) -> Obj:
    name = NAME[kind]
    spec: Obj = {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "registry.example/app:0.9.0"}]}}}
    if kind != "DaemonSet":
        spec["replicas"] = replicas
    if kind == "StatefulSet":
        spec.update(serviceName=name, podManagementPolicy="OrderedReady")
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": NS}, "spec": spec}


def deploy(sim: kubesim.Sim, kind: str, release: str = "1.0.0", image: str = "registry.example/app:1.0.0",
           *args: str) -> CliRun:
    return run_cli(sim, "--deployment", f"{kind.lower()}/{NAME[kind]}", "--mode", "deploy", "--release", release,
                   "--images", f"app={image}", *args)


def progress_lines(run: CliRun, kind: str) -> list[str]:
    """The lines printed inside the "Waiting for ... to roll out" group."""
    lines, inside = [], False
    for line in run.lines:
        if line.startswith("::group::Waiting for"):
            inside = True
        elif line.startswith("::endgroup::"):
            inside = False
        elif inside:
            assert line.startswith(f"{kind.lower()}/{NAME[kind]}: "), line
            lines.append(line)
    return lines


def assert_no_repeats(lines: list[str]) -> None:
    repeats = [a for a, b in zip(lines, lines[1:], strict=False) if a == b]
    assert not repeats, f"progress printed twice in a row: {repeats}"


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(ready_delay=0.35)  # real seconds per pod (the clock runs at 1x): a rollout takes a second


@pytest.fixture
def workload(sim: kubesim.Sim, request: Any) -> str:
    """The workload (a Deployment unless parametrized), created and completely rolled out."""
    kind = str(getattr(request, "param", "Deployment"))
    sim.clock.scale = 20  # the first rollout is only the starting point: fast
    sim.apply(manifest(kind))
    judge = KINDS[kind](cast(Any, None), NS, NAME[kind])
    sim.wait_until(lambda: judge.rollout_state(sim.store.get(RESOURCE[kind], NS, NAME[kind])).done, timeout=10)
    sim.clock.scale = 1
    return kind


def single_gets(log: RequestLog, kind: str) -> list[Any]:
    path = f"/apis/apps/v1/namespaces/{NS}/{PLURAL[kind]}/{NAME[kind]}"
    return [e for e in log.entries if e.method == "GET" and e.path == path]


def watches(log: RequestLog, kind: str) -> list[Any]:
    path = f"/apis/apps/v1/namespaces/{NS}/{PLURAL[kind]}"
    return [e for e in log.entries if e.method == "GET" and e.path == path and e.query.get("watch")]


# -- a watch, not a poll loop ---------------------------------------------------------------------------------


@pytest.mark.parametrize("workload", ["Deployment", "StatefulSet", "DaemonSet"], indirect=True)
def test_the_wait_is_one_watch_not_a_poll_loop(sim: kubesim.Sim, workload: str) -> None:
    """Without fail-fast the wait is one watch; fail-fast adds a look at the pods every PROBE_SECONDS
    (test_fail_fast_looks_at_the_pods_on_a_cadence_not_in_a_loop)."""
    kind = workload
    sim.clock.scale = 0.5  # a pod now takes 0.7 s to become Ready (changing ready_delay would un-ready pods)
    with RequestLog(sim) as log:
        started = time.monotonic()
        run = deploy(sim, kind, "1.0.0", "registry.example/app:1.0.0", "--no-fail-fast")
        took = time.monotonic() - started
    assert run.code == 0, run.stdout
    assert took >= 1.2, "the rollout must take a while for this test to mean anything"
    (result,) = run.result()
    assert result["rollout"] == "complete"
    # read before the change, once when the wait starts, once for the report: never once per second
    assert len(single_gets(log, kind)) <= 4, [e.path for e in single_gets(log, kind)]
    (watch,) = watches(log, kind)
    assert watch.query["fieldSelector"] == [f"metadata.name={NAME[kind]}"]
    assert watch.query.get("resourceVersion") not in (None, [""], ["0"])  # from the object read, not a re-list
    lines = progress_lines(run, kind)
    assert len(lines) >= 2, lines
    assert "successfully rolled out" in lines[-1] or "rolling update complete" in lines[-1], lines
    assert_no_repeats(lines)


def test_fail_fast_looks_at_the_pods_on_a_cadence_not_in_a_loop(sim: kubesim.Sim, workload: str) -> None:
    """With fail-fast (the default) the watch is reopened, and the new revision's pods listed, at most once
    per PROBE_SECONDS of the wait (plus the first look and the last window): a cadence, never a loop."""
    kind = workload
    sim.clock.scale = 0.5
    with RequestLog(sim) as log:
        started = time.monotonic()
        run = deploy(sim, kind)
        took = time.monotonic() - started
    assert run.code == 0, run.stdout
    assert run.result()[0]["rollout"] == "complete"
    looks = int(took / PROBE_SECONDS) + 2  # the first look, one per PROBE_SECONDS, and the window that ends it
    assert 1 <= len(watches(log, kind)) <= looks, (took, watches(log, kind))
    pod_lists = [e for e in log.entries if e.method == "GET" and e.path.endswith("/pods")]
    assert 1 <= len(pod_lists) <= looks, (took, [e.path for e in pod_lists])
    assert_no_repeats(progress_lines(run, kind))


def test_progress_is_printed_only_when_it_changes(sim: kubesim.Sim, workload: str) -> None:
    """The Deployment's status changes many times a second during the rollout (every pod, every replica set
    sync); what kubectl would print changes a few times, and only those lines are printed."""
    with RequestLog(sim) as log:
        run = deploy(sim, workload, "1.0.0", "registry.example/app:1.0.0", "--no-fail-fast")  # one watch
    assert run.code == 0, run.stdout
    lines = progress_lines(run, workload)
    assert_no_repeats(lines)
    assert lines == list(dict.fromkeys(lines)), lines  # a state is never printed again later either
    assert any("out of 3 new replicas have been updated" in line for line in lines), lines
    assert lines[-1] == 'deployment/web: deployment "web" successfully rolled out'
    assert len(watches(log, workload)) == 1


@pytest.mark.parametrize("workload", ["Deployment", "StatefulSet", "DaemonSet"], indirect=True)
def test_with_fail_fast_the_wait_resumes_its_watch_and_lists_only_new_pods(sim: kubesim.Sim, workload: str
                                                                          ) -> None:
    """Each reopened watch resumes from the last resourceVersion (never a re-list), the workload itself is not
    polled, and every pod list selects the new revision's hash label (the cadence: the test above)."""
    kind = workload
    sim.clock.scale = 0.15  # a pod takes 2.3 s to become Ready: the rollout spans several looks
    with RequestLog(sim) as log:
        started = time.monotonic()
        run = deploy(sim, kind)
        took = time.monotonic() - started
    assert run.code == 0, run.stdout
    assert took >= 2 * PROBE_SECONDS, "the rollout must span several looks for this test to mean anything"
    assert len(single_gets(log, kind)) <= 4, [e.path for e in single_gets(log, kind)]
    found = watches(log, kind)
    assert len(found) >= 2
    assert all(w.query.get("resourceVersion") not in (None, [""], ["0"]) for w in found)
    assert all(w.query["fieldSelector"] == [f"metadata.name={NAME[kind]}"] for w in found)
    pod_lists = [e for e in log.entries if e.method == "GET" and e.path == f"/api/v1/namespaces/{NS}/pods"]
    assert pod_lists
    label = "pod-template-hash=" if kind == "Deployment" else "controller-revision-hash="
    assert all(label in e.query["labelSelector"][0] for e in pod_lists), [e.query for e in pod_lists]


# -- dropped and expired watches ------------------------------------------------------------------------------


@pytest.mark.parametrize("drops", [1, 3])
def test_a_dropped_watch_resumes_from_the_last_resource_version(sim: kubesim.Sim, workload: str,
                                                                drops: int) -> None:
    rule = sim.knobs.fail_next(drops, "GET", WATCH, drop=True, after_events=1)
    with RequestLog(sim) as log:
        run = deploy(sim, workload)
    assert rule.remaining == 0, "every injected drop happened"
    assert run.code == 0, run.stdout
    (result,) = run.result()
    assert result["rollout"] == "complete" and result["release"] == "1.0.0"
    seen = watches(log, workload)
    assert len(seen) == drops + 1
    versions = [int(w.query["resourceVersion"][0]) for w in seen]
    # each reconnect starts after the one event the dropped stream delivered: strictly later, never a re-list
    assert versions == sorted(set(versions)), versions
    lines = progress_lines(run, workload)
    assert_no_repeats(lines)
    assert lines[-1] == 'deployment/web: deployment "web" successfully rolled out'
    live = sim.store.get(DEPLOYMENTS, NS, "web")
    assert live["status"]["updatedReplicas"] == live["status"]["availableReplicas"] == 3


def test_a_watch_that_expired_410_in_the_stream_is_relisted(sim: kubesim.Sim, workload: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The API server's watch cache no longer reaches back: it sends an ERROR event with 410 Gone. The wait
    reads the object again and watches from there."""
    original = sim.store.events_since
    expired: list[int] = []

    def events_since(rv: int) -> Any:
        if not expired and sim.store.get(DEPLOYMENTS, NS, "web")["metadata"].get("generation") == 2:
            expired.append(rv)
            raise errors.gone(f"too old resource version: {rv}")
        return original(rv)

    monkeypatch.setattr(sim.store, "events_since", events_since)
    with RequestLog(sim) as log:
        run = deploy(sim, workload)
    assert expired, "the 410 was sent"
    assert run.code == 0, run.stdout
    assert len(watches(log, workload)) >= 2
    assert progress_lines(run, workload)[-1] == 'deployment/web: deployment "web" successfully rolled out'


@pytest.mark.parametrize("status", [410, 503])
def test_an_error_answer_to_the_watch_request_is_not_the_end_of_the_wait(sim: kubesim.Sim, workload: str,
                                                                         status: int) -> None:
    """410 as the HTTP answer (instead of in the stream) means the same: re-list. A 5xx while opening the
    watch is transient (an API server restarting behind a load balancer): retry, as client-go does. Failing
    here would also skip rollback-on-failure and compensation, which only follow a finished wait."""
    rule = sim.knobs.fail_next(1, "GET", WATCH, status=status)
    run = deploy(sim, workload)
    assert rule.remaining == 0
    assert run.code == 0, run.stdout
    (result,) = run.result()
    assert result["rollout"] == "complete"


# -- the timeout bounds the whole step ------------------------------------------------------------------------


@pytest.mark.parametrize("workload", ["StatefulSet", "DaemonSet"], indirect=True)
def test_timeout_bounds_a_rollout_that_never_finishes(sim: kubesim.Sim, workload: str) -> None:
    """No progress deadline for these kinds: only the timeout ends the wait."""
    started = time.monotonic()
    run = deploy(sim, workload, "2.0.0", "registry.example/app:broken", "--timeout", "2s")
    took = time.monotonic() - started
    assert run.code == 1, run.stdout
    assert 2.0 <= took < 3.5, took
    (result,) = run.result()
    assert result["rollout"] == "timeout"
    assert any("timed out waiting for" in e for e in run.errors), run.stdout


@pytest.mark.parametrize("workload", ["StatefulSet"], indirect=True)
def test_timeout_bounds_the_step_including_the_restore(sim: kubesim.Sim, workload: str, tmp_path: Any) -> None:
    """rollback-on-failure without the forced StatefulSet rollback: the restore can never finish (the broken
    pod stays), and the step must still end at its timeout (plus process start-up), failed."""
    env = cli_environ(sim, str(tmp_path))
    env["PYTHONPATH"] = ROOT
    timeout, slack = 2, 4
    started = time.monotonic()
    try:
        process = subprocess.run(
            [sys.executable, "-m", "rollback", "--deployment", f"statefulset/{NAME[workload]}", "--mode", "deploy",
             "--release", "2.0.0", "--images", "app=registry.example/app:broken", "--rollback-on-failure",
             "--no-force-statefulset-rollback", "--timeout", f"{timeout}s"],
            env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=timeout + slack)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the step was still running {time.monotonic() - started:.1f}s after it started "
                    f"with --timeout {timeout}s")
    assert process.returncode != 0
