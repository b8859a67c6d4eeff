"""Pre-flight checks: what must be known about a workload before anything is written to it.

The checks are pure functions over objects already read (the workload, HorizontalPodAutoscalers, the metadata
of ConfigMaps and Secrets) and return :class:`Finding` data; the orchestration (``run.py``) logs them and stops
on an error before any write. The readers at the end are the only I/O, and they read metadata only: a Secret
is fetched as a ``PartialObjectMetadata``, never with its data.

- **Ownership**: Argo CD, Flux and Helm put markers on what they manage (labels, annotations, field managers
  in ``managedFields``). Their controllers undo a change made behind their back (Argo CD selfHeal, Flux drift
  detection) or keep a wrong record (Helm's release history), so such a workload is refused unless
  ``allow-managed: true``.
- **HorizontalPodAutoscaler**: when one targets the workload, the HPA owns ``spec.replicas``; nothing here may
  write it (an applied manifest loses its ``replicas``).
- **Config references**: the ConfigMaps and Secrets the target pod template needs. A missing required one makes
  the new pods fail with ``CreateContainerConfigError``; one changed after the target revision was created means
  the "old" release runs with new config.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from .cluster import Api, ApiFailure, resource_path
from .inputs import WorkloadRef

Obj = dict[str, Any]
Level = Literal["error", "warning"]

ARGO_TRACKING_ID = "argocd.argoproj.io/tracking-id"
ARGO_INSTANCE = "argocd.argoproj.io/instance"
APP_INSTANCE = "app.kubernetes.io/instance"  # Argo CD's default tracking label; Helm charts set it too
FLUX_KUSTOMIZE = "kustomize.toolkit.fluxcd.io/name"
FLUX_HELM = "helm.toolkit.fluxcd.io/name"
MANAGED_BY = "app.kubernetes.io/managed-by"
HELM_RELEASE = "meta.helm.sh/release-name"
HELM_NAMESPACE = "meta.helm.sh/release-namespace"
# field managers in managedFields, and who they are
FIELD_MANAGERS: Mapping[str, str] = {
    "argocd-controller": "Argo CD",
    "kustomize-controller": "Flux (kustomize-controller)",
    "helm-controller": "Flux (helm-controller)",
    "helm": "Helm",
}


@dataclass(frozen=True)
class Finding:
    """One thing a check found about one workload. ``error`` stops the run before any write."""

    workload: str  # "deployment/web"
    check: str  # managed | hpa | config-missing | config-changed | pull-secret-missing
    level: Level
    message: str


# -- ownership -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manager:
    """A tool that manages the workload, the evidence found for it and what to do instead of changing it here."""

    name: str  # "Argo CD", "Flux (kustomize-controller)", "Flux (helm-controller)", "Helm"
    evidence: tuple[str, ...]
    instead: str
    certain: bool = True  # False: the only evidence is a label other tools set too (a warning, not a refusal)


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def field_managers(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """The field managers named in ``metadata.managedFields``, in order, once each."""
    entries = (obj.get("metadata") or {}).get("managedFields") or []
    return tuple(dict.fromkeys(str(e.get("manager")) for e in entries if isinstance(e, dict) and e.get("manager")))


def managers(obj: Mapping[str, Any]) -> tuple[Manager, ...]:
    """Who manages this workload besides us, from its labels, annotations and field managers."""
    labels, notes = _labels(obj), _annotations(obj)
    namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
    by_field = {FIELD_MANAGERS[m]: m for m in field_managers(obj) if m in FIELD_MANAGERS}
    found: list[Manager] = []

    helm_evidence = []
    if labels.get(MANAGED_BY, "").lower() == "helm":
        helm_evidence.append(f"label {MANAGED_BY}={labels[MANAGED_BY]}")
    if HELM_RELEASE in notes:
        helm_evidence.append(f"annotation {HELM_RELEASE}={notes[HELM_RELEASE]}")
    if "Helm" in by_field:
        helm_evidence.append(f"field manager {by_field['Helm']!r} in managedFields")

    argo_evidence = []
    if ARGO_TRACKING_ID in notes:
        argo_evidence.append(f"annotation {ARGO_TRACKING_ID}={notes[ARGO_TRACKING_ID]}")
    if ARGO_INSTANCE in labels:
        argo_evidence.append(f"label {ARGO_INSTANCE}={labels[ARGO_INSTANCE]}")
    if APP_INSTANCE in labels and not helm_evidence:  # with Helm's markers the label is the chart's own
        argo_evidence.append(f"label {APP_INSTANCE}={labels[APP_INSTANCE]}")
    if "Argo CD" in by_field:
        argo_evidence.append(f"field manager {by_field['Argo CD']!r} in managedFields")
    if argo_evidence:
        app = (notes.get(ARGO_TRACKING_ID, "").split(":", 1)[0] or labels.get(ARGO_INSTANCE)
               or labels.get(APP_INSTANCE) or "APP")
        found.append(Manager("Argo CD", tuple(argo_evidence),
                             f"roll back in Git (revert the commit Argo CD syncs) or run 'argocd app rollback "
                             f"{app}'; to change it here, first turn off automated sync (selfHeal) of application "
                             f"{app}, which would otherwise revert this change within seconds",
                             certain=argo_evidence != [f"label {APP_INSTANCE}={labels.get(APP_INSTANCE)}"]))

    for label, key, tool in ((FLUX_KUSTOMIZE, "Flux (kustomize-controller)", "kustomization"),
                             (FLUX_HELM, "Flux (helm-controller)", "helmrelease")):
        evidence = []
        if label in labels:
            evidence.append(f"label {label}={labels[label]}")
        if key in by_field:
            evidence.append(f"field manager {by_field[key]!r} in managedFields")
        if evidence:
            owner = labels.get(label, "NAME")
            owner_ns = labels.get(label.replace("/name", "/namespace"), namespace)
            found.append(Manager(key, tuple(evidence),
                                 f"revert the change in Git, or suspend it first with 'flux suspend {tool} {owner} "
                                 f"-n {owner_ns}' (its drift detection would otherwise undo this change)"))

    if helm_evidence:
        release = notes.get(HELM_RELEASE) or labels.get(APP_INSTANCE) or "RELEASE"
        release_ns = notes.get(HELM_NAMESPACE) or namespace
        found.append(Manager("Helm", tuple(helm_evidence),
                             f"run 'helm rollback {release} -n {release_ns}' so Helm's release history stays "
                             f"true (changed here, 'helm history' and the next 'helm upgrade' would not know)"))
    return tuple(found)


def ownership_findings(workload: str, found: Sequence[Manager], allow_managed: bool) -> list[Finding]:
    """A refusal per manager (a warning with ``allow-managed: true``), naming the evidence and what to do."""
    findings = []
    for manager in found:
        evidence = "; ".join(manager.evidence)
        if not manager.certain:
            findings.append(Finding(workload, "managed", "warning",
                                    f"{workload} may be managed by {manager.name}: it has {evidence}, which "
                                    f"{manager.name}'s label tracking sets, but so do Helm charts, kustomize and "
                                    f"operators; going ahead. If {manager.name} syncs it, {manager.instead}"))
            continue
        if allow_managed:
            message = (f"{workload} is managed by {manager.name} ({evidence}); changing it anyway because "
                       f"allow-managed is true (recorded in the ledger). {manager.name} may undo this change")
            findings.append(Finding(workload, "managed", "warning", message))
        else:
            message = (f"{workload} is managed by {manager.name} ({evidence}): {manager.instead}. Nothing was "
                       f"changed; set allow-managed: true to change it here anyway")
            findings.append(Finding(workload, "managed", "error", message))
    return findings


# -- HorizontalPodAutoscalers ---------------------------------------------------------------------------------


def hpas_targeting(hpas: Iterable[Mapping[str, Any]], ref: WorkloadRef) -> tuple[str, ...]:
    """Names of the HorizontalPodAutoscalers whose ``scaleTargetRef`` is this workload."""
    names = []
    for hpa in hpas:
        target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        group = str(target.get("apiVersion") or "apps/v1").rpartition("/")[0]
        if target.get("kind") == ref.kind and target.get("name") == ref.name and group in ("apps", ""):
            names.append(str((hpa.get("metadata") or {}).get("name")))
    return tuple(names)


def _owns_replicas(obj: Mapping[str, Any], manager: str) -> tuple[bool, bool]:
    """(does ``manager``'s Apply entry own ``spec.replicas``, does any other entry own it)."""
    mine = others = False
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        fields = ((entry.get("fieldsV1") or {}).get("f:spec") or {}) if isinstance(entry, dict) else {}
        if "f:replicas" not in fields:
            continue
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            mine = True
        else:
            others = True
    return mine, others


def manifest_without_replicas(manifest: Mapping[str, Any], live: Mapping[str, Any], hpas: Sequence[str],
                              manager: str) -> tuple[Obj, str | None]:
    """The manifest to apply when HPAs target the workload: without ``spec.replicas``, and a note saying so.

    Server-side apply removes a field its manager applied before and no longer applies, when no other manager
    owns it, and the default (1 replica) would come back. If we are the only owner of ``replicas`` on the live
    object, the manifest keeps the live value instead (nothing changes, and the HPA takes the field over at its
    next scale)."""
    spec = manifest.get("spec") or {}
    if not hpas or "replicas" not in spec:
        return dict(manifest), None
    result = copy.deepcopy(dict(manifest))
    given = result["spec"].pop("replicas")
    named = ", ".join(hpas)
    mine, others = _owns_replicas(live, manager) if live else (False, False)
    live_replicas = (live.get("spec") or {}).get("replicas") if live else None
    if mine and not others and live_replicas is not None:
        result["spec"]["replicas"] = live_replicas
        return result, (f"HorizontalPodAutoscaler {named} scales it: the manifest's replicas ({given}) is replaced "
                        f"by the live value ({live_replicas}), so applying without it does not reset it to 1")
    return result, (f"HorizontalPodAutoscaler {named} scales it: replicas ({given}) was left out of the applied "
                    f"manifest; the live replica count stays as the HPA set it")


# -- config references ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigRef:
    """A ConfigMap or Secret a pod template needs, and where."""

    kind: str  # "ConfigMap" | "Secret"
    name: str
    optional: bool  # every use is optional: true
    used_by: tuple[str, ...]
    pull_secret: bool = False  # only as an imagePullSecret (the kubelet pulls without it, and may fail to)


def config_refs(template: Mapping[str, Any]) -> tuple[ConfigRef, ...]:
    """The ConfigMaps and Secrets a pod template references: env (``configMapKeyRef``/``secretKeyRef``),
    ``envFrom``, volumes, projected volumes and ``imagePullSecrets``, in order, one entry per object."""
    spec = template.get("spec") or {}
    uses: dict[tuple[str, str], list[tuple[str, bool, bool]]] = {}

    def use(kind: str, name: Any, optional: Any, where: str, pull: bool = False) -> None:
        if name:
            uses.setdefault((kind, str(name)), []).append((where, optional is True, pull))

    for group, label in (("initContainers", "init container"), ("containers", "container"),
                         ("ephemeralContainers", "ephemeral container")):
        for container in spec.get(group) or []:
            cname = container.get("name")
            for var in container.get("env") or []:
                source = var.get("valueFrom") or {}
                for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    ref = source.get(key)
                    if isinstance(ref, dict):
                        use(kind, ref.get("name"), ref.get("optional"),
                            f"env {var.get('name')} of {label} {cname}")
            for item in container.get("envFrom") or []:
                for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    ref = item.get(key)
                    if isinstance(ref, dict):
                        use(kind, ref.get("name"), ref.get("optional"), f"envFrom of {label} {cname}")
    for volume in spec.get("volumes") or []:
        where = f"volume {volume.get('name')}"
        if isinstance(volume.get("configMap"), dict):
            use("ConfigMap", volume["configMap"].get("name"), volume["configMap"].get("optional"), where)
        if isinstance(volume.get("secret"), dict):
            use("Secret", volume["secret"].get("secretName"), volume["secret"].get("optional"), where)
        for source in (volume.get("projected") or {}).get("sources") or []:
            for key, kind in (("configMap", "ConfigMap"), ("secret", "Secret")):
                ref = source.get(key)
                if isinstance(ref, dict):
                    use(kind, ref.get("name"), ref.get("optional"), f"projected {where}")
    for item in spec.get("imagePullSecrets") or []:
        use("Secret", item.get("name"), False, "imagePullSecrets", pull=True)
    return tuple(ConfigRef(kind, name, all(o for _, o, _ in found), tuple(dict.fromkeys(w for w, _, _ in found)),
                           pull_secret=all(p for _, _, p in found))
                 for (kind, name), found in uses.items())


@dataclass(frozen=True)
class ConfigState:
    """What a metadata-only read found about one ConfigMap or Secret."""

    kind: str
    name: str
    exists: bool | None  # None: not known (the credentials may not read it)
    changed_at: str | None = None  # RFC 3339: the newest of creationTimestamp and the managedFields times


def last_change(metadata: Mapping[str, Any]) -> str | None:
    """When an object was last written, as far as its metadata tells: the newest of ``creationTimestamp`` and
    the ``time`` of its managedFields entries (each write stamps the entry of the manager that made it)."""
    stamps = [metadata.get("creationTimestamp")]
    stamps += [e.get("time") for e in metadata.get("managedFields") or [] if isinstance(e, dict)]
    parsed = [(_parse_time(s), str(s)) for s in stamps if s]
    known = [(t, s) for t, s in parsed if t is not None]
    return max(known)[1] if known else None


def _parse_time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def config_findings(workload: str, refs: Sequence[ConfigRef], states: Mapping[tuple[str, str], ConfigState],
                    revision_created: str | None, revision: str) -> list[Finding]:
    """Refuse a missing required reference; warn about a missing pull secret and about one changed after the
    target revision was created (``revision_created`` None: a new template, nothing to compare)."""
    findings = []
    since = _parse_time(revision_created) if revision_created else None
    for ref in refs:
        state = states.get((ref.kind, ref.name))
        if state is None or state.exists is None:
            continue
        used = ", ".join(ref.used_by)
        if not state.exists:
            if ref.optional:
                continue
            if ref.pull_secret:
                findings.append(Finding(workload, "pull-secret-missing", "warning",
                                        f"{workload}: image pull Secret {ref.name} of {revision} does not exist: "
                                        f"pulling from a private registry will fail (ImagePullBackOff)"))
                continue
            findings.append(Finding(workload, "config-missing", "error",
                                    f"{workload}: {ref.kind} {ref.name} does not exist, and {revision} needs it "
                                    f"({used}): its pods would fail with CreateContainerConfigError. Nothing was "
                                    f"changed; recreate the {ref.kind} (e.g. from the release's manifests in Git) "
                                    f"and run again"))
            continue
        changed = _parse_time(state.changed_at) if state.changed_at else None
        if since is not None and changed is not None and changed > since:
            findings.append(Finding(workload, "config-changed", "warning",
                                    f"{workload}: {ref.kind} {ref.name} ({used}) was changed at {state.changed_at}, "
                                    f"after {revision} was created ({revision_created}): the pods will run with "
                                    f"its current content, not the one that release had"))
    return findings


# -- reading (the only I/O here) -------------------------------------------------------------------------------


@dataclass
class Reader:
    """Reads what the checks need, once per object, metadata only; remembers what it could not read."""

    api: Api
    namespace: str
    forbidden: list[str] = field(default_factory=list)  # "get secrets (403 Forbidden)", once each
    _states: dict[tuple[str, str], ConfigState] = field(default_factory=dict)
    _hpas: list[Obj] | None = None

    def hpas(self) -> list[Obj]:
        """Every HorizontalPodAutoscaler in the namespace (none when the API or the permission is missing)."""
        if self._hpas is None:
            try:
                listed = self.api.get(f"/apis/autoscaling/v2/namespaces/{quote(self.namespace, safe='')}/"
                                      f"horizontalpodautoscalers")
                self._hpas = list(listed.get("items") or [])
            except ApiFailure as err:
                if err.status not in (403, 404):
                    raise
                if err.status == 403:  # 404: no autoscaling/v2 served, so no HPA either
                    self.forbidden.append(f"list horizontalpodautoscalers ({err.status} {err.reason})")
                self._hpas = []
        return self._hpas

    def state(self, ref: ConfigRef) -> ConfigState:
        key = (ref.kind, ref.name)
        if key not in self._states:
            plural = "configmaps" if ref.kind == "ConfigMap" else "secrets"
            try:
                meta = self.api.get_metadata(resource_path("", self.namespace, plural, ref.name))
                self._states[key] = ConfigState(ref.kind, ref.name, True,
                                                last_change(meta.get("metadata") or {}))
            except ApiFailure as err:
                if err.status == 404:
                    self._states[key] = ConfigState(ref.kind, ref.name, False)
                elif err.status in (401, 403, 406):
                    said = f"get {plural} ({err.status} {err.reason})"
                    if said not in self.forbidden:
                        self.forbidden.append(said)
                    self._states[key] = ConfigState(ref.kind, ref.name, None)
                else:
                    raise
        return self._states[key]

    def states(self, refs: Iterable[ConfigRef]) -> dict[tuple[str, str], ConfigState]:
        return {(ref.kind, ref.name): self.state(ref) for ref in refs}
