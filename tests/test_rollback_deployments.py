"""The behaviour issue 3 requires of Deployment runs, through ``python -m rollback`` (``rollback.cli.main``)
against kubesim: exit codes, ``::error``/``::warning`` lines, outputs, and whether the cluster changed.

Pods become Ready at once (``ready_delay=0``), so the controllers finish a rollout inside the write that
started it and every test runs in well under a second of cluster time.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from conftest import kubectl, python_client
from helpers import (
    CHANGE_CAUSE,
    OWN_PREFIX,
    REVISION,
    REVISION_HISTORY,
    CliRun,
    RequestLog,
    app_state,
    get_deployment,
    history_pairs,
    image_of,
    injected_commands,
    make_deployment,
    replica_sets,
    run_cli,
)

import kubesim
from kubesim.knobs import Knobs
from kubesim.server import Request

WEB = ("--deployment", "web")
IMG = "registry.example/web:"


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(ready_delay=0)


def deploy(sim: kubesim.Sim, release: str, image: str, *extra: str) -> CliRun:
    run = run_cli(sim, "--mode", "deploy", "--release", release, "--images", f"web={image}", *WEB,
                  "--timeout", "30s", *extra)
    assert run.code == 0, run.stdout
    return run


def rollback(sim: kubesim.Sim, release: str, *extra: str) -> CliRun:
    return run_cli(sim, "--mode", "rollback", "--release", release, *WEB, "--timeout", "30s", *extra)


def three_releases(sim: kubesim.Sim, limit: int | None = None) -> None:
    """History 1→R1, 2→R2, 3→R3 (images :1, :2, :3), R3 live."""
    make_deployment(sim, "web", image=IMG + "1", change_cause="R1", revision_history_limit=limit)
    deploy(sim, "R2", IMG + "2")
    deploy(sim, "R3", IMG + "3")
    assert history_pairs(sim) == [(1, "R1"), (2, "R2"), (3, "R3")]


def single_error(run: CliRun) -> str:
    assert len(run.errors) == 1, run.stdout
    return run.errors[0]


# -- rollback: the target ----------------------------------------------------------------------------------------


def test_rollback_to_release_renumbers_like_kubectl(sim: kubesim.Sim) -> None:
    three_releases(sim)
    run = rollback(sim, "R2", "--reason", "R3 returns 500")
    assert run.code == 0, run.stdout
    assert history_pairs(sim) == [(1, "R1"), (3, "R3"), (4, "R2")]
    deployment = get_deployment(sim)
    assert image_of(deployment) == IMG + "2"
    notes = deployment["metadata"]["annotations"]
    assert notes[CHANGE_CAUSE] == "R2"
    assert notes[OWN_PREFIX + "rollback-reason"] == "R3 returns 500"
    assert notes[OWN_PREFIX + "rolled-back-from"] == "R3"
    assert notes[OWN_PREFIX + "rolled-back-by"] == "octocat"
    out = run.outputs
    assert (out["mode"], out["release"], out["previous-release"]) == ("rollback", "R2", "R3")
    assert (out["revision"], out["previous-revision"], out["skipped"]) == ("4", "3", "false")
    assert out["run-on-rollback"] == "true" and out["run-on-deploy"] == "false"
    [result] = run.result()
    assert (result["action"], result["rollout"]) == ("rolled-back", "complete")
    assert [row["revision"] for row in run.history() if row["current"]] == [4]
    assert "R3 returns 500" in run.summary


def test_release_not_in_history_lists_available_releases_and_changes_nothing(sim: kubesim.Sim) -> None:
    three_releases(sim)
    before = app_state(sim)
    with RequestLog(sim) as log:
        run = rollback(sim, "R9")
    assert run.code == 1
    message = single_error(run)
    assert "'R9'" in message and "Releases available (newest first): R3, R2, R1." in message
    assert "never deployed" in message and "pruned" not in message
    assert run.error_lines()[0].startswith("::error title=Invalid input%3A release::")
    assert log.app_writes(include_dry_run=True) == []
    assert app_state(sim) == before
    assert run.outputs["skipped"] == "false"


def test_missing_release_rollback_does_not_claim_to_deploy(sim: kubesim.Sim) -> None:
    make_deployment(sim, "web", image=IMG + "1", change_cause="1.0.0")
    deploy(sim, "1.1.0", IMG + "2")
    run = rollback(sim, "0.9.0")
    assert run.code == 1
    assert not any("deploying it" in w for w in run.warnings), run.warnings


def test_pruned_release_error_names_revision_history_limit(sim: kubesim.Sim) -> None:
    make_deployment(sim, "web", image=IMG + "1", change_cause="R1", revision_history_limit=2)
    for n in range(2, 6):
        deploy(sim, f"R{n}", IMG + str(n))
    assert history_pairs(sim) == [(3, "R3"), (4, "R4"), (5, "R5")]
    before = app_state(sim)
    with RequestLog(sim) as log:
        run = rollback(sim, "R1")
    assert run.code == 1
    message = single_error(run)
    assert "Releases available (newest first): R5, R4, R3." in message
    assert "2 older revision(s) were pruned by revisionHistoryLimit=2" in message
    assert log.app_writes(include_dry_run=True) == [] and app_state(sim) == before


def test_duplicate_release_newest_wins_with_a_warning(sim: kubesim.Sim) -> None:
    make_deployment(sim, "web", image=IMG + "1", change_cause="R1")
    deploy(sim, "R2", IMG + "2")
    deploy(sim, "R1", IMG + "3")  # the same release name again, another image
    deploy(sim, "R4", IMG + "4")
    assert history_pairs(sim) == [(1, "R1"), (2, "R2"), (3, "R1"), (4, "R4")]
    run = rollback(sim, "R1")
    assert run.code == 0, run.stdout
    [warning] = [w for w in run.warnings if "several revisions" in w]
    assert "(1, 3)" in warning and "revision 3" in warning
    assert image_of(get_deployment(sim)) == IMG + "3"
    assert history_pairs(sim) == [(1, "R1"), (2, "R2"), (4, "R4"), (5, "R1")]
    assert run.result()[0]["duplicates"] == [1]


def test_target_already_live_is_skipped_without_any_write(sim: kubesim.Sim) -> None:
    three_releases(sim)
    before = app_state(sim)
    with RequestLog(sim) as log:
        run = rollback(sim, "R3")
    assert run.code == 0, run.stdout
    assert run.outputs["skipped"] == "true"
    assert "skipped rollback (current template already matches revision 3)" in run.stdout
    [result] = run.result()
    assert result["action"] == "skipped" and result["revision"] == 3
    assert log.app_writes(include_dry_run=True) == []
    assert app_state(sim) == before
    assert run.errors == []


def test_empty_release_rolls_back_to_the_previous_revision(sim: kubesim.Sim) -> None:
    three_releases(sim)
    run = rollback(sim, "")
    assert run.code == 0, run.stdout
    assert history_pairs(sim) == [(1, "R1"), (3, "R3"), (4, "R2")]
    assert run.outputs["release"] == "R2" and run.outputs["previous-release"] == "R3"


# -- paused --------------------------------------------------------------------------------------------------------


def pause(sim: kubesim.Sim) -> None:
    from kubernetes import client

    api = python_client(sim)
    try:
        client.AppsV1Api(api).patch_namespaced_deployment("web", "default", {"spec": {"paused": True}})
    finally:
        api.close()


def test_paused_deployment_is_refused_with_resume_advice_and_unchanged(sim: kubesim.Sim) -> None:
    three_releases(sim)
    pause(sim)
    before = app_state(sim)
    with RequestLog(sim) as log:
        run = rollback(sim, "R2")
    assert run.code == 1
    message = single_error(run)
    assert "paused" in message and "kubectl rollout resume deployment/web" in message
    assert log.app_writes(include_dry_run=True) == [] and app_state(sim) == before
    assert history_pairs(sim) == [(1, "R1"), (2, "R2"), (3, "R3")]


def test_paused_deployment_with_target_live_fails_like_kubectl(sim: kubesim.Sim) -> None:
    three_releases(sim)
    pause(sim)
    theirs = kubectl(sim, "rollout", "undo", "deployment/web", "--to-revision=3")
    assert theirs.returncode == 1 and "paused" in theirs.stderr
    run = rollback(sim, "R3")
    assert run.code == 1 and "paused" in single_error(run)


# -- concurrency -----------------------------------------------------------------------------------------------


def undo_patches(log: RequestLog) -> list[list[dict[str, Any]]]:
    return [e.json() for e in log.app_writes() if e.content_type == "application/json-patch+json"]


def test_undo_patch_tests_resource_version_and_retries_after_a_409(sim: kubesim.Sim) -> None:
    three_releases(sim)
    rv = get_deployment(sim)["metadata"]["resourceVersion"]
    sim.knobs.fail_next(1, "PATCH", r"/deployments/web\b", status=409)
    with RequestLog(sim) as log:
        run = rollback(sim, "R2")
    assert run.code == 0, run.stdout
    assert any("changed by someone else" in line for line in run.lines)
    [patch] = undo_patches(log)  # the 409 was answered before kubesim's handler saw the first attempt
    assert patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": rv}
    assert history_pairs(sim) == [(1, "R1"), (3, "R3"), (4, "R2")]


def concurrent_writer(sim: kubesim.Sim, body: dict[str, Any], content_type: str = "application/json-patch+json",
                      subresource: str = "") -> Any:
    """A ``RequestLog.before`` hook: just before our first PATCH of ``content_type`` is handled, someone else
    patches the Deployment (or its ``subresource``) with ``body``."""
    fired: list[bool] = []

    def before(req: Any) -> None:
        if fired or req.method != "PATCH" or req.content_type != content_type:
            return
        fired.append(True)
        path = "/apis/apps/v1/namespaces/default/deployments/web" + subresource
        other = Request("PATCH", path, {"fieldManager": ["other"]},
                        {"Content-Type": "application/merge-patch+json"}, json.dumps(body).encode())
        sim.api.handle(other)

    return before


def test_concurrent_deploy_is_seen_not_overwritten_blindly(sim: kubesim.Sim) -> None:
    three_releases(sim)
    hotfix = {"metadata": {"annotations": {CHANGE_CAUSE: "R3-hotfix"}},
              "spec": {"template": {"spec": {"containers": [{"name": "web", "image": IMG + "3h"}]}}}}
    with RequestLog(sim, before=concurrent_writer(sim, hotfix)) as log:
        run = rollback(sim, "R2")
    assert run.code == 0, run.stdout
    first, second = undo_patches(log)
    assert first[0]["op"] == second[0]["op"] == "test"
    assert first[0]["value"] != second[0]["value"]  # re-read: the retry is guarded by the new resourceVersion
    # the other writer's revision is kept in the history and the rollback records that it left R3-hotfix
    assert history_pairs(sim) == [(1, "R1"), (3, "R3"), (4, "R3-hotfix"), (5, "R2")]
    notes = get_deployment(sim)["metadata"]["annotations"]
    assert notes[CHANGE_CAUSE] == "R2" and notes[OWN_PREFIX + "rolled-back-from"] == "R3-hotfix"
    assert run.outputs["previous-release"] == "R3-hotfix"


def test_concurrent_identical_rollback_makes_ours_a_no_op(sim: kubesim.Sim) -> None:
    three_releases(sim)
    same = {"metadata": {"annotations": {CHANGE_CAUSE: "R2", "team.example/rolled-back-by": "on-call"}},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": IMG + "2"}]}}}}
    with RequestLog(sim, before=concurrent_writer(sim, same)) as log:
        run = rollback(sim, "R2")
    assert run.code == 0, run.stdout
    assert len(undo_patches(log)) == 1  # only the attempt that failed its test op
    notes = get_deployment(sim)["metadata"]["annotations"]
    assert notes["team.example/rolled-back-by"] == "on-call"
    assert not any(key.startswith(OWN_PREFIX) for key in notes)
    assert run.outputs["skipped"] == "true"


SMP = "application/strategic-merge-patch+json"


@pytest.mark.parametrize(("subresource", "body"), [
    ("/status", {"status": {"conditions": [{"type": "Available", "status": "True", "reason": "Probe"}]}}),
    ("", {"metadata": {"annotations": {"team.example/owner": "payments"}}}),
    ("", {"spec": {"replicas": 3}}),
], ids=["status", "annotation", "scale"])
def test_deploy_survives_a_concurrent_change_outside_the_pod_template(sim: kubesim.Sim, subresource: str,
                                                                       body: dict[str, Any]) -> None:
    """The controllers write the status all through a rollout, and an autoscaler or a person may annotate or
    scale: our image patch stays right, so such a conflict is retried on a fresh read, not failed."""
    three_releases(sim)
    with RequestLog(sim, before=concurrent_writer(sim, body, SMP, subresource)) as log:
        run = deploy(sim, "R4", IMG + "4")
    assert len([w for w in log.app_writes() if w.content_type == SMP]) == 2
    assert history_pairs(sim)[-1] == (4, "R4")
    deployment = get_deployment(sim)
    assert image_of(deployment) == IMG + "4"
    if subresource == "":
        assert {k: v for k, v in deployment["metadata"].get("annotations", {}).items() if k.startswith("team")} == \
            body.get("metadata", {}).get("annotations", {})
        assert deployment["spec"]["replicas"] == body.get("spec", {}).get("replicas", 1)
    assert run.result()[0]["action"] == "deployed"


def test_concurrent_deploy_is_re_read_before_ours_is_written(sim: kubesim.Sim) -> None:
    """Like the undo: the conflict makes us re-read, and only then write; the other deploy stays in history."""
    three_releases(sim)
    other = {"metadata": {"annotations": {CHANGE_CAUSE: "R3-hotfix"}},
             "spec": {"template": {"spec": {"containers": [{"name": "web", "image": IMG + "3h"}]}}}}
    with RequestLog(sim, before=concurrent_writer(sim, other, SMP)) as log:
        run = deploy(sim, "R4", IMG + "4")
    first, second = (w.json() for w in log.app_writes() if w.content_type == SMP and "containers" in str(w.json()))
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert image_of(get_deployment(sim)) == IMG + "4"
    assert history_pairs(sim) == [(1, "R1"), (2, "R2"), (3, "R3"), (4, "R3-hotfix"), (5, "R4")]
    assert run.result()[0]["action"] == "deployed"


def test_concurrent_deploy_is_reported_as_the_previous_release(sim: kubesim.Sim) -> None:
    three_releases(sim)
    other = {"metadata": {"annotations": {CHANGE_CAUSE: "R3-hotfix"}},
             "spec": {"template": {"spec": {"containers": [{"name": "web", "image": IMG + "3h"}]}}}}
    with RequestLog(sim, before=concurrent_writer(sim, other, SMP)):
        run = deploy(sim, "R4", IMG + "4")
    assert (run.outputs["previous-release"], run.outputs["previous-revision"]) == ("R3-hotfix", "4")


# -- log injection ---------------------------------------------------------------------------------------------


HOSTILE = ("::error::pwned", "::stop-commands::x", "  ::warning::indented", "ok\n::error::pwned2",
           "##[error]legacy")


def set_release(sim: kubesim.Sim, image: str, cause: str) -> None:
    """Someone else's deploy: image and change-cause in one patch, with any text (kubectl annotate allows it)."""
    from kubernetes import client

    api = python_client(sim)
    try:
        client.AppsV1Api(api).patch_namespaced_deployment("web", "default", {
            "metadata": {"annotations": {CHANGE_CAUSE: cause}},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})
    finally:
        api.close()


@pytest.mark.parametrize("actions", [True, False], ids=["in-actions", "terminal"])
def test_change_cause_is_never_printed_as_a_workflow_command(sim: kubesim.Sim, actions: bool) -> None:
    make_deployment(sim, "web", image=IMG + "0", change_cause="R0")
    for n, cause in enumerate(HOSTILE, start=1):
        set_release(sim, IMG + str(n), cause)
    sim.wait_until(lambda: len(replica_sets(sim)) == len(HOSTILE) + 1)
    runs = [
        run_cli(sim, "--mode", "history", *WEB, actions=actions),
        run_cli(sim, "--mode", "calculate", "--release", "R0", *WEB, actions=actions),
        run_cli(sim, "--mode", "rollback", "--release", "missing", *WEB, actions=actions),
        run_cli(sim, "--mode", "rollback", "--release", "::error::pwned", *WEB, "--timeout", "30s",
                actions=actions),
        run_cli(sim, "--mode", "rollback", "--release", "", *WEB, "--timeout", "30s", actions=actions),
    ]
    assert [r.code for r in runs] == [0, 0, 1, 0, 0], [r.stdout for r in runs]
    assert "::error::pwned" in runs[2].errors[0]  # listed, inside our own (escaped) error command
    for run in runs:
        assert injected_commands(run.stdout) == [], run.stdout
        for line in run.lines:
            assert not line.lstrip().startswith(("::error::pwned", "::stop-commands", "::warning::indented"))
    # the previous revision (second-highest) after the first rollback is the "##[error]legacy" one
    assert get_deployment(sim)["metadata"]["annotations"][CHANGE_CAUSE] == "##[error]legacy"
    assert "##\\[error]legacy" in runs[4].stdout


# -- bad inputs ------------------------------------------------------------------------------------------------


BAD_INPUTS = {
    "invalid-name": ("deployment", ("--mode", "rollback", "--release", "R1", "--deployment", "Web_1")),
    "unknown-kind": ("deployment", ("--mode", "rollback", "--release", "R1", "--deployment", "job/web")),
    "unknown-mode": ("mode", ("--mode", "explode", "--release", "R1", *WEB)),
    "malformed-images": ("images", ("--mode", "deploy", "--release", "R2", "--images", "web", *WEB)),
    "empty-deployment": ("deployment", ("--mode", "rollback", "--release", "R1", "--deployment", "")),
    "negative-timeout": ("timeout", ("--mode", "rollback", "--release", "R1", *WEB, "--timeout=-5s")),
    "invalid-namespace": ("namespace", ("--mode", "rollback", "--release", "R1", *WEB, "--namespace", "Prod_1")),
    "control-char-release": ("release", ("--mode", "deploy", "--release", "R\t2", "--images", "web=x:2", *WEB)),
    "missing-kubeconfig-file": ("kubeconfig", ("--mode", "rollback", "--release", "R1", *WEB,
                                               "--kubeconfig", "no-such-dir/kubeconfig")),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_fails_naming_the_input_without_any_request(sim: kubesim.Sim, name: str) -> None:
    make_deployment(sim, "web", image=IMG + "1", change_cause="R1")
    rv = sim.store.resource_version()
    input_name, args = BAD_INPUTS[name]
    with RequestLog(sim) as log:
        run = run_cli(sim, *args)
    assert run.code == 1, run.stdout + run.stderr
    assert any(line.startswith(f"::error title=Invalid input%3A {input_name}::") for line in run.error_lines()), (
        run.stdout + run.stderr)
    assert log.entries == []
    assert sim.store.resource_version() == rv


@pytest.mark.parametrize("content", ["", "not: [a kubeconfig", "apiVersion: v1\nkind: Config\n"],
                         ids=["empty-file", "not-yaml", "no-clusters"])
def test_unusable_kubeconfig_file_fails_naming_kubeconfig(sim: kubesim.Sim, tmp_path: Any, content: str) -> None:
    make_deployment(sim, "web", image=IMG + "1", change_cause="R1")
    path = tmp_path / "kubeconfig"
    path.write_text(content)
    rv = sim.store.resource_version()
    with RequestLog(sim) as log:
        run = run_cli(sim, "--mode", "rollback", "--release", "R1", *WEB, extra_env={"KUBECONFIG": str(path)})
    assert run.code == 1
    assert any(line.startswith("::error title=Invalid input%3A kubeconfig::") for line in run.error_lines()), (
        run.stdout)
    assert log.entries == [] and sim.store.resource_version() == rv


# -- read-only modes -------------------------------------------------------------------------------------------


FLAGS = ("run-on-deploy", "run-on-redeploy", "run-on-rollback", "run-on-deploy-or-rollback",
         "run-on-deploy-or-redeploy", "run-on-redeploy-or-rollback")


@pytest.mark.parametrize(("release", "mode", "change", "true_flags"), [
    ("1.0.0", "rollback", "minor", {"run-on-rollback", "run-on-deploy-or-rollback", "run-on-redeploy-or-rollback"}),
    ("1.1.0", "redeploy", "identical", {"run-on-redeploy", "run-on-deploy-or-redeploy",
                                        "run-on-redeploy-or-rollback"}),
    ("2.0.0", "deploy", "major", {"run-on-deploy", "run-on-deploy-or-rollback", "run-on-deploy-or-redeploy"}),
    ("3f9c2ab", "deploy", "none", {"run-on-deploy", "run-on-deploy-or-rollback", "run-on-deploy-or-redeploy"}),
])
def test_calculate_changes_nothing_and_sets_run_on_outputs(sim: kubesim.Sim, release: str, mode: str,
                                                           change: str, true_flags: set[str]) -> None:
    make_deployment(sim, "web", image=IMG + "1", change_cause="1.0.0")
    deploy(sim, "1.1.0", IMG + "2")
    rv = sim.store.resource_version()
    with RequestLog(sim) as log:
        run = run_cli(sim, "--mode", "calculate", "--release", release, *WEB)
    assert run.code == 0, run.stdout
    assert run.outputs["mode"] == mode
    assert run.outputs["version-change"] == change
    assert {flag for flag in FLAGS if run.outputs[flag] == "true"} == true_flags
    assert {run.outputs[flag] for flag in FLAGS} <= {"true", "false"}
    assert (run.outputs["release"], run.outputs["previous-release"]) == ("1.1.0", "1.1.0")
    assert log.writes() == [] and sim.store.resource_version() == rv


def test_history_mode_is_read_only_and_reports_every_revision(sim: kubesim.Sim) -> None:
    three_releases(sim)
    rollback(sim, "R1")
    rv = sim.store.resource_version()
    with RequestLog(sim) as log:
        run = run_cli(sim, "--mode", "history", *WEB)
    assert run.code == 0, run.stdout
    rows = run.history()
    assert [(row["revision"], row["release"]) for row in rows] == history_pairs(sim) == [
        (2, "R2"), (3, "R3"), (4, "R1")]
    assert [row["revision"] for row in rows if row["current"]] == [4]
    assert rows[-1]["images"] == ["web=" + IMG + "1"]
    assert "| **4** | R1 |" in run.summary
    assert log.writes() == [] and sim.store.resource_version() == rv


# -- dry run ---------------------------------------------------------------------------------------------------


def test_dry_run_rollback_persists_nothing_and_says_what_would_happen(sim: kubesim.Sim) -> None:
    three_releases(sim)
    before = app_state(sim)
    with RequestLog(sim) as log:
        run = rollback(sim, "R1", "--dry-run")
    assert run.code == 0, run.stdout
    writes = log.app_writes(include_dry_run=True)
    assert writes and all(w.query.get("dryRun") == ["All"] for w in writes)
    assert app_state(sim) == before
    assert history_pairs(sim) == [(1, "R1"), (2, "R2"), (3, "R3")]
    [result] = run.result()
    assert result["action"] == "dry-run"
    assert (result["release"], result["revision"]) == ("R1", 1)
    assert "would roll back to revision 1 (R1)" in result["message"]
    assert run.outputs["previous-release"] == "R3"


def test_dry_run_deploy_persists_nothing(sim: kubesim.Sim) -> None:
    three_releases(sim)
    before = app_state(sim)
    with RequestLog(sim) as log:
        run = deploy(sim, "R4", IMG + "4", "--dry-run")
    writes = log.app_writes(include_dry_run=True)
    assert writes and all(w.query.get("dryRun") == ["All"] for w in writes)
    assert app_state(sim) == before
    [result] = run.result()
    assert result["action"] == "dry-run" and "would deploy R4" in result["message"]


# -- deploy ----------------------------------------------------------------------------------------------------


def test_deploy_sets_change_cause_in_the_same_write_as_the_image(sim: kubesim.Sim) -> None:
    make_deployment(sim, "web", image=IMG + "1", change_cause="R1")
    plan = [("R2", IMG + "2"), ("R3", IMG + "3"), ("R4", IMG + "2"), ("R5", IMG + "5"), ("R5", IMG + "5")]
    start = sim.store.resource_version()
    with RequestLog(sim) as log:
        for release, image in plan:
            deploy(sim, release, image)
    for write in log.app_writes():
        body = write.json()
        assert write.path.endswith("/deployments/web")
        assert body["metadata"]["annotations"][CHANGE_CAUSE] in {r for r, _ in plan}
        containers = body["spec"]["template"]["spec"]["containers"]
        assert (body["metadata"]["annotations"][CHANGE_CAUSE], containers[0]["image"]) in plan
    releases_of: dict[str, set[str]] = {IMG + "1": {"R1"}}
    for release, image in plan:
        releases_of.setdefault(image, set()).add(release)
    # no ReplicaSet ever carried a change-cause of a release that was not deployed with its image
    for event in sim.store.events_since(start):
        if event.obj.get("kind") != "ReplicaSet":
            continue
        cause = (event.obj["metadata"].get("annotations") or {}).get(CHANGE_CAUSE)
        assert cause in releases_of[image_of(event.obj)], (event.type, event.obj["metadata"])
    assert history_pairs(sim) == [(1, "R1"), (3, "R3"), (4, "R4"), (5, "R5")]
    for rs in replica_sets(sim):
        assert rs["metadata"]["annotations"][CHANGE_CAUSE] in releases_of[image_of(rs)]
    assert [rs["metadata"]["annotations"].get(REVISION_HISTORY) for rs in replica_sets(sim)] == [
        None, None, "2", None]


def test_redeploy_of_the_live_release_does_not_create_a_revision(sim: kubesim.Sim) -> None:
    three_releases(sim)
    before = app_state(sim)
    run = deploy(sim, "R3", IMG + "3")
    assert app_state(sim) == before
    assert run.outputs["mode"] == "redeploy" and run.outputs["skipped"] == "false"
    assert run.result()[0]["action"] == "redeployed"


# -- waiting ---------------------------------------------------------------------------------------------------


def test_broken_image_fails_when_the_progress_deadline_is_exceeded(tmp_path: Any) -> None:
    with kubesim.serve(knobs=Knobs(ready_delay=0.5), time_scale=10,
                       kubeconfig_path=str(tmp_path / "kubeconfig")) as sim:
        make_deployment(sim, "web", image=IMG + "1", change_cause="R1", replicas=2, progressDeadlineSeconds=3)
        sim.wait_until(lambda: get_deployment(sim)["status"].get("availableReplicas") == 2)
        run = run_cli(sim, "--mode", "deploy", "--release", "R2", "--images", "web=" + IMG + "broken", *WEB,
                      "--timeout", "30s")
        assert run.code == 1, run.stdout
        assert any('deployment "web" exceeded its progress deadline' in e for e in run.errors), run.stdout
        [result] = run.result()
        assert result["rollout"] == "failed"
        assert get_deployment(sim)["metadata"]["annotations"][CHANGE_CAUSE] == "R2"  # left as it is
        assert run.outputs["rolled-back"] == "false"


def test_failed_deploy_is_reported_as_failed_once(tmp_path: Any) -> None:
    with kubesim.serve(knobs=Knobs(ready_delay=0.5), time_scale=10,
                       kubeconfig_path=str(tmp_path / "kubeconfig")) as sim:
        make_deployment(sim, "web", image=IMG + "1", change_cause="R1", replicas=2, progressDeadlineSeconds=3)
        run = run_cli(sim, "--mode", "deploy", "--release", "R2", "--images", "web=" + IMG + "broken", *WEB,
                      "--timeout", "30s")
        assert run.code == 1
        # WorkloadResult: "failed (changed, and the rollout failed or timed out; left so)"
        assert run.result()[0]["action"] == "failed"
        # action.yml: failed-release is the "Release whose rollout failed, when one did."
        assert run.outputs["failed-release"] == "R2"
        assert len(run.errors) == 1, run.errors


def test_timeout_input_bounds_the_wait(tmp_path: Any) -> None:
    with kubesim.serve(knobs=Knobs(ready_delay=0.5), time_scale=10,
                       kubeconfig_path=str(tmp_path / "kubeconfig")) as sim:
        make_deployment(sim, "web", image=IMG + "1", change_cause="R1", replicas=2)
        run = run_cli(sim, "--mode", "deploy", "--release", "R2", "--images", "web=" + IMG + "broken", *WEB,
                      "--timeout", "1s")
        assert run.code == 1, run.stdout
        assert any("timed out waiting for deployment/web" in e for e in run.errors), run.stdout
        assert run.result()[0]["rollout"] == "timeout"


def test_rollback_revision_outputs_match_the_live_replica_set(sim: kubesim.Sim) -> None:
    three_releases(sim)
    run = rollback(sim, "R1")
    live = [rs for rs in replica_sets(sim) if image_of(rs) == image_of(get_deployment(sim))]
    assert run.outputs["revision"] == live[0]["metadata"]["annotations"][REVISION] == "4"


# -- failures around the run: an unreachable API server, a bug --------------------------------------------------


def test_an_unreachable_api_server_is_a_clear_error_with_outputs(tmp_path: Any) -> None:
    dead = tmp_path / "kubeconfig"
    dead.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dead",
        "clusters": [{"name": "dead", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t0ken-value"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "u"}}]}))
    for extra in ((), ("--no-ledger",)):
        run = run_cli(None, "--mode", "history", "--deployment", "web", *extra,
                      extra_env={"KUBECONFIG": str(dead)})
        assert run.code == 1, run.stdout
        (error,) = run.errors
        assert "no answer from the API server http://127.0.0.1:9" in error
        assert "runner can reach it" in error and "Traceback" not in run.stdout + run.stderr
        assert run.outputs["mode"] == "history"
        (entry,) = json.loads(run.outputs["result"])  # every workload is listed, also when none could be read
        assert (entry["workload"], entry["action"], entry["release"]) == ("deployment/web", "unchanged", "unknown")
        assert "not read" in entry["message"], entry
        assert run.outputs["release"] == "unknown"  # what is live there is not known


def test_an_unexpected_exception_is_reported_as_a_bug_with_outputs(sim: kubesim.Sim,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    make_deployment(sim, "web")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("spec")

    monkeypatch.setattr("rollback.run.execute", broken)
    run = run_cli(sim, "--mode", "history", "--deployment", "web")
    assert run.code == 1
    (error,) = run.errors
    assert "unexpected KeyError: 'spec'. This is a bug in kube-release-rollback" in error
    assert "Traceback (most recent call last)" in run.stdout  # inside the group, for the bug report
    assert run.outputs["mode"] == "history"
