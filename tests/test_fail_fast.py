"""``fail-fast``: a deploy whose new pods will not recover fails within seconds, says why, and is put back.

For each failure class kubesim models (crash loop, image pull, missing ConfigMap/Secret, failing init container)
and each workload kind: the step exits 2 with ``rolled-back=true``, one ``::error::`` per workload names the pod,
the container and the reason, ``failure-reason`` is the cluster's reason, the job summary has the diagnosis
table, ``result`` has the ``diagnosis`` object, and the previous release is live and Ready. The step's
``timeout`` is far below the time a progress deadline or timeout would take, so a wait that was not cut short
would show as ``failure-reason: Timeout``. Slow but healthy rollouts succeed; without the RBAC verbs for pods
the action still works, with less detail.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import yaml
from helpers import CliRun, run_cli

import kubesim
from kubesim import write_kubeconfig
from kubesim.knobs import Knobs
from kubesim.resources import DAEMONSETS, DEPLOYMENTS, PODS, STATEFULSETS

Obj = dict[str, Any]
CAUSE = "kubernetes.io/change-cause"
NS = "default"
KINDS = ("Deployment", "StatefulSet", "DaemonSet")
RESOURCE = {"Deployment": DEPLOYMENTS, "StatefulSet": STATEFULSETS, "DaemonSet": DAEMONSETS}
NAME = {"Deployment": "web", "StatefulSet": "db", "DaemonSet": "agent"}
GOOD = "registry.example/app:1.0.0"
TIMEOUT = "40s"  # far below the default progress deadline at this time scale (600 s simulated = 60 s)


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(ready_delay=0.2)


@pytest.fixture
def fast(sim: kubesim.Sim) -> kubesim.Sim:
    sim.clock.scale = 10
    return sim


def manifest(kind: str, image: str = "registry.example/app:0.9.0", **container: Any) -> Obj:
    name = NAME[kind]
    spec: Obj = {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": image, **container}]}}}
    if kind == "Deployment":
        spec["replicas"] = 3
    if kind == "StatefulSet":
        spec.update(replicas=2, serviceName=name, podManagementPolicy="OrderedReady")
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": NS}, "spec": spec}


def workload(kind: str) -> str:
    return f"{kind.lower()}/{NAME[kind]}"


def deploy(sim: kubesim.Sim, kind: str, release: str, *args: str) -> CliRun:
    return run_cli(sim, "--namespace", NS, "--deployment", workload(kind), "--mode", "deploy", "--release", release,
                   *args)


def live_on_good(sim: kubesim.Sim, kind: str) -> set[str]:
    """Deploy 1.0.0 (healthy); returns the names of its pods."""
    sim.apply(manifest(kind))
    run = deploy(sim, kind, "1.0.0", "--images", f"app={GOOD}", "--timeout", "30s")
    assert run.code == 0, run.stdout
    return {p["metadata"]["name"] for p in workload_pods(sim, kind)}


def get(sim: kubesim.Sim, kind: str) -> Obj:
    return copy.deepcopy(sim.store.get(RESOURCE[kind], NS, NAME[kind]))


def workload_pods(sim: kubesim.Sim, kind: str) -> list[Obj]:
    return [p for p in sim.store.list(PODS, NS)[0] if (p["metadata"].get("labels") or {}).get("app") == NAME[kind]]


def all_ready_on(sim: kubesim.Sim, kind: str, image: str) -> bool:
    found = [p for p in workload_pods(sim, kind) if not p["metadata"].get("deletionTimestamp")]
    return bool(found) and all(
        p["spec"]["containers"][0]["image"] == image
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
        for p in found)


def bad_manifest_file(tmp_path: Any, kind: str, case: str) -> str:
    """A 2.0.0 manifest whose pods cannot start: a missing ConfigMap/Secret, or an init container that crashes."""
    obj = manifest(kind, "registry.example/app:2.0.0")
    pod_spec = obj["spec"]["template"]["spec"]
    if case == "config-env":
        pod_spec["containers"][0]["envFrom"] = [{"configMapRef": {"name": "settings-2"}}]
    elif case == "config-secret":
        pod_spec["containers"][0]["env"] = [{"name": "DB_PASSWORD", "valueFrom": {
            "secretKeyRef": {"name": "db-credentials", "key": "password"}}}]
    elif case == "unschedulable":
        pod_spec["nodeSelector"] = {"disktype": "ssd"}  # no simulated node has it
    elif case == "config-key":
        pod_spec["containers"][0]["env"] = [{"name": "URL", "valueFrom": {
            "configMapKeyRef": {"name": "settings", "key": "url-2"}}}]
    elif case == "secret-key":
        pod_spec["containers"][0]["env"] = [{"name": "DB_PASSWORD", "valueFrom": {
            "secretKeyRef": {"name": "db-credentials", "key": "password"}}}]
    elif case == "config-volume":
        pod_spec["volumes"] = [{"name": "settings", "configMap": {"name": "settings-2"}}]
        pod_spec["containers"][0]["volumeMounts"] = [{"name": "settings", "mountPath": "/etc/app"}]
    elif case == "init":
        pod_spec["initContainers"] = [{"name": "migrate", "image": "registry.example/migrate:crash-2.0.0"}]
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump(obj))
    return str(path)


def diagnosis_errors(run: CliRun, kind: str) -> list[str]:
    return [e for e in run.errors if e.startswith(f"{workload(kind)}: ") and "of the new revision failing" in e]


def assert_failed_fast_and_restored(sim: kubesim.Sim, run: CliRun, kind: str, reason: str, container: str,
                                    old_pods: set[str]) -> Obj:
    assert run.code == 2, run.stdout
    assert run.outputs["rolled-back"] == "true"
    assert run.outputs["failed-release"] == "2.0.0" and run.outputs["release"] == "1.0.0"
    assert run.outputs["failure-reason"] == reason, run.stdout
    (entry,) = run.result()
    assert entry["action"] == "compensated" and entry["failure_reason"] == reason
    diagnosis = entry["diagnosis"]
    assert diagnosis["reason"] == reason and diagnosis["final"] is True
    first = diagnosis["pods"][0]
    assert first["container"] == container and first["reason"] == reason
    pod_name = first["pod"]
    # one annotation for the workload, naming the pod, the container and the reason
    (error,) = diagnosis_errors(run, kind)
    assert f"pod {pod_name} " in error and f"container {container}: {reason}" in error, error
    title = next(line for line in run.error_lines() if "of the new revision failing" in line)
    assert f"title={workload(kind)}%3A {reason}::" in title
    # the summary's diagnosis table
    assert f"### Why {workload(kind)} failed: {reason}" in run.summary
    assert "| POD | CONTAINER | REASON | MESSAGE | RESTARTS | LAST EXIT | EVENTS | LAST LOG LINES |" in run.summary
    assert re.search(rf"^\| {re.escape(pod_name)} \| {container}", run.summary, re.MULTILINE), run.summary
    # the previous release is live again and Ready
    obj = get(sim, kind)
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == GOOD
    assert (obj["metadata"].get("annotations") or {}).get(CAUSE) == "1.0.0"
    assert all_ready_on(sim, kind, GOOD), [p["metadata"]["name"] for p in workload_pods(sim, kind)]
    if kind != "StatefulSet":  # (StatefulSet pods keep their names across revisions)
        assert pod_name not in old_pods, "an old pod was judged"
    assert not sim.controllers.errors
    return diagnosis


@pytest.mark.parametrize("kind", KINDS)
def test_crash_loop_fails_fast_and_is_rolled_back(fast: kubesim.Sim, kind: str) -> None:
    old = live_on_good(fast, kind)
    run = deploy(fast, kind, "2.0.0", "--images", "app=registry.example/app:crash-2.0.0", "--rollback-on-failure",
                 "--timeout", TIMEOUT)
    diagnosis = assert_failed_fast_and_restored(fast, run, kind, "CrashLoopBackOff", "app", old)
    first = diagnosis["pods"][0]
    assert first["exit_code"] == 1 and first["terminated_reason"] == "Error" and first["restart_count"] >= 1
    assert first["logs"] and first["logs"][-1].endswith("exiting with status 1")  # the previous instance's log
    assert any(e["reason"] == "BackOff" and "Back-off restarting failed container app" in e["message"]
               for e in first["events"])
    assert "exiting with status 1" in diagnosis_errors(run, kind)[0]


@pytest.mark.parametrize("kind", KINDS)
def test_image_pull_failure_fails_fast_and_is_rolled_back(fast: kubesim.Sim, kind: str) -> None:
    old = live_on_good(fast, kind)
    image = "registry.example/app:does-not-exist-2.0.0"
    run = deploy(fast, kind, "2.0.0", "--images", f"app={image}", "--rollback-on-failure", "--timeout", TIMEOUT)
    diagnosis = assert_failed_fast_and_restored(fast, run, kind, "ImagePullBackOff", "app", old)
    first = diagnosis["pods"][0]
    assert first["message"] == f'Back-off pulling image "{image}"'
    assert first["logs"] == []  # a container that never started has no log
    assert ("Failed", "Error: ErrImagePull") in {(e["reason"], e["message"]) for e in first["events"]}


@pytest.mark.parametrize(("kind", "case", "reason", "message"), [
    ("Deployment", "config-env", "CreateContainerConfigError", 'configmap "settings-2" not found'),
    ("StatefulSet", "config-secret", "CreateContainerConfigError", 'secret "db-credentials" not found'),
    ("DaemonSet", "config-env", "CreateContainerConfigError", 'configmap "settings-2" not found'),
    ("Deployment", "config-volume", "FailedMount",
     'MountVolume.SetUp failed for volume "settings" : configmap "settings-2" not found'),
])
def test_missing_config_fails_fast_and_is_rolled_back(fast: kubesim.Sim, tmp_path: Any, kind: str, case: str,
                                                      reason: str, message: str) -> None:
    """A manifest needing a missing ConfigMap/Secret is refused before any write when the pre-flight check can
    read ConfigMaps and Secrets (tests/test_preflight_runs.py). Without that permission (and without the
    ledger, which needs it too) the check is unknown, said once, and fail-fast is what catches the pods."""
    old = live_on_good(fast, kind)
    env = restricted_kubeconfig(fast, tmp_path, *NO_CONFIG_READS)
    run = run_cli(fast, "--namespace", NS, "--deployment", workload(kind), "--mode", "deploy", "--release", "2.0.0",
                  "--manifests", bad_manifest_file(tmp_path, kind, case), "--no-ledger", "--rollback-on-failure",
                  "--timeout", TIMEOUT, extra_env=env)
    assert sum("could not check everything before writing" in w for w in run.warnings) == 1, run.stdout
    container = "-" if case == "config-volume" else "app"
    if case == "config-volume":  # a pod-level finding: no container
        assert run.code == 2, run.stdout
        (entry,) = run.result()
        first = entry["diagnosis"]["pods"][0]
        assert (first["reason"], first["container"], first["failure"]) == (reason, None, "config-missing")
        assert run.outputs["failure-reason"] == reason and run.outputs["rolled-back"] == "true"
        assert first["message"].startswith(message), first
        assert f"pod {first['pod']}: FailedMount" in diagnosis_errors(run, kind)[0]
        assert all_ready_on(fast, kind, GOOD)
        return
    diagnosis = assert_failed_fast_and_restored(fast, run, kind, reason, container, old)
    assert diagnosis["failure"] == "config-missing" and diagnosis["pods"][0]["message"] == message


@pytest.mark.parametrize(("kind", "case", "message"), [
    ("Deployment", "config-key", f"couldn't find key url-2 in ConfigMap {NS}/settings"),
    ("StatefulSet", "secret-key", f"couldn't find key password in Secret {NS}/db-credentials"),
    ("DaemonSet", "config-key", f"couldn't find key url-2 in ConfigMap {NS}/settings"),
])
def test_missing_key_passes_pre_flight_and_fails_fast(fast: kubesim.Sim, tmp_path: Any, kind: str, case: str,
                                                      message: str) -> None:
    """With every permission: the ConfigMap/Secret exists, so pre-flight lets the release through, but the key
    the new pods read is not in it; the kubelet's CreateContainerConfigError is caught at the rollout."""
    fast.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": NS},
                "data": {"url": "https://db.example"}})
    fast.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-credentials", "namespace": NS},
                "data": {"user": "YXBw"}})
    old = live_on_good(fast, kind)
    run = deploy(fast, kind, "2.0.0", "--manifests", bad_manifest_file(tmp_path, kind, case),
                 "--rollback-on-failure", "--timeout", TIMEOUT)
    diagnosis = assert_failed_fast_and_restored(fast, run, kind, "CreateContainerConfigError", "app", old)
    assert diagnosis["failure"] == "config-missing" and diagnosis["pods"][0]["message"] == message


@pytest.mark.parametrize("kind", KINDS)
def test_failing_init_container_fails_fast_and_is_rolled_back(fast: kubesim.Sim, tmp_path: Any, kind: str) -> None:
    old = live_on_good(fast, kind)
    run = deploy(fast, kind, "2.0.0", "--manifests", bad_manifest_file(tmp_path, kind, "init"),
                 "--rollback-on-failure", "--timeout", TIMEOUT)
    diagnosis = assert_failed_fast_and_restored(fast, run, kind, "CrashLoopBackOff", "migrate", old)
    assert diagnosis["failure"] == "init-container" and diagnosis["pods"][0]["init_container"] is True
    assert "init container migrate: CrashLoopBackOff" in diagnosis_errors(run, kind)[0]


def test_old_pods_are_never_judged(fast: kubesim.Sim) -> None:
    """Deploying a fix over a crash-looping release succeeds: the old revision's crashing pods are not the
    rollout's failure."""
    fast.apply(manifest("Deployment", "registry.example/app:crash-0.9.0"))
    fast.wait_until(lambda: any(
        ((c.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
        for p in workload_pods(fast, "Deployment") for c in p["status"].get("containerStatuses") or []))
    run = deploy(fast, "Deployment", "1.0.0", "--images", f"app={GOOD}", "--timeout", TIMEOUT)
    assert run.code == 0, run.stdout
    assert run.outputs["failure-reason"] == "" and "diagnosis" not in run.result()[0]
    assert all_ready_on(fast, "Deployment", GOOD)


@pytest.mark.parametrize("case", ["readiness after 30 s", "minReadySeconds 20", "restarts once, then Ready"])
def test_slow_but_healthy_rollouts_are_not_failed(sim: kubesim.Sim, case: str) -> None:
    """No false positives: each of these takes longer (in real seconds) than the image-pull and config
    thresholds, and succeeds."""
    sim.clock.scale = 5
    new_image = "registry.example/app:1.1.0"
    obj = manifest("Deployment")
    obj["spec"]["replicas"] = 2
    if case == "minReadySeconds 20":
        obj["spec"]["minReadySeconds"] = 20
    sim.apply(obj)
    first = deploy(sim, "Deployment", "1.0.0", "--images", f"app={GOOD}", "--timeout", "60s")
    assert first.code == 0, first.stdout
    if case == "readiness after 30 s":
        sim.knobs.ready_delay = 30.0
    if case == "restarts once, then Ready":
        sim.knobs.crash_images.add(new_image)
        sim.knobs.crash_limit = 1
    run = deploy(sim, "Deployment", "1.1.0", "--images", f"app={new_image}", "--rollback-on-failure",
                 "--timeout", "90s")
    assert run.code == 0, run.stdout
    assert run.outputs["failure-reason"] == "" and run.outputs["rolled-back"] == "false"
    (entry,) = run.result()
    assert entry["action"] == "deployed" and entry["rollout"] == "complete" and "diagnosis" not in entry
    assert all_ready_on(sim, "Deployment", new_image)
    if case == "restarts once, then Ready":
        restarts = {p["status"]["containerStatuses"][0]["restartCount"] for p in workload_pods(sim, "Deployment")}
        assert restarts == {1}


def test_without_fail_fast_it_waits_for_the_progress_deadline_and_still_says_why(sim: kubesim.Sim) -> None:
    sim.clock.scale = 100  # the default progressDeadlineSeconds (600 s) in 6 s
    live_on_good(sim, "Deployment")
    run = deploy(sim, "Deployment", "2.0.0", "--images", "app=registry.example/app:crash-2.0.0",
                 "--rollback-on-failure", "--no-fail-fast", "--timeout", "60s")
    assert run.code == 2, run.stdout
    (entry,) = run.result()
    assert "exceeded its progress deadline" in entry["message"]
    assert entry["diagnosis"]["reason"] == "CrashLoopBackOff"  # explained at the deadline
    assert run.outputs["failure-reason"] == "CrashLoopBackOff"
    assert all_ready_on(sim, "Deployment", GOOD)


def test_unschedulable_is_explained_at_the_deadline(sim: kubesim.Sim, tmp_path: Any) -> None:
    """Unschedulable is final only after 60 s (the real seconds of this run); a progress deadline that comes
    first is explained with the scheduler's message, as a diagnosis that was still changing (final: false)."""
    sim.clock.scale = 100  # the default progressDeadlineSeconds (600 s) in 6 s
    live_on_good(sim, "Deployment")
    run = deploy(sim, "Deployment", "2.0.0", "--manifests", bad_manifest_file(tmp_path, "Deployment", "unschedulable"),
                 "--rollback-on-failure", "--timeout", "60s")
    assert run.code == 2, run.stdout
    assert run.outputs["failure-reason"] == "Unschedulable" and run.outputs["rolled-back"] == "true"
    (entry,) = run.result()
    diagnosis = entry["diagnosis"]
    assert diagnosis["failure"] == "unschedulable" and diagnosis["final"] is False
    first = diagnosis["pods"][0]
    assert first["container"] is None and "didn't match Pod's node affinity/selector" in first["message"]
    assert ("FailedScheduling", first["message"]) in {(e["reason"], e["message"]) for e in first["events"]}
    assert "exceeded its progress deadline" in diagnosis_errors(run, "Deployment")[0]
    assert "(still changing when the wait ended)" in run.summary
    assert all_ready_on(sim, "Deployment", GOOD)


def test_several_workloads_are_put_back_as_soon_as_one_fails(fast: kubesim.Sim) -> None:
    """The second workload is not waited for once the first failed: compensation starts at once."""
    for kind in ("Deployment", "StatefulSet"):
        fast.apply(manifest(kind))
    run = run_cli(fast, "--deployment", "deployment/web", "--deployment", "statefulset/db", "--mode", "deploy",
                  "--release", "1.0.0", "--images", f"app={GOOD}", "--images-apply-to-all", "--timeout", "30s")
    assert run.code == 0, run.stdout
    # web gets a crashing image, db a healthy one: only web can fail
    fast.apply({**manifest("Deployment"), "spec": {**manifest("Deployment")["spec"], "template": {
        **manifest("Deployment")["spec"]["template"], "spec": {"containers": [
            {"name": "app", "image": GOOD}, {"name": "side", "image": "registry.example/side:1"}]}}}})
    run = run_cli(fast, "--deployment", "deployment/web", "--deployment", "statefulset/db", "--mode", "deploy",
                  "--release", "2.0.0", "--images", "side=registry.example/side:crash-2", "--images",
                  "app=registry.example/app:2.0.0", "--images-apply-to-all", "--timeout", TIMEOUT)
    assert run.code == 2, run.stdout
    assert run.outputs["failure-reason"] == "CrashLoopBackOff"
    web, db = run.result()
    assert (web["action"], db["action"]) == ("compensated", "compensated"), (web, db)
    assert "statefulset/db: not waited for, deployment/web already failed" in run.stdout
    assert len(diagnosis_errors(run, "Deployment")) == 1 and diagnosis_errors(run, "StatefulSet") == []
    assert get(fast, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["image"] == GOOD


# everything a deploy with fail-fast reads and writes, except ConfigMaps and Secrets
NO_CONFIG_READS = ("deployments", "replicasets", "controllerrevisions", "statefulsets", "daemonsets", "pods",
                   "pods/log", "events", "leases")


def restricted_kubeconfig(sim: kubesim.Sim, tmp_path: Any, *resources: str) -> dict[str, str]:
    """A kubeconfig whose token may use only ``resources`` (any verb), and full access for kubesim's own setup."""
    sim.knobs.grant("deployer", "deployer", resources=resources)
    path = write_kubeconfig(str(tmp_path / "restricted"), sim.url, token="deployer")
    return {"KUBECONFIG": path}


WITHOUT_PODS = ("deployments", "replicasets", "controllerrevisions", "statefulsets", "daemonsets", "configmaps",
                "leases")  # a deploy takes a Lease per workload (README: RBAC)


def test_without_rbac_for_pods_it_still_rolls_back_without_detail(fast: kubesim.Sim, tmp_path: Any) -> None:
    obj = manifest("Deployment")
    obj["spec"]["progressDeadlineSeconds"] = 20  # 2 s at this time scale: nothing else can stop the wait
    fast.apply(obj)
    assert deploy(fast, "Deployment", "1.0.0", "--images", f"app={GOOD}").code == 0
    env = restricted_kubeconfig(fast, tmp_path, *WITHOUT_PODS)
    run = deploy_as(fast, env, "--images", "app=registry.example/app:crash-2.0.0")
    assert run.code == 2, run.stdout
    assert run.outputs["rolled-back"] == "true" and run.outputs["failure-reason"] == "ProgressDeadlineExceeded"
    (entry,) = run.result()
    assert "diagnosis" not in entry
    said = [w for w in run.warnings if "could not read pods" in w]
    assert len(said) == 1 and "403 Forbidden" in said[0] and "RBAC" in said[0], run.warnings
    assert all_ready_on(fast, "Deployment", GOOD)


def test_without_rbac_for_logs_and_events_the_diagnosis_says_so(fast: kubesim.Sim, tmp_path: Any) -> None:
    live_on_good(fast, "Deployment")
    env = restricted_kubeconfig(fast, tmp_path, *WITHOUT_PODS, "pods")
    run = deploy_as(fast, env, "--images", "app=registry.example/app:crash-2.0.0")
    assert run.code == 2, run.stdout
    assert run.outputs["failure-reason"] == "CrashLoopBackOff"
    (entry,) = run.result()
    diagnosis = entry["diagnosis"]
    assert diagnosis["pods"][0]["events"] == [] and diagnosis["pods"][0]["logs"] == []
    assert "events not read: 403 Forbidden" in diagnosis["notes"]
    assert "pods/log not read: 403 Forbidden" in diagnosis["notes"]
    assert sum("could not read events" in w for w in run.warnings) == 1
    assert sum("could not read pods/log" in w for w in run.warnings) == 1
    assert "Note: pods/log not read: 403 Forbidden" in run.summary
    assert all_ready_on(fast, "Deployment", GOOD)


def deploy_as(sim: kubesim.Sim, env: dict[str, str], *args: str) -> CliRun:
    return run_cli(sim, "--namespace", NS, "--deployment", "web", "--mode", "deploy", "--release", "2.0.0",
                   "--rollback-on-failure", "--timeout", TIMEOUT, *args, extra_env=env)


def test_result_json_diagnosis_shape(fast: kubesim.Sim) -> None:
    live_on_good(fast, "Deployment")
    run = deploy(fast, "Deployment", "2.0.0", "--images", "app=registry.example/app:crash-2.0.0",
                 "--rollback-on-failure", "--timeout", TIMEOUT)
    diagnosis = json.loads(run.outputs["result"])[0]["diagnosis"]
    assert set(diagnosis) == {"failure", "reason", "final", "pods", "more_pods", "notes"}
    assert set(diagnosis["pods"][0]) == {"pod", "container", "init_container", "failure", "reason", "message",
                                         "restart_count", "exit_code", "terminated_reason", "events", "logs"}
    assert len(diagnosis["pods"]) + diagnosis["more_pods"] >= 1 and len(diagnosis["pods"]) <= 3
