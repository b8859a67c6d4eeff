"""Differential: our rollback against ``kubectl rollout undo`` (v1.32) on two identical kubesim clusters.

Hypothesis draws a deploy history (releases and images from small pools, so change-causes repeat, templates
come back and old ReplicaSets are reused) and a revisionHistoryLimit (so revisions get pruned). The history
is built the same way on clusters A and B with our own deploy. Then A is rolled back by ``python -m rollback
--mode rollback --release R`` and B by ``kubectl rollout undo deployment/web --to-revision=N``, N being R's
newest revision as kubectl lists it (no flag when R is empty: the previous revision). Afterwards the
Deployments must have the same spec, the same annotations apart from our own ``kube-release-rollback.io/*``
keys, and ``kubectl rollout history`` must print the same table on both.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import KUBECTL, kubectl
from helpers import (
    CHANGE_CAUSE,
    OWN_PREFIX,
    REVISION,
    REVISION_HISTORY,
    RequestLog,
    deployment_manifest,
    get_deployment,
    history_pairs,
    replica_sets,
    run_cli,
    wait_settled,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import kubesim
from kubesim.knobs import Knobs
from rollback.workloads import prune_empty

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")

IMG = "registry.example/web:"
RELEASES = ("1.0.0", "1.1.0", "2.0.0", "release 7", "3f9c2ab")
IMAGES = tuple(IMG + tag for tag in ("a", "b", "c", "d", "e"))


@contextlib.contextmanager
def cluster(workdir: str, name: str) -> Iterator[kubesim.Sim]:
    """A kubesim whose pods are Ready at once: every rollout completes inside the write that starts it."""
    base = os.path.join(workdir, name)
    os.makedirs(base)
    with kubesim.serve(knobs=Knobs(ready_delay=0), kubeconfig_path=os.path.join(base, "kubeconfig")) as sim:
        sim.kubectl_cache_dir = os.path.join(base, "kubectl-cache")  # type: ignore[attr-defined]
        yield sim


def build(sim: kubesim.Sim, initial_cause: str | None, deploys: list[tuple[str, str]], limit: int,
          annotations: dict[str, str] | None = None) -> None:
    manifest = deployment_manifest("web", image=IMAGES[0], replicas=2, revision_history_limit=limit,
                                   change_cause=initial_cause)
    manifest["metadata"].setdefault("annotations", {}).update(annotations or {})
    sim.apply(manifest)
    sim.wait_until(lambda: replica_sets(sim))
    for release, image in deploys:
        run = run_cli(sim, "--mode", "deploy", "--release", release, "--images", f"web={image}",
                      "--deployment", "web", "--no-wait")
        assert run.code == 0, run.stdout


def kubectl_history(sim: kubesim.Sim) -> str:
    result = kubectl(sim, "rollout", "history", "deployment/web", timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def kubectl_revisions(sim: kubesim.Sim) -> list[dict[str, Any]]:
    """``kubectl rollout history -o json``: one ReplicaSet object after another (not a list)."""
    result = kubectl(sim, "rollout", "history", "deployment/web", "-o", "json", timeout=30)
    assert result.returncode == 0, result.stderr
    decoder, text, pos, objects = json.JSONDecoder(), result.stdout, 0, []
    while text[pos:].strip():
        while text[pos].isspace():
            pos += 1
        obj, pos = decoder.raw_decode(text, pos)
        objects.append(obj)
    return objects


def newest_revision(sim: kubesim.Sim, release: str) -> int:
    """What an Octopus-style script does: the highest revision whose change-cause is ``release``."""
    return max(int(rs["metadata"]["annotations"][REVISION]) for rs in kubectl_revisions(sim)
               if rs["metadata"].get("annotations", {}).get(CHANGE_CAUSE) == release)


def settle(*sims: kubesim.Sim) -> None:
    for sim in sims:
        sim.wait_until(lambda s=sim: _observed(get_deployment(s)))  # type: ignore[misc]
        wait_settled(sim, quiet=0.05)


def _observed(obj: dict[str, Any]) -> bool:
    return int(obj["status"].get("observedGeneration") or 0) >= int(obj["metadata"]["generation"])


def without_own(annotations: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in annotations.items() if not k.startswith(OWN_PREFIX)}


@dataclass(frozen=True)
class Outcome:
    ours: Any  # CliRun
    theirs: Any  # CompletedProcess
    revision: int | None  # the --to-revision given to kubectl (None: previous)
    pruned: bool  # the controller deleted old ReplicaSets before the rollback
    annotations: dict[str, str]  # of B's Deployment afterwards


def annotate(sim: kubesim.Sim, annotations: dict[str, str]) -> None:
    result = kubectl(sim, "annotate", "deployment/web", "--overwrite",
                     *(f"{key}={value}" for key, value in annotations.items()), timeout=30)
    assert result.returncode == 0, result.stderr


def differential(initial_cause: str | None, deploys: list[tuple[str, str]], limit: int, pick: Any,
                 annotations: dict[str, str] | None = None, late: dict[str, str] | None = None) -> Outcome:
    """Build the history on A and B, roll back A with us and B with kubectl, compare. ``pick(releases)``
    chooses the target release from those kubectl lists on B (newest revision first), or "" for previous."""
    with tempfile.TemporaryDirectory(prefix="differential-") as workdir, \
            cluster(workdir, "a") as a, cluster(workdir, "b") as b:
        for sim in (a, b):
            build(sim, initial_cause, deploys, limit, annotations)
            if late:
                annotate(sim, late)
        settle(a, b)
        pruned = len(replica_sets(b)) < len({IMAGES[0], *(image for _, image in deploys)})
        before = kubectl_history(b)
        assert kubectl_history(a) == before  # the same history was built on both
        listed = [rs["metadata"].get("annotations", {}).get(CHANGE_CAUSE) for rs in kubectl_revisions(b)]
        release = pick(list(dict.fromkeys(r for r in reversed(listed) if r)))
        rv_a, rv_b = (get_deployment(s)["metadata"]["resourceVersion"] for s in (a, b))

        with RequestLog(a) as log:
            ours = run_cli(a, "--mode", "rollback", "--release", release, "--deployment", "web",
                           "--reason", "differential test", "--timeout", "30s")
        revision = newest_revision(b, release) if release else None
        undo = ["rollout", "undo", "deployment/web"] + ([f"--to-revision={revision}"] if revision else [])
        theirs = kubectl(b, *undo, timeout=30)
        settle(a, b)

        da, db = get_deployment(a), get_deployment(b)
        if theirs.returncode != 0:  # e.g. no previous revision: both refuse and change nothing
            assert ours.code == 1 and len(ours.errors) == 1, ours.stdout
            assert log.app_writes(include_dry_run=True) == []
            assert da["metadata"]["resourceVersion"] == rv_a and db["metadata"]["resourceVersion"] == rv_b
            return Outcome(ours, theirs, revision, pruned, db["metadata"].get("annotations", {}))
        assert ours.code == 0, ours.stdout
        skipped = "skipped rollback" in theirs.stdout
        if skipped:
            assert f"skipped rollback (current template already matches revision {revision or ''}" in theirs.stdout
            assert ours.outputs["skipped"] == "true"
            assert log.app_writes(include_dry_run=True) == []  # ours did not even try to write
            assert da["metadata"]["resourceVersion"] == rv_a and db["metadata"]["resourceVersion"] == rv_b
        else:
            assert "rolled back" in theirs.stdout
            assert ours.outputs["skipped"] == "false"
            assert [a_ for a_ in ours.result() if a_["action"] == "rolled-back"]

        # the Deployment: same spec, same annotations except our own keys. kubectl sends Go's zero values
        # (``creationTimestamp: null``, ``resources: {}``) that a typed API server drops and kubesim keeps,
        # so the templates are compared the way the API machinery would: without nulls and empty maps
        assert prune_empty(da["spec"]) == prune_empty(db["spec"])
        notes_a, notes_b = da["metadata"].get("annotations", {}), db["metadata"].get("annotations", {})
        differing = {k for k in notes_a.keys() | notes_b.keys() if notes_a.get(k) != notes_b.get(k)}
        assert all(k.startswith(OWN_PREFIX) for k in differing), (notes_a, notes_b)
        assert not any(k.startswith(OWN_PREFIX) for k in notes_b)
        own = {k for k in notes_a if k.startswith(OWN_PREFIX)}
        assert own == (set() if skipped else {OWN_PREFIX + "rollback-reason", OWN_PREFIX + "rolled-back-from",
                                               OWN_PREFIX + "rolled-back-at", OWN_PREFIX + "rolled-back-by"})

        # the same history afterwards: kubectl's table, and every ReplicaSet's template and annotations
        assert kubectl_history(a) == kubectl_history(b)
        rs_a, rs_b = replica_sets(a), replica_sets(b)
        assert [rs["metadata"]["name"] for rs in rs_a] == [rs["metadata"]["name"] for rs in rs_b]
        for x, y in zip(rs_a, rs_b, strict=True):
            assert prune_empty(x["spec"]["template"]) == prune_empty(y["spec"]["template"])
            assert without_own(x["metadata"]["annotations"]) == without_own(y["metadata"]["annotations"])
        if release:
            assert notes_a[CHANGE_CAUSE] == release
            assert ours.outputs["release"] == release
        assert ours.outputs["revision"] == notes_a[REVISION]
        return Outcome(ours, theirs, revision, pruned, db["metadata"].get("annotations", {}))


deploy_histories = st.lists(st.tuples(st.sampled_from(RELEASES), st.sampled_from(IMAGES)), min_size=2, max_size=6)


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(initial_cause=st.sampled_from((None, *RELEASES)), deploys=deploy_histories,
       limit=st.sampled_from((2, 3, 10)), data=st.data())
def test_rollback_matches_kubectl_undo(initial_cause: str | None, deploys: list[tuple[str, str]], limit: int,
                                       data: st.DataObject) -> None:
    outcome = differential(initial_cause, deploys, limit,
                           lambda releases: data.draw(st.sampled_from([*releases, ""]), label="release"))
    # what the examples covered (shown with --hypothesis-show-statistics)
    event("kubectl: " + ("refused" if outcome.theirs.returncode else outcome.theirs.stdout.split(" ", 2)[1]))
    event("target: " + ("previous" if outcome.revision is None else "release"))
    event("pruned by revisionHistoryLimit" if outcome.pruned else "nothing pruned")
    if outcome.ours.outputs.get("result"):
        event("duplicate release" if outcome.ours.result()[0]["duplicates"] else "unique release")


# -- fixed cases: always run, whatever hypothesis draws -------------------------------------------------------------


def test_previous_revision_matches_kubectl_undo_without_a_revision() -> None:
    outcome = differential(None, [("1.0.0", IMAGES[1]), ("1.1.0", IMAGES[2])], 10, lambda releases: "")
    assert outcome.revision is None and "rolled back" in outcome.theirs.stdout
    assert outcome.ours.outputs["release"] == "1.0.0"


def test_skipped_when_the_target_is_live_on_both() -> None:
    outcome = differential(None, [("1.0.0", IMAGES[1]), ("1.1.0", IMAGES[2])], 10, lambda releases: "1.1.0")
    assert outcome.theirs.stdout.strip() == \
        "deployment.apps/web skipped rollback (current template already matches revision 3)"
    assert outcome.ours.outputs["skipped"] == "true"


def test_duplicate_release_after_pruning_matches_kubectl() -> None:
    deploys = [("1.0.0", IMG + "b"), ("2.0.0", IMG + "c"), ("1.0.0", IMG + "d"), ("release 7", IMG + "e")]
    outcome = differential(None, deploys, 3, lambda releases: "1.0.0")
    assert outcome.revision == 4  # 1.0.0 is revisions 2 and 4; revision 1 was pruned (limit 3)
    [warning] = [w for w in outcome.ours.warnings if "several revisions" in w]
    assert "(2, 4)" in warning
    assert outcome.ours.result()[0]["pruned"] == [1]


def test_reused_replica_set_matches_kubectl() -> None:
    """Deploying an old template again reuses (renumbers) its ReplicaSet and overwrites its change-cause."""
    deploys = [("1.0.0", IMG + "b"), ("1.1.0", IMG + "a"), ("2.0.0", IMG + "c")]
    outcome = differential("0.9.0", deploys, 10, lambda releases: "1.0.0")
    assert outcome.revision == 2 and outcome.ours.outputs["revision"] == "5"


def test_annotations_kubectl_keeps_or_drops_match() -> None:
    """kubectl keeps the Deployment's last-applied-configuration (and revision) annotations and takes every
    other annotation from the ReplicaSet, so one added to the Deployment after that revision is dropped."""
    applied = json.dumps({"kind": "Deployment", "metadata": {"name": "web"}})
    outcome = differential(None, [("1.0.0", IMG + "b"), ("1.1.0", IMG + "c")], 10, lambda releases: "1.0.0",
                           {"kubectl.kubernetes.io/last-applied-configuration": applied, "team.example/owner": "web"},
                           late={"team.example/pager": "on-call"})
    assert "rolled back" in outcome.theirs.stdout
    assert outcome.annotations["kubectl.kubernetes.io/last-applied-configuration"] == applied
    assert outcome.annotations["team.example/owner"] == "web"
    assert "team.example/pager" not in outcome.annotations


def test_no_previous_revision_both_refuse() -> None:
    outcome = differential(None, [("1.0.0", IMAGES[0]), ("1.1.0", IMAGES[0])], 10, lambda releases: "")
    assert outcome.theirs.returncode != 0
    assert "no previous revision" in outcome.ours.errors[0]


def test_worked_example_from_the_reference() -> None:
    """Reference §2.6: R1, R2, R3; rollback to R2 → 1 R1, 3 R3, 4 R2 (the R2 ReplicaSet renumbered, its
    revision-history "2"); rollback to R2 again → skipped, on both clusters."""
    deploys = [("R2", IMAGES[1]), ("R3", IMAGES[2])]
    with tempfile.TemporaryDirectory(prefix="worked-example-") as workdir, \
            cluster(workdir, "a") as a, cluster(workdir, "b") as b:
        for sim in (a, b):
            build(sim, "R1", deploys, 10)
        assert history_pairs(a) == history_pairs(b) == [(1, "R1"), (2, "R2"), (3, "R3")]
        assert newest_revision(b, "R2") == 2

        ours = run_cli(a, "--mode", "rollback", "--release", "R2", "--deployment", "web", "--timeout", "30s")
        theirs = kubectl(b, "rollout", "undo", "deployment/web", "--to-revision=2", timeout=30)
        assert ours.code == 0 and theirs.returncode == 0, ours.stdout + theirs.stderr
        settle(a, b)
        for sim in (a, b):
            assert history_pairs(sim) == [(1, "R1"), (3, "R3"), (4, "R2")]
            renumbered = replica_sets(sim)[-1]["metadata"]["annotations"]
            assert renumbered[CHANGE_CAUSE] == "R2" and renumbered[REVISION_HISTORY] == "2"
            assert get_deployment(sim)["metadata"]["annotations"][CHANGE_CAUSE] == "R2"
        table = kubectl_history(a)
        assert table == kubectl_history(b)
        assert [line.split(None, 1) for line in table.splitlines()[2:] if line.strip()] == [
            ["1", "R1"], ["3", "R3"], ["4", "R2"]]
        assert (ours.outputs["revision"], ours.outputs["previous-revision"]) == ("4", "3")

        rv_a, rv_b = (get_deployment(s)["metadata"]["resourceVersion"] for s in (a, b))
        with RequestLog(a) as log:
            again = run_cli(a, "--mode", "rollback", "--release", "R2", "--deployment", "web")
        theirs_again = kubectl(b, "rollout", "undo", "deployment/web", f"--to-revision={newest_revision(b, 'R2')}",
                               timeout=30)
        assert again.code == 0 and again.outputs["skipped"] == "true"
        assert "skipped rollback (current template already matches revision 4)" in again.stdout
        assert theirs_again.stdout.strip() == \
            "deployment.apps/web skipped rollback (current template already matches revision 4)"
        assert log.app_writes(include_dry_run=True) == []
        assert get_deployment(a)["metadata"]["resourceVersion"] == rv_a
        assert get_deployment(b)["metadata"]["resourceVersion"] == rv_b
