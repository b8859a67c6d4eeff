"""kubesim's kubelet fails pods the way a node reports it, and real kubectl reads them unchanged.

Crash loops (``CrashLoopBackOff``, ``restartCount`` growing on the kubelet's 10 s, 20 s, ... back-off,
``lastState.terminated`` exit code 1), image pulls (``ErrImagePull`` then ``ImagePullBackOff``), missing ConfigMaps
and Secrets (``CreateContainerConfigError`` for env/envFrom, ``FailedMount`` for volumes), failing init
containers, Events about the pod, and the ``pods/log`` subresource. Waits use kubesim's simulated clock (time
scale) and only assert states, never durations.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
from typing import Any

import pytest
from conftest import kubectl, python_client

import kubesim
from kubesim.controllers.containers import crash_state, go_duration
from kubesim.knobs import Knobs
from kubesim.resources import CONFIGMAPS, EVENTS, PODS

Obj = dict[str, Any]
NS = "default"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(ready_delay=0.5)


@pytest.fixture
def fast(sim: kubesim.Sim) -> kubesim.Sim:
    sim.clock.scale = 20
    return sim


def deployment(name: str, image: str, **container: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": image, **container}]}}}}


def pods_of(sim: kubesim.Sim, app: str) -> list[Obj]:
    return [copy.deepcopy(p) for p in sim.store.list(PODS, NS)[0] if (p["metadata"].get("labels") or {}).get(
        "app") == app]


def the_pod(sim: kubesim.Sim, app: str, predicate: Any, timeout: float = 20.0) -> Obj:
    def check() -> Obj | None:
        found = pods_of(sim, app)
        return found[0] if len(found) == 1 and predicate(found[0]) else None

    return sim.wait_until(check, timeout=timeout)


def waiting(pod: Obj, key: str = "containerStatuses") -> Obj:
    return ((pod["status"].get(key) or [{}])[0].get("state") or {}).get("waiting") or {}


def events_of(sim: kubesim.Sim, pod: Obj) -> list[Obj]:
    return [e for e in sim.store.list(EVENTS, NS)[0] if e["involvedObject"].get("uid") == pod["metadata"]["uid"]]


# -- the back-off schedule (pure, simulated seconds) ------------------------------------------------------------

@pytest.mark.parametrize(("now", "restarts", "running", "backoff"), [
    (0.5, 0, True, 0.0),    # first run
    (1.5, 1, True, 0.0),    # exited at 1.0 and restarted at once (no back-off yet)
    (2.5, 1, False, 10.0),  # second exit at 2.0: back-off 10 s from the restart at 1.0
    (11.5, 2, True, 0.0),   # restarted at 11.0
    (20.0, 2, False, 20.0),  # exited at 12.0, back-off 20 s until 31.0
    (31.5, 3, True, 0.0),
    (40.0, 3, False, 40.0),
])
def test_crash_loop_schedule(now: float, restarts: int, running: bool, backoff: float) -> None:
    state = crash_state(0.0, now)
    assert (state.restarts, state.running, state.backoff) == (restarts, running, backoff)
    assert state.next_change is not None and state.next_change > now


def test_crash_limit_lets_it_run_after_the_last_crash() -> None:
    state = crash_state(0.0, 100.0, limit=1)
    assert (state.restarts, state.running, state.stable, state.next_change) == (1, True, True, None)


@pytest.mark.parametrize(("seconds", "text"), [(10, "10s"), (80, "1m20s"), (300, "5m0s"), (3725, "1h2m5s")])
def test_go_duration(seconds: int, text: str) -> None:
    assert go_duration(seconds) == text


# -- pod states -------------------------------------------------------------------------------------------------


def test_crashing_image_crash_loops_with_growing_restart_count(fast: kubesim.Sim) -> None:
    fast.apply(deployment("web", "registry.example/app:crash-1.1"))
    pod = the_pod(fast, "web", lambda p: waiting(p).get("reason") == "CrashLoopBackOff")
    status = pod["status"]["containerStatuses"][0]
    uid, name = pod["metadata"]["uid"], pod["metadata"]["name"]
    assert pod["status"]["phase"] == "Running"
    assert not status["ready"] and status["restartCount"] == 1
    assert waiting(pod)["message"] == f"back-off 10s restarting failed container=app pod={name}_{NS}({uid})"
    terminated = status["lastState"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (1, "Error")
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["message"] == "containers with unready status: [app]"

    later = the_pod(fast, "web", lambda p: p["status"]["containerStatuses"][0]["restartCount"] >= 2
                    and waiting(p).get("reason") == "CrashLoopBackOff")
    assert waiting(later)["message"].startswith("back-off 20s restarting failed container=app")
    backoff = next(e for e in events_of(fast, later) if e["reason"] == "BackOff")
    assert backoff["type"] == "Warning" and backoff["count"] >= 2
    assert backoff["message"] == f"Back-off restarting failed container app in pod {name}_{NS}({uid})"
    assert backoff["involvedObject"]["kind"] == "Pod" and backoff["involvedObject"]["name"] == name
    assert backoff["involvedObject"]["fieldPath"] == "spec.containers{app}"
    assert backoff["source"]["component"] == "kubelet"
    assert not fast.controllers.errors


def test_crash_image_knob_and_crash_limit(sim: kubesim.Sim) -> None:
    sim.clock.scale = 20
    sim.knobs.crash_images.add("registry.example/app:1.2")
    sim.knobs.crash_limit = 1
    sim.apply(deployment("web", "registry.example/app:1.2"))
    pod = the_pod(sim, "web", lambda p: p["status"]["containerStatuses"][0]["ready"])
    status = pod["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1 and status["lastState"]["terminated"]["exitCode"] == 1
    assert "running" in status["state"]


def test_image_that_cannot_be_pulled(fast: kubesim.Sim) -> None:
    image = "registry.example/app:broken-2"
    fast.apply(deployment("web", image))
    pod = the_pod(fast, "web", lambda p: waiting(p).get("reason") == "ImagePullBackOff"
                  and len(events_of(fast, p)) >= 5)
    assert pod["status"]["phase"] == "Pending"
    assert waiting(pod)["message"] == f'Back-off pulling image "{image}"'
    seen = {(e["type"], e["reason"], e["message"]) for e in events_of(fast, pod)}
    assert ("Warning", "Failed", "Error: ErrImagePull") in seen
    assert ("Warning", "Failed", "Error: ImagePullBackOff") in seen
    assert ("Normal", "BackOff", f'Back-off pulling image "{image}"') in seen
    assert ("Normal", "Pulling", f'Pulling image "{image}"') in seen


@pytest.mark.parametrize(("container", "message"), [
    ({"env": [{"name": "URL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "url"}}}]},
     'configmap "settings" not found'),
    ({"envFrom": [{"secretRef": {"name": "creds"}}]}, 'secret "creds" not found'),
    ({"env": [{"name": "URL", "valueFrom": {"configMapKeyRef": {"name": "present", "key": "nope"}}}]},
     f"couldn't find key nope in ConfigMap {NS}/present"),
])
def test_missing_config_is_create_container_config_error(fast: kubesim.Sim, container: Obj, message: str) -> None:
    fast.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "present", "namespace": NS},
                "data": {"url": "x"}})
    fast.apply(deployment("web", "registry.example/app:1", **container))
    pod = the_pod(fast, "web", lambda p: waiting(p).get("reason") == "CreateContainerConfigError")
    assert waiting(pod)["message"] == message
    assert pod["status"]["phase"] == "Pending"
    assert any(e["reason"] == "Failed" and e["message"] == f"Error: {message}" and e["type"] == "Warning"
               for e in events_of(fast, pod))


def test_optional_references_do_not_block(fast: kubesim.Sim) -> None:
    fast.apply(deployment("web", "registry.example/app:1",
                          envFrom=[{"configMapRef": {"name": "maybe", "optional": True}}],
                          env=[{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k",
                                                                            "optional": True}}}]))
    the_pod(fast, "web", lambda p: p["status"]["containerStatuses"][0]["ready"])


def test_creating_the_missing_config_map_lets_the_pod_start(fast: kubesim.Sim) -> None:
    fast.apply(deployment("web", "registry.example/app:1", envFrom=[{"configMapRef": {"name": "settings"}}]))
    the_pod(fast, "web", lambda p: waiting(p).get("reason") == "CreateContainerConfigError")
    fast.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": NS}})
    pod = the_pod(fast, "web", lambda p: p["status"]["containerStatuses"][0]["ready"])
    assert pod["status"]["phase"] == "Running"


def test_missing_volume_source_keeps_the_pod_creating(fast: kubesim.Sim) -> None:
    manifest = deployment("web", "registry.example/app:1")
    manifest["spec"]["template"]["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "settings"}}]
    fast.apply(manifest)
    pod = the_pod(fast, "web", lambda p: any(e["reason"] == "FailedMount" for e in events_of(fast, p)))
    assert waiting(pod)["reason"] == "ContainerCreating" and "podIP" not in pod["status"]
    mount = next(e for e in events_of(fast, pod) if e["reason"] == "FailedMount")
    assert mount["message"] == 'MountVolume.SetUp failed for volume "cfg" : configmap "settings" not found'
    assert fast.store.find(CONFIGMAPS, NS, "settings") is None


def test_crashing_init_container_keeps_the_pod_initializing(fast: kubesim.Sim) -> None:
    manifest = deployment("web", "registry.example/app:1")
    manifest["spec"]["template"]["spec"]["initContainers"] = [{"name": "setup", "image": "registry.example/crash"}]
    fast.apply(manifest)
    pod = the_pod(fast, "web", lambda p: waiting(p, "initContainerStatuses").get("reason") == "CrashLoopBackOff")
    assert pod["status"]["phase"] == "Pending"
    assert waiting(pod)["reason"] == "PodInitializing"
    initialized = next(c for c in pod["status"]["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "False" and initialized["message"] == "containers with incomplete status: [setup]"


# -- real kubectl -----------------------------------------------------------------------------------------------


def test_kubectl_get_describe_and_logs_of_a_crash_looping_pod(fast: kubesim.Sim) -> None:
    fast.apply(deployment("web", "registry.example/app:crash-1.1"))
    pod = the_pod(fast, "web", lambda p: waiting(p).get("reason") == "CrashLoopBackOff")
    name = pod["metadata"]["name"]

    listed = kubectl(fast, "get", "pods", check=True).stdout
    row = next(line for line in listed.splitlines() if line.startswith(name))
    assert re.match(rf"{name}\s+0/1\s+CrashLoopBackOff\s+\d+ \(\S+ ago\)\s+\S+$", row), listed

    described = kubectl(fast, "describe", "pod", name, check=True).stdout
    assert re.search(r"State:\s+Waiting\n\s+Reason:\s+CrashLoopBackOff", described), described
    assert re.search(r"Last State:\s+Terminated\n\s+Reason:\s+Error\n\s+Exit Code:\s+1", described), described
    assert "Back-off restarting failed container app in pod" in described  # the Events section

    logs = kubectl(fast, "logs", name, check=True).stdout.splitlines()
    assert logs[-1].endswith("exiting with status 1") and "starting registry.example/app:crash-1.1" in logs[0]
    previous = kubectl(fast, "logs", name, "--previous", "--tail", "2", check=True).stdout.splitlines()
    assert len(previous) == 2 and previous[-1].endswith("exiting with status 1")


def test_kubectl_logs_of_a_pod_that_cannot_pull(fast: kubesim.Sim) -> None:
    fast.apply(deployment("web", "registry.example/app:does-not-exist"))
    pod = the_pod(fast, "web", lambda p: waiting(p).get("reason") == "ImagePullBackOff")
    name = pod["metadata"]["name"]
    row = next(line for line in kubectl(fast, "get", "pods", check=True).stdout.splitlines()
               if line.startswith(name))
    assert re.match(rf"{name}\s+0/1\s+ImagePullBackOff\s+0\s+", row), row
    result = kubectl(fast, "logs", name)
    assert result.returncode != 0
    assert (f'container "app" in pod "{name}" is waiting to start: trying and failing to pull image'
            in result.stderr), result.stderr
    described = kubectl(fast, "describe", "pod", name, check=True).stdout
    assert "Back-off pulling image" in described and "ErrImagePull" in described


def test_kubectl_shows_init_and_config_failures(fast: kubesim.Sim) -> None:
    manifest = deployment("init", "registry.example/app:1")
    manifest["spec"]["template"]["spec"]["initContainers"] = [{"name": "setup", "image": "registry.example/crash"}]
    fast.apply(manifest)
    fast.apply(deployment("cfg", "registry.example/app:1", envFrom=[{"configMapRef": {"name": "settings"}}]))
    the_pod(fast, "init", lambda p: waiting(p, "initContainerStatuses").get("reason") == "CrashLoopBackOff")
    the_pod(fast, "cfg", lambda p: waiting(p).get("reason") == "CreateContainerConfigError")
    listed = kubectl(fast, "get", "pods", check=True).stdout
    assert re.search(r"^init-\S+\s+0/1\s+Init:CrashLoopBackOff\s", listed, re.MULTILINE), listed
    assert re.search(r"^cfg-\S+\s+0/1\s+CreateContainerConfigError\s+0\s", listed, re.MULTILINE), listed
    init_pod = pods_of(fast, "init")[0]["metadata"]["name"]
    logs = kubectl(fast, "logs", init_pod, "-c", "setup", check=True).stdout
    assert "exiting with status 1" in logs


def test_pod_log_subresource_over_http(fast: kubesim.Sim) -> None:
    """What the action reads: ``pods/{name}/log?container=&tailLines=&previous=`` as plain text, 400s as Status."""
    manifest = deployment("web", "registry.example/app:crash-1")
    manifest["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "registry.example/s:1"})
    fast.apply(manifest)
    pod = the_pod(fast, "web", lambda p: waiting(p).get("reason") == "CrashLoopBackOff")
    name = pod["metadata"]["name"]
    client = python_client(fast)
    try:
        def get(**query: str) -> tuple[int, str]:
            response = client.call_api(*client.param_serialize(
                "GET", f"/api/v1/namespaces/{NS}/pods/{name}/log", query_params=list(query.items())))
            return response.status, response.read().decode()

        status, text = get(container="app", tailLines="1", previous="true")
        assert status == 200 and text.endswith("exiting with status 1\n") and text.count("\n") == 1
        status, text = get(container="sidecar", timestamps="true")
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z .* INFO  starting registry.example/s:1$",
                        text.splitlines()[0]), text
        status, text = get()
        assert status == 400
        assert json.loads(text)["message"] == (f"a container name must be specified for pod {name}, choose one "
                                               f"of: [app sidecar]")
        status, text = get(container="sidecar", previous="true")
        assert status == 400
        assert json.loads(text)["message"] == f'previous terminated container "sidecar" in pod "{name}" not found'
    finally:
        client.close()


def test_cli_flags_reach_the_crash_knobs(tmp_path: Any) -> None:
    """``python -m kubesim --crash-image IMG --crash-limit 1``: the pod crashes once, then runs and is Ready."""
    kubeconfig = str(tmp_path / "kubeconfig")
    process = subprocess.Popen([sys.executable, "-m", "kubesim", "--port", "0", "--kubeconfig-out", kubeconfig,
                                "--time-scale", "20", "--ready-delay", "0.5", "--crash-image",
                                "registry.example/app:9", "--crash-limit", "1"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("kubesim listening on http://127.0.0.1:"), line
        fake = type("S", (), {"kubeconfig": kubeconfig, "kubectl_cache_dir": str(tmp_path / "cache")})()
        kubectl(fake, "create", "deployment", "web", "--image=registry.example/app:9", check=True)
        waited = kubectl(fake, "rollout", "status", "deployment/web", "--timeout=60s", check=True)
        assert "successfully rolled out" in waited.stdout
        restarts = kubectl(fake, "get", "pods", "-o", "jsonpath={.items[0].status.containerStatuses[0].restartCount}",
                           check=True).stdout
        assert restarts == "1"
        usage = subprocess.run([sys.executable, "-m", "kubesim", "--help"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout
        assert "--crash-image" in usage and "--crash-limit" in usage
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def test_a_pod_no_node_matches_is_unschedulable(fast: kubesim.Sim) -> None:
    """A nodeSelector no simulated node satisfies: never bound, PodScheduled=False, the scheduler's event."""
    manifest = deployment("web", "registry.example/app:1")
    manifest["spec"]["template"]["spec"]["nodeSelector"] = {"disktype": "ssd"}
    fast.apply(manifest)
    pod = the_pod(fast, "web", lambda p: any(e["reason"] == "FailedScheduling" for e in events_of(fast, p)))
    message = ("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 "
               "nodes are available: 2 Preemption is not helpful for scheduling.")
    assert "nodeName" not in pod["spec"] and pod["status"]["phase"] == "Pending"
    (scheduled,) = pod["status"]["conditions"]
    assert (scheduled["type"], scheduled["status"], scheduled["reason"], scheduled["message"]) == (
        "PodScheduled", "False", "Unschedulable", message)
    event = next(e for e in events_of(fast, pod) if e["reason"] == "FailedScheduling")
    assert event["type"] == "Warning" and event["source"] == {"component": "default-scheduler"}
    assert event["message"] == message
    name = pod["metadata"]["name"]
    row = next(line for line in kubectl(fast, "get", "pods", check=True).stdout.splitlines() if line.startswith(name))
    assert re.match(rf"{name}\s+0/1\s+Pending\s+0\s", row), row
    described = kubectl(fast, "describe", "pod", name, check=True).stdout
    assert "FailedScheduling" in described and "didn't match Pod's node affinity/selector" in described
    # a selector the nodes do satisfy is scheduled as before
    manifest = deployment("ok", "registry.example/app:1")
    manifest["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/os": "linux"}
    fast.apply(manifest)
    assert the_pod(fast, "ok", lambda p: p["status"]["containerStatuses"][0]["ready"])["spec"]["nodeName"]
