"""Workload kinds: one small class per kind behind one interface, like kubectl's Rollbacker/HistoryViewer.

Every class reads the workload and its history (ReplicaSets for Deployments, ControllerRevisions for
StatefulSets and DaemonSets), undoes to a revision exactly as ``kubectl rollout undo --to-revision`` would
(plus an optimistic-concurrency guard kubectl lacks), changes images with the change-cause in the same write,
and judges rollout progress with the rules of ``kubectl rollout status``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from . import gha
from .cluster import AnswerLost, Api, ApiFailure, resource_path
from .history import History, Revision
from .inputs import ImageSpec, WorkloadRef

Obj = dict[str, Any]

CHANGE_CAUSE = "kubernetes.io/change-cause"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
HASH_LABEL = "pod-template-hash"
REVISION_HASH_LABEL = "controller-revision-hash"
FIELD_MANAGER = "kube-release-rollback"
ANNOTATION_PREFIX = "kube-release-rollback.io/"
# Annotations kubectl's undo keeps from the Deployment instead of taking them from the ReplicaSet.
UNDO_SKIPPED_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
)


class WorkloadError(Exception):
    """A problem with one workload the user can act on; the message says what to do."""


class NotFound(WorkloadError):
    pass


class Paused(WorkloadError):
    pass


class Conflict(WorkloadError):
    """Someone else changed the workload between our read and our write."""


class OutcomeUnknown(WorkloadError):
    """A write's answer was lost and the workload could not be re-read to tell whether it landed."""


class WriteNotLanded(WorkloadError):
    """A write's answer was lost every time it was sent, and re-reading showed it was never applied."""


LOST_WRITE_ATTEMPTS = 3  # sends of one write whose answer is lost, each followed by a re-read


@dataclass(frozen=True)
class RolloutState:
    done: bool
    failed: bool
    message: str
    waitable: bool = True  # False: there is no rollout to wait for (OnDelete update strategy)


# -- pure helpers ----------------------------------------------------------------------------------------------


def prune_empty(value: Any) -> Any:
    """Drop None, empty maps and empty lists recursively (Go's zero values: ``creationTimestamp: null``,
    ``resources: {}``), so two templates compare the way the API machinery's semantic equality would."""
    if isinstance(value, dict):
        pruned = {k: prune_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [prune_empty(v) for v in value]
    return value


def without_hash(template: Mapping[str, Any], label: str = HASH_LABEL) -> Obj:
    clean = copy.deepcopy(dict(template))
    labels = clean.get("metadata", {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(label, None)
    return clean


def same_template(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return bool(prune_empty(without_hash(a)) == prune_empty(without_hash(b)))


def images_of(template: Mapping[str, Any]) -> tuple[str, ...]:
    spec = template.get("spec") or {}
    pairs = [f"{c.get('name')}={c.get('image')}" for c in spec.get("containers") or []]
    pairs += [f"{c.get('name')}={c.get('image')}" for c in spec.get("initContainers") or []]
    return tuple(pairs)


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """A ``LabelSelector`` as the query-string form (matchLabels and matchExpressions)."""
    if not selector:
        return ""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(str(key))
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def controlled_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("controller") and ref.get("uid") == owner_uid for ref in refs)


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def release_of(obj: Mapping[str, Any]) -> str | None:
    return annotations_of(obj).get(CHANGE_CAUSE)


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def undo_annotations(workload: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, str]:
    """The annotations ``kubectl rollout undo`` writes on a Deployment: the skipped keys from the Deployment,
    everything else from the target ReplicaSet."""
    current = annotations_of(workload)
    result = {k: current[k] for k in UNDO_SKIPPED_ANNOTATIONS if k in current}
    for key, value in annotations_of(source).items():
        if key not in UNDO_SKIPPED_ANNOTATIONS:
            result[key] = value
    return result


def image_patch(template: Mapping[str, Any], images: Sequence[ImageSpec]) -> Obj:
    """Strategic-merge patch of the pod spec setting images by container name, like ``kubectl set image``."""
    spec = template.get("spec") or {}
    names = {c.get("name") for c in spec.get("containers") or []}
    init_names = {c.get("name") for c in spec.get("initContainers") or []}
    containers: list[Obj] = []
    init_containers: list[Obj] = []
    for item in images:
        if item.container not in names and item.container not in init_names:
            known = ", ".join(sorted(str(n) for n in names | init_names)) or "none"
            raise WorkloadError(f"images: there is no container named {item.container!r}; containers are: {known}")
        if item.container in names:
            containers.append({"name": item.container, "image": item.image})
        if item.container in init_names:
            init_containers.append({"name": item.container, "image": item.image})
    patch: Obj = {}
    if containers:
        patch["containers"] = containers
    if init_containers:
        patch["initContainers"] = init_containers
    return {"spec": patch}


def pruned_deployment_revisions(replica_sets: Iterable[Mapping[str, Any]]) -> tuple[int, ...]:
    """Revision numbers below the newest that no ReplicaSet holds now or held before a renumbering."""
    seen: set[int] = set()
    for rs in replica_sets:
        notes = annotations_of(rs)
        for text in [notes.get(REVISION, "")] + notes.get(REVISION_HISTORY, "").split(","):
            if text.strip().isdigit():
                seen.add(int(text))
    if not seen:
        return ()
    return tuple(n for n in range(1, max(seen)) if n not in seen)


@dataclass(frozen=True)
class Intended:
    """What a write to a workload was to leave there, to tell from a re-read whether it landed."""

    resource_version: str | None  # the resourceVersion the write was conditioned on; None: unconditional
    annotations: Mapping[str, str | None]  # None: the write removed the annotation
    template: Mapping[str, Any] | None = None  # the whole pod template the write set
    images: Mapping[str, str] = field(default_factory=dict)  # container name -> image the write set


@dataclass(frozen=True)
class Verdict:
    landed: bool
    unchanged: bool  # the object is exactly as read before the write (same resourceVersion)
    reason: str


def judge_write(intended: Intended, current: Mapping[str, Any] | None) -> Verdict:
    """Did the write described by ``intended`` land, judging from ``current`` (the object re-read after the
    answer was lost; None: it is gone)?

    Landed means: the pod template and our annotations are what the write set (also when the write changed
    nothing, as a no-op patch leaves the resourceVersion alone). Otherwise, the same resourceVersion as the
    read the write was conditioned on means nothing was written; a different one is someone else's change
    (or a status update): our conditioned write can no longer land.
    """
    if current is None:
        return Verdict(False, False, "the workload is gone")
    version = (current.get("metadata") or {}).get("resourceVersion")
    template = (current.get("spec") or {}).get("template") or {}
    different: list[str] = []
    if intended.template is not None and not same_template(template, intended.template):
        different.append("the pod template")
    pod_spec = template.get("spec") or {}
    live = {c.get("name"): c.get("image") for c in (pod_spec.get("containers") or [])
            + (pod_spec.get("initContainers") or [])}
    for container, image in sorted(intended.images.items()):
        if live.get(container) != image:
            different.append(f"container {container} runs {live.get(container)!r}, not {image!r}")
    notes = annotations_of(current)
    for key, value in sorted(intended.annotations.items()):
        if notes.get(key) != value:
            different.append(f"annotation {key} is {notes.get(key)!r}, not {value!r}")
    if not different:
        return Verdict(True, False, "it holds the template and annotations the write set")
    if intended.resource_version is not None and version == intended.resource_version:
        return Verdict(False, True, "the workload is unchanged since it was read (same resourceVersion)")
    return Verdict(False, False, "it differs from what the write set: " + "; ".join(different))


def _images_in(template: Mapping[str, Any]) -> dict[str, str]:
    spec = template.get("spec") or {}
    return {str(c.get("name")): str(c.get("image")) for c in (spec.get("containers") or [])
            + (spec.get("initContainers") or []) if c.get("name") and c.get("image")}


def _failed_test_op(err: ApiFailure) -> bool:
    """Did our JSON-patch ``test`` on ``/metadata/resourceVersion`` fail? The API server answers 422 with a
    generic message and puts the patch library's "testing value /metadata/resourceVersion failed" in a cause."""
    return any("test" in text.lower() and "/metadata/resourceVersion" in text for text in (err.message, *err.causes))


# -- the kinds -------------------------------------------------------------------------------------------------


class Workload:
    """One workload in one namespace. Subclasses supply the kind-specific calls and rules."""

    kind: ClassVar[str]
    plural: ClassVar[str]
    history_source: ClassVar[str]

    def __init__(self, api: Api, namespace: str, name: str):
        self.api = api
        self.namespace = namespace
        self.name = name

    @property
    def ref(self) -> WorkloadRef:
        return WorkloadRef(self.kind, self.name)

    def __str__(self) -> str:
        return f"{self.kind.lower()}/{self.name}"

    # reading

    def read(self) -> Obj:
        try:
            return self._read()
        except ApiFailure as err:
            if err.is_not_found:
                raise NotFound(f"{self} not found in namespace {self.namespace!r}: check the deployment and "
                               f"namespace inputs") from None
            raise

    def history(self, obj: Obj) -> History:
        raise NotImplementedError

    def observed(self, obj: Obj) -> bool:
        """Has the controller seen the latest spec?"""
        status = obj.get("status") or {}
        return int(status.get("observedGeneration") or 0) >= int(obj["metadata"].get("generation") or 0)

    def rollout_state(self, obj: Obj) -> RolloutState:
        raise NotImplementedError

    def check_changeable(self, obj: Obj) -> None:
        """Raise if the workload cannot be changed right now (e.g. a paused Deployment)."""

    # writing

    def undo(self, obj: Obj, target: Revision, extra: Mapping[str, str | None], dry_run: bool) -> Obj:
        raise NotImplementedError

    def set_images(self, obj: Obj, images: Sequence[ImageSpec], annotations: Mapping[str, str | None],
                   dry_run: bool) -> Obj:
        """Change images and annotations in one strategic-merge patch, guarded by the read resourceVersion."""
        template = obj["spec"]["template"]
        body = {
            "metadata": {"annotations": dict(annotations), "resourceVersion": obj["metadata"]["resourceVersion"]},
            "spec": {"template": image_patch(template, images)},
        }
        intended = Intended(obj["metadata"]["resourceVersion"], dict(annotations),
                            images={item.container: item.image for item in images})
        return self._patch(body, "application/strategic-merge-patch+json", dry_run, intended=intended)

    def annotate(self, obj: Obj, annotations: Mapping[str, str | None], dry_run: bool) -> Obj:
        body = {"metadata": {"annotations": dict(annotations),
                             "resourceVersion": obj["metadata"]["resourceVersion"]}}
        intended = Intended(obj["metadata"]["resourceVersion"], dict(annotations))
        return self._patch(body, "application/merge-patch+json", dry_run, intended=intended)

    def apply(self, manifest: Obj, dry_run: bool) -> Obj:
        """Server-side apply of a full manifest for this workload (field manager of our own, forced)."""
        template = (manifest.get("spec") or {}).get("template") or {}
        intended = Intended(None, annotations_of(manifest), images=_images_in(template))
        return self._patch(manifest, "application/apply-patch+yaml", dry_run, force=True, intended=intended)

    # plumbing

    def path(self, plural: str | None = None, name: str | None = None) -> str:
        """This workload's URL path, or with ``plural`` a collection in its namespace (``replicasets``)."""
        if plural is None:
            return resource_path("apps", self.namespace, self.plural, self.name)
        return resource_path("" if plural == "pods" else "apps", self.namespace, plural, name)

    def _patch(self, body: Any, content_type: str, dry_run: bool, force: bool | None = None,
               intended: Intended | None = None) -> Obj:
        """Send one write. When its answer is lost, re-read the workload and decide from what is there
        (``judge_write``): landed, return it as if answered; not applied, send it again (a few times);
        changed by someone else, ``Conflict``. A dry run persists nothing, so it is simply sent again."""
        lost: AnswerLost | None = None
        for _ in range(LOST_WRITE_ATTEMPTS):
            try:
                return self.api.patch(self.path(), body, content_type, fieldManager=FIELD_MANAGER, force=force,
                                      dryRun="All" if dry_run else None)
            except AnswerLost as err:
                lost = err
                if dry_run:
                    continue
                if intended is None:
                    raise
                current = self._reread_after(err)
                verdict = judge_write(intended, current)
                gha.info(gha.escape_log(f"{self}: the answer to our write was lost ({err.message}); re-read: "
                                        f"{'it landed' if verdict.landed else 'it did not land'}: {verdict.reason}"))
                if verdict.landed:
                    assert current is not None
                    return current
                if current is None:
                    raise NotFound(f"{self} disappeared from namespace {self.namespace!r}") from None
                if not verdict.unchanged and intended.resource_version is not None:
                    raise Conflict(f"{self} was changed by someone else while we were changing it") from None
            except ApiFailure as err:
                if err.status == 409 or (err.status == 422 and _failed_test_op(err)):
                    raise Conflict(f"{self} was changed by someone else while we were changing it") from None
                if err.status == 404:
                    raise NotFound(f"{self} disappeared from namespace {self.namespace!r}") from None
                raise
        assert lost is not None
        raise WriteNotLanded(f"{self}: the write did not land: the API server's answer was lost each of "
                             f"{LOST_WRITE_ATTEMPTS} times it was sent ({lost.message}), and re-reading "
                             f"{self} showed it was not applied; nothing of it is in the cluster. Check the "
                             f"API server's health, then run again")

    def _reread_after(self, lost: AnswerLost) -> Obj | None:
        """The workload re-read after a write whose answer was lost; None when it is gone."""
        try:
            return self._read()
        except ApiFailure as err:
            if err.is_not_found:
                return None
            raise OutcomeUnknown(
                f"{self}: whether the write landed is unknown: its answer was lost ({lost.message}) and "
                f"{self} could not be re-read to check ({err.message}). See what is live with 'kubectl "
                f"rollout history {self} -n {self.namespace}' before running again") from None

    def _read(self) -> Obj:
        return self.api.get(self.path())

    def _revisions(self, obj: Obj, sources: Iterable[tuple[int, Obj, Obj]]) -> tuple[list[Revision], int | None]:
        """Revisions, ascending, from (number, ReplicaSet or ControllerRevision, pod template) triples, and the
        live one: the newest whose template is the workload's."""
        revisions = sorted((Revision(number=number, release=release_of(source), images=images_of(template),
                                     created=source["metadata"].get("creationTimestamp", ""),
                                     source=source["metadata"]["name"], template=template,
                                     annotations=annotations_of(source))
                            for number, source, template in sources), key=lambda r: r.number)
        live = max((r.number for r in revisions if same_template(r.template, obj["spec"]["template"])), default=None)
        return revisions, live

    def _owned(self, obj: Obj, items: Iterable[Obj]) -> list[Obj]:
        uid = obj["metadata"]["uid"]
        return [item for item in items if controlled_by(item, uid)]


class Deployment(Workload):
    kind = "Deployment"
    plural = "deployments"
    history_source = "ReplicaSet"

    def replica_sets(self, obj: Obj) -> list[Obj]:
        listed = self.api.get(self.path("replicasets"), labelSelector=selector_string(obj["spec"].get("selector")))
        return self._owned(obj, listed.get("items") or [])

    def history(self, obj: Obj) -> History:
        replica_sets = self.replica_sets(obj)
        revisions, live = self._revisions(obj, [
            (int(annotations_of(rs).get(REVISION, "")), rs, without_hash(rs["spec"]["template"]))
            for rs in replica_sets
            if annotations_of(rs).get(REVISION, "").isdigit()  # kubectl skips revisions it cannot parse
        ])
        return History(workload=self.ref, revisions=tuple(revisions), live=live, live_release=release_of(obj),
                       pruned=pruned_deployment_revisions(replica_sets),
                       history_limit=obj["spec"].get("revisionHistoryLimit"))

    def check_changeable(self, obj: Obj) -> None:
        if obj["spec"].get("paused"):
            raise Paused(f"{self} is paused: you cannot roll back or deploy a paused deployment; resume it first "
                         f"with 'kubectl rollout resume {self} -n {self.namespace}' and try again")

    def undo(self, obj: Obj, target: Revision, extra: Mapping[str, str | None], dry_run: bool) -> Obj:
        self.check_changeable(obj)
        annotations = undo_annotations(obj, {"metadata": {"annotations": dict(target.annotations)}})
        for key, value in extra.items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
        body = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": obj["metadata"]["resourceVersion"]},
            {"op": "replace", "path": "/spec/template", "value": without_hash(target.template)},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ]
        intended = Intended(obj["metadata"]["resourceVersion"],
                            {key: annotations.get(key) for key in (CHANGE_CAUSE, *extra)},
                            template=without_hash(target.template))
        return self._patch(body, "application/json-patch+json", dry_run, intended=intended)

    def rollout_state(self, obj: Obj) -> RolloutState:
        name, spec, status = self.name, obj.get("spec") or {}, obj.get("status") or {}
        if not self.observed(obj):
            return RolloutState(False, False, "Waiting for deployment spec update to be observed...")
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
                return RolloutState(False, True, f'deployment "{name}" exceeded its progress deadline')
        replicas = int(spec.get("replicas", 1))
        updated = int(status.get("updatedReplicas") or 0)
        total = int(status.get("replicas") or 0)
        available = int(status.get("availableReplicas") or 0)
        waiting = f'Waiting for deployment "{name}" rollout to finish: '
        if updated < replicas:
            return RolloutState(False, False, f"{waiting}{updated} out of {replicas} new replicas have been "
                                              f"updated...")
        if total > updated:
            return RolloutState(False, False, f"{waiting}{total - updated} old replicas are pending termination...")
        if available < updated:
            return RolloutState(False, False, f"{waiting}{available} of {updated} updated replicas are "
                                              f"available...")
        return RolloutState(True, False, f'deployment "{name}" successfully rolled out')


class _RevisionedWorkload(Workload):
    """StatefulSets and DaemonSets keep their history in ControllerRevisions."""

    history_source = "ControllerRevision"

    def controller_revisions(self, obj: Obj) -> list[Obj]:
        listed = self.api.get(self.path("controllerrevisions"),
                              labelSelector=selector_string(obj["spec"].get("selector")))
        return self._owned(obj, listed.get("items") or [])

    @staticmethod
    def template_of(revision: Mapping[str, Any]) -> Obj:
        template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
        template.pop("$patch", None)
        return template

    def history(self, obj: Obj) -> History:
        revisions, live = self._revisions(obj, [
            (int(cr.get("revision") or 0), cr, self.template_of(cr)) for cr in self.controller_revisions(obj)
        ])
        return History(workload=self.ref, revisions=tuple(revisions), live=live, live_release=release_of(obj),
                       pruned=self.pruned_revisions(obj, revisions),
                       history_limit=obj["spec"].get("revisionHistoryLimit"))

    @staticmethod
    def pruned_revisions(obj: Obj, revisions: Sequence[Revision]) -> tuple[int, ...]:
        """Missing revision numbers below the oldest one left, when a pruning can have happened.

        A ControllerRevision keeps no record of the numbers it had, and a rollback renumbers the target to
        max + 1, so a gap alone proves nothing. The controllers prune down to ``revisionHistoryLimit`` old
        revisions plus the live ones and nothing else ever deletes one, so while no more than the limit exist
        none was pruned, and a gap is a renumbering.
        """
        numbers = sorted(r.number for r in revisions)
        limit = obj["spec"].get("revisionHistoryLimit")
        if not numbers or len(numbers) <= (10 if limit is None else int(limit)):
            return ()
        return tuple(range(1, numbers[0]))

    def undo(self, obj: Obj, target: Revision, extra: Mapping[str, str | None], dry_run: bool) -> Obj:
        """kubectl sends the revision's data as a strategic-merge patch (template with ``$patch: replace``).
        We add, in the same write, the target's change-cause on the workload (kubectl leaves the workload's
        annotation on the bad release) and a resourceVersion precondition."""
        template = copy.deepcopy(dict(target.template))
        template["$patch"] = "replace"
        annotations: dict[str, str | None] = {CHANGE_CAUSE: target.release}
        annotations.update(extra)
        body = {
            "metadata": {"annotations": annotations, "resourceVersion": obj["metadata"]["resourceVersion"]},
            "spec": {"template": template},
        }
        intended = Intended(obj["metadata"]["resourceVersion"], annotations, template=target.template)
        return self._patch(body, "application/strategic-merge-patch+json", dry_run, intended=intended)

    def _rolling_update_required(self, obj: Obj) -> RolloutState | None:
        strategy = (obj.get("spec") or {}).get("updateStrategy") or {}
        kind = strategy.get("type", "RollingUpdate")
        if kind != "RollingUpdate":  # kubectl: "rollout status is only available for RollingUpdate strategy type"
            return RolloutState(False, False, f"{self} uses the {kind} update strategy: its pods change only when "
                                              f"they are deleted, so there is no rollout to wait for",
                                waitable=False)
        return None


class StatefulSet(_RevisionedWorkload):
    kind = "StatefulSet"
    plural = "statefulsets"

    def rollout_state(self, obj: Obj) -> RolloutState:
        unsupported = self._rolling_update_required(obj)
        if unsupported:
            return unsupported
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not status.get("observedGeneration") or not self.observed(obj):
            return RolloutState(False, False, "Waiting for statefulset spec update to be observed...")
        replicas = int(spec.get("replicas", 1))
        ready = int(status.get("readyReplicas") or 0)
        if ready < replicas:
            return RolloutState(False, False, f"Waiting for {replicas - ready} pods to be ready...")
        partition = int(((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition") or 0)
        updated = int(status.get("updatedReplicas") or 0)
        if partition > 0:
            if updated < replicas - partition:
                return RolloutState(False, False, f"Waiting for partitioned roll out to finish: {updated} out of "
                                                  f"{replicas - partition} new pods have been updated...")
            return RolloutState(True, False, f"partitioned roll out complete: {updated} new pods have been "
                                             f"updated...")
        if status.get("updateRevision") != status.get("currentRevision"):
            return RolloutState(False, False, f"waiting for statefulset rolling update to complete {updated} pods "
                                              f"at revision {status.get('updateRevision')}...")
        return RolloutState(True, False, f"statefulset rolling update complete {status.get('currentReplicas', 0)} "
                                         f"pods at revision {status.get('currentRevision')}...")

    def pods(self, obj: Obj) -> list[Obj]:
        listed = self.api.get(self.path("pods"), labelSelector=selector_string(obj["spec"].get("selector")))
        return self._owned(obj, listed.get("items") or [])

    def blocking_pods(self, obj: Obj) -> list[Obj]:
        """Pods that are not Ready and not on ``status.updateRevision`` (read after the revert was observed).

        With OrderedReady the controller replaces nothing while such a pod exists, so after a rollback they
        block it forever. This covers more than the revision that was live before the revert: after two
        failed deploys in a row the stuck pod runs the older failed revision (the controller never got to
        replace it), and deleting only pods of the newest one would leave the rollback stuck. A pod on the
        update revision is left alone even when not Ready yet: it is what the rollout is waiting for.
        """
        update = (obj.get("status") or {}).get("updateRevision")
        if not update:
            return []
        return [pod for pod in self.pods(obj)
                if (pod["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL) != update
                and not _pod_ready(pod) and not pod["metadata"].get("deletionTimestamp")]

    def delete_pod(self, name: str) -> None:
        try:
            self.api.delete(self.path("pods", name))
        except AnswerLost:
            # Never sent twice: the controller recreates a deleted pod under the same name, and a second
            # delete would hit the new pod. If the first did not land, the rollout wait shows it stuck.
            pass
        except ApiFailure as err:
            if not err.is_not_found:
                raise


class DaemonSet(_RevisionedWorkload):
    kind = "DaemonSet"
    plural = "daemonsets"

    def rollout_state(self, obj: Obj) -> RolloutState:
        unsupported = self._rolling_update_required(obj)
        if unsupported:
            return unsupported
        status = obj.get("status") or {}
        if not self.observed(obj):
            return RolloutState(False, False, "Waiting for daemon set spec update to be observed...")
        desired = int(status.get("desiredNumberScheduled") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
        available = int(status.get("numberAvailable") or 0)
        waiting = f'Waiting for daemon set "{self.name}" rollout to finish: '
        if updated < desired:
            return RolloutState(False, False, f"{waiting}{updated} out of {desired} new pods have been updated...")
        if available < desired:
            return RolloutState(False, False, f"{waiting}{available} of {desired} updated pods are available...")
        return RolloutState(True, False, f'daemon set "{self.name}" successfully rolled out')


KINDS: dict[str, type[Workload]] = {cls.kind: cls for cls in (Deployment, StatefulSet, DaemonSet)}


def workload_for(api: Api, namespace: str, ref: WorkloadRef) -> Workload:
    try:
        cls = KINDS[ref.kind]
    except KeyError:
        raise WorkloadError(f"no rollback has been implemented for kind {ref.kind!r}; supported kinds: "
                            f"{', '.join(KINDS)}") from None
    return cls(api, namespace, ref.name)


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
