"""Cancellation: the runner's signals sent to ``entrypoint.py`` in the middle of a two-workload deploy.

Why: a cancelled step died with a traceback (SIGINT) or not at all (SIGTERM is ignored by PID 1): no outputs, no
summary, no ledger entry, half a release live. The runner sends SIGINT, then SIGTERM 7.5 s later, then kills.
Here the entrypoint runs as in the container (see test_container_contract.py), both workloads have been
written and are waiting for a rollout that cannot finish, and the signals arrive: everything must be put back
within about 5 s, every output, the summary and a ``cancelled`` ledger entry written, the lease released, and
the exit code non-zero.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import CHANGE_CAUSE, get_deployment, image_of, make_deployment, parse_github_output
from test_container_contract import ACTION, ROOT, input_defaults

import kubesim
from kubesim.knobs import Knobs
from kubesim.resources import CONFIGMAPS, LEASES
from rollback.cancellation import Cancellation, Cancelled

NS = "shop"
RUNNER_SIGTERM_AFTER = 7.5  # actions/runner: SIGINT, then SIGTERM 7.5 s later, then kill


def test_a_signal_outside_a_wait_is_only_recorded() -> None:
    cancel = Cancellation()
    cancel.handle(signal.SIGINT)  # in the middle of a write: nothing is raised
    assert cancel.requested and cancel.signal_name == "SIGINT"
    with pytest.raises(Cancelled):
        cancel.check()


def test_a_signal_during_a_wait_stops_it_and_later_signals_are_only_counted() -> None:
    cancel = Cancellation()
    with pytest.raises(Cancelled) as info, cancel.interruptible():
        cancel.handle(signal.SIGTERM)
    assert info.value.signal_name == "SIGTERM"
    with pytest.raises(Cancelled):
        cancel.interruptible().__enter__()  # a wait after the signal does not start
    cancel.handle(signal.SIGINT)  # putting things back: the second signal must not interrupt it
    assert cancel.received == 2 and cancel.signal_name == "SIGTERM"


def test_handlers_are_installed_and_put_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    cancel = Cancellation()
    with cancel.installed():
        assert signal.getsignal(signal.SIGTERM) == cancel.handle
        assert signal.getsignal(signal.SIGINT) == cancel.handle
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    with kubesim.serve(knobs=Knobs(ready_delay=0.05), kubeconfig_path=str(tmp_path / "kubeconfig")) as sim:
        for name in ("web", "api"):
            make_deployment(sim, name, namespace=NS, image=f"registry.example/{name}:1.0.0", change_cause="1.0.0",
                            replicas=2, container=name)
        yield sim


def container_env(sim: kubesim.Sim, tmp_path: Path, inputs: dict[str, str]) -> tuple[dict[str, str], Path]:
    workspace, home, commands = (tmp_path / d for d in ("workspace", "home", "file_commands"))
    for directory in (workspace, home, commands):
        directory.mkdir()
    env = {
        "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT), "HOME": str(home), "CI": "true", "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace), "GITHUB_ACTOR": "octocat", "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_RUN_ID": "987654321", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_OUTPUT": str(commands / "output"), "GITHUB_STEP_SUMMARY": str(commands / "summary"),
        **input_defaults(),
    }
    for key, value in inputs.items():
        env["INPUT_" + key.upper()] = value
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        Path(env[name]).write_text("")
    return env, workspace


def start_waiting_deploy(cluster: kubesim.Sim, tmp_path: Path) -> tuple[dict[str, str], subprocess.Popen[str]]:
    """entrypoint.py as the container runs it: a two-workload deploy of 2.0.0 (images that never become
    Ready) with rollback-on-failure, returned once both writes are in and the step is waiting."""
    env, workspace = container_env(cluster, tmp_path, {
        "mode": "deploy", "namespace": NS, "deployment": "web\napi\n", "release": "2.0.0",
        "images": "web=registry.example/web:broken-2.0.0\napi=registry.example/api:broken-2.0.0\n",
        "rollback-on-failure": "true", "timeout": "120s", "kubeconfig": Path(cluster.kubeconfig).read_text()})
    process = subprocess.Popen([sys.executable, str(ROOT / "entrypoint.py")], cwd=workspace, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cluster.wait_until(lambda: live(cluster, "web")[1] == "2.0.0" and live(cluster, "api")[1] == "2.0.0",
                           timeout=60)
    except BaseException:
        process.kill()
        process.communicate(timeout=30)
        raise
    return env, process


def live(sim: kubesim.Sim, name: str) -> tuple[str, str | None]:
    obj = get_deployment(sim, name, NS)
    return image_of(obj), (obj["metadata"].get("annotations") or {}).get(CHANGE_CAUSE)


@pytest.mark.parametrize("signals", [("SIGINT", "SIGTERM"), ("SIGTERM",)], ids=["runner", "docker-stop"])
def test_cancelling_a_two_workload_deploy_puts_everything_back_and_says_so(cluster: kubesim.Sim, tmp_path: Path,
                                                                            signals: tuple[str, ...]) -> None:
    env, process = start_waiting_deploy(cluster, tmp_path)
    try:
        time.sleep(0.5)  # well into the wait for the rollouts
        assert process.poll() is None
        sent = time.monotonic()
        process.send_signal(getattr(signal, signals[0]))
        try:
            process.wait(timeout=RUNNER_SIGTERM_AFTER)
        except subprocess.TimeoutExpired:
            if len(signals) > 1:
                process.send_signal(getattr(signal, signals[1]))
            process.wait(timeout=2.5)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
        stdout, stderr = process.communicate(timeout=30)

    assert process.returncode not in (0, None), stdout
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr
    assert took < RUNNER_SIGTERM_AFTER, f"took {took:.1f}s: the runner would have had to send SIGTERM"
    assert live(cluster, "web") == ("registry.example/web:1.0.0", "1.0.0")
    assert live(cluster, "api") == ("registry.example/api:1.0.0", "1.0.0")

    outputs = parse_github_output(Path(env["GITHUB_OUTPUT"]).read_text())
    assert set(outputs) == set(ACTION["outputs"])
    assert outputs["release"] == "1.0.0" and outputs["rolled-back"] == "true"
    results = json.loads(outputs["result"])
    assert [(r["workload"], r["action"], r["release"]) for r in results] == [
        ("deployment/web", "compensated", "1.0.0"), ("deployment/api", "compensated", "1.0.0")]
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "cancelled" in summary and signals[0] in summary
    errors = [line for line in stdout.splitlines() if line.startswith("::error")]
    assert any(f"cancelled ({signals[0]})" in line for line in errors), stdout

    ledger = cluster.store.get(CONFIGMAPS, NS, "kube-release-rollback-ledger")
    entries = json.loads(ledger["data"]["entries.json"])
    assert [(e["workload"], e["release"], e["result"]) for e in entries[-2:]] == [
        ("deployment/web", "2.0.0", "cancelled"), ("deployment/api", "2.0.0", "cancelled")]
    for name in ("web", "api"):
        lease = cluster.store.get(LEASES, NS, f"kube-release-rollback.deployment.{name}")
        assert lease["spec"]["holderIdentity"] == "", "the lease must be released"


@pytest.mark.parametrize("second_signal_after", [None, 1.0], ids=["sigint", "sigint-then-sigterm-mid-restore"])
def test_a_cancel_against_a_slow_api_server_still_ends_before_the_runners_sigterm(
        cluster: kubesim.Sim, tmp_path: Path, second_signal_after: float | None) -> None:
    """Every answer takes 1 s once the deploy is waiting: putting back and recording cannot all fit in the
    runner's 7.5 s, so the step's request deadline moves to 6 s after the signal. It ends in time, and what
    it says about each workload is what the cluster shows (put back or not). A second signal while it puts
    things back (here 1 s after the first) is only counted: it neither stops the restore nor the outputs."""
    env, process = start_waiting_deploy(cluster, tmp_path)
    try:
        time.sleep(0.5)
        cluster.knobs.latency = 1.0
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        if second_signal_after is not None:
            time.sleep(second_signal_after)
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=RUNNER_SIGTERM_AFTER)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=2.5)
        took = time.monotonic() - sent
    finally:
        cluster.knobs.latency = 0.0
        if process.poll() is None:
            process.kill()
        stdout, stderr = process.communicate(timeout=30)

    assert process.returncode not in (0, None, -signal.SIGKILL), stdout
    # it ended on its own, before the runner's kill (6.0 s after SIGINT by design: bench/cancel_timing.py; a
    # loose bound here so that a loaded machine cannot make it flaky)
    assert took < RUNNER_SIGTERM_AFTER + 2.5, f"took {took:.1f}s"
    assert "Traceback" not in stderr, stderr
    outputs = parse_github_output(Path(env["GITHUB_OUTPUT"]).read_text())
    assert set(outputs) == set(ACTION["outputs"])
    assert any(line.startswith("::error") and "cancelled (SIGINT)" in line for line in stdout.splitlines())
    for result in json.loads(outputs["result"]):
        name = result["workload"].split("/")[1]
        back = live(cluster, name) == (f"registry.example/{name}:1.0.0", "1.0.0")
        assert (result["action"] == "compensated") == back, (result, live(cluster, name), stdout[-3000:])
