"""The pure plan (``rollback/plan.py``): the field-level diff of two pod templates, images applied to a
template, and how a plan is shown (log lines, JSON, the summary table)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rollback import plan
from rollback.inputs import ImageSpec, WorkloadRef
from rollback.plan import Change, WorkloadPlan
from rollback.report import RunReport, plan_markdown, summary_markdown

BASE: dict[str, Any] = {
    "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
    "spec": {"containers": [{"name": "web", "image": "reg/web:1", "env": [{"name": "MODE", "value": "fast"}],
                             "resources": {"limits": {"cpu": "1"}}, "terminationMessagePath": "/dev/log"}],
             "volumes": [{"name": "conf", "configMap": {"name": "cfg-1"}}]},
}


def changed(edit: Any) -> dict[str, Any]:
    template = copy.deepcopy(BASE)
    edit(template)
    return template


def container(template: dict[str, Any]) -> dict[str, Any]:
    return template["spec"]["containers"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("edit,expected", [
    (lambda t: None, []),
    (lambda t: t["metadata"]["labels"].update({"pod-template-hash": "other"}), []),  # the hash is ignored
    (lambda t: container(t).update(image="reg/web:2"), [("container web: image", "reg/web:1", "reg/web:2")]),
    (lambda t: container(t).update(command=["serve"]), [("container web: command", None, '["serve"]')]),
    (lambda t: container(t).update(args=["--fast"]), [("container web: args", None, '["--fast"]')]),
    (lambda t: container(t)["env"].append({"name": "DEBUG", "value": "1"}),
     [("container web: env DEBUG", None, "1")]),
    (lambda t: container(t)["env"][0].update(value="slow"), [("container web: env MODE", "fast", "slow")]),
    (lambda t: container(t)["env"].append({"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db",
                                                                                        "key": "pw"}}}),
     [("container web: env PW", None, "from Secret db key pw")]),
    (lambda t: container(t)["env"].append({"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
     [("container web: env POD", None, "from field metadata.name")]),
    (lambda t: container(t).pop("env"), [("container web: env MODE", "fast", None)]),
    (lambda t: container(t)["resources"]["limits"].update(cpu="2", memory="1Gi"),
     [("container web: resources.limits cpu", "1", "2"), ("container web: resources.limits memory", None, "1Gi")]),
    (lambda t: container(t).update(readinessProbe={"httpGet": {"path": "/ready", "port": 80}}),
     [("container web: readinessProbe", None, '{"httpGet":{"path":"/ready","port":80}}')]),
    (lambda t: t["spec"]["volumes"][0]["configMap"].update(name="cfg-2"),
     [("volume conf", 'configMap {"name":"cfg-1"}', 'configMap {"name":"cfg-2"}')]),
    (lambda t: t["spec"]["volumes"].append({"name": "tls", "secret": {"secretName": "tls", "defaultMode": 420}}),
     [("volume tls", None, 'secret {"secretName":"tls"}')]),
    (lambda t: t["spec"]["containers"].append({"name": "sidecar", "image": "reg/proxy:1"}),
     [("container sidecar", None, "image reg/proxy:1")]),
    (lambda t: t["spec"].update(initContainers=[{"name": "migrate", "image": "reg/migrate:1"}]),
     [("init container migrate", None, "image reg/migrate:1")]),
    (lambda t: t["spec"].update(serviceAccountName="web"), [("pod spec serviceAccountName", None, "web")]),
    (lambda t: t["metadata"].update(annotations={"kubectl.kubernetes.io/restartedAt": "now"}),
     [("template annotation kubectl.kubernetes.io/restartedAt", None, "now")]),
    (lambda t: container(t).update(terminationMessagePath="/other"),
     [("container web: terminationMessagePath", "/dev/log", "/other")]),
])
def test_template_changes(edit: Any, expected: list[tuple[str, str | None, str | None]]) -> None:
    assert [(c.field, c.before, c.after) for c in plan.template_changes(BASE, changed(edit))] == expected


def test_a_long_value_is_shortened() -> None:
    after = changed(lambda t: container(t).update(args=["x" * 1000]))
    [change] = plan.template_changes(BASE, after)
    assert change.after is not None and len(change.after) == plan.MAX_VALUE and change.after.endswith("...")


def test_with_images_sets_containers_and_init_containers_by_name() -> None:
    template = changed(lambda t: t["spec"].update(initContainers=[{"name": "migrate", "image": "reg/m:1"}]))
    result = plan.with_images(template, [ImageSpec("web", "reg/web:2"), ImageSpec("migrate", "reg/m:2",
                                                                                   WorkloadRef("Deployment", "web"))])
    assert container(result)["image"] == "reg/web:2" and result["spec"]["initContainers"][0]["image"] == "reg/m:2"
    assert container(template)["image"] == "reg/web:1"  # the input is not changed


ROLLBACK = WorkloadPlan("deployment/web", "rollback", 3, "1.2.0", 1, "1.0.0",
                        (Change("container web: image", "reg/web:3", "reg/web:1"),
                         Change(plan.RELEASE_FIELD, "1.2.0", "1.0.0")), ("a note",))


@pytest.mark.parametrize("item,headline", [
    (ROLLBACK, "deployment/web: rollback, revision 3 (1.2.0) -> revision 1 (1.0.0)"),
    (WorkloadPlan("deployment/web", "deploy", 1, "1.0.0", None, "1.1.0",
                  (Change(plan.RELEASE_FIELD, "1.0.0", "1.1.0"),)),
     "deployment/web: deploy, revision 1 (1.0.0) -> the same revision (1.1.0)"),
    (WorkloadPlan("deployment/web", "deploy", 1, None, None, "1.1.0", (Change("container web: image", "a", "b"),)),
     "deployment/web: deploy, revision 1 (<none>) -> a new revision (1.1.0)"),
    (WorkloadPlan("deployment/web", "deploy", None, None, None, "1.0.0", (Change("container web", None, "x"),)),
     "deployment/web: deploy, nothing (<none>) -> a new revision (1.0.0)"),
])
def test_headline(item: WorkloadPlan, headline: str) -> None:
    assert item.headline() == headline


def test_log_lines_and_json() -> None:
    assert plan.log_lines([ROLLBACK, WorkloadPlan("deployment/api", "skip", 2, "1.0.0", 2, "1.0.0")]) == [
        "deployment/web: rollback, revision 3 (1.2.0) -> revision 1 (1.0.0)",
        "  container web: image: reg/web:3 -> reg/web:1",
        "  change-cause (release): 1.2.0 -> 1.0.0",
        "  note: a note",
        "deployment/api: skip, revision 2 (1.0.0) -> revision 2 (1.0.0)",
        "  no change",
    ]
    assert ROLLBACK.to_json() == {
        "workload": "deployment/web", "action": "rollback", "from": {"revision": 3, "release": "1.2.0"},
        "to": {"revision": 1, "release": "1.0.0"},
        "changes": [{"field": "container web: image", "before": "reg/web:3", "after": "reg/web:1"},
                    {"field": "change-cause (release)", "before": "1.2.0", "after": "1.0.0"}],
        "notes": ["a note"]}


def test_the_plan_in_the_summary_escapes_cluster_text() -> None:
    hostile = WorkloadPlan("deployment/web", "deploy", 1, "1.0.0", None, "1.1.0",
                           (Change("container web: env X", "a|b", "<script>"),))
    table = plan_markdown([hostile.to_json()])
    assert table.startswith("### Plan\n\n| WORKLOAD | ACTION | REVISION (RELEASE) | FIELD | BEFORE | AFTER |")
    assert "a\\|b" in table and "&lt;script&gt;" in table and "<script>" not in table
    report = RunReport("deploy", plan=(ROLLBACK.to_json(),))
    assert "### Plan" in summary_markdown(report) and "reg/web:3" in summary_markdown(report)
    assert "### Plan" not in summary_markdown(RunReport("deploy"))
