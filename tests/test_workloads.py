"""Pure parts of rollback.workloads: template equality, undo annotations, image patches, rollout rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollback.inputs import ImageSpec
from rollback.workloads import (
    CHANGE_CAUSE,
    REVISION,
    DaemonSet,
    Deployment,
    StatefulSet,
    WorkloadError,
    image_patch,
    images_of,
    prune_empty,
    pruned_deployment_revisions,
    same_template,
    selector_string,
    undo_annotations,
)


def template(image: str = "nginx:1", **labels: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "web", **labels}},
            "spec": {"containers": [{"name": "web", "image": image}]}}


def test_same_template_ignores_hash_label_and_go_zero_values() -> None:
    stored = template(**{"pod-template-hash": "abc123"})
    sent_by_kubectl = {"metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
                       "spec": {"containers": [{"name": "web", "image": "nginx:1", "resources": {}}]}}
    assert same_template(stored, sent_by_kubectl)
    assert not same_template(stored, template("nginx:2"))
    assert not same_template(template(tier="a"), template(tier="b"))


json_values = st.recursive(st.none() | st.integers() | st.text(max_size=3),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                       max_size=3), max_leaves=10)


@given(json_values)
def test_prune_empty_is_idempotent_and_leaves_no_empty_maps(value: Any) -> None:
    once = prune_empty(value)
    assert prune_empty(once) == once

    def has_empty(v: Any) -> bool:
        if isinstance(v, dict):
            return any(x in (None, {}, []) or has_empty(x) for x in v.values())
        if isinstance(v, list):
            return any(has_empty(x) for x in v)
        return False

    assert not has_empty(once)


def test_undo_annotations_follow_kubectl_rules() -> None:
    deployment = {"metadata": {"annotations": {
        REVISION: "3", CHANGE_CAUSE: "R3", "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "team": "added-later"}}}
    replica_set = {"metadata": {"annotations": {
        REVISION: "2", CHANGE_CAUSE: "R2", "deployment.kubernetes.io/desired-replicas": "3", "owner": "x"}}}
    result = undo_annotations(deployment, replica_set)
    # skip-listed keys come from the Deployment, everything else from the ReplicaSet; later additions are lost
    assert result == {REVISION: "3", "kubectl.kubernetes.io/last-applied-configuration": "{}",
                      CHANGE_CAUSE: "R2", "owner": "x"}


def test_image_patch_matches_containers_and_init_containers_by_name() -> None:
    tpl = {"spec": {"containers": [{"name": "web", "image": "a"}, {"name": "side", "image": "b"}],
                    "initContainers": [{"name": "migrate", "image": "c"}]}}
    patch = image_patch(tpl, [ImageSpec("web", "a:2"), ImageSpec("migrate", "c:2")])
    assert patch == {"spec": {"containers": [{"name": "web", "image": "a:2"}],
                              "initContainers": [{"name": "migrate", "image": "c:2"}]}}
    with pytest.raises(WorkloadError, match="no container named 'nope'.*migrate, side, web"):
        image_patch(tpl, [ImageSpec("nope", "x")])
    assert images_of(tpl) == ("web=a", "side=b", "migrate=c")


def test_selector_string_covers_match_labels_and_expressions() -> None:
    selector = {"matchLabels": {"app": "web", "tier": "fe"},
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]},
                                     {"key": "x", "operator": "NotIn", "values": ["c"]},
                                     {"key": "y", "operator": "Exists"},
                                     {"key": "z", "operator": "DoesNotExist"}]}
    assert selector_string(selector) == "app=web,tier=fe,env in (a,b),x notin (c),y,!z"
    assert selector_string(None) == ""


def rs(revision: str, history: str | None = None) -> dict[str, Any]:
    notes = {REVISION: revision}
    if history:
        notes["deployment.kubernetes.io/revision-history"] = history
    return {"metadata": {"annotations": notes}}


def test_pruned_revisions_tell_renumbering_from_pruning() -> None:
    # 1,3,4 after "undo --to-revision=2": 2 was renumbered to 4, nothing was pruned
    assert pruned_deployment_revisions([rs("1"), rs("3"), rs("4", "2")]) == ()
    # revision-history-limit 2 after five releases: 1..3 pruned
    assert pruned_deployment_revisions([rs("4"), rs("5")]) == (1, 2, 3)
    assert pruned_deployment_revisions([]) == ()


def deployment_obj(generation: int = 2, observed: int = 2, **status: Any) -> dict[str, Any]:
    """A Deployment with spec.replicas 3 and the given status fields."""
    return {"metadata": {"generation": generation, "name": "web"}, "spec": {"replicas": 3},
            "status": {"observedGeneration": observed, **status}}


@pytest.mark.parametrize("obj,done,failed,message", [
    (deployment_obj(observed=1), False, False, "Waiting for deployment spec update to be observed..."),
    (deployment_obj(updatedReplicas=1, replicas=3), False, False,
     'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...'),
    (deployment_obj(updatedReplicas=3, replicas=4), False, False,
     'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...'),
    (deployment_obj(updatedReplicas=3, replicas=3, availableReplicas=2), False, False,
     'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...'),
    (deployment_obj(updatedReplicas=3, replicas=3, availableReplicas=3), True, False,
     'deployment "web" successfully rolled out'),
    (deployment_obj(conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]),
     False, True, 'deployment "web" exceeded its progress deadline'),
])
def test_deployment_rollout_state_uses_kubectl_rules(obj: dict[str, Any], done: bool, failed: bool,
                                                     message: str) -> None:
    state = Deployment(None, "default", "web").rollout_state(obj)  # type: ignore[arg-type]
    assert (state.done, state.failed, state.message) == (done, failed, message)


def test_statefulset_and_daemonset_rollout_state() -> None:
    sts = StatefulSet(None, "default", "db")  # type: ignore[arg-type]
    base = {"metadata": {"generation": 1}, "spec": {"replicas": 2}}
    waiting = sts.rollout_state({**base, "status": {"observedGeneration": 1, "readyReplicas": 1}})
    assert waiting.message == "Waiting for 1 pods to be ready..."
    rolling = sts.rollout_state({**base, "status": {"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 1,
                                                    "currentRevision": "db-a", "updateRevision": "db-b"}})
    assert rolling.message == "waiting for statefulset rolling update to complete 1 pods at revision db-b..."
    done = sts.rollout_state({**base, "status": {"observedGeneration": 1, "readyReplicas": 2, "currentReplicas": 2,
                                                 "currentRevision": "db-b", "updateRevision": "db-b"}})
    assert done.done and done.message == "statefulset rolling update complete 2 pods at revision db-b..."
    on_delete = sts.rollout_state({**base, "spec": {"updateStrategy": {"type": "OnDelete"}}})
    assert not on_delete.waitable and not on_delete.failed and not on_delete.done
    assert "OnDelete update strategy" in on_delete.message

    ds = DaemonSet(None, "default", "agent")  # type: ignore[arg-type]
    obj = {"metadata": {"generation": 2}, "spec": {},
           "status": {"observedGeneration": 2, "desiredNumberScheduled": 2, "updatedNumberScheduled": 1}}
    assert ds.rollout_state(obj).message == ('Waiting for daemon set "agent" rollout to finish: 1 out of 2 new pods '
                                             'have been updated...')
    obj["status"].update(updatedNumberScheduled=2, numberAvailable=2)
    assert ds.rollout_state(obj).done
