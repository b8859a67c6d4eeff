"""kubesim's controllers against the store directly (no HTTP): revisions, rollouts, pruning, readiness.

Time runs fast (``Clock(scale=...)``) and every wait is bounded, so the whole file takes a few seconds.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubesim.clock import Clock
from kubesim.controllers import ControllerManager, hashing
from kubesim.controllers import deployment as dctl
from kubesim.controllers.kubelet import pod_ready
from kubesim.knobs import Knobs
from kubesim.resources import (
    CONTROLLERREVISIONS,
    DAEMONSETS,
    DEPLOYMENTS,
    NAMESPACES,
    PODS,
    REPLICASETS,
    STATEFULSETS,
)
from kubesim.store import Store

Obj = dict[str, Any]
NS = "default"
CAUSE = "kubernetes.io/change-cause"
REVISION = "deployment.kubernetes.io/revision"


class Cluster:
    def __init__(self, scale: float = 50.0, ready_delay: float = 1.0, nodes: int = 2):
        self.clock = Clock(scale=scale)
        self.store = Store(self.clock)
        self.knobs = Knobs(ready_delay=ready_delay, daemonset_nodes=nodes)
        self.store.create(NAMESPACES, None, {"metadata": {"name": NS}})
        self.cm = ControllerManager(self.store, self.knobs, self.clock)

    def wait(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Reconcile (as the background thread would) until ``predicate`` holds or ``timeout`` real seconds."""
        end = time.monotonic() + timeout
        while True:
            self.cm.reconcile()
            if predicate():
                return True
            if time.monotonic() > end:
                return False
            time.sleep(0.005)

    def get(self, rt: Any, name: str) -> Obj:
        return self.store.get(rt, NS, name)

    def items(self, rt: Any) -> list[Obj]:
        return self.store.list(rt, NS)[0]

    def create(self, rt: Any, obj: Obj) -> Obj:
        """Create and reconcile, as the API server does with ``controller_sync``."""
        result = self.store.create(rt, NS, obj)
        self.cm.reconcile()
        return result

    def edit(self, rt: Any, name: str, change: Callable[[Obj], None]) -> Obj:
        result = self.store.update(rt, NS, name, change)
        self.cm.reconcile()
        return result


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    yield c
    c.cm.stop()
    assert c.cm.errors == []


def container(image: str, name: str = "app") -> Obj:
    return {"name": name, "image": image, "resources": {}, "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}


def template(app: str, image: str) -> Obj:
    return {"metadata": {"labels": {"app": app}},
            "spec": {"containers": [container(image)], "restartPolicy": "Always",
                     "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst", "securityContext": {},
                     "schedulerName": "default-scheduler"}}


def deployment(name: str = "web", image: str = "nginx:1.1", cause: str | None = "R1", replicas: int = 3,
               history: int = 10, deadline: int = 600, strategy: Obj | None = None) -> Obj:
    meta: Obj = {"name": name}
    if cause:
        meta["annotations"] = {CAUSE: cause}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": name}}, "revisionHistoryLimit": history,
        "progressDeadlineSeconds": deadline,
        "strategy": strategy or {"type": "RollingUpdate",
                                 "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        "template": template(name, image)}}


def statefulset(name: str = "db", image: str = "postgres:1", cause: str = "R1", replicas: int = 2,
                history: int = 10) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "annotations": {CAUSE: cause}},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                     "podManagementPolicy": "OrderedReady", "revisionHistoryLimit": history,
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                     "template": template(name, image)}}


def daemonset(name: str = "agent", image: str = "fluentd:1", cause: str = "R1", history: int = 10) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": name, "annotations": {CAUSE: cause}},
            "spec": {"selector": {"matchLabels": {"app": name}}, "revisionHistoryLimit": history,
                     "updateStrategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                     "template": template(name, image)}}


def set_image(image: str, cause: str | None = None) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = image
        if cause is not None:
            obj["metadata"].setdefault("annotations", {})[CAUSE] = cause
    return change


def owned_rs(c: Cluster, name: str = "web") -> list[Obj]:
    uid = c.get(DEPLOYMENTS, name)["metadata"]["uid"]
    return [rs for rs in c.items(REPLICASETS)
            if any(r.get("controller") and r["uid"] == uid for r in rs["metadata"].get("ownerReferences", []))]


def history_table(c: Cluster, name: str = "web") -> dict[int, str | None]:
    """revision -> change-cause, as ``kubectl rollout history`` builds it."""
    return {int(rs["metadata"]["annotations"][REVISION]): rs["metadata"]["annotations"].get(CAUSE)
            for rs in owned_rs(c, name)}


def condition(obj: Obj, kind: str) -> Obj:
    for cond in obj.get("status", {}).get("conditions", []):
        if cond["type"] == kind:
            return dict(cond)
    return {}


def rolled_out(c: Cluster, name: str = "web") -> Callable[[], bool]:
    def check() -> bool:
        d = c.get(DEPLOYMENTS, name)
        status = d.get("status", {})
        replicas = d["spec"]["replicas"]
        return (status.get("observedGeneration", 0) >= d["metadata"]["generation"]
                and status.get("updatedReplicas", 0) == replicas == status.get("replicas", 0)
                == status.get("availableReplicas", 0)
                and condition(d, "Progressing").get("reason") == "NewReplicaSetAvailable")
    return check


def kubectl_undo(c: Cluster, name: str, to_revision: int) -> None:
    """What ``kubectl rollout undo --to-revision`` sends: a JSON patch of the template and the annotations."""
    target = next(rs for rs in owned_rs(c, name) if rs["metadata"]["annotations"][REVISION] == str(to_revision))
    tmpl = copy.deepcopy(target["spec"]["template"])
    del tmpl["metadata"]["labels"]["pod-template-hash"]
    tmpl["metadata"]["creationTimestamp"] = None  # Go's zero-value noise
    skip = {"kubectl.kubernetes.io/last-applied-configuration", REVISION, "deployment.kubernetes.io/revision-history",
            "deployment.kubernetes.io/desired-replicas", "deployment.kubernetes.io/max-replicas",
            "deprecated.deployment.rollback.to"}

    def change(d: Obj) -> None:
        ann = {k: v for k, v in d["metadata"].get("annotations", {}).items() if k in skip}
        ann.update({k: v for k, v in target["metadata"].get("annotations", {}).items() if k not in skip})
        d["metadata"]["annotations"] = ann
        d["spec"]["template"] = tmpl
    c.edit(DEPLOYMENTS, name, change)


# -- hashing ------------------------------------------------------------------------------------------------


def test_pod_template_hash_is_stable_safe_and_ignores_zero_values() -> None:
    base = template("web", "nginx:1")
    noisy = copy.deepcopy(base)
    noisy["metadata"]["creationTimestamp"] = None
    noisy["metadata"]["labels"]["pod-template-hash"] = "whatever"
    noisy["spec"]["containers"][0]["env"] = []
    digest = hashing.pod_template_hash(base)
    assert digest == hashing.pod_template_hash(noisy)
    assert set(digest) <= set(hashing.SAFE_ALPHABET)
    assert 6 <= len(digest) <= 10
    assert hashing.pod_template_hash(template("web", "nginx:2")) != digest
    assert hashing.pod_template_hash(base, 1) != digest
    assert hashing.equal_ignore_hash(base, noisy)
    assert not hashing.equal_ignore_hash(base, template("web", "nginx:2"))


def test_fnv_reference_values() -> None:
    assert hashing.fnv1a_32(b"") == 0x811C9DC5
    assert hashing.fnv1a_32(b"a") == 0xE40C292C
    assert hashing.fnv1_32(b"a") == 0x050C5D7E


def test_revision_patch_has_go_shape() -> None:
    tmpl = template("db", "postgres:<1>&")
    tmpl["spec"]["containers"][0].pop("resources")
    tmpl["spec"]["hostNetwork"] = False
    tmpl["spec"]["nodeSelector"] = {}
    tmpl["metadata"]["annotations"] = {"note": ""}
    raw = hashing.revision_patch(tmpl)
    text = raw.decode()
    assert text.startswith('{"spec":{"template":{"$patch":"replace","metadata":{"annotations":{"note":""},'
                           '"creationTimestamp":null,"labels":{"app":"db"}},"spec":{"containers":[{"image":')
    assert '"resources":{}' in text and '"securityContext":{}' in text
    assert "hostNetwork" not in text and "nodeSelector" not in text and " " not in text
    assert "postgres:\\u003c1\\u003e\\u0026" in text
    assert hashing.data_bytes(hashing.revision_data(tmpl)) == raw


@pytest.mark.parametrize(("written", "canonical"), [
    ("0.5", "500m"), (1, "1"), ("1000m", "1"), ("1024Mi", "1Gi"), ("1.5Gi", "1536Mi"), ("0.5Gi", "512Mi"),
    ("128Mi", "128Mi"), (2000, "2k"), ("1e3", "1e3"), ("12e2", "1200"), ("0", "0"), (0.25, "250m"),
    ("1000Ki", "1000Ki"), ("not-a-quantity", "not-a-quantity"),
])
def test_quantities_render_canonically(written: Any, canonical: str) -> None:
    assert hashing.canonical_quantity(written) == canonical


def test_templates_compare_as_go_sees_them() -> None:
    written = template("web", "nginx:1")
    written["spec"]["containers"][0]["resources"] = {"limits": {"cpu": 1, "memory": "1024Mi"}}
    written["spec"]["containers"][0]["env"] = [{"name": "A", "value": ""}]
    written["spec"]["hostNetwork"] = False
    as_kubectl_sends_it = copy.deepcopy(template("web", "nginx:1"))
    as_kubectl_sends_it["metadata"]["creationTimestamp"] = None
    as_kubectl_sends_it["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1", "memory": "1Gi"}}
    as_kubectl_sends_it["spec"]["containers"][0]["env"] = [{"name": "A"}]
    assert hashing.equal_ignore_hash(written, as_kubectl_sends_it)
    assert hashing.pod_template_hash(written) == hashing.pod_template_hash(as_kubectl_sends_it)
    assert hashing.revision_patch(written) == hashing.revision_patch(as_kubectl_sends_it)


def test_fenceposts_round_like_upstream() -> None:
    def fence(replicas: int, surge: Any, unavailable: Any) -> tuple[int, int]:
        d = deployment(replicas=replicas, strategy={"type": "RollingUpdate", "rollingUpdate": {
            "maxSurge": surge, "maxUnavailable": unavailable}})
        return dctl.max_surge(d), dctl.max_unavailable(d)

    assert fence(3, "25%", "25%") == (1, 0)
    assert fence(10, "25%", "25%") == (3, 2)
    assert fence(1, 0, 0) == (0, 1)
    assert fence(4, "0%", "0%") == (0, 1)
    assert fence(2, 1, 5) == (1, 2)


# -- Deployment ------------------------------------------------------------------------------------------------


def test_new_deployment_gets_revision_1_replicaset_and_ready_pods(cluster: Cluster) -> None:
    cluster.create(DEPLOYMENTS, deployment())
    cluster.cm.reconcile()
    d = cluster.get(DEPLOYMENTS, "web")
    assert d["metadata"]["annotations"][REVISION] == "1"
    (rs,) = owned_rs(cluster)
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs["metadata"]["ownerReferences"] == [{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": d["metadata"]["uid"],
        "controller": True, "blockOwnerDeletion": True}]
    assert rs["metadata"]["annotations"] == {
        CAUSE: "R1", REVISION: "1", "deployment.kubernetes.io/desired-replicas": "3",
        "deployment.kubernetes.io/max-replicas": "4"}
    pods = cluster.items(PODS)
    assert len(pods) == 3
    assert all(p["metadata"]["name"].startswith(f"web-{pod_hash}-") and
               len(p["metadata"]["name"]) == len(f"web-{pod_hash}-") + 5 for p in pods)
    assert condition(d, "Progressing")["status"] == "True"
    assert cluster.wait(rolled_out(cluster))
    d = cluster.get(DEPLOYMENTS, "web")
    assert d["status"]["readyReplicas"] == 3 and "unavailableReplicas" not in d["status"]
    assert condition(d, "Progressing")["message"] == f'ReplicaSet "web-{pod_hash}" has successfully progressed.'
    assert condition(d, "Available") | {"lastUpdateTime": "", "lastTransitionTime": ""} == {
        "type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
        "message": "Deployment has minimum availability.", "lastUpdateTime": "", "lastTransitionTime": ""}


def test_worked_example_undo_renumbers_and_skips(cluster: Cluster) -> None:
    cluster.create(DEPLOYMENTS, deployment(image="nginx:1.1", cause="R1"))
    assert cluster.wait(rolled_out(cluster))
    for image, cause in (("nginx:1.2", "R2"), ("nginx:1.3", "R3")):
        cluster.edit(DEPLOYMENTS, "web", set_image(image, cause))
        assert cluster.wait(rolled_out(cluster))
    assert history_table(cluster) == {1: "R1", 2: "R2", 3: "R3"}

    kubectl_undo(cluster, "web", 2)
    assert history_table(cluster) == {1: "R1", 3: "R3", 4: "R2"}
    r2 = next(rs for rs in owned_rs(cluster) if rs["metadata"]["annotations"][REVISION] == "4")
    assert r2["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "2"
    d = cluster.get(DEPLOYMENTS, "web")
    assert d["metadata"]["annotations"][CAUSE] == "R2"
    assert d["metadata"]["annotations"][REVISION] == "4"
    assert cluster.wait(rolled_out(cluster))
    assert {p["spec"]["containers"][0]["image"] for p in cluster.items(PODS)} == {"nginx:1.2"}

    # "skipped rollback": the template already equals revision 4 (kubectl compares ignoring the hash label)
    assert hashing.equal_ignore_hash(r2["spec"]["template"], cluster.get(DEPLOYMENTS, "web")["spec"]["template"])

    # undo to 1 afterwards: 1 becomes 5 and its history remembers 1
    kubectl_undo(cluster, "web", 1)
    assert history_table(cluster) == {3: "R3", 4: "R2", 5: "R1"}
    r1 = next(rs for rs in owned_rs(cluster) if rs["metadata"]["annotations"][REVISION] == "5")
    assert r1["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    kubectl_undo(cluster, "web", 4)
    r2 = next(rs for rs in owned_rs(cluster) if rs["metadata"]["annotations"][REVISION] == "6")
    assert r2["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "2,4"


def test_annotate_relabels_only_the_live_revision(cluster: Cluster) -> None:
    cluster.create(DEPLOYMENTS, deployment(cause="R1"))
    cluster.edit(DEPLOYMENTS, "web", set_image("nginx:2", "R2"))

    def annotate(d: Obj) -> None:
        d["metadata"]["annotations"][CAUSE] = "R2-fixed"
        d["metadata"]["annotations"]["team"] = "blue"
    cluster.edit(DEPLOYMENTS, "web", annotate)
    assert history_table(cluster) == {1: "R1", 2: "R2-fixed"}
    live = next(rs for rs in owned_rs(cluster) if rs["metadata"]["annotations"][REVISION] == "2")
    assert live["metadata"]["annotations"]["team"] == "blue"
    # a template change without a new change-cause inherits the old text (the upstream "stale cause" pitfall)
    cluster.edit(DEPLOYMENTS, "web", set_image("nginx:3"))
    assert history_table(cluster) == {1: "R1", 2: "R2-fixed", 3: "R2-fixed"}


def test_pruning_keeps_revision_history_limit(cluster: Cluster) -> None:
    cluster.create(DEPLOYMENTS, deployment(cause="R1", history=2, replicas=1))
    assert cluster.wait(rolled_out(cluster))
    for n in range(2, 6):
        cluster.edit(DEPLOYMENTS, "web", set_image(f"nginx:{n}", f"R{n}"))
        assert cluster.wait(rolled_out(cluster))
    assert cluster.wait(lambda: len(owned_rs(cluster)) == 3)
    assert history_table(cluster) == {3: "R3", 4: "R4", 5: "R5"}


def test_pruning_never_deletes_a_replicaset_with_replicas(cluster: Cluster) -> None:
    cluster.create(DEPLOYMENTS, deployment(cause="R1", history=0, replicas=1, deadline=600))
    assert cluster.wait(rolled_out(cluster))
    cluster.edit(DEPLOYMENTS, "web", set_image("nginx:broken", "R2"))
    time.sleep(0.05)
    cluster.cm.reconcile()
    assert sorted(history_table(cluster)) == [1, 2]  # the old one still serves traffic
    assert cluster.get(DEPLOYMENTS, "web")["status"]["availableReplicas"] == 1


def test_bad_image_times_out_after_progress_deadline(cluster: Cluster) -> None:
    cluster.clock.scale = 10
    cluster.create(DEPLOYMENTS, deployment(replicas=2, deadline=3))
    assert cluster.wait(rolled_out(cluster))
    started = cluster.clock.now()
    cluster.edit(DEPLOYMENTS, "web", set_image("nginx:does-not-exist", "R2"))

    def timed_out() -> bool:
        return condition(cluster.get(DEPLOYMENTS, "web"), "Progressing").get("reason") == "ProgressDeadlineExceeded"
    assert cluster.wait(timed_out, timeout=3)
    assert cluster.clock.now() - started >= 3
    d = cluster.get(DEPLOYMENTS, "web")
    new_rs = next(rs for rs in owned_rs(cluster) if rs["metadata"]["annotations"][REVISION] == "2")
    assert condition(d, "Progressing")["status"] == "False"
    assert condition(d, "Progressing")["message"] == f'ReplicaSet "{new_rs["metadata"]["name"]}" has timed out ' \
                                                     f'progressing.'
    assert condition(d, "Available")["status"] == "True"  # the old pods still serve
    bad = [p for p in cluster.items(PODS) if "does-not-exist" in p["spec"]["containers"][0]["image"]]
    assert bad and all(p["status"]["phase"] == "Pending" for p in bad)
    waiting = bad[0]["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ImagePullBackOff"
    assert waiting["message"] == 'Back-off pulling image "nginx:does-not-exist"'


def test_rolling_update_respects_surge_and_unavailable(cluster: Cluster) -> None:
    cluster.create(DEPLOYMENTS, deployment(replicas=4, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}))
    assert cluster.wait(rolled_out(cluster))
    seen: list[tuple[int, int]] = []

    def observe() -> bool:
        pods = cluster.items(PODS)
        ready = sum(1 for p in pods if p["status"].get("phase") == "Running")
        seen.append((len(pods), ready))
        return rolled_out(cluster)()
    cluster.edit(DEPLOYMENTS, "web", set_image("nginx:2", "R2"))
    assert cluster.wait(observe)
    assert max(total for total, _ in seen) <= 5
    assert min(ready for _, ready in seen) >= 3
    assert {p["spec"]["containers"][0]["image"] for p in cluster.items(PODS)} == {"nginx:2"}


def test_recreate_scales_old_down_before_new_up(cluster: Cluster) -> None:
    cluster.create(DEPLOYMENTS, deployment(replicas=2, strategy={"type": "Recreate"}))
    assert cluster.wait(rolled_out(cluster))
    cluster.edit(DEPLOYMENTS, "web", set_image("nginx:2", "R2"))
    images = {p["spec"]["containers"][0]["image"] for p in cluster.items(PODS)}
    assert images <= {"nginx:2"}
    assert cluster.wait(rolled_out(cluster))
    assert history_table(cluster) == {1: "R1", 2: "R2"}


def test_paused_deployment_gets_no_new_replicaset_until_resumed(cluster: Cluster) -> None:
    cluster.create(DEPLOYMENTS, deployment())
    assert cluster.wait(rolled_out(cluster))

    def pause(d: Obj) -> None:
        d["spec"]["paused"] = True
    cluster.edit(DEPLOYMENTS, "web", pause)
    cluster.edit(DEPLOYMENTS, "web", set_image("nginx:2", "R2"))
    d = cluster.get(DEPLOYMENTS, "web")
    assert len(owned_rs(cluster)) == 1
    assert condition(d, "Progressing")["status"] == "Unknown"
    assert condition(d, "Progressing")["reason"] == "DeploymentPaused"
    assert condition(d, "Progressing")["message"] == "Deployment is paused"
    assert d["status"]["observedGeneration"] == d["metadata"]["generation"]
    # no ReplicaSet matches the paused template, so the new change-cause lands nowhere yet
    assert history_table(cluster) == {1: "R1"}

    def resume(d: Obj) -> None:
        d["spec"]["paused"] = False
    cluster.edit(DEPLOYMENTS, "web", resume)
    assert history_table(cluster) == {1: "R1", 2: "R2"}
    assert condition(cluster.get(DEPLOYMENTS, "web"), "Progressing")["reason"] in (
        "DeploymentResumed", "NewReplicaSetCreated", "ReplicaSetUpdated")
    assert cluster.wait(rolled_out(cluster))


def test_scaling_event_updates_replicas_and_annotations(cluster: Cluster) -> None:
    cluster.create(DEPLOYMENTS, deployment(replicas=2))
    assert cluster.wait(rolled_out(cluster))

    def scale(d: Obj) -> None:
        d["spec"]["replicas"] = 5
    cluster.edit(DEPLOYMENTS, "web", scale)
    (rs,) = owned_rs(cluster)
    assert rs["spec"]["replicas"] == 5
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "5"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "7"
    assert cluster.wait(rolled_out(cluster))
    assert len(cluster.items(PODS)) == 5


def test_deleting_a_deployment_collects_its_replicasets_and_pods(cluster: Cluster) -> None:
    cluster.create(DEPLOYMENTS, deployment())
    cluster.cm.reconcile()
    cluster.store.delete(DEPLOYMENTS, NS, "web")
    cluster.cm.reconcile()
    assert cluster.items(REPLICASETS) == [] and cluster.items(PODS) == []


# -- pods ---------------------------------------------------------------------------------------------------------


def test_objects_deserialize_with_the_python_client(cluster: Cluster) -> None:
    from kubernetes.client import ApiClient

    cluster.create(DEPLOYMENTS, deployment())
    cluster.create(STATEFULSETS, statefulset(image="postgres:broken"))
    cluster.create(DAEMONSETS, daemonset())
    assert cluster.wait(rolled_out(cluster))
    api = ApiClient()
    for rt, model in ((PODS, "V1Pod"), (REPLICASETS, "V1ReplicaSet"), (DEPLOYMENTS, "V1Deployment"),
                      (STATEFULSETS, "V1StatefulSet"), (DAEMONSETS, "V1DaemonSet"),
                      (CONTROLLERREVISIONS, "V1ControllerRevision")):
        items = cluster.items(rt)
        assert items, rt.kind
        for obj in items:
            api.deserialize(json.dumps(obj), model, "application/json")
    pod = next(p for p in cluster.items(PODS) if p["metadata"]["name"].startswith("web-"))
    status = pod["status"]
    assert status["phase"] == "Running" and status["qosClass"] == "BestEffort"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True", "ContainersReady": "True",
        "PodScheduled": "True"}
    (cs,) = status["containerStatuses"]
    assert cs["ready"] and cs["started"] and cs["image"] == "docker.io/library/nginx:1.1"
    assert cs["imageID"].startswith("docker.io/library/nginx@sha256:") and "running" in cs["state"]
    assert pod["spec"]["nodeName"].startswith("node-")


def test_pod_becomes_ready_after_ready_delay() -> None:
    c = Cluster(scale=1.0, ready_delay=0.3)
    c.create(DEPLOYMENTS, deployment(replicas=1))
    c.cm.reconcile()
    (pod,) = c.items(PODS)
    assert pod["status"]["phase"] == "Pending"
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    started = time.monotonic()
    assert c.wait(lambda: c.items(PODS)[0]["status"]["phase"] == "Running", timeout=2)
    assert 0.25 <= time.monotonic() - started <= 1.0


def test_bad_image_knob_keeps_a_pod_pending() -> None:
    c = Cluster(scale=10.0, ready_delay=1.0)
    c.knobs.bad_images.add("nginx:1.1")
    c.create(DEPLOYMENTS, deployment(replicas=1))
    c.cm.reconcile()
    reason = c.items(PODS)[0]["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
    assert reason == "ErrImagePull"
    assert c.wait(lambda: c.items(PODS)[0]["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                  == "ImagePullBackOff", timeout=2)
    pod = c.items(PODS)[0]
    assert pod["status"]["phase"] == "Pending"
    ready = next(cond for cond in pod["status"]["conditions"] if cond["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"


# -- StatefulSet ---------------------------------------------------------------------------------------------------


def sts_settled(c: Cluster, name: str = "db") -> Callable[[], bool]:
    def check() -> bool:
        sts = c.get(STATEFULSETS, name)
        status = sts.get("status", {})
        replicas = sts["spec"]["replicas"]
        return (status.get("observedGeneration") == sts["metadata"]["generation"]
                and status.get("readyReplicas") == replicas == status.get("updatedReplicas")
                and status.get("currentRevision") == status.get("updateRevision"))
    return check


def revisions(c: Cluster, owner_kind: Any, name: str) -> dict[int, Obj]:
    uid = c.get(owner_kind, name)["metadata"]["uid"]
    return {cr["revision"]: cr for cr in c.items(CONTROLLERREVISIONS)
            if cr["metadata"]["ownerReferences"][0]["uid"] == uid}


def pod_revisions(c: Cluster, prefix: str) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["labels"]["controller-revision-hash"]
            for p in c.items(PODS) if p["metadata"]["name"].startswith(prefix)}


def test_statefulset_creates_pods_in_order() -> None:
    c = Cluster(scale=1.0, ready_delay=0.2)
    c.create(STATEFULSETS, statefulset(replicas=3))
    c.cm.reconcile()
    assert [p["metadata"]["name"] for p in c.items(PODS)] == ["db-0"]
    assert c.wait(lambda: len(c.items(PODS)) == 2, timeout=2)
    assert c.get(PODS, "db-0")["status"]["phase"] == "Running"
    assert c.wait(sts_settled(c), timeout=3)
    sts = c.get(STATEFULSETS, "db")
    pod = c.get(PODS, "db-2")
    assert pod["metadata"]["labels"] == {"app": "db", "controller-revision-hash": sts["status"]["updateRevision"],
                                         "statefulset.kubernetes.io/pod-name": "db-2",
                                         "apps.kubernetes.io/pod-index": "2"}
    assert pod["spec"]["hostname"] == "db-2" and pod["spec"]["subdomain"] == "db"
    assert sts["status"] | {"currentRevision": "", "updateRevision": ""} == {
        "observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "currentReplicas": 3, "updatedReplicas": 3,
        "availableReplicas": 3, "collisionCount": 0, "currentRevision": "", "updateRevision": ""}


def test_statefulset_revisions_and_undo_renumbering(cluster: Cluster) -> None:
    cluster.create(STATEFULSETS, statefulset(cause="R1"))
    assert cluster.wait(sts_settled(cluster))
    (r1,) = revisions(cluster, STATEFULSETS, "db").values()
    assert r1["metadata"]["name"] == cluster.get(STATEFULSETS, "db")["status"]["updateRevision"]
    assert r1["metadata"]["labels"] == {"app": "db", "controller-revision-hash": r1["metadata"]["name"][3:]}
    assert r1["metadata"]["annotations"] == {CAUSE: "R1"}
    assert r1["data"] == hashing.revision_data(cluster.get(STATEFULSETS, "db")["spec"]["template"])
    cluster.edit(STATEFULSETS, "db", set_image("postgres:2", "R2"))
    assert cluster.wait(sts_settled(cluster))
    # pods are replaced from the highest ordinal down
    assert set(pod_revisions(cluster, "db-").values()) == {cluster.get(STATEFULSETS, "db")["status"]["updateRevision"]}

    # undo to revision 1: the template patch from the CR; the CR is renumbered, annotations untouched
    def undo(sts: Obj) -> None:
        sts["spec"]["template"] = {k: v for k, v in r1["data"]["spec"]["template"].items() if k != "$patch"}
    cluster.edit(STATEFULSETS, "db", undo)
    revs = revisions(cluster, STATEFULSETS, "db")
    assert sorted(revs) == [2, 3]
    assert revs[3]["metadata"]["name"] == r1["metadata"]["name"]
    assert revs[3]["metadata"]["annotations"] == {CAUSE: "R1"}
    assert cluster.get(STATEFULSETS, "db")["metadata"]["annotations"][CAUSE] == "R2"  # not restored by undo
    assert cluster.wait(sts_settled(cluster))
    # kubectl's "skipped rollback" check: the live template renders to exactly the CR's bytes
    assert hashing.revision_patch(cluster.get(STATEFULSETS, "db")["spec"]["template"]) == \
        hashing.data_bytes(revs[3]["data"])


def test_statefulset_bad_revision_pod_blocks_until_deleted(cluster: Cluster) -> None:
    cluster.create(STATEFULSETS, statefulset(cause="R1"))
    assert cluster.wait(sts_settled(cluster))
    good = cluster.get(STATEFULSETS, "db")["status"]["updateRevision"]
    cluster.edit(STATEFULSETS, "db", set_image("postgres:broken", "R2"))
    bad = cluster.get(STATEFULSETS, "db")["status"]["updateRevision"]
    assert cluster.wait(lambda: pod_revisions(cluster, "db-") == {"db-0": good, "db-1": bad})
    cluster.edit(STATEFULSETS, "db", set_image("postgres:1"))  # the undo: template back to revision 1
    time.sleep(0.05)
    assert not cluster.wait(sts_settled(cluster), timeout=0.3)
    status = cluster.get(STATEFULSETS, "db")["status"]
    assert status["updateRevision"] == good and status["readyReplicas"] == 1
    assert pod_revisions(cluster, "db-") == {"db-0": good, "db-1": bad}
    assert cluster.get(PODS, "db-1")["status"]["phase"] == "Pending"
    cluster.store.delete(PODS, NS, "db-1")
    assert cluster.wait(sts_settled(cluster))
    assert pod_revisions(cluster, "db-") == {"db-0": good, "db-1": good}


def test_statefulset_history_limit_keeps_live_revisions(cluster: Cluster) -> None:
    cluster.create(STATEFULSETS, statefulset(replicas=1, history=1))
    assert cluster.wait(sts_settled(cluster))
    for n in range(2, 5):
        cluster.edit(STATEFULSETS, "db", set_image(f"postgres:{n}", f"R{n}"))
        assert cluster.wait(sts_settled(cluster))
    assert cluster.wait(lambda: sorted(revisions(cluster, STATEFULSETS, "db")) == [3, 4])


def test_statefulset_scale_down_removes_highest_ordinal_first(cluster: Cluster) -> None:
    cluster.create(STATEFULSETS, statefulset(replicas=3))
    assert cluster.wait(sts_settled(cluster))

    def scale(sts: Obj) -> None:
        sts["spec"]["replicas"] = 1
    cluster.edit(STATEFULSETS, "db", scale)
    assert cluster.wait(lambda: [p["metadata"]["name"] for p in cluster.items(PODS)] == ["db-0"])
    assert cluster.wait(sts_settled(cluster))


# -- DaemonSet ------------------------------------------------------------------------------------------------------


def ds_settled(c: Cluster, name: str = "agent") -> Callable[[], bool]:
    def check() -> bool:
        ds = c.get(DAEMONSETS, name)
        status = ds.get("status", {})
        desired = status.get("desiredNumberScheduled", -1)
        return (status.get("observedGeneration") == ds["metadata"]["generation"]
                and status.get("updatedNumberScheduled") == desired == status.get("numberAvailable")
                and len([p for p in c.items(PODS) if p["metadata"]["name"].startswith(name)]) == desired)
    return check


def test_daemonset_runs_one_pod_per_node_and_rolls(cluster: Cluster) -> None:
    cluster.knobs.daemonset_nodes = 3
    cluster.create(DAEMONSETS, daemonset(cause="R1"))
    assert cluster.wait(ds_settled(cluster))
    pods = cluster.items(PODS)
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["node-1", "node-2", "node-3"]
    (r1,) = revisions(cluster, DAEMONSETS, "agent").values()
    digest = r1["metadata"]["labels"]["controller-revision-hash"]
    assert r1["metadata"]["name"] == f"agent-{digest}" and r1["metadata"]["annotations"] == {CAUSE: "R1"}
    assert all(p["metadata"]["labels"]["controller-revision-hash"] == digest and
               p["metadata"]["labels"]["pod-template-generation"] == "1" for p in pods)
    status = cluster.get(DAEMONSETS, "agent")["status"]
    assert status == {"currentNumberScheduled": 3, "numberMisscheduled": 0, "desiredNumberScheduled": 3,
                      "numberReady": 3, "observedGeneration": 1, "updatedNumberScheduled": 3,
                      "numberAvailable": 3}

    cluster.edit(DAEMONSETS, "agent", set_image("fluentd:2", "R2"))
    assert cluster.wait(ds_settled(cluster))
    assert {p["spec"]["containers"][0]["image"] for p in cluster.items(PODS)} == {"fluentd:2"}

    def undo(ds: Obj) -> None:
        ds["spec"]["template"] = {k: v for k, v in r1["data"]["spec"]["template"].items() if k != "$patch"}
    cluster.edit(DAEMONSETS, "agent", undo)
    revs = revisions(cluster, DAEMONSETS, "agent")
    assert sorted(revs) == [2, 3]
    assert revs[3]["metadata"]["name"] == r1["metadata"]["name"]
    assert revs[3]["metadata"]["annotations"] == {CAUSE: "R1"}
    assert cluster.wait(ds_settled(cluster))
    assert {p["spec"]["containers"][0]["image"] for p in cluster.items(PODS)} == {"fluentd:1"}


def test_daemonset_bad_image_stalls_and_undo_recovers(cluster: Cluster) -> None:
    cluster.knobs.daemonset_nodes = 3
    cluster.create(DAEMONSETS, daemonset())
    assert cluster.wait(ds_settled(cluster))
    cluster.edit(DAEMONSETS, "agent", set_image("fluentd:broken", "R2"))
    time.sleep(0.05)
    assert not cluster.wait(ds_settled(cluster), timeout=0.3)
    images = sorted(p["spec"]["containers"][0]["image"] for p in cluster.items(PODS))
    assert images == ["fluentd:1", "fluentd:1", "fluentd:broken"]  # maxUnavailable 1: one node at a time
    status = cluster.get(DAEMONSETS, "agent")["status"]
    assert status["numberUnavailable"] == 1 and status["updatedNumberScheduled"] == 1
    cluster.edit(DAEMONSETS, "agent", set_image("fluentd:1", "R1"))
    assert cluster.wait(ds_settled(cluster))
    assert sorted(revisions(cluster, DAEMONSETS, "agent")) == [2, 3]


def test_daemonset_history_limit(cluster: Cluster) -> None:
    cluster.create(DAEMONSETS, daemonset(history=1))
    assert cluster.wait(ds_settled(cluster))
    for n in range(2, 5):
        cluster.edit(DAEMONSETS, "agent", set_image(f"fluentd:{n}", f"R{n}"))
        assert cluster.wait(ds_settled(cluster))
    assert cluster.wait(lambda: sorted(revisions(cluster, DAEMONSETS, "agent")) == [3, 4])


# -- the manager ---------------------------------------------------------------------------------------------------


def test_background_thread_drives_time_based_progress() -> None:
    c = Cluster(scale=10.0, ready_delay=1.0)
    c.cm.start()
    try:
        c.create(DEPLOYMENTS, deployment(replicas=2))
        end = time.monotonic() + 3
        while time.monotonic() < end and not rolled_out(c)():
            time.sleep(0.02)
        assert rolled_out(c)()
    finally:
        c.cm.stop()
    assert c.cm.errors == []


def test_concurrent_reconciles_are_serialised(cluster: Cluster) -> None:
    cluster.create(DEPLOYMENTS, deployment(replicas=3))
    threads = [threading.Thread(target=cluster.cm.reconcile) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(owned_rs(cluster)) == 1
    assert len(cluster.items(PODS)) == 3


def test_a_ready_pod_stays_ready_when_the_knobs_change_later() -> None:
    """Marking an image bad, or a longer ready delay, affects pods started afterwards only (the image was
    already pulled), as on a real node."""
    store, knobs, clock = Store(), Knobs(ready_delay=0.0), Clock()
    manager = ControllerManager(store, knobs, clock)
    store.create(NAMESPACES, None, {"metadata": {"name": "default"}})
    store.create(PODS, "default", {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "app", "image": "registry.example/app:1"}]}})
    manager.reconcile()
    assert pod_ready(store.get(PODS, "default", "p"))
    knobs.bad_images.add("registry.example/app:1")
    knobs.ready_delay = 1000.0
    manager.reconcile()
    assert pod_ready(store.get(PODS, "default", "p"))
    store.create(PODS, "default", {"metadata": {"name": "q"}, "spec": {"containers": [
        {"name": "app", "image": "registry.example/app:1"}]}})
    manager.reconcile()
    assert not pod_ready(store.get(PODS, "default", "q"))
