"""Before any write: which images each workload gets, the pre-flight checks (``preflight.py``: who manages the
workload, the ConfigMaps and Secrets its target needs, HPAs) and the exact plan (``plan.py``), shown before the first
write. Everything here raises ``RunError`` before anything is changed.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import gha, preflight
from . import plan as change_plan
from .history import NoPreviousRevision, ReleaseNotFound, resolve
from .inputs import ImageSpec, Inputs
from .targets import Context, RunError, Target
from .workloads import FIELD_MANAGER, Obj


def _containers_of(target: Target) -> set[str]:
    spec = ((target.obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return {str(c.get("name")) for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])}


def images_by_workload(inputs: Inputs, targets: list[Target]) -> dict[str, tuple[ImageSpec, ...]]:
    """Which ``images`` lines each deployed workload gets, checked before anything is written.

    A ``WORKLOAD:CONTAINER=IMAGE`` line goes to that workload (which must be listed and have the container); a
    bare ``CONTAINER=IMAGE`` line to the workloads with that container that no line names, and to only one of
    them unless ``images-apply-to-all`` is true. Every line must fit some workload, and every workload must get
    a line."""
    if not inputs.images or not targets:
        return {}
    listed = ", ".join(str(t.workload) for t in targets)
    for item in (i for i in inputs.images if i.workload is not None):
        matches = [t for t in targets if item.applies_to(t.workload.ref)]
        if not matches:
            raise RunError(f"nothing was changed: the images line {item} names a workload this run does not deploy; "
                           f"it deploys {listed}", "images")
        if len(matches) > 1:
            raise RunError(f"nothing was changed: the images line {item} fits several workloads "
                           f"({', '.join(str(t.workload) for t in matches)}); write KIND/NAME:CONTAINER=IMAGE",
                           "images")
        if item.container not in _containers_of(matches[0]):
            raise RunError(f"nothing was changed: {matches[0].workload} has no container {item.container!r} "
                           f"(images line {item}); its containers are "
                           f"{', '.join(sorted(_containers_of(matches[0]))) or 'none'}", "images")
    result: dict[str, tuple[ImageSpec, ...]] = {}
    used: set[ImageSpec] = set()
    for target in targets:
        names = _containers_of(target)
        named = [i for i in inputs.images if i.workload is not None and i.applies_to(target.workload.ref)]
        covered = {i.container for i in named}
        mine = tuple(named + [i for i in inputs.images
                              if i.workload is None and i.container in names and i.container not in covered])
        if not mine:
            raise RunError(f"nothing was changed: {target.workload} has none of the containers named in images "
                           f"({', '.join(sorted({i.container for i in inputs.images}))}); its containers are "
                           f"{', '.join(sorted(names)) or 'none'}. List only the workloads this release changes, "
                           f"or add an image for one of its containers", "images")
        result[str(target.workload)] = mine
        used.update(mine)
    unused = [str(item) for item in inputs.images if item not in used]
    if unused:
        raise RunError(f"nothing was changed: no workload has a container for {', '.join(unused)}", "images")
    if not inputs.images_apply_to_all:
        for item in (i for i in inputs.images if i.workload is None):
            receivers = [name for name, lines in result.items() if item in lines]
            if len(receivers) > 1:
                example = receivers[0].split("/", 1)[1]
                raise RunError(f"nothing was changed: the images line {item} is ambiguous: container "
                               f"{item.container!r} is in {', '.join(receivers)}. Give each workload its own line "
                               f"as WORKLOAD:CONTAINER=IMAGE (e.g. {example}:{item.container}={item.image}), or set "
                               f"images-apply-to-all: true if all of them get this image", "images")
    return result


def images_for_plan(inputs: Inputs, targets: list[Target]) -> dict[str, tuple[ImageSpec, ...]]:
    """calculate: the images each workload would get, or none when the lines do not fit (deploy would say why)."""
    try:
        return images_by_workload(inputs, [t for t in targets if t.obj])
    except RunError:
        return {}


def require_template_change(inputs: Inputs, deploys: list[Target], planned: Mapping[str, str]) -> None:
    """A deploy without images or manifests would only write the change-cause: for a Deployment the controller
    copies it onto the live revision, relabelling a revision that runs another release's images. Refused unless
    the release is already live (a redeploy) or annotate-only is given on purpose."""
    if inputs.images or inputs.manifests or inputs.annotate_only:
        return
    for target in deploys:
        if planned[str(target.workload)] != "deploy" or not target.obj:
            continue
        if target.decision is not None and target.decision.mode == "redeploy":
            continue
        live = target.history.live_release
        raise RunError(f"nothing was changed: mode {inputs.mode} of release {inputs.release} got neither images nor "
                       f"manifests, so it would change no template and only label what {target.workload} runs now "
                       f"({live or 'no release'}) as {inputs.release}. Give images or manifests (an empty workflow "
                       f"expression?), or set annotate-only: true to relabel the live revision on purpose", "images")


def check_before_writing(inputs: Inputs, ctx: Context, targets: list[Target], rollbacks: list[Target],
                         manifests: dict[str, Obj]) -> dict[str, Obj]:
    """The pre-flight checks (``preflight.py``), before any write: who manages each workload, the ConfigMaps and
    Secrets the target template needs, and HPAs that own the replicas of a manifest's workload. Errors stop the
    run; returns the manifests to apply (``replicas`` left out where an HPA scales the workload)."""
    reader = preflight.Reader(ctx.api, inputs.namespace)
    findings: list[preflight.Finding] = []
    for target in targets:
        if not target.obj:
            continue
        found = preflight.managers(target.obj)
        findings += preflight.ownership_findings(str(target.workload), found, inputs.allow_managed)
        if inputs.allow_managed:
            target.managed_by = tuple(m.name for m in found if m.certain)
    if not any(f.level == "error" for f in findings):
        for target in rollbacks:
            if target.revision is None or target.skipped:
                continue
            refs = preflight.config_refs(target.revision.template)
            findings += preflight.config_findings(
                str(target.workload), refs, reader.states(refs), target.revision.created,
                f"revision {target.revision.number} ({target.revision.release or 'no release'})")
        for key, manifest in manifests.items():
            refs = preflight.config_refs((manifest.get("spec") or {}).get("template") or {})
            findings += preflight.config_findings(key, refs, reader.states(refs), None,
                                                  f"the manifest of release {inputs.release}")
    result = dict(manifests)
    by_name = {str(t.workload): t for t in targets}
    for key, manifest in manifests.items():
        owner = by_name.get(key)
        if owner is None:
            continue
        hpas = preflight.hpas_targeting(reader.hpas(), owner.workload.ref)
        result[key], note = preflight.manifest_without_replicas(manifest, owner.obj, hpas, FIELD_MANAGER)
        if note:
            gha.notice(gha.escape_log(f"{key}: {note}"))
            owner.warnings.append(f"{key}: {note}")
    if reader.forbidden:  # said once for the run
        message = (f"could not check everything before writing: the API server refused to "
                   f"{', '.join(reader.forbidden)}, so those checks were skipped; grant the permission (see the "
                   f"README's RBAC section) to have them done")
        gha.warning(gha.escape_log(message))
        if targets:
            targets[0].warnings.append(message)
    errors = [f for f in findings if f.level == "error"]
    for finding in findings:
        if finding.level == "warning":
            gha.warning(gha.escape_log(finding.message))
            by_name[finding.workload].warnings.append(finding.message)
    if len(errors) > 1:
        for finding in errors[:-1]:
            gha.error(gha.escape_log(finding.message))
    if errors:
        raise RunError(errors[-1].message if len(errors) == 1 else
                       f"{len(errors)} pre-flight checks failed (each is above); the last: {errors[-1].message}")
    return result


def show_plan(inputs: Inputs, targets: list[Target], planned: Mapping[str, str], manifests: Mapping[str, Obj],
              images: Mapping[str, tuple[ImageSpec, ...]], calculate_only: bool = False) -> None:
    """Work out the exact change per workload (``plan.py``) and show it in a ``Plan`` group before writing."""
    for target in targets:
        target.plan = _plan_for(inputs, target, planned[str(target.workload)], manifests,
                                images.get(str(target.workload), ()), calculate_only)
    with gha.group("Plan"):
        for line in change_plan.log_lines([t.plan for t in targets if t.plan is not None]):
            gha.info(gha.escape_log(line))


def _plan_for(inputs: Inputs, target: Target, planned: str, manifests: Mapping[str, Obj],
              images: tuple[ImageSpec, ...], calculate_only: bool) -> change_plan.WorkloadPlan:
    workload, history = str(target.workload), target.history
    before = (target.obj.get("spec") or {}).get("template") or {}
    notes = [w for w in target.warnings if w.startswith(f"{workload}: HorizontalPodAutoscaler")]
    if planned == "rollback":
        revision = target.revision
        if revision is None and calculate_only:
            try:
                resolution = resolve(history, inputs.release)
                revision = None if resolution.skipped else resolution.target
            except (ReleaseNotFound, NoPreviousRevision) as err:
                return change_plan.WorkloadPlan(workload, "rollback", history.live, history.live_release, None, None,
                                         notes=(str(err),))
        if revision is None or target.skipped:
            return change_plan.WorkloadPlan(workload, "skip", history.live, history.live_release, history.live,
                                     history.live_release, notes=("the target revision is already live",))
        changes = change_plan.template_changes(before, revision.template) + change_plan.release_change(
            history.live_release, revision.release)
        newest = max((r.number for r in history.revisions), default=revision.number)
        if revision.number < newest:  # like kubectl's undo, the controller renumbers the revision returned to
            notes.append(f"revision {revision.number} becomes revision {newest + 1}")
        return change_plan.WorkloadPlan(workload, "rollback", history.live, history.live_release, revision.number,
                                 revision.release, changes, tuple(notes))
    after = before
    if images:
        after = change_plan.with_images(before, images)
    elif workload in manifests:
        if calculate_only:
            notes.append("deploy shows the field-level diff of the manifest (a server-side dry run)")
        else:  # what the server would make of the manifest: a server-side dry run of the same apply
            after = (target.workload.apply(manifests[workload], dry_run=True).get("spec") or {}).get("template") or {}
    action = "redeploy" if target.decision is not None and target.decision.mode == "redeploy" else "deploy"
    if not images and workload not in manifests:
        notes.append("no template change: only the change-cause is written")
    changes = change_plan.template_changes(before, after) + change_plan.release_change(history.live_release,
                                                                                        inputs.release)
    return change_plan.WorkloadPlan(workload, action, history.live, history.live_release, None, inputs.release,
                                    changes, tuple(notes))
