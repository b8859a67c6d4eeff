"""Every workload kind through ``python -m rollback`` on kubesim: history, rollback by release, previous, skipped.

StatefulSets and DaemonSets keep their history in ControllerRevisions. kubectl's undo restores only the pod
template there and leaves the workload's change-cause on the bad release; ours sets it to the target release in
the same write. The differential tests run kubectl's undo and ours on two identical clusters and show that the
template comes out identical and that the annotations differ exactly in that.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import kubectl, python_client
from helpers import CliRun, RequestLog, run_cli, wait_settled

import kubesim
from kubesim.knobs import Knobs
from kubesim.resources import CONTROLLERREVISIONS, DAEMONSETS, DEPLOYMENTS, PODS, REPLICASETS, STATEFULSETS
from rollback.cluster import Api
from rollback.rollout import wait_for_rollout
from rollback.workloads import StatefulSet, prune_empty

Obj = dict[str, Any]
CAUSE = "kubernetes.io/change-cause"
REVISION = "deployment.kubernetes.io/revision"
OWN_PREFIX = "kube-release-rollback.io/"
NS = "default"
KINDS = ("Deployment", "StatefulSet", "DaemonSet")
RESOURCE = {"Deployment": DEPLOYMENTS, "StatefulSet": STATEFULSETS, "DaemonSet": DAEMONSETS}
NAME = {"Deployment": "web", "StatefulSet": "db", "DaemonSet": "agent"}
RELEASES = ("1.0.0", "1.1.0", "1.2.0")


def image(release: str) -> str:
    """Every release has its own image, so a revision's change-cause can be checked against its template."""
    return f"registry.example/app:{release}"


def manifest(kind: str, name: str, image_ref: str = "registry.example/app:0.9.0", replicas: int = 2,
             **spec: Any) -> Obj:
    body: Obj = {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": image_ref}]}},
                 **spec}
    if kind != "DaemonSet":
        body["replicas"] = replicas
    if kind == "StatefulSet":
        body["serviceName"] = name
        body.setdefault("podManagementPolicy", "OrderedReady")
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": NS,
                                                                 "labels": {"app": name}}, "spec": body}


def get(sim: kubesim.Sim, kind: str, name: str | None = None) -> Obj:
    return copy.deepcopy(sim.store.get(RESOURCE[kind], NS, name or NAME[kind]))


def revision_objects(sim: kubesim.Sim, kind: str, name: str | None = None) -> dict[int, Obj]:
    """revision number → the ReplicaSet / ControllerRevision the workload controls."""
    owner = get(sim, kind, name)
    uid = owner["metadata"]["uid"]
    source = REPLICASETS if kind == "Deployment" else CONTROLLERREVISIONS
    result = {}
    for obj in sim.store.list(source, NS)[0]:
        if not any(ref.get("controller") and ref.get("uid") == uid
                   for ref in obj["metadata"].get("ownerReferences") or []):
            continue
        number = int(obj["metadata"]["annotations"][REVISION]) if kind == "Deployment" else int(obj["revision"])
        result[number] = copy.deepcopy(obj)
    return dict(sorted(result.items()))


def revision_image(kind: str, obj: Obj) -> str:
    template = obj["spec"]["template"] if kind == "Deployment" else obj["data"]["spec"]["template"]
    return str(template["spec"]["containers"][0]["image"])


def history_table(sim: kubesim.Sim, kind: str, name: str | None = None) -> dict[int, tuple[str | None, str]]:
    """revision → (change-cause, image), read from the ReplicaSets / ControllerRevisions themselves."""
    return {number: ((obj["metadata"].get("annotations") or {}).get(CAUSE), revision_image(kind, obj))
            for number, obj in revision_objects(sim, kind, name).items()}


def assert_no_stale_labels(sim: kubesim.Sim, kind: str, name: str | None = None) -> None:
    """Every revision that has a release runs exactly that release's image: no revision carries a change-cause
    inherited from another one (the annotate-after-the-change bug, kubernetes/kubernetes#141263)."""
    for number, (release, image_ref) in history_table(sim, kind, name).items():
        if release is not None:
            assert image_ref == image(release), f"revision {number} says {release} but runs {image_ref}"


def live_image(obj: Obj) -> str:
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def cause(obj: Obj) -> str | None:
    return (obj["metadata"].get("annotations") or {}).get(CAUSE)


def cli(sim: kubesim.Sim, kind: str, *args: str, name: str | None = None) -> CliRun:
    return run_cli(sim, "--namespace", NS, "--deployment", f"{kind.lower()}/{name or NAME[kind]}",
                   "--timeout", "30s", *args)


def deploy(sim: kubesim.Sim, kind: str, release: str, *args: str) -> CliRun:
    run = cli(sim, kind, "--mode", "deploy", "--release", release, "--images", f"app={image(release)}", *args)
    assert run.code == 0, run.stdout
    return run


def build_history(sim: kubesim.Sim, kind: str) -> None:
    """Revision 1 created with release 1.0.0 (its change-cause in the manifest), then 1.1.0 and 1.2.0 deployed
    through the CLI: revision n runs release RELEASES[n - 1]."""
    first = manifest(kind, NAME[kind], image(RELEASES[0]))
    first["metadata"]["annotations"] = {CAUSE: RELEASES[0]}
    sim.apply(first)
    sim.wait_until(lambda: revision_objects(sim, kind))
    for release in RELEASES[1:]:
        deploy(sim, kind, release)


FULL_HISTORY = {1: ("1.0.0", image("1.0.0")), 2: ("1.1.0", image("1.1.0")), 3: ("1.2.0", image("1.2.0"))}


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(ready_delay=0.2, daemonset_nodes=2)


@pytest.fixture
def fast(sim: kubesim.Sim) -> kubesim.Sim:
    """Simulated time 10x: pods become Ready within a few tens of milliseconds."""
    sim.clock.scale = 10
    return sim


# -- each kind: history, rollback by release, previous, skipped ------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_deploys_label_each_revision_with_its_own_release(fast: kubesim.Sim, kind: str) -> None:
    build_history(fast, kind)
    assert history_table(fast, kind) == FULL_HISTORY
    assert_no_stale_labels(fast, kind)
    assert cause(get(fast, kind)) == "1.2.0"

    run = cli(fast, kind, "--mode", "history")
    assert run.code == 0, run.stdout
    assert [(r["revision"], r["release"], r["images"], r["current"]) for r in run.history()] == [
        (n, release, [f"app={img}"], n == 3) for n, (release, img) in FULL_HISTORY.items()]
    # kubectl reads the same objects and agrees
    table = kubectl(fast, "rollout", "history", f"{kind.lower()}/{NAME[kind]}", check=True).stdout
    assert [line.split() for line in table.splitlines()[2:] if line.strip()] == [
        ["1", "1.0.0"], ["2", "1.1.0"], ["3", "1.2.0"]]


@pytest.mark.parametrize("kind", KINDS)
def test_rollback_by_release_restores_template_and_change_cause(fast: kubesim.Sim, kind: str) -> None:
    build_history(fast, kind)
    run = cli(fast, kind, "--mode", "rollback", "--release", "1.0.0", "--reason", "1.2.0 breaks checkout")
    assert run.code == 0, run.stdout
    assert (run.outputs["mode"], run.outputs["release"], run.outputs["previous-release"]) == (
        "rollback", "1.0.0", "1.2.0")
    assert (run.outputs["revision"], run.outputs["previous-revision"], run.outputs["skipped"]) == ("4", "3", "false")
    (result,) = run.result()
    assert (result["action"], result["rollout"]) == ("rolled-back", "complete")

    live = get(fast, kind)
    assert live_image(live) == image("1.0.0")
    # the workload itself tells the truth: kubectl would have left "1.2.0" on a StatefulSet/DaemonSet
    assert cause(live) == "1.0.0"
    notes = live["metadata"]["annotations"]
    assert notes[OWN_PREFIX + "rollback-reason"] == "1.2.0 breaks checkout"
    assert notes[OWN_PREFIX + "rolled-back-from"] == "1.2.0"
    # the revision of 1.0.0 was renumbered to max + 1, keeping its own change-cause
    assert history_table(fast, kind) == {2: FULL_HISTORY[2], 3: FULL_HISTORY[3], 4: FULL_HISTORY[1]}
    assert_no_stale_labels(fast, kind)
    assert [(r["revision"], r["release"], r["current"]) for r in run.history()] == [
        (2, "1.1.0", False), (3, "1.2.0", False), (4, "1.0.0", True)]


@pytest.mark.parametrize("kind", KINDS)
def test_rollback_without_release_goes_to_the_previous_revision(fast: kubesim.Sim, kind: str) -> None:
    build_history(fast, kind)
    run = cli(fast, kind, "--mode", "rollback", "--release", "")
    assert run.code == 0, run.stdout
    assert (run.outputs["release"], run.outputs["previous-release"], run.outputs["revision"]) == (
        "1.1.0", "1.2.0", "4")
    live = get(fast, kind)
    assert (live_image(live), cause(live)) == (image("1.1.0"), "1.1.0")
    assert history_table(fast, kind) == {1: FULL_HISTORY[1], 3: FULL_HISTORY[3], 4: FULL_HISTORY[2]}
    assert_no_stale_labels(fast, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_rollback_to_the_live_release_is_skipped_and_writes_nothing(fast: kubesim.Sim, kind: str) -> None:
    build_history(fast, kind)
    wait_settled(fast)
    before = get(fast, kind)
    revisions_before = {n: o["metadata"]["resourceVersion"] for n, o in revision_objects(fast, kind).items()}
    with RequestLog(fast) as log:
        run = cli(fast, kind, "--mode", "rollback", "--release", "1.2.0")
    assert run.code == 0, run.stdout
    assert run.outputs["skipped"] == "true"
    assert run.outputs["release"] == "1.2.0" and run.outputs["revision"] == "3"
    (result,) = run.result()
    assert result["action"] == "skipped" and "already matches revision 3" in result["message"]
    assert log.app_writes() == []
    after = get(fast, kind)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert {n: o["metadata"]["resourceVersion"] for n, o in revision_objects(fast, kind).items()} == revisions_before


@pytest.mark.parametrize("kind", ("StatefulSet", "DaemonSet"))
def test_redeploy_of_an_older_release_by_images_keeps_revisions_truthful(fast: kubesim.Sim, kind: str) -> None:
    """Deploying 1.0.0's image again reuses its ControllerRevision (renumbered, annotations untouched): the
    change-cause written in the same patch is the workload's, and the revision still says 1.0.0."""
    build_history(fast, kind)
    deploy(fast, kind, "1.0.0")
    assert history_table(fast, kind) == {2: FULL_HISTORY[2], 3: FULL_HISTORY[3], 4: FULL_HISTORY[1]}
    assert cause(get(fast, kind)) == "1.0.0"


@pytest.mark.parametrize("kind", ("StatefulSet", "DaemonSet"))
def test_a_renumbered_revision_is_not_reported_as_pruned(fast: kubesim.Sim, kind: str) -> None:
    """After the rollback, revision 1 is gone because the controller renumbered it to 4, not because the
    history limit (10) pruned it: no output, log line or error may claim a pruning."""
    build_history(fast, kind)
    run = cli(fast, kind, "--mode", "rollback", "--release", "1.0.0")
    assert run.code == 0, run.stdout
    (result,) = run.result()
    assert result["pruned"] == [], result
    assert "pruned" not in run.stdout
    missing = cli(fast, kind, "--mode", "rollback", "--release", "0.1.0")
    assert missing.code == 1, missing.stdout
    (error,) = [e for e in missing.errors if "0.1.0" in e]
    assert "never deployed" in error and "pruned" not in error, error


@pytest.mark.parametrize("kind", ("StatefulSet", "DaemonSet"))
def test_a_release_pruned_by_the_history_limit_is_reported_as_pruned(fast: kubesim.Sim, kind: str) -> None:
    fast.apply(manifest(kind, NAME[kind], revisionHistoryLimit=1))
    for release in RELEASES:
        deploy(fast, kind, release)
    # revision 1 (unlabelled) and 2 (1.0.0) were pruned: the live revision and one older remain
    assert history_table(fast, kind) == {3: FULL_HISTORY[2], 4: FULL_HISTORY[3]}
    run = cli(fast, kind, "--mode", "rollback", "--release", "1.0.0")
    assert run.code == 1, run.stdout
    (error,) = [e for e in run.errors if "1.0.0" in e]
    assert "pruned" in error and "revisionHistoryLimit=1" in error, error


@pytest.mark.parametrize("kind", KINDS)
def test_a_status_update_during_the_deploy_is_not_a_conflict(fast: kubesim.Sim, kind: str) -> None:
    """The controller writing the status subresource (pods becoming Ready) is not a concurrent change of what we
    write; only a spec or metadata change by someone else is."""
    fast.apply(manifest(kind, NAME[kind]))
    wait_settled(fast)
    bumped: list[str] = []

    def controller_writes_status(req: Any) -> None:
        if req.method == "PATCH" and not bumped and req.path.endswith(f"/{NAME[kind]}"):
            def touch(obj: Obj) -> None:
                obj["status"]["observedGeneration"] = obj["metadata"]["generation"]
                obj["status"]["collisionCount"] = int(obj["status"].get("collisionCount") or 0) + 1
            fast.store.update(RESOURCE[kind], NS, NAME[kind], touch, subresource="status")
            bumped.append(req.path)

    with RequestLog(fast, before=controller_writes_status):
        run = cli(fast, kind, "--mode", "deploy", "--release", "1.0.0", "--images", f"app={image('1.0.0')}")
    assert bumped
    assert run.code == 0, run.stdout
    live = get(fast, kind)
    assert (live_image(live), cause(live)) == (image("1.0.0"), "1.0.0")


# -- differential: kubectl rollout undo --to-revision vs our rollback on identical clusters ---------------------


@pytest.fixture
def twins(tmp_path: Any) -> Iterator[tuple[kubesim.Sim, kubesim.Sim]]:
    """Two identical, independent clusters: one for kubectl's undo, one for ours."""
    with kubesim.serve(knobs=Knobs(ready_delay=0.2), time_scale=10,
                       kubeconfig_path=str(tmp_path / "kubectl-side")) as left, \
            kubesim.serve(knobs=Knobs(ready_delay=0.2), time_scale=10,
                          kubeconfig_path=str(tmp_path / "our-side")) as right:
        left.kubectl_cache_dir = str(tmp_path / "cache-left")  # type: ignore[attr-defined]
        right.kubectl_cache_dir = str(tmp_path / "cache-right")  # type: ignore[attr-defined]
        yield left, right


@pytest.mark.parametrize("kind", KINDS)
def test_undo_matches_kubectl_except_for_the_change_cause(twins: tuple[kubesim.Sim, kubesim.Sim], kind: str) -> None:
    theirs, ours = twins
    target = "1.0.0"
    for sim in twins:
        build_history(sim, kind)
    assert history_table(theirs, kind) == history_table(ours, kind)
    number = next(n for n, (release, _) in history_table(ours, kind).items() if release == target)

    result = kubectl(theirs, "rollout", "undo", f"{kind.lower()}/{NAME[kind]}", f"--to-revision={number}")
    assert result.returncode == 0, result.stderr
    run = cli(ours, kind, "--mode", "rollback", "--release", target)
    assert run.code == 0, run.stdout
    for sim in twins:  # both finish rolling out
        status = kubectl(sim, "rollout", "status", f"{kind.lower()}/{NAME[kind]}", "--timeout=20s")
        assert status.returncode == 0, status.stderr

    left, right = get(theirs, kind), get(ours, kind)
    # kubectl sends Go's zero values (``creationTimestamp: null``) that a real API server normalises away when it
    # decodes the object; kubesim stores the JSON as sent, so compare the way the API machinery would
    assert prune_empty(left["spec"]["template"]) == prune_empty(right["spec"]["template"])
    assert live_image(right) == image(target)
    assert prune_empty(left["spec"]) == prune_empty(right["spec"])
    left_notes = left["metadata"].get("annotations") or {}
    right_notes = right["metadata"].get("annotations") or {}
    differing = {key for key in left_notes.keys() | right_notes.keys() if left_notes.get(key) != right_notes.get(key)}
    ours_only = {key for key in differing if key.startswith(OWN_PREFIX)}
    assert ours_only == {key for key in right_notes if key.startswith(OWN_PREFIX)}
    if kind == "Deployment":
        # kubectl copies the ReplicaSet's annotations, change-cause included
        assert differing == ours_only
        assert left_notes[CAUSE] == right_notes[CAUSE] == target
    else:
        # kubectl restores only the template: the StatefulSet/DaemonSet still claims the bad release
        assert differing == ours_only | {CAUSE}
        assert (left_notes[CAUSE], right_notes[CAUSE]) == ("1.2.0", target)
    # the histories agree too: same numbers, same releases, same templates
    assert history_table(theirs, kind) == history_table(ours, kind)
    # and both see the target as live now: kubectl skips the same revision we skip
    live_number = max(history_table(ours, kind))
    again = kubectl(theirs, "rollout", "undo", f"{kind.lower()}/{NAME[kind]}", f"--to-revision={live_number}")
    assert f"skipped rollback (current template already matches revision {live_number})" in again.stdout + \
        again.stderr, again
    rerun = cli(ours, kind, "--mode", "rollback", "--release", target)
    assert (rerun.code, rerun.outputs["skipped"], rerun.outputs["revision"]) == (0, "true", str(live_number))


# -- StatefulSet forced rollback --------------------------------------------------------------------------------


def pods(sim: kubesim.Sim, name: str = "db") -> dict[str, Obj]:
    return {p["metadata"]["name"]: copy.deepcopy(p) for p in sim.store.list(PODS, NS)[0]
            if p["metadata"]["name"].startswith(name + "-")}


def pod_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def stuck_statefulset(sim: kubesim.Sim) -> tuple[dict[str, Obj], str]:
    """db (3 replicas, OrderedReady) on 1.0.0, then 2.0.0 with a broken image deployed without waiting, until
    the rolling update is stuck on db-2. Returns the pods then and the name of the bad revision."""
    sim.apply(manifest("StatefulSet", "db", replicas=3))
    deploy(sim, "StatefulSet", "1.0.0")
    run = cli(sim, "StatefulSet", "--mode", "deploy", "--release", "2.0.0", "--images",
              "app=registry.example/app:broken", "--no-wait")
    assert run.code == 0, run.stdout
    bad_revision = get(sim, "StatefulSet")["status"]["updateRevision"]

    def stuck() -> dict[str, Obj] | None:
        current = pods(sim)
        bad = [p for p in current.values() if p["metadata"]["labels"]["controller-revision-hash"] == bad_revision]
        if len(current) == 3 and len(bad) == 1 and bad[0]["status"].get("containerStatuses"):
            reason = bad[0]["status"]["containerStatuses"][0]["state"].get("waiting", {}).get("reason")
            return current if reason == "ImagePullBackOff" else None
        return None

    return sim.wait_until(stuck, timeout=10), bad_revision


def test_forced_statefulset_rollback_deletes_only_the_stuck_pod(fast: kubesim.Sim) -> None:
    before, bad_revision = stuck_statefulset(fast)
    assert not pod_ready(before["db-2"]) and pod_ready(before["db-0"]) and pod_ready(before["db-1"])

    run = cli(fast, "StatefulSet", "--mode", "rollback", "--release", "1.0.0", "--timeout", "20s")
    assert run.code == 0, run.stdout
    assert run.outputs["release"] == "1.0.0"
    (result,) = run.result()
    assert (result["action"], result["rollout"]) == ("rolled-back", "complete")
    deleted = [line for line in run.lines if "deleting pod" in line]
    assert len(deleted) == 1 and "db-2" in deleted[0], run.stdout

    after = pods(fast)
    assert sorted(after) == ["db-0", "db-1", "db-2"]
    for name in ("db-0", "db-1"):  # Ready pods of the good revision were left alone
        assert after[name]["metadata"]["uid"] == before[name]["metadata"]["uid"]
    assert after["db-2"]["metadata"]["uid"] != before["db-2"]["metadata"]["uid"]
    good = get(fast, "StatefulSet")["status"]["updateRevision"]
    assert good != bad_revision
    assert all(p["metadata"]["labels"]["controller-revision-hash"] == good and pod_ready(p) for p in after.values())
    live = get(fast, "StatefulSet")
    assert (live_image(live), cause(live)) == (image("1.0.0"), "1.0.0")


def test_without_force_the_stuck_pod_stays_and_the_rollout_never_finishes(fast: kubesim.Sim) -> None:
    before, bad_revision = stuck_statefulset(fast)
    run = cli(fast, "StatefulSet", "--mode", "rollback", "--release", "1.0.0", "--no-force-statefulset-rollback",
              "--no-wait")
    assert run.code == 0, run.stdout
    assert not [line for line in run.lines if "deleting pod" in line]
    live = get(fast, "StatefulSet")
    assert (live_image(live), cause(live)) == (image("1.0.0"), "1.0.0")
    assert live["status"]["updateRevision"] != bad_revision

    # the template is back, but OrderedReady keeps waiting for db-2 of the failed revision
    client = python_client(fast)
    try:
        outcome = wait_for_rollout(StatefulSet(Api(client), NS, "db"), time.monotonic() + 1.5, lambda line: None)
    finally:
        client.close()
    assert outcome.result == "timeout"
    after = pods(fast)
    assert {n: p["metadata"]["uid"] for n, p in after.items()} == {n: p["metadata"]["uid"] for n, p in before.items()}
    assert after["db-2"]["metadata"]["labels"]["controller-revision-hash"] == bad_revision
    assert not pod_ready(after["db-2"])
    assert json.dumps(after["db-2"]["spec"]).count("broken") == 1


def two_failed_deploys(sim: kubesim.Sim) -> dict[str, Obj]:
    """db on 1.0.0, then 2.0.0 and 2.0.1, both broken, deployed without waiting: db-2 is stuck on 2.0.0's
    revision, and the controller never replaces it with 2.0.1's (OrderedReady waits for it first)."""
    stuck_statefulset(sim)
    run = cli(sim, "StatefulSet", "--mode", "deploy", "--release", "2.0.1", "--images",
              "app=registry.example/app:broken-2.0.1", "--no-wait")
    assert run.code == 0, run.stdout
    time.sleep(0.3)  # three simulated seconds: the controller has had every chance to move db-2
    current = pods(sim)
    assert current["db-2"]["spec"]["containers"][0]["image"] == "registry.example/app:broken"
    return current


def test_blocking_pods_are_the_not_ready_pods_off_the_update_revision(fast: kubesim.Sim) -> None:
    before = two_failed_deploys(fast)
    client = python_client(fast)
    try:
        sts = StatefulSet(Api(client), NS, "db")
        obj = sts.read()
        newest_bad = obj["status"]["updateRevision"]
        assert before["db-2"]["metadata"]["labels"]["controller-revision-hash"] != newest_bad
        assert [p["metadata"]["name"] for p in sts.blocking_pods(obj)] == ["db-2"]
        # on the revision being rolled out, a pod that is not Ready yet is not "blocking": it is awaited
        good = revision_objects(fast, "StatefulSet")[2]["metadata"]["name"]
        assert before["db-0"]["metadata"]["labels"]["controller-revision-hash"] == good
        assert sts.blocking_pods({**obj, "status": {**obj["status"], "updateRevision": good}}) == \
            sts.blocking_pods(obj)
        assert sts.blocking_pods({**obj, "status": {**obj["status"], "updateRevision": before["db-2"]["metadata"]
                                                    ["labels"]["controller-revision-hash"]}}) == []
    finally:
        client.close()


def test_forced_rollback_after_two_failed_deploys_in_a_row(fast: kubesim.Sim) -> None:
    before = two_failed_deploys(fast)
    run = cli(fast, "StatefulSet", "--mode", "rollback", "--release", "1.0.0", "--no-wait")
    assert run.code == 0, run.stdout
    assert [line for line in run.lines if "deleting pod db-2" in line], run.stdout
    client = python_client(fast)
    try:
        outcome = wait_for_rollout(StatefulSet(Api(client), NS, "db"), time.monotonic() + 5, lambda line: None)
    finally:
        client.close()
    assert outcome.result == "complete", outcome.message
    after = pods(fast)
    assert after["db-2"]["metadata"]["uid"] != before["db-2"]["metadata"]["uid"]
    assert {n: p["metadata"]["uid"] for n, p in after.items() if n != "db-2"} == {
        n: p["metadata"]["uid"] for n, p in before.items() if n != "db-2"}


# -- OnDelete: there is no rollout to wait for ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_on_delete_workloads_are_changed_and_not_waited_for(fast: kubesim.Sim, kind: str) -> None:
    """kubectl rollout status refuses OnDelete workloads; the action changes them, says there is nothing to
    wait for, and does not treat that as a failed rollout (no compensation undoing the deploy)."""
    first = manifest(kind, NAME[kind], image(RELEASES[0]), updateStrategy={"type": "OnDelete"})
    first["metadata"]["annotations"] = {CAUSE: RELEASES[0]}
    fast.apply(first)
    fast.wait_until(lambda: revision_objects(fast, kind))
    run = cli(fast, kind, "--mode", "deploy", "--release", "1.1.0", "--images", f"app={image('1.1.0')}",
              "--rollback-on-failure")
    assert run.code == 0, run.stdout
    (result,) = run.result()
    assert (result["action"], result["rollout"], result["release"]) == ("deployed", "not-waited", "1.1.0")
    assert any("OnDelete update strategy" in line for line in run.commands("notice")), run.stdout
    assert live_image(get(fast, kind)) == image("1.1.0")
