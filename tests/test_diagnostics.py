"""``rollback/diagnostics.py``: which pod states are failures, when they are final, and what the diagnosis says.

Pure functions on plain pod statuses (as the API server returns them), table-driven. The end-to-end behaviour on
kubesim is in ``test_fail_fast.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from rollback.diagnostics import (
    MAX_PODS,
    Diagnosis,
    Finding,
    PodReport,
    Thresholds,
    choose,
    classify,
    daemonset_revision,
    deployment_revision,
    describe,
    newest_events,
    statefulset_revision,
    stuck_creating,
)
from rollback.report import RunReport, WorkloadResult, summary_markdown

Obj = dict[str, Any]


def container(name: str = "app", waiting: str | None = None, message: str = "", restarts: int = 0,
              last_exit: int | None = None, last_reason: str = "Error", ready: bool = False,
              running: bool = False) -> Obj:
    status: Obj = {"name": name, "ready": ready, "restartCount": restarts, "image": "app:1", "imageID": "",
                   "lastState": {}}
    if waiting:
        status["state"] = {"waiting": {"reason": waiting, **({"message": message} if message else {})}}
    elif running:
        status["state"] = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    else:
        status["state"] = {}
    if last_exit is not None:
        status["lastState"] = {"terminated": {"exitCode": last_exit, "reason": last_reason,
                                              "containerID": "containerd://1"}}
    return status


def pod(name: str = "web-1", containers: list[Obj] | None = None, init: list[Obj] | None = None,
        conditions: list[Obj] | None = None, uid: str | None = None, deleting: bool = False) -> Obj:
    meta: Obj = {"name": name, "uid": uid or f"uid-{name}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: Obj = {"containerStatuses": containers if containers is not None else [container(running=True)],
                   "conditions": conditions or []}
    if init is not None:
        status["initContainerStatuses"] = init
    return {"metadata": meta, "status": status}


T = Thresholds(image_pull_seconds=5, config_seconds=5, crash_restarts=2, unschedulable_seconds=60)
UNSCHEDULABLE = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/3 nodes are available: 3 Insufficient cpu."}


# (case, pod, seconds it has been seen so far, expected (failure, reason, final) or None)
CASES: list[tuple[str, Obj, float, tuple[str, str, bool] | None]] = [
    ("running and ready", pod(containers=[container(ready=True, running=True)]), 100, None),
    ("slow: creating for a long time, no FailedMount", pod(containers=[container(waiting="ContainerCreating")]),
     100, None),
    ("running, not ready yet (slow readiness)", pod(containers=[container(running=True)]), 100, None),
    ("restarted once, running and ready", pod(containers=[container(restarts=1, last_exit=1, ready=True,
                                                                    running=True)]), 100, None),
    ("restarted once, running, not ready yet", pod(containers=[container(restarts=1, last_exit=1,
                                                                         running=True)]), 100, None),
    ("pull failing, just seen", pod(containers=[container(waiting="ErrImagePull")]), 0,
     ("image-pull", "ErrImagePull", False)),
    ("pull failing, seen 4.9 s", pod(containers=[container(waiting="ImagePullBackOff")]), 4.9,
     ("image-pull", "ImagePullBackOff", False)),
    ("pull failing, seen 5 s", pod(containers=[container(waiting="ImagePullBackOff")]), 5,
     ("image-pull", "ImagePullBackOff", True)),
    ("invalid image name: final at once", pod(containers=[container(waiting="InvalidImageName")]), 0,
     ("image-pull", "InvalidImageName", True)),
    ("crash loop: final at once", pod(containers=[container(waiting="CrashLoopBackOff", restarts=2,
                                                            last_exit=1)]), 0,
     ("crash-loop", "CrashLoopBackOff", True)),
    ("restarted twice, running but not ready", pod(containers=[container(restarts=2, last_exit=137,
                                                                         last_reason="OOMKilled",
                                                                         running=True)]), 0,
     ("crash-loop", "OOMKilled", True)),
    ("restarted twice, ready again", pod(containers=[container(restarts=2, last_exit=1, ready=True,
                                                               running=True)]), 0, None),
    ("config missing, just seen", pod(containers=[container(waiting="CreateContainerConfigError",
                                                            message='configmap "x" not found')]), 1,
     ("config-missing", "CreateContainerConfigError", False)),
    ("config missing, seen 5 s", pod(containers=[container(waiting="CreateContainerConfigError",
                                                           message='configmap "x" not found')]), 5,
     ("config-missing", "CreateContainerConfigError", True)),
    ("create error, seen 6 s", pod(containers=[container(waiting="CreateContainerError")]), 6,
     ("config-missing", "CreateContainerError", True)),
    ("run error, seen 6 s", pod(containers=[container(waiting="RunContainerError")]), 6,
     ("crash-loop", "RunContainerError", True)),
    ("init container crash-looping", pod(containers=[container(waiting="PodInitializing")],
                                         init=[container("setup", waiting="CrashLoopBackOff", restarts=2,
                                                         last_exit=1)]), 0,
     ("init-container", "CrashLoopBackOff", True)),
    ("init container cannot pull, seen 10 s", pod(containers=[container(waiting="PodInitializing")],
                                                  init=[container("setup", waiting="ImagePullBackOff")]), 10,
     ("init-container", "ImagePullBackOff", True)),
    ("unschedulable for 59 s", pod(containers=[container(waiting="ContainerCreating")],
                                   conditions=[UNSCHEDULABLE]), 59, ("unschedulable", "Unschedulable", False)),
    ("unschedulable for 60 s", pod(containers=[container(waiting="ContainerCreating")],
                                   conditions=[UNSCHEDULABLE]), 60, ("unschedulable", "Unschedulable", True)),
    ("a failing pod being deleted is not judged", pod(containers=[container(waiting="CrashLoopBackOff")],
                                                      deleting=True), 0, None),
]


@pytest.mark.parametrize(("case", "the_pod", "seen_for", "expected"), CASES, ids=[c[0] for c in CASES])
def test_classify(case: str, the_pod: Obj, seen_for: float, expected: tuple[str, str, bool] | None) -> None:
    now = 1000.0
    # first pass records when each state was first seen; the second looks again `seen_for` seconds later
    _, seen = classify([the_pod], now - seen_for, {}, T)
    findings, _ = classify([the_pod], now, seen, T)
    if expected is None:
        assert findings == [], case
        return
    (finding,) = findings
    assert (finding.failure, finding.reason, finding.final) == expected, case
    assert finding.pod == "web-1"
    assert finding.seen_for == pytest.approx(seen_for)


def test_a_state_that_goes_away_starts_over() -> None:
    failing = pod(containers=[container(waiting="ImagePullBackOff")])
    _, seen = classify([failing], 0.0, {}, T)
    _, seen = classify([pod(containers=[container(running=True)])], 3.0, seen, T)  # the pull worked once
    findings, _ = classify([failing], 6.0, seen, T)
    assert findings[0].seen_for == 0 and not findings[0].final


def test_a_new_pod_with_the_same_name_starts_over() -> None:
    """StatefulSet pods keep their names: a recreated db-1 is a different pod (uid)."""
    _, seen = classify([pod("db-1", [container(waiting="ImagePullBackOff")], uid="a")], 0.0, {}, T)
    findings, _ = classify([pod("db-1", [container(waiting="ImagePullBackOff")], uid="b")], 10.0, seen, T)
    assert not findings[0].final


def test_failed_mount_counts_only_for_pods_still_creating() -> None:
    creating = pod("web-1", [container(waiting="ContainerCreating")])
    running = pod("web-2", [container(running=True)])
    mounts = {"web-1": 'MountVolume.SetUp failed for volume "cfg" : configmap "x" not found',
              "web-2": "old event"}
    _, seen = classify([creating, running], 0.0, {}, T)  # creating: slow is no failure, until the event
    findings, _ = classify([creating, running], 4.0, seen, T, mounts)
    assert [(f.reason, f.final) for f in findings] == [("FailedMount", False)]
    findings, _ = classify([creating, running], 5.0, seen, T, mounts)
    assert [(f.pod, f.failure, f.reason, f.final, f.container) for f in findings] == [
        ("web-1", "config-missing", "FailedMount", True, None)]
    assert stuck_creating([creating, running]) == [creating]


def test_choose_lists_final_findings_one_per_pod_and_counts_the_rest() -> None:
    def f(pod_name: str, final: bool = True, container_name: str = "app") -> Finding:
        return Finding("crash-loop", pod_name, container_name, "CrashLoopBackOff", "", final)

    findings = [f("a"), f("a", container_name="sidecar"), f("b", final=False), f("c"), f("d"), f("e")]
    chosen, more = choose(findings, final_only=True)
    assert [x.pod for x in chosen] == ["a", "c", "d"][:MAX_PODS] and more == 1
    chosen, more = choose([f("x", final=False), f("y")], final_only=False)
    assert [x.pod for x in chosen] == ["y", "x"] and more == 0


def test_describe_names_pod_container_reason_and_the_last_exit() -> None:
    finding = Finding("crash-loop", "web-1", "app", "CrashLoopBackOff", "back-off 10s restarting failed container",
                      True, restart_count=2, exit_code=1, terminated_reason="Error")
    assert describe(finding) == ("pod web-1 container app: CrashLoopBackOff (back-off 10s restarting failed "
                                 "container); restarts 2, last exit code 1 (Error)")
    init = Finding("init-container", "web-1", "setup", "ImagePullBackOff", "", True, init=True)
    assert describe(init) == "pod web-1 init container setup: ImagePullBackOff"


def test_newest_events_are_the_pods_own_newest_last_with_counts() -> None:
    events = [
        {"reason": "BackOff", "message": "Back-off", "count": 3, "lastTimestamp": "2026-01-01T00:00:09Z",
         "involvedObject": {"uid": "u1"}, "metadata": {"resourceVersion": "9"}},
        {"reason": "Started", "message": "Started container app", "lastTimestamp": "2026-01-01T00:00:02Z",
         "involvedObject": {"uid": "u1"}, "metadata": {"resourceVersion": "5"}},
        {"reason": "Failed", "message": "an earlier pod with this name", "lastTimestamp": "2026-01-01T00:00:05Z",
         "involvedObject": {"uid": "old"}, "metadata": {"resourceVersion": "7"}},
    ]
    assert newest_events(events, "u1") == (("Started", "Started container app"), ("BackOff", "Back-off (x3)"))


def _owned(uid: str) -> Obj:
    return {"ownerReferences": [{"controller": True, "uid": uid}]}


TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "app:2"}]}}
OLD_TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}


def test_the_new_replica_set_is_the_one_with_the_deployments_template() -> None:
    deployment = {"metadata": {"uid": "d1", "generation": 2}, "spec": {"template": TEMPLATE}}

    def rs(name: str, template: Obj, owner: str = "d1") -> Obj:
        labels = {"app": "web", "pod-template-hash": name}
        return {"metadata": {"name": f"web-{name}", "uid": f"rs-{name}", "labels": labels, **_owned(owner)},
                "spec": {"template": {"metadata": {"labels": labels}, "spec": template["spec"]}}}

    found = deployment_revision(deployment, [rs("old", OLD_TEMPLATE), rs("new", TEMPLATE)])
    assert found is not None and (found.label, found.value, found.owner_uid) == ("pod-template-hash", "new",
                                                                                   "rs-new")
    assert deployment_revision(deployment, [rs("old", OLD_TEMPLATE), rs("other", TEMPLATE, owner="x")]) is None


def test_statefulset_update_revision_only_once_observed() -> None:
    sts = {"metadata": {"uid": "s1", "generation": 3},
           "status": {"observedGeneration": 2, "updateRevision": "db-old", "currentRevision": "db-old"}}
    assert statefulset_revision(sts) is None  # the controller has not seen the new template: that is the old one
    sts["status"]["observedGeneration"] = 3
    sts["status"]["updateRevision"] = "db-new"
    found = statefulset_revision(sts)
    assert found is not None and (found.label, found.value, found.owner_uid) == ("controller-revision-hash",
                                                                                   "db-new", "s1")


def test_daemonset_revision_is_the_newest_matching_controller_revision() -> None:
    ds = {"metadata": {"uid": "ds1"}, "spec": {"template": TEMPLATE}}

    def cr(number: int, template: Obj, digest: str) -> Obj:
        return {"metadata": {"name": f"agent-{digest}", "labels": {"controller-revision-hash": digest},
                             **_owned("ds1")},
                "revision": number, "data": {"spec": {"template": {**template, "$patch": "replace"}}}}

    found = daemonset_revision(ds, [cr(1, TEMPLATE, "aaa"), cr(2, OLD_TEMPLATE, "bbb"), cr(3, TEMPLATE, "ccc")])
    assert found is not None and found.value == "ccc"
    assert daemonset_revision(ds, [cr(1, OLD_TEMPLATE, "bbb")]) is None


def diagnosis(pods: int = 1, more: int = 0) -> Diagnosis:
    reports = tuple(PodReport(Finding("crash-loop", f"web-{i}", "app", "CrashLoopBackOff",
                                      "back-off 10s | <b>x</b>", True, restart_count=2, exit_code=1,
                                      terminated_reason="Error"),
                              events=(("BackOff", "Back-off restarting failed container app"),),
                              logs=("::error::injected", "FATAL `oops` *bold*"))
                    for i in range(pods))
    return Diagnosis("deployment/web", "crash-loop", "CrashLoopBackOff", reports, more, ("pods/log not read: 403",))


def test_log_text_is_one_message_for_the_workload() -> None:
    text = diagnosis(pods=2, more=3).log_text()
    assert text.splitlines()[0] == "deployment/web: 5 pod(s) of the new revision failing (crash-loop)"
    assert "- pod web-0 container app: CrashLoopBackOff" in text and "- pod web-1 container app" in text
    assert "    BackOff: Back-off restarting failed container app" in text
    assert "    FATAL `oops` *bold*" in text
    assert "- and 3 more failing pod(s)" in text and "note: pods/log not read: 403" in text
    assert diagnosis(pods=2, more=3).headline().endswith("(and 4 more failing pods)")


def test_summary_table_escapes_what_the_cluster_and_the_pods_wrote() -> None:
    d = diagnosis()
    result = WorkloadResult("deployment/web", "Deployment", "web", "default", "deploy", "compensated", "1.0.0",
                            "1.0.0", 3, 2, "complete", diagnosis=d.to_json(), failure_reason=d.reason)
    summary = summary_markdown(RunReport("deploy", results=(result,), error="x", release="2.0.0"))
    section = summary[summary.index("### Why deployment/web failed"):]
    table = section.splitlines()
    assert table[0] == "### Why deployment/web failed: CrashLoopBackOff"
    assert table[2] == ("| POD | CONTAINER | REASON | MESSAGE | RESTARTS | LAST EXIT | EVENTS | LAST LOG LINES |")
    row = table[4]
    assert row.startswith("| web-0 | app | CrashLoopBackOff | back-off 10s \\| &lt;b&gt;x&lt;/b&gt; | 2 | 1 (Error) |")
    assert "<code>::error::injected</code>" in row and "<code>FATAL \\`oops\\` \\*bold\\*</code>" in row
    assert row.count(" | ") == 7  # nothing in a cell opened a new column
    assert "Note: pods/log not read: 403" in section
    assert result.to_json()["diagnosis"]["pods"][0]["logs"] == ["::error::injected", "FATAL `oops` *bold*"]
    assert result.to_json()["failure_reason"] == "CrashLoopBackOff"
