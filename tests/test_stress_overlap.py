"""Stress (bounded, loopback): 20 rounds of a deploy and a rollback started at the same moment on one workload,
with random injected API faults (an error status, 429/503 with ``Retry-After``, a dropped connection, an answer
lost after the write was applied) and random broken releases.

After every round the ledger, the outputs and the cluster must agree:

- the live template is the one its change-cause names (never half a release);
- the live release is one some run of the round reported as its ``release`` output, or the one live before
  the round (no round ends with a release live that no run reported);
- a run that exited 0 has a ``succeeded`` ledger entry for what it reported; a run that failed has none;
  a run refused because the other one held the lease wrote nothing to the ledger;
- no ``in-progress`` entry is left by a run that completed its ledger write.

The runs are ``rollback.cli.main`` in two threads (each with its own outputs file and API client), started
by a barrier; the seed is fixed so a failure can be replayed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import CHANGE_CAUSE, cli_environ, get_deployment, image_of, make_deployment, parse_github_output

import kubesim
from kubesim.knobs import Knobs
from kubesim.resources import CONFIGMAPS
from rollback.cli import main

ROUNDS = 20
SEED = 20261202
IMG = "registry.example/web:"


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(ready_delay=0.05)


class Run(threading.Thread):
    def __init__(self, sim: kubesim.Sim, workdir: Path, run_id: str, barrier: threading.Barrier, args: list[str]):
        super().__init__(daemon=True)
        workdir.mkdir(parents=True)
        self.env = cli_environ(sim, str(workdir))
        self.env["GITHUB_RUN_ID"] = run_id
        self.run_id = run_id
        self.args = args
        self.barrier = barrier
        self.code: int | None = None
        self.outputs: dict[str, str] = {}
        self.crash: BaseException | None = None

    def run(self) -> None:
        self.barrier.wait(timeout=30)
        try:
            self.code = main(["--deployment", "web", *self.args], environ=self.env)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            self.crash = err
        with open(self.env["GITHUB_OUTPUT"], encoding="utf-8") as handle:
            self.outputs = parse_github_output(handle.read())


def live(sim: kubesim.Sim) -> tuple[str, str | None]:
    obj = get_deployment(sim)
    return image_of(obj), (obj["metadata"].get("annotations") or {}).get(CHANGE_CAUSE)


def entries(sim: kubesim.Sim) -> list[dict[str, Any]]:
    cm = sim.store.find(CONFIGMAPS, "default", "kube-release-rollback-ledger")
    return json.loads(cm["data"]["entries.json"]) if cm else []


FAULT_PATHS = ("/deployments/web", "/configmaps", "/leases", "/replicasets")


def test_a_deploy_and_a_rollback_at_the_same_moment_never_leave_an_unreported_release(sim: kubesim.Sim,
                                                                                       tmp_path: Path) -> None:
    sim.clock.scale = 5  # progress deadlines pass five times faster
    make_deployment(sim, "web", image=IMG + "0.1.0", replicas=2, progressDeadlineSeconds=3)
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        assert main(["--deployment", "web", "--mode", "deploy", "--release", "0.1.0", "--images",
                     f"web={IMG}0.1.0"], environ=cli_environ(sim, str(tmp_path / "setup"))) == 0
    rng = random.Random(SEED)
    codes: dict[str, int] = {}
    for round_ in range(1, ROUNDS + 1):
        before = live(sim)
        release = f"1.{round_}.0"
        image = IMG + ("broken-" if rng.random() < 0.3 else "") + release
        deploy_args = ["--mode", "deploy", "--release", release, "--images", f"web={image}", "--timeout", "6s"]
        if rng.random() < 0.5:
            deploy_args.append("--rollback-on-failure")
        rollback_args = ["--mode", "rollback", "--timeout", "6s"]
        for _ in range(rng.randint(0, 2)):
            method, path = rng.choice(["GET", "PATCH", "PUT", "POST"]), rng.choice(FAULT_PATHS)
            fault = rng.choice(["status", "retry-after", "drop", "drop-after-write"])
            if fault == "status":
                sim.knobs.fail_next(1, method, path, status=rng.choice([500, 503, 429]))
            elif fault == "retry-after":
                sim.knobs.fail_next(1, method, path, status=rng.choice([503, 429]), retry_after=1)
            elif fault == "drop":  # the connection closes before the request is applied
                sim.knobs.fail_next(1, method, path, drop=True)
            else:  # applied, then the connection closes: the answer is lost
                sim.knobs.fail_next(1, rng.choice(["PATCH", "PUT", "POST"]), path, drop=True, after_apply=True)
        barrier = threading.Barrier(2)
        runs = [Run(sim, tmp_path / f"r{round_}-deploy", f"{round_}01", barrier, deploy_args),
                Run(sim, tmp_path / f"r{round_}-rollback", f"{round_}02", barrier, rollback_args)]
        with contextlib.redirect_stdout(quiet):
            for run in runs:
                run.start()
            for run in runs:
                run.join(120)
        with sim.knobs.lock:
            sim.knobs.failures.clear()
        where = f"round {round_} (seed {SEED}): before {before}, runs {[(r.args[1], r.code) for r in runs]}"
        for run in runs:
            assert run.crash is None, f"{where}: {run.crash!r}"
            assert run.code is not None and run.outputs, where
            codes[f"{run.args[1]}={run.code}"] = codes.get(f"{run.args[1]}={run.code}", 0) + 1

        now_image, now_release = live(sim)
        assert now_release is not None and now_image in (IMG + now_release, IMG + "broken-" + now_release), (
            f"{where}: the live template {now_image} is not the release its change-cause names ({now_release})")
        reported = {run.outputs.get("release") for run in runs}
        assert now_release in reported | {before[1]}, f"{where}: {now_release} live, reported {reported}"

        ledger = entries(sim)
        for run in runs:
            mine = [e for e in ledger if (e.get("run") or "").startswith(f"acme/shop/runs/{run.run_id}/")]
            if run.code == 0:
                done = [e for e in mine if e["result"] == "succeeded"]
                assert done and done[-1]["release"] == run.outputs["release"], f"{where}: {run.args}: {mine}"
            else:
                assert not [e for e in mine if e["result"] == "succeeded"], f"{where}: {run.args}: {mine}"
            results = json.loads(run.outputs["result"])
            assert [r["workload"] for r in results] == ["deployment/web"], f"{where}: {run.outputs}"
            left = [e for e in mine if e["result"] == "in-progress"]
            assert not left or "ledger was not updated" in quiet.getvalue(), f"{where}: {left}"
    print(f"outcomes over {ROUNDS} rounds: {codes}")
    assert len(codes) > 1, f"the rounds should not all end alike: {codes}"
    assert os.environ.get("KUBECONFIG") != sim.kubeconfig  # the runs got their own environment only
