"""The real kubectl (v1.32 on PATH) against kubesim: the basic commands, unchanged."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
from conftest import kubectl

import kubesim
from kubesim.knobs import Knobs
from kubesim.resources import CONFIGMAPS, DEPLOYMENTS

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    kubernetes.io/change-cause: {cause}
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: {image}
        ports:
        - containerPort: 80
"""


def manifest(image: str = "nginx:1.1", cause: str = "v1") -> str:
    return MANIFEST.format(image=image, cause=cause)


def live(sim: kubesim.Sim, name: str = "web") -> dict[str, Any]:
    return sim.store.get(DEPLOYMENTS, "default", name)


def image_of(sim: kubesim.Sim, name: str = "web") -> str:
    return str(live(sim, name)["spec"]["template"]["spec"]["containers"][0]["image"])


def test_discovery_and_empty_get(sim: kubesim.Sim) -> None:
    result = kubectl(sim, "get", "deploy")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and "No resources found in default namespace." in result.stderr
    resources = kubectl(sim, "api-resources", "--no-headers", check=True).stdout
    assert any(line.split()[:2] == ["deployments", "deploy"] for line in resources.splitlines())
    assert "kube-system" in kubectl(sim, "get", "ns", check=True).stdout


def test_apply_client_side_then_get(sim: kubesim.Sim) -> None:
    result = kubectl(sim, "apply", "-f", "-", input=manifest(), check=True)
    assert result.stdout.strip() == "deployment.apps/web created"
    assert "kubectl.kubernetes.io/last-applied-configuration" in live(sim)["metadata"]["annotations"]
    result = kubectl(sim, "apply", "-f", "-", input=manifest("nginx:1.2", "v2"), check=True)
    assert result.stdout.strip() == "deployment.apps/web configured"
    assert image_of(sim) == "nginx:1.2"
    assert live(sim)["metadata"]["annotations"]["kubernetes.io/change-cause"] == "v2"
    assert live(sim)["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP"}]
    assert kubectl(sim, "apply", "-f", "-", input=manifest("nginx:1.2", "v2"), check=True).stdout.strip() == \
        "deployment.apps/web unchanged"
    table = kubectl(sim, "get", "deployments", check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[0] == "web"
    wide = kubectl(sim, "get", "deploy", "web", "-o", "wide", check=True).stdout.splitlines()
    assert wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[-3:] == ["app", "nginx:1.2", "app=web"]


def test_apply_server_side_and_conflicts(sim: kubesim.Sim) -> None:
    result = kubectl(sim, "apply", "--server-side", "-f", "-", input=manifest(), check=True)
    assert result.stdout.strip() == "deployment.apps/web serverside-applied"
    result = kubectl(sim, "apply", "--server-side", "-f", "-", input=manifest("nginx:1.2"), check=True)
    assert image_of(sim) == "nginx:1.2"
    result = kubectl(sim, "apply", "--server-side", "--field-manager=other", "-f", "-",
                     input=manifest("nginx:9"))
    assert result.returncode == 1
    assert ('Apply failed with 1 conflict: conflict with "kubectl": '
            '.spec.template.spec.containers[name="app"].image') in result.stderr
    assert "--force-conflicts" in result.stderr
    assert image_of(sim) == "nginx:1.2"
    kubectl(sim, "apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-",
            input=manifest("nginx:9"), check=True)
    assert image_of(sim) == "nginx:9"
    managers = {m["manager"]: m for m in live(sim)["metadata"]["managedFields"]}
    assert managers["other"]["operation"] == "Apply"
    shown = json.loads(kubectl(sim, "get", "deploy", "web", "-o", "json", "--show-managed-fields",
                               check=True).stdout)
    assert {m["manager"] for m in shown["metadata"]["managedFields"]} >= {"kubectl", "other"}


def test_client_side_to_server_side_apply_migrates_without_conflicts(sim: kubesim.Sim) -> None:
    kubectl(sim, "apply", "-f", "-", input=manifest(), check=True)
    result = kubectl(sim, "apply", "--server-side", "-f", "-", input=manifest("nginx:1.2"), check=True)
    assert result.stdout.strip() == "deployment.apps/web serverside-applied"
    assert image_of(sim) == "nginx:1.2"
    managers = {(m["manager"], m["operation"]) for m in live(sim)["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers and ("kubectl-client-side-apply", "Update") not in managers
    last_applied = json.loads(live(sim)["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last_applied["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.2"


def test_annotate_set_image_pause_resume_scale(sim: kubesim.Sim) -> None:
    kubectl(sim, "apply", "-f", "-", input=manifest(), check=True)
    result = kubectl(sim, "annotate", "deployment/web", "kubernetes.io/change-cause=v5", "--overwrite", check=True)
    assert result.stdout.strip() == "deployment.apps/web annotated"
    assert live(sim)["metadata"]["annotations"]["kubernetes.io/change-cause"] == "v5"
    result = kubectl(sim, "set", "image", "deployment/web", "app=nginx:1.3", check=True)
    assert result.stdout.strip() == "deployment.apps/web image updated"
    assert image_of(sim) == "nginx:1.3"
    assert kubectl(sim, "rollout", "pause", "deployment/web", check=True).stdout.strip() == \
        "deployment.apps/web paused"
    assert live(sim)["spec"]["paused"] is True
    assert kubectl(sim, "rollout", "resume", "deployment/web", check=True).stdout.strip() == \
        "deployment.apps/web resumed"
    assert not live(sim)["spec"].get("paused")
    assert kubectl(sim, "scale", "deployment/web", "--replicas=3", check=True).stdout.strip() == \
        "deployment.apps/web scaled"
    assert live(sim)["spec"]["replicas"] == 3
    before = live(sim)["metadata"]["resourceVersion"]
    result = kubectl(sim, "set", "image", "deployment/web", "app=nginx:dry", "--dry-run=server", check=True)
    assert "(server dry run)" in result.stdout
    assert image_of(sim) == "nginx:1.3"
    assert live(sim)["metadata"]["resourceVersion"] >= before


def test_create_configmap_deployment_namespace(sim: kubesim.Sim) -> None:
    # kubectl's typed clients send protobuf bodies for these
    assert kubectl(sim, "create", "configmap", "settings", "--from-literal=a=1", "--from-literal=b=2",
                   check=True).stdout.strip() == "configmap/settings created"
    assert sim.store.get(CONFIGMAPS, "default", "settings")["data"] == {"a": "1", "b": "2"}
    assert kubectl(sim, "create", "namespace", "team-a", check=True).stdout.strip() == "namespace/team-a created"
    result = kubectl(sim, "create", "deployment", "api", "--image=nginx:1.1", "--replicas=2", "-n", "team-a",
                     check=True)
    assert result.stdout.strip() == "deployment.apps/api created"
    created = sim.store.get(DEPLOYMENTS, "team-a", "api")
    assert created["spec"]["replicas"] == 2 and created["spec"]["selector"] == {"matchLabels": {"app": "api"}}
    again = kubectl(sim, "create", "configmap", "settings")
    assert again.returncode == 1
    assert 'configmaps "settings" already exists' in again.stderr


def test_get_json_round_trip_and_delete(sim: kubesim.Sim) -> None:
    kubectl(sim, "apply", "-f", "-", input=manifest(), check=True)
    kubectl(sim, "create", "configmap", "settings", "--from-literal=a=1", check=True)
    shown = json.loads(kubectl(sim, "get", "configmap", "settings", "-o", "json", check=True).stdout)
    stored = sim.store.get(CONFIGMAPS, "default", "settings")
    stored["metadata"].pop("managedFields", None)
    assert shown == stored
    shown["data"]["a"] = "2"
    result = kubectl(sim, "replace", "-f", "-", input=json.dumps(shown), check=True)
    assert result.stdout.strip() == "configmap/settings replaced"
    assert sim.store.get(CONFIGMAPS, "default", "settings")["data"] == {"a": "2"}
    stale = kubectl(sim, "replace", "-f", "-", input=json.dumps(shown))
    assert stale.returncode == 1 and "the object has been modified" in stale.stderr
    listed = json.loads(kubectl(sim, "get", "deploy,cm", "-o", "json", check=True).stdout)
    assert listed["kind"] == "List"
    assert {item["kind"] for item in listed["items"]} >= {"Deployment", "ConfigMap"}
    result = kubectl(sim, "delete", "deployment", "web", check=True)
    assert result.stdout.strip() == 'deployment.apps "web" deleted'
    assert sim.store.find(DEPLOYMENTS, "default", "web") is None
    result = kubectl(sim, "delete", "configmap", "settings", "--dry-run=server", check=True)
    assert sim.store.find(CONFIGMAPS, "default", "settings") is not None
    missing = kubectl(sim, "delete", "deployment", "web")
    assert missing.returncode == 1
    assert 'Error from server (NotFound): deployments.apps "web" not found' in missing.stderr


def test_invalid_object_is_reported_by_kubectl(sim: kubesim.Sim) -> None:
    bad = manifest().replace("      app: web\n  template", "      app: other\n  template")
    result = kubectl(sim, "apply", "-f", "-", input=bad)
    assert result.returncode == 1
    assert 'The Deployment "web" is invalid: spec.template.metadata.labels: Invalid value: ' in result.stderr
    assert "`selector` does not match template `labels`" in result.stderr


def test_rbac_forbidden_message(tmp_path: Any) -> None:
    # kubectl sends credentials to https servers only, so this one runs with TLS
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    knobs = Knobs()
    knobs.grant("admin-token", "admin")
    knobs.grant("reader-token", "reader", verbs=("get", "list", "watch"))
    with kubesim.serve(knobs=knobs, tls=True, token="admin-token",
                       kubeconfig_path=str(tmp_path / "kubeconfig")) as sim:
        kubectl(sim, "apply", "-f", "-", input=manifest(), check=True)
        assert "web" in kubectl(sim, "get", "deploy", token="reader-token", check=True).stdout
        result = kubectl(sim, "annotate", "deployment/web", "a=b", token="reader-token")
        assert result.returncode == 1
        assert ('Error from server (Forbidden): deployments.apps "web" is forbidden: User "reader" cannot patch '
                'resource "deployments" in API group "apps" in the namespace "default"') in result.stderr
        result = kubectl(sim, "get", "deploy", token="wrong")
        assert result.returncode == 1 and "Unauthorized" in result.stderr
