"""The pure pre-flight checks (``rollback/preflight.py``), table-driven: ownership markers, HPA targets, the
manifest without replicas, config references and their findings."""

from __future__ import annotations

from typing import Any

import pytest

from rollback import preflight
from rollback.inputs import WorkloadRef
from rollback.preflight import ConfigRef, ConfigState

WEB = WorkloadRef("Deployment", "web")


def workload(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
             managers: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "shop", "labels": labels or {},
                         "annotations": annotations or {},
                         "managedFields": [{"manager": m, "operation": "Apply", "fieldsV1": {}} for m in managers]}}


@pytest.mark.parametrize("obj,expected", [
    (workload(), []),
    (workload({"app": "web"}, {"kubernetes.io/change-cause": "1.0.0"}, ("kubectl", "kube-release-rollback")), []),
    (workload(annotations={"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:shop/web"}),
     [("Argo CD", ("annotation argocd.argoproj.io/tracking-id=shop:apps/Deployment:shop/web",))]),
    (workload({"argocd.argoproj.io/instance": "shop"}), [("Argo CD", ("label argocd.argoproj.io/instance=shop",))]),
    (workload({"app.kubernetes.io/instance": "shop"}), [("Argo CD", ("label app.kubernetes.io/instance=shop",))]),
    (workload(managers=("argocd-controller",)),
     [("Argo CD", ("field manager 'argocd-controller' in managedFields",))]),
    (workload({"kustomize.toolkit.fluxcd.io/name": "apps"}),
     [("Flux (kustomize-controller)", ("label kustomize.toolkit.fluxcd.io/name=apps",))]),
    (workload(managers=("kustomize-controller",)),
     [("Flux (kustomize-controller)", ("field manager 'kustomize-controller' in managedFields",))]),
    (workload({"helm.toolkit.fluxcd.io/name": "web"}, managers=("helm-controller",)),
     [("Flux (helm-controller)", ("label helm.toolkit.fluxcd.io/name=web",
                                  "field manager 'helm-controller' in managedFields"))]),
    # a Helm chart sets app.kubernetes.io/instance itself: that is Helm's evidence, not Argo CD's
    (workload({"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "shop"},
              {"meta.helm.sh/release-name": "shop"}),
     [("Helm", ("label app.kubernetes.io/managed-by=Helm", "annotation meta.helm.sh/release-name=shop"))]),
    (workload(managers=("helm",)), [("Helm", ("field manager 'helm' in managedFields",))]),
    # Flux's helm-controller installs with Helm: both are named, each with what to do
    (workload({"helm.toolkit.fluxcd.io/name": "web", "app.kubernetes.io/managed-by": "Helm"}),
     [("Flux (helm-controller)", ("label helm.toolkit.fluxcd.io/name=web",)),
      ("Helm", ("label app.kubernetes.io/managed-by=Helm",))]),
])
def test_managers_and_their_evidence(obj: dict[str, Any], expected: list[tuple[str, tuple[str, ...]]]) -> None:
    assert [(m.name, m.evidence) for m in preflight.managers(obj)] == expected


@pytest.mark.parametrize("obj,certain", [
    (workload({"app.kubernetes.io/instance": "shop"}), False),  # a label many tools set: a warning only
    (workload({"app.kubernetes.io/instance": "shop", "argocd.argoproj.io/instance": "shop"}), True),
    (workload({"app.kubernetes.io/instance": "shop"}, managers=("argocd-controller",)), True),
])
def test_the_common_instance_label_alone_is_not_proof(obj: dict[str, Any], certain: bool) -> None:
    [manager] = preflight.managers(obj)
    assert manager.certain is certain
    [finding] = preflight.ownership_findings("deployment/web", [manager], allow_managed=False)
    assert finding.level == ("error" if certain else "warning")
    if not certain:
        assert "may be managed by Argo CD" in finding.message and "going ahead" in finding.message


@pytest.mark.parametrize("obj,instead", [
    (workload(annotations={"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:shop/web"}),
     "argocd app rollback shop"),
    (workload({"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux"}),
     "flux suspend kustomization apps -n flux"),
    (workload({"helm.toolkit.fluxcd.io/name": "web"}), "flux suspend helmrelease web -n shop"),
    (workload({"app.kubernetes.io/managed-by": "Helm"}, {"meta.helm.sh/release-name": "shop",
                                                         "meta.helm.sh/release-namespace": "apps"}),
     "helm rollback shop -n apps"),
])
def test_what_to_do_instead_names_the_owner(obj: dict[str, Any], instead: str) -> None:
    [manager] = preflight.managers(obj)
    assert instead in manager.instead


@pytest.mark.parametrize("allow,level,words", [
    (False, "error", ("is managed by Helm (label app.kubernetes.io/managed-by=Helm)", "helm rollback",
                      "Nothing was changed", "allow-managed: true")),
    (True, "warning", ("is managed by Helm", "allow-managed is true", "recorded in the ledger")),
])
def test_ownership_findings(allow: bool, level: str, words: tuple[str, ...]) -> None:
    found = preflight.managers(workload({"app.kubernetes.io/managed-by": "Helm"}))
    [finding] = preflight.ownership_findings("deployment/web", found, allow)
    assert finding.level == level and finding.check == "managed"
    for word in words:
        assert word in finding.message


def hpa(name: str, kind: str = "Deployment", target: str = "web", api_version: str = "apps/v1") -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": target}}}


@pytest.mark.parametrize("hpas,expected", [
    ([], ()),
    ([hpa("web")], ("web",)),
    ([hpa("a", target="api"), hpa("b", kind="StatefulSet"), hpa("c", api_version="example.com/v1")], ()),
    ([hpa("one"), hpa("two")], ("one", "two")),
])
def test_hpas_targeting(hpas: list[dict[str, Any]], expected: tuple[str, ...]) -> None:
    assert preflight.hpas_targeting(hpas, WEB) == expected


def owned(manager: str, operation: str) -> dict[str, Any]:
    return {"manager": manager, "operation": operation, "fieldsV1": {"f:spec": {"f:replicas": {}}}}


@pytest.mark.parametrize("hpas,fields,replicas,note", [
    ((), [], 3, None),  # no HPA: the manifest as given
    (("web-hpa",), [], 3, "left out"),
    (("web-hpa",), [owned("kube-controller-manager", "Update")], 3, "left out"),
    (("web-hpa",), [owned("kube-release-rollback", "Apply"), owned("kube-controller-manager", "Update")], 3,
     "left out"),
    (("web-hpa",), [owned("kube-release-rollback", "Apply")], 5, "live value (5)"),  # we alone own it
])
def test_manifest_without_replicas(hpas: tuple[str, ...], fields: list[dict[str, Any]], replicas: int,
                                   note: str | None) -> None:
    manifest = {"kind": "Deployment", "spec": {"replicas": 3, "template": {}}}
    live = {"metadata": {"managedFields": fields}, "spec": {"replicas": 5}}
    result, said = preflight.manifest_without_replicas(manifest, live, hpas, "kube-release-rollback")
    assert manifest["spec"]["replicas"] == 3  # the input is not changed
    if note is None:
        assert said is None and result == manifest
        return
    assert said is not None and note in said and "web-hpa" in said
    assert result["spec"].get("replicas") == (5 if "live value" in note else None)


TEMPLATE = {"spec": {
    "initContainers": [{"name": "migrate", "envFrom": [{"secretRef": {"name": "db"}}]}],
    "containers": [{"name": "web", "env": [
        {"name": "A", "value": "literal"},
        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "b"}}},
        {"name": "C", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "D", "valueFrom": {"configMapKeyRef": {"name": "extra", "key": "d", "optional": True}}},
        {"name": "E", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ], "envFrom": [{"configMapRef": {"name": "cfg"}}]}],
    "volumes": [{"name": "conf", "configMap": {"name": "files"}},
                {"name": "tls", "secret": {"secretName": "tls", "optional": True}},
                {"name": "all", "projected": {"sources": [{"configMap": {"name": "files"}},
                                                          {"secret": {"name": "projected-secret"}},
                                                          {"serviceAccountToken": {"path": "token"}}]}},
                {"name": "tmp", "emptyDir": {}}],
    "imagePullSecrets": [{"name": "registry"}],
}}


def test_config_refs_lists_every_kind_of_reference_once() -> None:
    refs = {(r.kind, r.name): r for r in preflight.config_refs(TEMPLATE)}
    assert list(refs) == [("Secret", "db"), ("ConfigMap", "cfg"), ("ConfigMap", "extra"), ("ConfigMap", "files"),
                          ("Secret", "tls"), ("Secret", "projected-secret"), ("Secret", "registry")]
    assert refs[("Secret", "db")].used_by == ("envFrom of init container migrate", "env C of container web")
    assert refs[("ConfigMap", "cfg")].used_by == ("env B of container web", "envFrom of container web")
    assert refs[("ConfigMap", "files")].used_by == ("volume conf", "projected volume all")
    assert [r.name for r in refs.values() if r.optional] == ["extra", "tls"]
    assert [r.name for r in refs.values() if r.pull_secret] == ["registry"]


def test_config_refs_of_an_empty_template() -> None:
    assert preflight.config_refs({}) == ()


REF = ConfigRef("ConfigMap", "cfg", False, ("env B of container web",))


@pytest.mark.parametrize("ref,state,created,expected", [
    (REF, ConfigState("ConfigMap", "cfg", True, "2026-01-01T00:00:00Z"), "2026-01-02T00:00:00Z", []),
    (REF, ConfigState("ConfigMap", "cfg", None), "2026-01-02T00:00:00Z", []),  # unknown: said once elsewhere
    (REF, ConfigState("ConfigMap", "cfg", False), "2026-01-02T00:00:00Z", [("error", "config-missing")]),
    (ConfigRef("ConfigMap", "cfg", True, ("x",)), ConfigState("ConfigMap", "cfg", False), None, []),
    (ConfigRef("Secret", "registry", False, ("imagePullSecrets",), pull_secret=True),
     ConfigState("Secret", "registry", False), None, [("warning", "pull-secret-missing")]),
    (REF, ConfigState("ConfigMap", "cfg", True, "2026-01-03T00:00:00Z"), "2026-01-02T00:00:00Z",
     [("warning", "config-changed")]),
    (REF, ConfigState("ConfigMap", "cfg", True, "2026-01-02T00:00:00Z"), "2026-01-02T00:00:00Z", []),  # same second
    (REF, ConfigState("ConfigMap", "cfg", True, "2026-01-03T00:00:00Z"), None, []),  # a new template: no "since"
])
def test_config_findings(ref: ConfigRef, state: ConfigState, created: str | None,
                         expected: list[tuple[str, str]]) -> None:
    findings = preflight.config_findings("deployment/web", [ref], {(state.kind, state.name): state}, created,
                                         "revision 1 (1.0.0)")
    assert [(f.level, f.check) for f in findings] == expected
    for finding in findings:
        assert f"{ref.kind} {ref.name}" in finding.message or f"Secret {ref.name}" in finding.message


def test_a_missing_config_map_says_what_needs_it_and_what_to_do() -> None:
    [finding] = preflight.config_findings("deployment/web", [REF], {("ConfigMap", "cfg"): ConfigState(
        "ConfigMap", "cfg", False)}, None, "revision 1 (1.0.0)")
    assert finding.message == (
        "deployment/web: ConfigMap cfg does not exist, and revision 1 (1.0.0) needs it (env B of container web): "
        "its pods would fail with CreateContainerConfigError. Nothing was changed; recreate the ConfigMap (e.g. "
        "from the release's manifests in Git) and run again")


@pytest.mark.parametrize("metadata,expected", [
    ({}, None),
    ({"creationTimestamp": "2026-01-01T00:00:00Z"}, "2026-01-01T00:00:00Z"),
    ({"creationTimestamp": "2026-01-01T00:00:00Z",
      "managedFields": [{"time": "2026-01-03T00:00:00Z"}, {"time": "2026-01-02T00:00:00Z"}, {}]},
     "2026-01-03T00:00:00Z"),
    ({"creationTimestamp": "not a time"}, None),
])
def test_last_change(metadata: dict[str, Any], expected: str | None) -> None:
    assert preflight.last_change(metadata) == expected
