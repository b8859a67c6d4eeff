"""Several workloads in one step: all resolved before anything is written, and put back together on failure.

The workloads here are ``statefulset/db``, ``deployment/web`` and ``daemonset/agent``, each with images of its
own. When one rollout fails, every workload this step changed goes back to the template and release it had
before (compensation), the step fails with exit code 2, and ``result`` says per workload what happened. When
one workload lacks the target release, the step fails before its first write.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from helpers import CliRun, RequestLog, run_cli, wait_settled

import kubesim
from kubesim.knobs import Knobs
from kubesim.resources import CONTROLLERREVISIONS, DAEMONSETS, DEPLOYMENTS, PODS, REPLICASETS, STATEFULSETS
from rollback.workloads import prune_empty

Obj = dict[str, Any]
CAUSE = "kubernetes.io/change-cause"
NS = "default"
RESOURCE = {"Deployment": DEPLOYMENTS, "StatefulSet": STATEFULSETS, "DaemonSet": DAEMONSETS}
WORKLOADS = (("StatefulSet", "db"), ("Deployment", "web"), ("DaemonSet", "agent"))
FLAGS = [arg for kind, name in WORKLOADS for arg in ("--deployment", f"{kind.lower()}/{name}")]


def image(name: str, release: str) -> str:
    return f"registry.example/{name}:{release}"


def manifest(kind: str, name: str, release: str | None = None, image_ref: str | None = None) -> Obj:
    spec: Obj = {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": name, "image": image_ref or image(name, "0.9.0")}]}}}
    if kind == "Deployment":
        spec.update(replicas=2, progressDeadlineSeconds=4)  # simulated seconds: fails fast at 10x
    if kind == "StatefulSet":
        spec.update(replicas=2, serviceName=name, podManagementPolicy="OrderedReady")
    meta: Obj = {"name": name, "namespace": NS}
    if release:
        meta["annotations"] = {CAUSE: release}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}


def get(sim: kubesim.Sim, kind: str, name: str) -> Obj:
    return copy.deepcopy(sim.store.get(RESOURCE[kind], NS, name))


def live(sim: kubesim.Sim) -> dict[str, tuple[str, str | None]]:
    """workload → (image, change-cause) as live now."""
    result = {}
    for kind, name in WORKLOADS:
        obj = get(sim, kind, name)
        result[f"{kind.lower()}/{name}"] = (obj["spec"]["template"]["spec"]["containers"][0]["image"],
                                            (obj["metadata"].get("annotations") or {}).get(CAUSE))
    return result


def deploy_each(sim: kubesim.Sim, release: str) -> None:
    """Deploy ``release`` to every workload, one step per workload (each has its own image)."""
    for kind, name in WORKLOADS:
        run = run_cli(sim, "--deployment", f"{kind.lower()}/{name}", "--mode", "deploy", "--release", release,
                      "--images", f"{name}={image(name, release)}", "--timeout", "20s")
        assert run.code == 0, run.stdout


def everything(sim: kubesim.Sim) -> dict[str, str]:
    """resourceVersion of every workload, revision and pod: what "nothing changed" means."""
    state = {}
    for rt in (STATEFULSETS, DEPLOYMENTS, DAEMONSETS, REPLICASETS, CONTROLLERREVISIONS, PODS):
        for obj in sim.store.list(rt, NS)[0]:
            state[f"{rt.kind}/{obj['metadata']['name']}"] = obj["metadata"]["resourceVersion"]
    return state


def by_workload(run: CliRun) -> dict[str, dict[str, Any]]:
    return {entry["workload"]: entry for entry in run.result()}


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(ready_delay=0.2)


@pytest.fixture
def fast(sim: kubesim.Sim) -> kubesim.Sim:
    sim.clock.scale = 10
    for kind, name in WORKLOADS:
        sim.apply(manifest(kind, name, "1.0.0", image(name, "1.0.0")))
    return sim


def test_all_workloads_roll_back_together(fast: kubesim.Sim) -> None:
    deploy_each(fast, "1.1.0")
    run = run_cli(fast, *FLAGS, "--mode", "rollback", "--release", "1.0.0", "--timeout", "20s")
    assert run.code == 0, run.stdout
    assert live(fast) == {f"{kind.lower()}/{name}": (image(name, "1.0.0"), "1.0.0") for kind, name in WORKLOADS}
    results = run.result()
    assert [r["workload"] for r in results] == ["statefulset/db", "deployment/web", "daemonset/agent"]
    assert all((r["action"], r["rollout"], r["release"], r["previous_release"]) ==
               ("rolled-back", "complete", "1.0.0", "1.1.0") for r in results), results
    assert run.outputs["release"] == "1.0.0" and run.outputs["skipped"] == "false"


@pytest.mark.parametrize("flag", [
    pytest.param("--rollback-on-failure", id="rollback-on-failure"),
    pytest.param("--no-rollback-on-failure", id="default"),
])
def test_deploy_whose_second_workload_fails_puts_every_workload_back(fast: kubesim.Sim, tmp_path: Any,
                                                                     flag: str) -> None:
    """Manifests give each workload its own 2.0.0 image; web's cannot be pulled, so its rollout fails on the
    progress deadline after db was already changed (and agent too): all three go back to 1.0.0."""
    wait_settled(fast)
    before = {f"{kind.lower()}/{name}": get(fast, kind, name) for kind, name in WORKLOADS}
    documents = [manifest(kind, name, image_ref=image(name, "2.0.0")) for kind, name in WORKLOADS]
    documents[1]["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example/web:broken-2.0.0"
    (tmp_path / "release.yaml").write_text(yaml.safe_dump_all(documents))

    run = run_cli(fast, *FLAGS, "--mode", "deploy", "--release", "2.0.0", "--manifests", "release.yaml",
                  "--timeout", "20s", flag, extra_env={"GITHUB_WORKSPACE": str(tmp_path)})

    assert run.code == 2, run.stdout  # failed, and the changed workloads were put back
    assert live(fast) == {f"{kind.lower()}/{name}": (image(name, "1.0.0"), "1.0.0") for kind, name in WORKLOADS}
    for key, obj in before.items():
        kind, name = next((k, n) for k, n in WORKLOADS if f"{k.lower()}/{n}" == key)
        assert prune_empty(get(fast, kind, name)["spec"]["template"]) == prune_empty(obj["spec"]["template"]), key
    results = by_workload(run)
    assert list(results) == ["statefulset/db", "deployment/web", "daemonset/agent"]
    assert {key: (r["action"], r["release"]) for key, r in results.items()} == dict.fromkeys(
        results, ("compensated", "1.0.0")), json.dumps(results, indent=1)
    assert "progress deadline" in results["deployment/web"]["message"], results["deployment/web"]
    assert any("deployment/web" in e and "progress deadline" in e for e in run.errors), run.stdout
    assert run.outputs["release"] == "1.0.0"
    if flag == "--rollback-on-failure":
        assert (run.outputs["rolled-back"], run.outputs["failed-release"]) == ("true", "2.0.0")
    assert "compensated" in run.summary


def test_rollback_whose_target_fails_on_one_workload_leaves_every_rollback_in_place(fast: kubesim.Sim) -> None:
    """web's 1.0.0 image was deleted from the registry after it was replaced: rolling both back to 1.0.0 fails
    on web. A rollback is never undone (kubectl semantics): db stays rolled back, web stays on the rollback
    that does not become Ready, and the step fails saying so (exit 1: nothing was put back)."""
    deploy_each(fast, "1.1.0")
    fast.knobs.bad_images.add(image("web", "1.0.0"))
    run = run_cli(fast, "--deployment", "statefulset/db", "--deployment", "web", "--mode", "rollback",
                  "--release", "1.0.0", "--timeout", "20s")
    assert run.code == 1, run.stdout
    now = live(fast)
    assert now["statefulset/db"] == (image("db", "1.0.0"), "1.0.0")
    assert now["deployment/web"] == (image("web", "1.0.0"), "1.0.0")
    results = by_workload(run)
    assert {key: (r["action"], r["release"], r["rollout"]) for key, r in results.items()} == {
        "statefulset/db": ("rolled-back", "1.0.0", "complete"), "deployment/web": ("failed", "1.0.0", "failed")}
    assert "never undone" in results["deployment/web"]["message"]
    assert run.outputs["skipped"] == "false" and run.outputs["rolled-back"] == "false"


def test_a_workload_without_the_release_means_nothing_is_changed(fast: kubesim.Sim) -> None:
    """db never had 0.9.0-hotfix: the step fails naming it, before touching web or agent (which have it)."""
    for kind, name in WORKLOADS:
        if name != "db":
            run = run_cli(fast, "--deployment", f"{kind.lower()}/{name}", "--mode", "deploy",
                          "--release", "0.9.0-hotfix", "--images", f"{name}={image(name, '0.9.0-hotfix')}")
            assert run.code == 0, run.stdout
    deploy_each(fast, "1.1.0")
    wait_settled(fast)
    before = everything(fast)
    with RequestLog(fast) as log:
        run = run_cli(fast, *FLAGS, "--mode", "rollback", "--release", "0.9.0-hotfix", "--timeout", "20s")
    assert run.code == 1, run.stdout
    assert log.app_writes(include_dry_run=True) == []
    assert everything(fast) == before
    (error,) = [e for e in run.errors if "0.9.0-hotfix" in e]
    assert "statefulset/db" in error and "nothing was changed" in error
    assert "deployment/web" not in error and "daemonset/agent" not in error
    assert live(fast) == {f"{kind.lower()}/{name}": (image(name, "1.1.0"), "1.1.0") for kind, name in WORKLOADS}
    assert run.outputs["rolled-back"] == "false"


def test_a_write_that_fails_after_others_were_changed_puts_them_back_and_says_so(fast: kubesim.Sim) -> None:
    """The second workload's patch is refused (403): the first one, already changed, is put back; the step
    fails with exit code 2, ``result`` says where each ended, and the ledger records the attempt."""
    wait_settled(fast)
    before = live(fast)
    fast.knobs.fail_next(1, "PATCH", "/deployments/web", status=403)
    run = run_cli(fast, "--deployment", "statefulset/db", "--deployment", "deployment/web", "--mode", "deploy",
                  "--release", "2.0.0", "--images", f"db={image('db', '2.0.0')}", "--images",
                  f"web={image('web', '2.0.0')}", "--timeout", "20s")
    assert run.code == 2, run.stdout
    assert live(fast) == before
    results = by_workload(run)
    assert results["statefulset/db"]["action"] == "compensated"
    assert results["deployment/web"]["action"] == "unchanged"
    assert run.outputs["failed-release"] == "" and run.outputs["rolled-back"] == "false"
    assert any("403" in e or "forbidden" in e.lower() for e in run.errors), run.stdout
    ledger = fast.store.get(kubesim.resources.CONFIGMAPS, NS, "kube-release-rollback-ledger")
    entries = json.loads(ledger["data"]["entries.json"])
    assert [(e["workload"], e["release"], e["result"]) for e in entries[-1:]] == [
        ("statefulset/db", "2.0.0", "rolled-back")]


@pytest.mark.parametrize("images,problem", [
    (["db=registry.example/db:2.0.0"], "deployment/web has none of the containers named in images (db)"),
    (["db=registry.example/db:2.0.0", "web=registry.example/web:2.0.0", "cache=registry.example/cache:2"],
     "no workload has a container for cache=registry.example/cache:2"),
])
def test_images_that_do_not_fit_the_workloads_change_nothing(fast: kubesim.Sim, images: list[str],
                                                             problem: str) -> None:
    wait_settled(fast)
    before = everything(fast)
    args = [arg for item in images for arg in ("--images", item)]
    run = run_cli(fast, "--deployment", "statefulset/db", "--deployment", "deployment/web", "--mode", "deploy",
                  "--release", "2.0.0", *args)
    assert run.code == 1, run.stdout
    assert any(problem in e for e in run.errors), run.stdout
    assert everything(fast) == before
