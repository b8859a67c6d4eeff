"""Run safety: a rollback is never undone, compensation never overwrites someone else's change.

Each test reproduces one failure of the issue "Never make an incident worse" against kubesim, then checks
what the action does instead: the cluster, the outputs and the ledger must agree.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import CHANGE_CAUSE, get_deployment, image_of, make_deployment, run_cli

import kubesim
from kubesim.knobs import Knobs
from kubesim.resources import CONFIGMAPS

IMG = "registry.example/web:"


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(ready_delay=0.05)


def deploy(sim: kubesim.Sim, release: str, *args: str, image: str | None = None) -> Any:
    return run_cli(sim, "--deployment", "web", "--mode", "deploy", "--release", release,
                   "--images", f"web={image or IMG + release}", *args)


def ledger_entries(sim: kubesim.Sim, namespace: str = "default") -> list[dict[str, Any]]:
    cm = sim.store.find(CONFIGMAPS, namespace, "kube-release-rollback-ledger")
    return json.loads(cm["data"]["entries.json"]) if cm else []


def live(sim: kubesim.Sim) -> tuple[str, str | None]:
    obj = get_deployment(sim)
    return image_of(obj), (obj["metadata"].get("annotations") or {}).get(CHANGE_CAUSE)


def test_a_slow_rollback_is_left_in_place_and_reported(sim: kubesim.Sim) -> None:
    """Why: a rollback whose rollout outlived two thirds of the timeout was "compensated" back to the bad
    release. kubectl never reverts an undo: the rollback stays, the step fails naming what is not Ready."""
    make_deployment(sim, "web", image=IMG + "1.0.0", replicas=2)
    assert deploy(sim, "1.0.0", "--timeout", "30s").code == 0
    assert deploy(sim, "1.1.0", "--timeout", "30s").code == 0
    sim.knobs.ready_delay = 10_000  # the rollback's pods never become Ready within the step

    run = run_cli(sim, "--deployment", "web", "--mode", "rollback", "--release", "1.0.0", "--timeout", "2s")

    assert run.code == 1, run.stdout
    assert live(sim) == (IMG + "1.0.0", "1.0.0"), "the rollback must stay in place"
    (result,) = run.result()
    assert (result["action"], result["rollout"], result["release"]) == ("failed", "timeout", "1.0.0"), result
    assert "replicas" in result["message"] and "never undone" in result["message"], result["message"]
    assert run.outputs["release"] == "1.0.0" and run.outputs["rolled-back"] == "false"
    last = ledger_entries(sim)[-1]
    assert (last["release"], last["mode"], last["result"]) == ("1.0.0", "rollback", "failed"), last
