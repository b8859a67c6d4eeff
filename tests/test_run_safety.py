"""Run safety: a rollback is never undone, compensation never overwrites someone else's change.

Each test reproduces one failure of the issue "Never make an incident worse" against kubesim, then checks
what the action does instead: the cluster, the outputs and the ledger must agree.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from conftest import kubectl
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


def operator_during_wait(sim: kubesim.Sim, release: str, *kubectl_args: str) -> threading.Thread:
    """Once ``release`` is live (our write landed, we are waiting), an operator runs ``kubectl ...``."""
    def act() -> None:
        sim.wait_until(lambda: live(sim)[1] == release, timeout=30)
        kubectl(sim, *kubectl_args, check=True)

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def test_compensation_never_overwrites_an_operators_hotfix(sim: kubesim.Sim) -> None:
    """Why: compensation silently overwrote an operator's ``kubectl set image ... hotfix`` made during the
    wait. Now the restore is preconditioned on what this run wrote: the hotfix stays, the step fails naming
    it."""
    make_deployment(sim, "web", image=IMG + "1.0.0", replicas=2)
    assert deploy(sim, "1.0.0", "--timeout", "30s").code == 0
    sim.knobs.ready_delay = 10_000  # neither our release nor the hotfix becomes Ready within the step
    operator = operator_during_wait(sim, "2.0.0", "set", "image", "deployment/web", f"web={IMG}hotfix")

    run = deploy(sim, "2.0.0", "--rollback-on-failure", "--timeout", "4s")
    operator.join(30)

    assert live(sim)[0] == IMG + "hotfix", "the operator's change must stay"
    assert run.code == 1, run.stdout
    (result,) = run.result()
    assert result["action"] == "failed", result
    assert "changed by someone else" in result["message"] and f"web={IMG}hotfix" in result["message"]
    assert "'2.0.0'" in result["message"]  # kubectl set image kept our change-cause: named as observed
    assert run.outputs["rolled-back"] == "false"
    assert any("changed by someone else" in e for e in run.errors), run.stdout


def test_success_is_not_claimed_for_a_template_someone_else_replaced(sim: kubesim.Sim) -> None:
    """The operator's hotfix rolls out while we wait for our (broken) release: the rollout we saw complete is
    theirs, so the run must not report or record our release as succeeded."""
    make_deployment(sim, "web", image=IMG + "1.0.0", replicas=2)
    assert deploy(sim, "1.0.0", "--timeout", "30s").code == 0
    operator = operator_during_wait(sim, "2.0.0", "set", "image", "deployment/web", f"web={IMG}hotfix")

    run = deploy(sim, "2.0.0", "--timeout", "20s", image=IMG + "broken-2.0.0")
    operator.join(30)

    assert live(sim)[0] == IMG + "hotfix"
    assert run.code == 1, run.stdout
    (result,) = run.result()
    assert result["action"] == "failed" and "changed by someone else" in result["message"], result
    assert ledger_entries(sim)[-1]["result"] != "succeeded"
