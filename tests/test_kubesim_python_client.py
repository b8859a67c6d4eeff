"""The kubectl rollout scenarios again, through the official Python client's typed models (kubernetes 37, strict
pydantic): every object the controllers produce (ReplicaSets, ControllerRevisions, Pods with status, Deployment
conditions, watch events) must deserialise, and the renumbering must look as it does through kubectl."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client, watch

import kubesim
from kubesim.knobs import Knobs

CAUSE = "kubernetes.io/change-cause"
REVISION = "deployment.kubernetes.io/revision"


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(ready_delay=0.1)


@pytest.fixture
def apps(k8s: Any) -> client.AppsV1Api:
    return client.AppsV1Api(k8s)


@pytest.fixture
def core(k8s: Any) -> client.CoreV1Api:
    return client.CoreV1Api(k8s)


def template(image: str, app: str = "web") -> client.V1PodTemplateSpec:
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels={"app": app}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="app", image=image)]))


def release(apps: client.AppsV1Api, name: str, image: str, cause: str) -> None:
    """Image and change-cause in one strategic-merge patch (a dict body), as the action deploys."""
    apps.patch_namespaced_deployment(name, "default", {
        "metadata": {"annotations": {CAUSE: cause}},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})


def wait_rolled_out(sim: kubesim.Sim, apps: client.AppsV1Api, name: str) -> client.V1Deployment:
    def done() -> client.V1Deployment | None:
        d = apps.read_namespaced_deployment(name, "default")
        status = d.status
        ok = (status.observed_generation or 0) >= d.metadata.generation and \
            status.updated_replicas == d.spec.replicas == status.available_replicas == status.replicas
        return d if ok else None

    result: client.V1Deployment = sim.wait_until(done, timeout=15)
    return result


def history(apps: client.AppsV1Api, name: str) -> dict[int, client.V1ReplicaSet]:
    deployment = apps.read_namespaced_deployment(name, "default")
    listed: client.V1ReplicaSetList = apps.list_namespaced_replica_set("default", label_selector=f"app={name}")
    owned = [rs for rs in listed.items
             if any(ref.controller and ref.uid == deployment.metadata.uid for ref in rs.metadata.owner_references)]
    return {int(rs.metadata.annotations[REVISION]): rs for rs in owned}


def test_deployment_worked_example_through_typed_models(sim: kubesim.Sim, apps: client.AppsV1Api,
                                                        core: client.CoreV1Api) -> None:
    sim.clock.scale = 10
    apps.create_namespaced_deployment("default", client.V1Deployment(
        api_version="apps/v1", kind="Deployment",
        metadata=client.V1ObjectMeta(name="web", annotations={CAUSE: "R1"}),
        spec=client.V1DeploymentSpec(replicas=2, selector=client.V1LabelSelector(match_labels={"app": "web"}),
                                     template=template("registry.example/web:1"))))
    wait_rolled_out(sim, apps, "web")
    for number in (2, 3):
        release(apps, "web", f"registry.example/web:{number}", f"R{number}")
        deployment = wait_rolled_out(sim, apps, "web")
    assert {n: rs.metadata.annotations[CAUSE] for n, rs in history(apps, "web").items()} == \
        {1: "R1", 2: "R2", 3: "R3"}
    conditions = {c.type: c for c in deployment.status.conditions}
    assert conditions["Progressing"].reason == "NewReplicaSetAvailable"
    assert conditions["Available"].status == "True"

    # kubectl's undo --to-revision=2 patch, sent through the typed API (a list body is a JSON patch)
    target = history(apps, "web")[2]
    tpl = client.ApiClient().sanitize_for_serialization(target.spec.template)
    tpl["metadata"]["labels"].pop("pod-template-hash")
    annotations = {REVISION: deployment.metadata.annotations[REVISION], CAUSE: "R2"}
    apps.patch_namespaced_deployment("web", "default", [
        {"op": "test", "path": "/metadata/resourceVersion", "value": deployment.metadata.resource_version},
        {"op": "replace", "path": "/spec/template", "value": tpl},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations}])
    wait_rolled_out(sim, apps, "web")
    after = history(apps, "web")
    assert sorted(after) == [1, 3, 4]
    assert after[4].metadata.annotations[CAUSE] == "R2"
    assert after[4].metadata.annotations["deployment.kubernetes.io/revision-history"] == "2"
    assert apps.read_namespaced_deployment("web", "default").metadata.annotations[CAUSE] == "R2"

    pods: client.V1PodList = core.list_namespaced_pod("default", label_selector="app=web")
    assert len(pods.items) == 2
    for pod in pods.items:
        assert pod.status.phase == "Running"
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
        assert pod.status.container_statuses[0].ready is True
        assert pod.spec.containers[0].image == "registry.example/web:2"


def test_a_stale_test_op_is_refused_through_the_typed_api(sim: kubesim.Sim, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(selector=client.V1LabelSelector(match_labels={"app": "web"}),
                                     template=template("registry.example/web:1"))))
    stale = apps.read_namespaced_deployment("web", "default").metadata.resource_version
    release(apps, "web", "registry.example/web:2", "R2")
    with pytest.raises(client.ApiException) as info:
        apps.patch_namespaced_deployment("web", "default", [
            {"op": "test", "path": "/metadata/resourceVersion", "value": stale},
            {"op": "replace", "path": "/metadata/annotations", "value": {CAUSE: "lost"}}])
    assert info.value.status in (409, 422)
    assert apps.read_namespaced_deployment("web", "default").metadata.annotations[CAUSE] == "R2"


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_controller_revisions_and_pods_deserialise(sim: kubesim.Sim, apps: client.AppsV1Api,
                                                   core: client.CoreV1Api, kind: str) -> None:
    sim.clock.scale = 10
    selector = client.V1LabelSelector(match_labels={"app": "db"})
    meta = client.V1ObjectMeta(name="db", annotations={CAUSE: "R1"})
    if kind == "StatefulSet":
        spec = client.V1StatefulSetSpec(replicas=2, service_name="db", selector=selector,
                                         template=template("registry.example/db:1", "db"))
        apps.create_namespaced_stateful_set("default", client.V1StatefulSet(metadata=meta, spec=spec))
        patch, read = apps.patch_namespaced_stateful_set, apps.read_namespaced_stateful_set
    else:
        ds_spec = client.V1DaemonSetSpec(selector=selector, template=template("registry.example/db:1", "db"))
        apps.create_namespaced_daemon_set("default", client.V1DaemonSet(metadata=meta, spec=ds_spec))
        patch, read = apps.patch_namespaced_daemon_set, apps.read_namespaced_daemon_set
    patch("db", "default", {"metadata": {"annotations": {CAUSE: "R2"}},
                            "spec": {"template": {"spec": {"containers": [{"name": "app",
                                                                           "image": "registry.example/db:2"}]}}}})

    def settled() -> Any:
        obj = read("db", "default")
        status = obj.status
        if kind == "StatefulSet":
            ok = status.update_revision == status.current_revision and status.ready_replicas == 2
        else:
            ok = status.updated_number_scheduled == status.number_available == status.desired_number_scheduled
        return obj if ok and (status.observed_generation or 0) >= obj.metadata.generation else None

    sim.wait_until(settled, timeout=15)
    revisions: client.V1ControllerRevisionList = apps.list_namespaced_controller_revision(
        "default", label_selector="app=db")
    by_number = {cr.revision: cr for cr in revisions.items}
    assert sorted(by_number) == [1, 2]
    assert {n: cr.metadata.annotations[CAUSE] for n, cr in by_number.items()} == {1: "R1", 2: "R2"}
    assert by_number[2].data["spec"]["template"]["$patch"] == "replace"
    pods: client.V1PodList = core.list_namespaced_pod("default", label_selector="app=db")
    # pods name their revision as upstream does: a StatefulSet by the ControllerRevision's name, a DaemonSet by
    # its hash (the revision's own controller-revision-hash label)
    newest = by_number[2]
    expected = newest.metadata.name if kind == "StatefulSet" else newest.metadata.labels["controller-revision-hash"]
    assert expected.endswith(newest.metadata.labels["controller-revision-hash"])
    assert pods.items and all(p.metadata.labels["controller-revision-hash"] == expected for p in pods.items)


def test_typed_watch_sees_a_rollout(sim: kubesim.Sim, apps: client.AppsV1Api) -> None:
    sim.clock.scale = 10
    apps.create_namespaced_deployment("default", client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(replicas=2, selector=client.V1LabelSelector(match_labels={"app": "web"}),
                                     template=template("registry.example/web:1"))))
    start = wait_rolled_out(sim, apps, "web").metadata.resource_version
    release(apps, "web", "registry.example/web:2", "R2")
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + 15
    for event in watch.Watch().stream(apps.list_namespaced_deployment, "default", field_selector="metadata.name=web",
                                      resource_version=start, timeout_seconds=10):
        obj: client.V1Deployment = event["object"]
        seen.append((event["type"], obj.status.updated_replicas or 0))
        if (obj.status.available_replicas == 2 and obj.status.updated_replicas == 2
                and (obj.status.replicas or 0) == 2 and obj.status.observed_generation == obj.metadata.generation):
            break
        assert time.monotonic() < deadline
    assert seen and all(kind == "MODIFIED" for kind, _ in seen)
    assert seen[-1][1] == 2 and len(seen) >= 2
