"""Issue 13 on kubesim, through ``python -m rollback``: the ownership guard, HPAs and replicas, the config a
rollback needs, a Secret's data never read, deploys that must change the template, images per workload, and
the plan (log, summary, ``plan`` output; a dry run plans exactly what the real run then does).

Every refusal is checked with the request log: nothing was written, not even a dry run.
"""

from __future__ import annotations

import copy
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import (
    CHANGE_CAUSE,
    CliRun,
    RequestLog,
    app_state,
    deployment_manifest,
    get_deployment,
    history_pairs,
    image_of,
    run_cli,
    wait_settled,
)

import kubesim
from kubesim.knobs import Knobs
from kubesim.resources import CONFIGMAPS, DEPLOYMENTS, SECRETS

IMG = "registry.example/web:"
LEDGER = "kube-release-rollback-ledger"
SECRET_VALUE = "hunter2-do-not-print"


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(ready_delay=0)


# -- building the cluster ----------------------------------------------------------------------------------------


def call(sim: kubesim.Sim, method: str, path: str, body: Any = None, content_type: str = "application/json",
         accept: str = "application/json") -> Any:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(sim.url + path, data=data, method=method,
                                     headers={"Content-Type": content_type, "Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def observed(sim: kubesim.Sim, name: str = "web") -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get_deployment(sim, name)
        status = obj.get("status") or {}
        done = int(status.get("observedGeneration") or 0) >= int(obj["metadata"]["generation"])
        return obj if done and status.get("updatedReplicas") == obj["spec"]["replicas"] else None

    return sim.wait_until(check)


def put_deployment(sim: kubesim.Sim, release: str, image: str, name: str = "web", container: str = "web",
                   pod_spec: dict[str, Any] | None = None, labels: dict[str, str] | None = None,
                   annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """Create or change the Deployment (like a kubectl apply by someone else) with the release as change-cause."""
    manifest = deployment_manifest(name, image=image, container=container, change_cause=release)
    manifest["metadata"]["labels"].update(labels or {})
    manifest["metadata"]["annotations"].update(annotations or {})
    manifest["spec"]["template"]["spec"].update(copy.deepcopy(pod_spec or {}))
    existing = sim.store.find(DEPLOYMENTS, "default", name)
    if existing is not None:
        manifest["spec"]["replicas"] = existing["spec"]["replicas"]
    sim.apply(manifest)
    return observed(sim, name)


def config_map(sim: kubesim.Sim, name: str, data: dict[str, str]) -> dict[str, Any]:
    return sim.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
                      "data": data})


def secret(sim: kubesim.Sim, name: str) -> dict[str, Any]:
    return sim.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default"},
                      "stringData": {"password": SECRET_VALUE, "color": "blue"}})


def next_second(sim: kubesim.Sim) -> None:
    """Let the simulated clock pass a second (timestamps have second precision) through the time-scale knob."""
    start = sim.clock.timestamp()
    sim.clock.scale = 1000.0
    try:
        sim.wait_until(lambda: sim.clock.timestamp() != start, interval=0.001)
    finally:
        sim.clock.scale = 1.0


def env_from(config: str, kind: str = "configMapKeyRef", optional: bool | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": config, "key": "color"}
    if optional is not None:
        ref["optional"] = optional
    return {"containers": [{"name": "web", "image": "placeholder", "env": [
        {"name": "COLOR", "valueFrom": {kind: ref}}, {"name": "MODE", "value": "fast"}]}]}


def with_image(pod_spec: dict[str, Any], image: str) -> dict[str, Any]:
    spec = copy.deepcopy(pod_spec)
    spec["containers"][0]["image"] = image
    return spec


def rollback(sim: kubesim.Sim, release: str, *extra: str) -> CliRun:
    return run_cli(sim, "--mode", "rollback", "--release", release, "--deployment", "web", "--timeout", "30s",
                   *extra)


def deploy(sim: kubesim.Sim, release: str, *extra: str, workloads: tuple[str, ...] = ("web",)) -> CliRun:
    args = [arg for name in workloads for arg in ("--deployment", name)]
    return run_cli(sim, "--mode", "deploy", "--release", release, *args, "--timeout", "30s", *extra)


def ledger_entries(sim: kubesim.Sim) -> list[dict[str, Any]]:
    cm = sim.store.find(CONFIGMAPS, "default", LEDGER)
    return json.loads(cm["data"]["entries.json"]) if cm else []


# -- the ownership guard -------------------------------------------------------------------------------------------


MANAGED = {
    "argo-cd": ({"argocd.argoproj.io/instance": "shop"}, {"argocd.argoproj.io/tracking-id":
                                                          "shop:apps/Deployment:default/web"}, None,
                "Argo CD", ("argocd.argoproj.io/tracking-id=shop:apps/Deployment:default/web",
                            "label argocd.argoproj.io/instance=shop"), "argocd app rollback shop"),
    "flux-kustomize": ({"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace":
                        "flux-system"}, {}, None, "Flux (kustomize-controller)",
                       ("label kustomize.toolkit.fluxcd.io/name=apps",),
                       "flux suspend kustomization apps -n flux-system"),
    "flux-helm": ({"helm.toolkit.fluxcd.io/name": "web", "helm.toolkit.fluxcd.io/namespace": "flux-system"}, {},
                  None, "Flux (helm-controller)", ("label helm.toolkit.fluxcd.io/name=web",),
                  "flux suspend helmrelease web -n flux-system"),
    "helm": ({"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "shop"},
             {"meta.helm.sh/release-name": "shop", "meta.helm.sh/release-namespace": "default"}, None, "Helm",
             ("label app.kubernetes.io/managed-by=Helm", "annotation meta.helm.sh/release-name=shop"),
             "helm rollback shop -n default"),
    "managed-fields-only": ({}, {}, "kustomize-controller", "Flux (kustomize-controller)",
                            ("field manager 'kustomize-controller' in managedFields",), "flux suspend kustomization"),
    "argocd-managed-fields-only": ({}, {}, "argocd-controller", "Argo CD",
                                   ("field manager 'argocd-controller' in managedFields",), "argocd app rollback"),
}


def managed_web(sim: kubesim.Sim, labels: dict[str, str], annotations: dict[str, str], manager: str | None) -> None:
    """Two releases of web, with the markers of a manager (labels/annotations, or a server-side apply of it)."""
    put_deployment(sim, "1.0.0", IMG + "1.0.0", labels=labels, annotations=annotations)
    put_deployment(sim, "1.1.0", IMG + "1.1.0", labels=labels, annotations=annotations)
    if manager is not None:  # the controller applied the object: only managedFields tell
        applied = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                   "spec": {"revisionHistoryLimit": 10}}
        call(sim, "PATCH", f"/apis/apps/v1/namespaces/default/deployments/web?fieldManager={manager}&force=true",
             yaml.safe_dump(applied).encode(), "application/apply-patch+yaml")
        assert manager in json.dumps(get_deployment(sim)["metadata"]["managedFields"])
    wait_settled(sim)


@pytest.mark.parametrize("case", sorted(MANAGED))
@pytest.mark.parametrize("mode", ["rollback", "deploy"])
def test_a_managed_workload_is_refused_with_the_evidence(sim: kubesim.Sim, case: str, mode: str) -> None:
    labels, annotations, manager, who, evidence, instead = MANAGED[case]
    managed_web(sim, labels, annotations, manager)
    before = app_state(sim)
    with RequestLog(sim) as log:
        if mode == "rollback":
            run = rollback(sim, "1.0.0")
        else:
            run = deploy(sim, "1.2.0", "--images", f"web={IMG}1.2.0")
    assert run.code == 1, run.stdout
    message = run.errors[-1]
    assert f"deployment/web is managed by {who}" in message
    for item in evidence:
        assert item in message
    assert instead in message and "allow-managed: true" in message
    assert log.changes(include_dry_run=True) == []
    assert app_state(sim) == before
    assert history_pairs(sim)[-1] == (2, "1.1.0")


def test_allow_managed_goes_ahead_with_a_warning_in_the_summary_and_the_ledger(sim: kubesim.Sim) -> None:
    labels, annotations, manager, _, _, _ = MANAGED["argo-cd"]
    managed_web(sim, labels, annotations, manager)
    run = rollback(sim, "1.0.0", "--allow-managed")
    assert run.code == 0, run.stdout
    assert image_of(get_deployment(sim)) == IMG + "1.0.0"
    warning = next(w for w in run.warnings if "managed by Argo CD" in w)
    assert "allow-managed is true" in warning and "argocd.argoproj.io/tracking-id" in warning
    assert "managed by Argo CD" in run.summary and "allow-managed is true" in run.summary
    entry = ledger_entries(sim)[-1]
    assert entry["mode"] == "rollback" and entry["managed_by"] == ["Argo CD"]
    # the GitOps markers themselves were not touched
    assert get_deployment(sim)["metadata"]["labels"]["argocd.argoproj.io/instance"] == "shop"


def test_calculate_warns_that_a_managed_workload_would_be_refused(sim: kubesim.Sim) -> None:
    labels, annotations, manager, _, _, _ = MANAGED["helm"]
    managed_web(sim, labels, annotations, manager)
    run = run_cli(sim, "--mode", "calculate", "--release", "1.0.0", "--deployment", "web")
    assert run.code == 0, run.stdout
    [warning] = [w for w in run.warnings if "managed by Helm" in w]
    assert warning.startswith("deploying or rolling back would be refused: deployment/web is managed by Helm")


def test_the_common_instance_label_alone_warns_and_goes_ahead(sim: kubesim.Sim) -> None:
    managed_web(sim, {"app.kubernetes.io/instance": "shop"}, {}, None)
    run = rollback(sim, "1.0.0")
    assert run.code == 0, run.stdout
    assert image_of(get_deployment(sim)) == IMG + "1.0.0"
    assert any("may be managed by Argo CD" in w and "app.kubernetes.io/instance=shop" in w for w in run.warnings)
    assert ledger_entries(sim)[-1]["managed_by"] == []


def test_an_unmanaged_workload_is_not_flagged(sim: kubesim.Sim) -> None:
    put_deployment(sim, "1.0.0", IMG + "1.0.0")
    put_deployment(sim, "1.1.0", IMG + "1.1.0")
    run = rollback(sim, "1.0.0")
    assert run.code == 0, run.stdout
    assert not [w for w in run.warnings if "managed by" in w]
    assert ledger_entries(sim)[-1]["managed_by"] == []


# -- HorizontalPodAutoscalers keep the replicas ----------------------------------------------------------------------


def hpa(sim: kubesim.Sim, target: str = "web") -> None:
    sim.apply({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": f"{target}-hpa", "namespace": "default"},
               "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                        "minReplicas": 2, "maxReplicas": 10}})


def hpa_scales(sim: kubesim.Sim, replicas: int) -> None:
    """What the HPA controller does: an update of the scale subresource as kube-controller-manager."""
    path = "/apis/apps/v1/namespaces/default/deployments/web/scale?fieldManager=kube-controller-manager"
    scale = call(sim, "GET", path.split("?")[0])
    scale["spec"]["replicas"] = replicas
    call(sim, "PUT", path, scale)
    sim.wait_until(lambda: get_deployment(sim)["spec"]["replicas"] == replicas)


def write_manifest(tmp_path: Path, release: str, replicas: int, name: str = "web.yaml") -> str:
    manifest = deployment_manifest("web", image=IMG + release, replicas=replicas)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(manifest))
    return str(path)


def replicas_written(log: RequestLog) -> list[str]:
    return [e.path for e in log.app_writes() if "replicas" in json.dumps(e.json() if e.content_type != (
        "application/apply-patch+yaml") else yaml.safe_load(e.body))]


def test_hpa_keeps_its_replicas_through_deploys_from_manifests_and_a_rollback(sim: kubesim.Sim,
                                                                              tmp_path: Path) -> None:
    first = deploy(sim, "1.0.0", "--manifests", write_manifest(tmp_path, "1.0.0", 3))
    assert first.code == 0, first.stdout
    hpa(sim)
    hpa_scales(sim, 5)
    with RequestLog(sim) as log:
        run = deploy(sim, "1.1.0", "--manifests", write_manifest(tmp_path, "1.1.0", 3))
    assert run.code == 0, run.stdout
    deployment = get_deployment(sim)
    assert image_of(deployment) == IMG + "1.1.0" and deployment["spec"]["replicas"] == 5
    assert replicas_written(log) == []
    notice = next(line for line in run.commands("notice") if "HorizontalPodAutoscaler web-hpa" in line)
    assert "replicas (3) was left out of the applied manifest" in notice
    with RequestLog(sim) as log:
        back = rollback(sim, "1.0.0")
    assert back.code == 0, back.stdout
    deployment = get_deployment(sim)
    assert image_of(deployment) == IMG + "1.0.0" and deployment["spec"]["replicas"] == 5
    assert replicas_written(log) == []


def test_a_manifest_keeps_the_live_replicas_when_server_side_apply_would_reset_them(sim: kubesim.Sim,
                                                                                  tmp_path: Path) -> None:
    first = deploy(sim, "1.0.0", "--manifests", write_manifest(tmp_path, "1.0.0", 3))
    assert first.code == 0, first.stdout
    hpa(sim)  # the HPA has not scaled yet: our field manager alone owns spec.replicas
    run = deploy(sim, "1.1.0", "--manifests", write_manifest(tmp_path, "1.1.0", 7))
    assert run.code == 0, run.stdout
    assert get_deployment(sim)["spec"]["replicas"] == 3  # neither the manifest's 7 nor the default 1
    assert any("replaced by the live value (3)" in line for line in run.commands("notice"))


# -- config references ---------------------------------------------------------------------------------------------


def two_releases_with_config(sim: kubesim.Sim, kind: str = "configMapKeyRef", optional: bool | None = None) -> None:
    """1.0.0 takes COLOR from web-config-1, 1.1.0 from web-config-2 (hash-suffixed names, as kustomize makes)."""
    config_map(sim, "web-config-1", {"color": "blue"})
    config_map(sim, "web-config-2", {"color": "green"})
    put_deployment(sim, "1.0.0", IMG + "1.0.0", pod_spec=with_image(env_from("web-config-1", kind, optional),
                                                                     IMG + "1.0.0"))
    put_deployment(sim, "1.1.0", IMG + "1.1.0", pod_spec=with_image(env_from("web-config-2", kind, optional),
                                                                     IMG + "1.1.0"))
    wait_settled(sim)


def test_rollback_needing_a_deleted_config_map_is_refused_before_any_write(sim: kubesim.Sim) -> None:
    two_releases_with_config(sim)
    call(sim, "DELETE", "/api/v1/namespaces/default/configmaps/web-config-1")
    before = app_state(sim)
    with RequestLog(sim) as log:
        run = rollback(sim, "1.0.0")
    assert run.code == 1, run.stdout
    error = run.errors[-1]
    assert "ConfigMap web-config-1 does not exist" in error
    assert "env COLOR of container web" in error and "CreateContainerConfigError" in error
    assert "revision 1 (1.0.0)" in error
    assert log.changes(include_dry_run=True) == []
    assert app_state(sim) == before


def test_an_optional_missing_config_map_does_not_stop_the_rollback(sim: kubesim.Sim) -> None:
    two_releases_with_config(sim, optional=True)
    call(sim, "DELETE", "/api/v1/namespaces/default/configmaps/web-config-1")
    run = rollback(sim, "1.0.0")
    assert run.code == 0, run.stdout
    assert image_of(get_deployment(sim)) == IMG + "1.0.0"


def test_a_config_map_changed_after_the_target_revision_warns(sim: kubesim.Sim) -> None:
    config_map(sim, "web-config", {"color": "blue"})
    spec = env_from("web-config")
    put_deployment(sim, "1.0.0", IMG + "1.0.0", pod_spec=with_image(spec, IMG + "1.0.0"))
    next_second(sim)
    put_deployment(sim, "1.1.0", IMG + "1.1.0", pod_spec=with_image(spec, IMG + "1.1.0"))
    quiet = rollback(sim, "1.0.0")  # unchanged since revision 1: no warning
    assert quiet.code == 0, quiet.stdout
    assert not [w for w in quiet.warnings if "was changed at" in w]
    next_second(sim)
    config_map(sim, "web-config", {"color": "red"})  # changed in place after both revisions
    run = rollback(sim, "1.1.0")
    assert run.code == 0, run.stdout
    warning = next(w for w in run.warnings if "ConfigMap web-config" in w)
    assert "was changed at" in warning and "after revision" in warning and "current content" in warning
    assert "ConfigMap web-config" in run.summary


@dataclass
class SecretReads:
    """Every request kubesim answered for a Secret: method, path, Accept header and the body it sent."""

    sim: kubesim.Sim
    seen: list[tuple[str, str, str, Any]] = field(default_factory=list)

    def __enter__(self) -> SecretReads:
        api = self.sim.api
        self._original = original = api.handle

        def handle(req: Any) -> Any:
            answer = original(req)
            if "/secrets" in req.path:
                self.seen.append((req.method, req.path, req.headers.get("Accept") or "",
                                  answer[1] if isinstance(answer, tuple) else None))
            return answer

        api.handle = handle  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self.sim.api.handle = self._original  # type: ignore[method-assign]


@pytest.fixture
def secret_reads(sim: kubesim.Sim) -> Iterator[SecretReads]:
    with SecretReads(sim) as reads:
        yield reads


def test_a_secrets_data_is_never_read(sim: kubesim.Sim, secret_reads: SecretReads) -> None:
    secret(sim, "web-secret-1")
    secret(sim, "web-pull")
    pod_spec = env_from("web-secret-1", "secretKeyRef")
    pod_spec["volumes"] = [{"name": "creds", "secret": {"secretName": "web-secret-1"}},
                           {"name": "all", "projected": {"sources": [{"secret": {"name": "web-secret-1"}}]}}]
    pod_spec["imagePullSecrets"] = [{"name": "web-pull"}]
    put_deployment(sim, "1.0.0", IMG + "1.0.0", pod_spec=with_image(pod_spec, IMG + "1.0.0"))
    put_deployment(sim, "1.1.0", IMG + "1.1.0")
    assert sim.store.find(SECRETS, "default", "web-secret-1")["data"]["password"]  # the data is there to read
    run = rollback(sim, "1.0.0")
    assert run.code == 0, run.stdout
    assert {(m, p.rsplit("/", 1)[1]) for m, p, _, _ in secret_reads.seen} == {("GET", "web-secret-1"),
                                                                              ("GET", "web-pull")}
    assert len(secret_reads.seen) == 2  # each Secret read once, though referenced three times
    for _, _, accept, body in secret_reads.seen:
        assert accept == "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
        assert body["kind"] == "PartialObjectMetadata" and set(body) == {"kind", "apiVersion", "metadata"}
    text = run.stdout + run.summary + run.outputs_text
    assert SECRET_VALUE not in text
    # the plan names the Secret and key the env var comes from, never a value
    changes = {c["field"]: c for c in json.loads(run.outputs["plan"])[0]["changes"]}
    assert changes["container web: env COLOR"]["after"] == "from Secret web-secret-1 key color"


def test_a_forbidden_config_check_is_unknown_and_said_once(sim: kubesim.Sim) -> None:
    two_releases_with_config(sim)
    call(sim, "DELETE", "/api/v1/namespaces/default/configmaps/web-config-1")
    sim.knobs.fail_next(count=5, method="GET", path="/configmaps/web-config", status=403)
    run = rollback(sim, "1.0.0", "--no-ledger", "--no-block")  # no ledger: nowhere to record a block
    said = [w for w in run.warnings if "could not check everything before writing" in w]
    assert len(said) == 1 and "get configmaps (403 Forbidden)" in said[0], run.stdout
    # unknown is not missing: the check cannot refuse what it could not see, so the rollback is written; its
    # pods then cannot start, which fail-fast reports (and, a rollback being never undone, leaves in place)
    assert "deployment/web: rolled back to revision 1 (1.0.0)" in run.stdout
    assert run.code == 1 and run.outputs["failure-reason"] == "CreateContainerConfigError", run.stdout
    assert run.outputs["release"] == "1.0.0"


# -- deploy must change the template ------------------------------------------------------------------------------


def test_deploy_without_images_or_manifests_is_refused(sim: kubesim.Sim) -> None:
    put_deployment(sim, "1.0.0", IMG + "1.0.0")
    wait_settled(sim)
    before = app_state(sim)
    for mode in ("deploy", "auto"):
        with RequestLog(sim) as log:
            run = run_cli(sim, "--mode", mode, "--release", "1.1.0", "--deployment", "web")
        assert run.code == 1, run.stdout
        assert run.error_lines()[-1].startswith("::error title=Invalid input%3A images::")
        assert "neither images nor manifests" in run.errors[-1] and "annotate-only: true" in run.errors[-1]
        assert log.changes(include_dry_run=True) == []
    assert app_state(sim) == before and history_pairs(sim) == [(1, "1.0.0")]


def test_deploy_without_images_is_a_redeploy_or_an_explicit_annotate_only(sim: kubesim.Sim) -> None:
    put_deployment(sim, "1.0.0", IMG + "1.0.0")
    again = deploy(sim, "1.0.0")
    assert again.code == 0, again.stdout
    assert again.outputs["mode"] == "redeploy"
    relabel = deploy(sim, "1.1.0", "--annotate-only")
    assert relabel.code == 0, relabel.stdout
    assert get_deployment(sim)["metadata"]["annotations"][CHANGE_CAUSE] == "1.1.0"
    assert image_of(get_deployment(sim)) == IMG + "1.0.0"
    bad = deploy(sim, "1.2.0", "--annotate-only", "--images", f"web={IMG}1.2.0")
    assert bad.code == 1 and "annotate-only" in bad.errors[-1]


# -- images per workload -------------------------------------------------------------------------------------------


def web_and_api(sim: kubesim.Sim) -> None:
    put_deployment(sim, "1.0.0", "reg/web:1.0.0", name="web", container="app")
    put_deployment(sim, "1.0.0", "reg/api:1.0.0", name="api", container="app")
    wait_settled(sim)


def test_an_image_line_matching_several_workloads_is_refused(sim: kubesim.Sim) -> None:
    web_and_api(sim)
    with RequestLog(sim) as log:
        run = deploy(sim, "2.0.0", "--images", "app=reg/web:2.0.0", workloads=("web", "api"))
    assert run.code == 1, run.stdout
    error = run.errors[-1]
    assert "ambiguous" in error and "deployment/web" in error and "deployment/api" in error
    assert "web:app=reg/web:2.0.0" in error and "images-apply-to-all" in error
    assert log.changes(include_dry_run=True) == []


def test_workload_container_lines_give_each_workload_its_own_image(sim: kubesim.Sim) -> None:
    web_and_api(sim)
    run = deploy(sim, "2.0.0", "--images", "web:app=reg/web:2.0.0", "--images", "deployment/api:app=reg/api:2.0.0",
                 workloads=("web", "api"))
    assert run.code == 0, run.stdout
    assert image_of(get_deployment(sim, "web")) == "reg/web:2.0.0"
    assert image_of(get_deployment(sim, "api")) == "reg/api:2.0.0"


def test_images_apply_to_all_gives_one_line_to_every_workload(sim: kubesim.Sim) -> None:
    web_and_api(sim)
    run = deploy(sim, "2.0.0", "--images", "app=reg/shared:2.0.0", "--images-apply-to-all",
                 workloads=("web", "api"))
    assert run.code == 0, run.stdout
    assert image_of(get_deployment(sim, "web")) == image_of(get_deployment(sim, "api")) == "reg/shared:2.0.0"


def test_a_workload_line_for_a_workload_not_deployed_is_refused(sim: kubesim.Sim) -> None:
    web_and_api(sim)
    run = deploy(sim, "2.0.0", "--images", "api:app=reg/api:2.0.0", workloads=("web",))
    assert run.code == 1, run.stdout
    assert "names a workload this run does not deploy" in run.errors[-1]


# -- the plan ------------------------------------------------------------------------------------------------------


def plan_of(run: CliRun) -> list[dict[str, Any]]:
    return json.loads(run.outputs["plan"])


def plan_group(run: CliRun) -> list[str]:
    lines = run.lines
    start = lines.index("::group::Plan")
    return lines[start + 1:lines.index("::endgroup::", start)]


def test_the_plan_is_in_the_log_the_summary_and_the_output(sim: kubesim.Sim) -> None:
    config_map(sim, "web-config", {"color": "blue"})
    put_deployment(sim, "1.0.0", IMG + "1.0.0", pod_spec=with_image(env_from("web-config"), IMG + "1.0.0"))
    run = deploy(sim, "1.1.0", "--images", f"web={IMG}1.1.0")
    assert run.code == 0, run.stdout
    [item] = plan_of(run)
    assert item["workload"] == "deployment/web" and item["action"] == "deploy"
    assert item["from"] == {"revision": 1, "release": "1.0.0"} and item["to"] == {"revision": None,
                                                                                  "release": "1.1.0"}
    assert item["changes"] == [
        {"field": "container web: image", "before": IMG + "1.0.0", "after": IMG + "1.1.0"},
        {"field": "change-cause (release)", "before": "1.0.0", "after": "1.1.0"},
    ]
    group = plan_group(run)
    assert group[0] == "deployment/web: deploy, revision 1 (1.0.0) -> a new revision (1.1.0)"
    assert f"  container web: image: {IMG}1.0.0 -> {IMG}1.1.0" in group
    assert "### Plan" in run.summary and "container web: image" in run.summary
    # the plan is shown before the write
    write_line = next(i for i, line in enumerate(run.lines) if "deployed 1.1.0" in line)
    assert run.lines.index("::group::Plan") < write_line


def test_calculate_shows_the_plan_of_a_rollback(sim: kubesim.Sim) -> None:
    put_deployment(sim, "1.0.0", IMG + "1.0.0", pod_spec=with_image(env_from("web-config"), IMG + "1.0.0"))
    put_deployment(sim, "1.1.0", IMG + "1.1.0")
    wait_settled(sim)
    before = app_state(sim)
    run = run_cli(sim, "--mode", "calculate", "--release", "1.0.0", "--deployment", "web")
    assert run.code == 0, run.stdout
    [item] = plan_of(run)
    assert item["action"] == "rollback" and item["to"] == {"revision": 1, "release": "1.0.0"}
    assert item["notes"] == ["revision 1 becomes revision 3"]
    changes = {c["field"]: (c["before"], c["after"]) for c in item["changes"]}
    assert changes["container web: image"] == (IMG + "1.1.0", IMG + "1.0.0")
    assert changes["container web: env COLOR"] == (None, "from ConfigMap web-config key color")
    assert changes["container web: env MODE"] == (None, "fast")
    assert app_state(sim) == before


def test_a_dry_run_rollback_plans_exactly_what_the_rollback_does(sim: kubesim.Sim) -> None:
    config_map(sim, "web-config", {"color": "blue"})
    put_deployment(sim, "1.0.0", IMG + "1.0.0", pod_spec=with_image(env_from("web-config"), IMG + "1.0.0"))
    put_deployment(sim, "1.1.0", IMG + "1.1.0")
    wait_settled(sim)
    before = app_state(sim)
    dry = rollback(sim, "1.0.0", "--dry-run")
    assert dry.code == 0, dry.stdout
    assert app_state(sim) == before
    real = rollback(sim, "1.0.0")
    assert real.code == 0, real.stdout
    assert plan_of(dry) == plan_of(real) and plan_of(real)[0]["changes"]
    assert plan_group(dry) == plan_group(real)
    assert plan_of(real)[0]["notes"] == ["revision 1 becomes revision 3"]
    assert history_pairs(sim)[-1] == (3, "1.0.0")  # what the note said
    live = get_deployment(sim)["spec"]["template"]["spec"]["containers"][0]
    changes = {c["field"]: c["after"] for c in plan_of(real)[0]["changes"]}
    assert live["image"] == changes["container web: image"]
    assert [e["name"] for e in live["env"]] == ["COLOR", "MODE"]


def test_a_dry_run_deploy_from_manifests_plans_exactly_what_the_deploy_does(sim: kubesim.Sim,
                                                                           tmp_path: Path) -> None:
    put_deployment(sim, "1.0.0", IMG + "1.0.0")
    manifest = deployment_manifest("web", image=IMG + "1.1.0")
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "500m"}}
    manifest["spec"]["template"]["spec"]["containers"][0]["args"] = ["--port", "8080"]
    path = tmp_path / "web.yaml"
    path.write_text(yaml.safe_dump(manifest))
    wait_settled(sim)
    before = app_state(sim)
    dry = deploy(sim, "1.1.0", "--manifests", str(path), "--dry-run")
    assert dry.code == 0, dry.stdout
    assert app_state(sim) == before
    real = deploy(sim, "1.1.0", "--manifests", str(path))
    assert real.code == 0, real.stdout
    assert plan_of(dry) == plan_of(real)
    changes = {c["field"]: (c["before"], c["after"]) for c in plan_of(real)[0]["changes"]}
    assert changes == {
        "container web: image": (IMG + "1.0.0", IMG + "1.1.0"),
        "container web: args": (None, '["--port","8080"]'),
        "container web: resources.limits cpu": (None, "500m"),
        "change-cause (release)": ("1.0.0", "1.1.0"),
    }
    container = get_deployment(sim)["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--port", "8080"] and container["resources"]["limits"]["cpu"] == "500m"


# -- StatefulSets and DaemonSets: the target template comes from a ControllerRevision ------------------------------


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_a_controller_revision_needing_a_deleted_secret_is_refused(sim: kubesim.Sim, kind: str) -> None:
    secret(sim, "app-secret-1")

    def put(release: str, pod_spec: dict[str, Any]) -> None:
        body: dict[str, Any] = {"selector": {"matchLabels": {"app": "app"}},
                                "template": {"metadata": {"labels": {"app": "app"}}, "spec": pod_spec}}
        if kind == "StatefulSet":
            body.update(replicas=1, serviceName="app")
        sim.apply({"apiVersion": "apps/v1", "kind": kind,
                   "metadata": {"name": "app", "namespace": "default", "annotations": {CHANGE_CAUSE: release}},
                   "spec": body})
        wait_settled(sim)

    put("1.0.0", {"containers": [{"name": "app", "image": "reg/app:1.0.0",
                                  "envFrom": [{"secretRef": {"name": "app-secret-1"}}]}]})
    put("1.1.0", {"containers": [{"name": "app", "image": "reg/app:1.1.0"}]})
    call(sim, "DELETE", "/api/v1/namespaces/default/secrets/app-secret-1")
    with RequestLog(sim) as log:
        run = run_cli(sim, "--mode", "rollback", "--release", "1.0.0", "--deployment", f"{kind.lower()}/app",
                      "--timeout", "30s")
    assert run.code == 1, run.stdout
    assert "Secret app-secret-1 does not exist" in run.errors[-1]
    assert "envFrom of container app" in run.errors[-1]
    assert log.changes(include_dry_run=True) == []
