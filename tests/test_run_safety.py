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
from helpers import CHANGE_CAUSE, RequestLog, get_deployment, image_of, make_deployment, run_cli

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

    run = run_cli(sim, "--deployment", "web", "--mode", "rollback", "--release", "1.0.0", "--timeout", "5s")

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


# -- the write-ahead record, unverified results, a corrupt ledger -------------------------------------------------


def test_an_in_progress_entry_is_written_before_the_first_workload_write(sim: kubesim.Sim) -> None:
    make_deployment(sim, "web", image=IMG + "1.0.0")
    with RequestLog(sim) as log:
        run = deploy(sim, "1.0.0", "--timeout", "30s")
    assert run.code == 0, run.stdout
    writes = [w for w in log.writes() if "/configmaps" in w.path or "/deployments/" in w.path]
    first_ledger = next(i for i, w in enumerate(writes) if "/configmaps" in w.path)
    first_patch = next(i for i, w in enumerate(writes) if "/deployments/" in w.path)
    assert first_ledger < first_patch
    (ahead,) = json.loads(writes[first_ledger].json()["data"]["entries.json"])
    assert (ahead["release"], ahead["mode"], ahead["result"]) == ("1.0.0", "deploy", "in-progress")
    assert ahead["images"] == [f"web={IMG}1.0.0"] and ahead["run"].startswith("acme/shop/runs/4242/attempt/1/")
    (done,) = ledger_entries(sim)  # completed in place: one entry, not two
    assert (done["result"], done["run"]) == ("succeeded", ahead["run"])


def test_wait_false_records_applied_which_is_not_a_success(sim: kubesim.Sim) -> None:
    """Why: ``wait: false`` recorded the release as succeeded: a broken release became last-successful."""
    make_deployment(sim, "web", image=IMG + "1.0.0")
    assert deploy(sim, "1.0.0", "--timeout", "30s").code == 0
    run = deploy(sim, "1.1.0", "--no-wait", image=IMG + "broken-1.1.0")
    assert run.code == 0, run.stdout
    assert ledger_entries(sim)[-1]["result"] == "applied"
    assert run.outputs["last-successful-release"] == "1.0.0"
    assert run.outputs["last-attempted-release"] == "1.1.0"


def test_an_ondelete_statefulset_records_not_verified(sim: kubesim.Sim) -> None:
    sim.apply({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "default"},
               "spec": {"replicas": 1, "serviceName": "db", "updateStrategy": {"type": "OnDelete"},
                        "selector": {"matchLabels": {"app": "db"}},
                        "template": {"metadata": {"labels": {"app": "db"}},
                                     "spec": {"containers": [{"name": "db", "image": "registry.example/db:1"}]}}}})
    run = run_cli(sim, "--deployment", "statefulset/db", "--mode", "deploy", "--release", "2.0.0",
                  "--images", "db=registry.example/db:2")
    assert run.code == 0, run.stdout
    assert ledger_entries(sim)[-1]["result"] == "not-verified"
    assert run.outputs["last-successful-release"] == ""


@pytest.mark.parametrize("data, problem", [
    ({"format": "1", "entries.json": "[{not json"}, "not a valid ledger"),
    ({"format": "1", "entries.json": '{"a": 1}'}, "expected a JSON array"),
    ({"format": "9", "entries.json": "[]"}, "format '9'"),
])
def test_a_corrupt_ledger_never_stops_a_rollback(sim: kubesim.Sim, data: dict[str, str], problem: str) -> None:
    """Why: a hand-corrupted ledger ConfigMap stopped every rollback."""
    make_deployment(sim, "web", image=IMG + "1.0.0")
    assert deploy(sim, "1.0.0", "--timeout", "30s").code == 0
    assert deploy(sim, "1.1.0", "--timeout", "30s").code == 0
    cm = sim.store.get(CONFIGMAPS, "default", "kube-release-rollback-ledger")
    cm["data"] = data
    sim.apply(cm)
    before = sim.store.get(CONFIGMAPS, "default", "kube-release-rollback-ledger")

    run = run_cli(sim, "--deployment", "web", "--mode", "rollback", "--release", "1.0.0", "--timeout", "30s")

    assert live(sim) == (IMG + "1.0.0", "1.0.0")  # the rollback is done
    # ... and the step says that the block of 1.1.0 is recorded nowhere (issue 11: only what was recorded)
    assert run.code == 1 and run.outputs["rolled-back"] == "true" and run.outputs["blocked-release"] == ""
    (error,) = run.errors
    assert error.startswith("the rollback is done, but the block of 1.1.0 was not recorded in the ledger: the "
                            "release ledger is unusable"), error
    assert any(problem in w and "untouched" in w for w in run.warnings), run.warnings
    after = sim.store.get(CONFIGMAPS, "default", "kube-release-rollback-ledger")
    assert after["data"] == before["data"] and after["metadata"]["resourceVersion"] == before["metadata"][
        "resourceVersion"]


def test_an_api_outage_during_the_wait_says_unknown_and_the_rerun_reports_the_interrupted_run(
        sim: kubesim.Sim) -> None:
    """Why: an outage during the wait reported stale outputs (the release live before the run), the rerun was
    ``skipped`` and the bad release was never blocked."""
    make_deployment(sim, "web", image=IMG + "1.0.0", replicas=2)
    assert deploy(sim, "1.0.0", "--timeout", "30s").code == 0
    assert deploy(sim, "1.1.0", "--timeout", "30s").code == 0
    sim.knobs.ready_delay = 10_000  # the rollback is still rolling out when the API goes away

    def outage() -> None:
        sim.wait_until(lambda: live(sim)[1] == "1.0.0", timeout=30)
        sim.knobs.fail_next(100_000, "*", ".*", status=503)

    thread = threading.Thread(target=outage, daemon=True)
    thread.start()
    run = run_cli(sim, "--deployment", "web", "--mode", "rollback", "--release", "1.0.0", "--timeout", "3s",
                  "--reason", "checkout returns 500")
    thread.join(30)
    assert run.code == 1, run.stdout
    assert run.outputs["release"] == "unknown" and run.outputs["revision"] == "unknown", run.outputs
    (result,) = run.result()
    assert result["release"] == "unknown"

    with sim.knobs.lock:
        sim.knobs.failures.clear()  # the API is back
    sim.knobs.ready_delay = 0.05
    rerun = run_cli(sim, "--deployment", "web", "--mode", "rollback", "--release", "1.0.0", "--timeout", "30s",
                    extra_env={"GITHUB_RUN_ATTEMPT": "2"})
    assert rerun.code == 0, rerun.stdout
    assert any("was interrupted while rolling back to 1.0.0 on deployment/web" in w for w in rerun.warnings), (
        rerun.stdout)
    cm = sim.store.get(CONFIGMAPS, "default", "kube-release-rollback-ledger")
    entries = json.loads(cm["data"]["entries.json"])
    assert [e["result"] for e in entries if e["mode"] == "rollback"][0] == "interrupted"
    assert not [e for e in entries if e["result"] == "in-progress"]
    blocks = json.loads(cm["data"]["blocks.json"])
    assert [b["release"] for b in blocks] == ["1.1.0"], "the interrupted rollback's block must stand"
    assert rerun.outputs["release"] == "1.0.0"
    assert "was interrupted while rolling back to 1.0.0" in rerun.summary


def test_an_early_failure_lists_every_workload(sim: kubesim.Sim) -> None:
    make_deployment(sim, "web", image=IMG + "1.0.0")
    make_deployment(sim, "api", image="registry.example/api:1")
    run = run_cli(sim, "--deployment", "web", "--deployment", "api", "--deployment", "gone", "--mode",
                  "rollback", "--release", "0.1.0")
    assert run.code == 1
    assert [(r["workload"], r["action"]) for r in run.result()] == [
        ("deployment/web", "unchanged"), ("deployment/api", "unchanged"), ("deployment/gone", "unchanged")]
