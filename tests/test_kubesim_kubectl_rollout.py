"""Rollout history, undo and status through the real kubectl against kubesim.

Every expectation here is what kubectl prints against a real cluster: kubectl formats the tables and messages
itself, so matching them means kubesim's controllers numbered, labelled and reported the revisions the way
upstream's do.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from conftest import kubectl

import kubesim

CAUSE = "kubernetes.io/change-cause"
REVISION = "deployment.kubernetes.io/revision"


@pytest.fixture
def fast(sim: kubesim.Sim) -> kubesim.Sim:
    """``sim`` with simulated time running 10x: pods become Ready within a few tens of milliseconds."""
    sim.clock.scale = 10
    return sim


def ok(sim: kubesim.Sim, *args: str, input: str | None = None) -> str:
    result = kubectl(sim, *args, input=input, timeout=30)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def fails(sim: kubesim.Sim, *args: str) -> str:
    result = kubectl(sim, *args, timeout=30)
    assert result.returncode == 1, f"kubectl {' '.join(args)} should fail: {result.stdout}"
    return result.stderr


# Fields whose Go rendering differs from the YAML as written (numeric quantities, empty env values, false
# non-pointer booleans): the controllers must compare and record templates the way Go code sees them.
CONTAINER_EXTRAS = """        ports: [{containerPort: 8080, name: http}]
        env: [{name: EMPTY, value: ""}, {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
        resources:
          limits: {cpu: 1, memory: 0.5Gi}
          requests: {cpu: 0.25, memory: 128Mi}
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 5}
        volumeMounts: [{name: data, mountPath: /data, readOnly: false}]
      volumes: [{name: data, emptyDir: {sizeLimit: 1024Mi}}]
"""


def deployment_yaml(image: str, cause: str, *, name: str = "web", replicas: int = 2, extra: str = "") -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations:
    {CAUSE}: {cause}
spec:
  replicas: {replicas}
{extra}  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: {image}
{CONTAINER_EXTRAS}"""


def workload_yaml(kind: str, image: str, cause: str, name: str = "db") -> str:
    extra = f"  serviceName: {name}\n  replicas: 2\n" if kind == "StatefulSet" else ""
    return f"""apiVersion: apps/v1
kind: {kind}
metadata:
  name: {name}
  annotations:
    {CAUSE}: {cause}
spec:
{extra}  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: {image}
{CONTAINER_EXTRAS}"""


def history_text(resource: str, rows: list[tuple[int, str]]) -> str:
    """``kubectl rollout history`` output for ``rows`` (kubectl's tabwriter, padding 2)."""
    width = max(len("REVISION"), *(len(str(n)) for n, _ in rows)) + 2
    lines = [f"{resource} ", "REVISION".ljust(width) + "CHANGE-CAUSE"]
    lines += [str(n).ljust(width) + cause for n, cause in rows]
    return "\n".join(lines) + "\n\n"


def json_stream(text: str) -> list[Any]:
    """kubectl ``-o json`` prints one document per object."""
    decoder = json.JSONDecoder()
    items, index = [], 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        item, index = decoder.raw_decode(text, index)
        items.append(item)
    return items


def replicasets(sim: kubesim.Sim, name: str = "web") -> dict[int, dict[str, Any]]:
    listed = json.loads(ok(sim, "get", "rs", "-l", f"app={name}", "-o", "json"))["items"]
    return {int(rs["metadata"]["annotations"][REVISION]): rs for rs in listed}


def get(sim: kubesim.Sim, resource: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(ok(sim, "get", resource, "-o", "json"))
    return result


def require_compact_json(sim: kubesim.Sim, path: str) -> None:
    """kubectl's StatefulSet/DaemonSet "skipped rollback" check compares ControllerRevision ``data`` bytes as
    served with the bytes Go would marshal, so it only works if the server writes JSON without spaces."""
    with urllib.request.urlopen(sim.url + path) as response:
        raw = response.read()
    assert b'"data":{"spec":{"template":{"$patch":"replace"' in raw, "ControllerRevision data is not compact JSON"


# -- Deployments ---------------------------------------------------------------------------------------------


def test_worked_example_undo_to_revision_and_skip(fast: kubesim.Sim) -> None:
    for n in (1, 2, 3):
        assert ok(fast, "apply", "-f", "-", input=deployment_yaml(f"nginx:1.{n}", f"R{n}")) in (
            "deployment.apps/web created\n", "deployment.apps/web configured\n")
        assert ok(fast, "rollout", "status", "deployment/web", "--timeout=20s").endswith(
            'deployment "web" successfully rolled out\n')
    assert ok(fast, "rollout", "history", "deployment/web") == history_text(
        "deployment.apps/web", [(1, "R1"), (2, "R2"), (3, "R3")])

    assert ok(fast, "rollout", "undo", "deployment/web", "--to-revision=2") == "deployment.apps/web rolled back\n"
    assert ok(fast, "rollout", "history", "deployment/web") == history_text(
        "deployment.apps/web", [(1, "R1"), (3, "R3"), (4, "R2")])
    rss = replicasets(fast)
    assert rss[4]["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "2"
    assert rss[4]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.2"
    d = get(fast, "deployment/web")
    assert d["metadata"]["annotations"][CAUSE] == "R2"
    assert d["metadata"]["annotations"][REVISION] == "4"

    assert ok(fast, "rollout", "undo", "deployment/web", "--to-revision=4") == \
        "deployment.apps/web skipped rollback (current template already matches revision 4)\n"
    assert ok(fast, "rollout", "status", "deployment/web", "--timeout=20s").endswith("successfully rolled out\n")
    assert {p["spec"]["containers"][0]["image"] for p in get(fast, "pods")["items"]} == {"nginx:1.2"}

    described = ok(fast, "rollout", "history", "deployment/web", "--revision=4")
    assert described.startswith("deployment.apps/web with revision #4\nPod Template:\n")
    assert "Image:\tnginx:1.2" in described and f"{CAUSE}: R2" in described

    documents = json_stream(ok(fast, "rollout", "history", "deployment/web", "-o", "json"))
    assert [(doc["kind"], doc["metadata"]["annotations"][REVISION]) for doc in documents] == [
        ("ReplicaSet", "1"), ("ReplicaSet", "3"), ("ReplicaSet", "4")]
    (one,) = json_stream(ok(fast, "rollout", "history", "deployment/web", "--revision=3", "-o", "json"))
    assert one["metadata"]["annotations"][CAUSE] == "R3"


def test_set_image_and_annotate_relabel_the_live_revision(fast: kubesim.Sim) -> None:
    ok(fast, "apply", "-f", "-", input=deployment_yaml("nginx:1.1", "R1"))
    assert ok(fast, "set", "image", "deployment/web", "app=nginx:1.2") == "deployment.apps/web image updated\n"
    # the new revision exists as soon as kubectl returns, inheriting the stale change-cause...
    assert ok(fast, "rollout", "history", "deployment/web") == history_text(
        "deployment.apps/web", [(1, "R1"), (2, "R1")])
    # ...until the Deployment is annotated: the controller copies it onto the live ReplicaSet only
    assert ok(fast, "annotate", "deployment/web", f"{CAUSE}=R2", "--overwrite") == "deployment.apps/web annotated\n"
    assert ok(fast, "rollout", "history", "deployment/web") == history_text(
        "deployment.apps/web", [(1, "R1"), (2, "R2")])
    assert ok(fast, "rollout", "status", "deployment/web", "--timeout=20s").endswith("successfully rolled out\n")


def test_undo_previous_and_server_dry_run(fast: kubesim.Sim) -> None:
    ok(fast, "apply", "-f", "-", input=deployment_yaml("nginx:1.1", "R1"))
    ok(fast, "apply", "-f", "-", input=deployment_yaml("nginx:1.2", "R2"))
    before = get(fast, "deployment/web")
    assert ok(fast, "rollout", "undo", "deployment/web", "--dry-run=server") == \
        "deployment.apps/web rolled back (server dry run)\n"
    after = get(fast, "deployment/web")
    assert after["spec"]["template"] == before["spec"]["template"]
    assert after["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert ok(fast, "rollout", "history", "deployment/web") == history_text(
        "deployment.apps/web", [(1, "R1"), (2, "R2")])

    assert ok(fast, "rollout", "undo", "deployment/web") == "deployment.apps/web rolled back\n"
    assert ok(fast, "rollout", "history", "deployment/web") == history_text(
        "deployment.apps/web", [(2, "R2"), (3, "R1")])
    assert ok(fast, "rollout", "status", "deployment/web", "--timeout=20s").endswith("successfully rolled out\n")


def test_server_side_apply_records_revisions(fast: kubesim.Sim) -> None:
    for n in (1, 2):
        ok(fast, "apply", "--server-side", "--field-manager=ci", "-f", "-",
           input=deployment_yaml(f"nginx:1.{n}", f"R{n}"))
    assert ok(fast, "rollout", "history", "deployment/web") == history_text(
        "deployment.apps/web", [(1, "R1"), (2, "R2")])
    assert ok(fast, "rollout", "status", "deployment/web", "--timeout=20s").endswith("successfully rolled out\n")


def test_rollout_status_fails_on_progress_deadline(fast: kubesim.Sim) -> None:
    ok(fast, "apply", "-f", "-", input=deployment_yaml("nginx:1.1", "R1", extra="  progressDeadlineSeconds: 3\n"))
    ok(fast, "rollout", "status", "deployment/web", "--timeout=20s")
    ok(fast, "apply", "-f", "-", input=deployment_yaml("nginx:broken", "R2",
                                                       extra="  progressDeadlineSeconds: 3\n"))
    result = kubectl(fast, "rollout", "status", "deployment/web", "--timeout=20s", timeout=30)
    assert result.returncode == 1
    assert result.stderr == 'error: deployment "web" exceeded its progress deadline\n'
    assert 'Waiting for deployment "web" rollout to finish: 1 out of 2 new replicas have been updated...' in \
        result.stdout
    d = get(fast, "deployment/web")
    progressing = next(c for c in d["status"]["conditions"] if c["type"] == "Progressing")
    new_rs = replicasets(fast)[2]["metadata"]["name"]
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "False", "ProgressDeadlineExceeded", f'ReplicaSet "{new_rs}" has timed out progressing.')

    ok(fast, "rollout", "undo", "deployment/web")
    assert ok(fast, "rollout", "status", "deployment/web", "--timeout=20s").endswith("successfully rolled out\n")
    assert ok(fast, "rollout", "history", "deployment/web") == history_text(
        "deployment.apps/web", [(2, "R2"), (3, "R1")])


def test_pause_blocks_undo_and_new_revisions(fast: kubesim.Sim) -> None:
    ok(fast, "apply", "-f", "-", input=deployment_yaml("nginx:1.1", "R1"))
    ok(fast, "apply", "-f", "-", input=deployment_yaml("nginx:1.2", "R2"))
    assert ok(fast, "rollout", "pause", "deployment/web") == "deployment.apps/web paused\n"
    assert fails(fast, "rollout", "undo", "deployment/web") == (
        "error: you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try "
        "again\n")
    ok(fast, "set", "image", "deployment/web", "app=nginx:1.3")
    assert sorted(replicasets(fast)) == [1, 2]  # no new ReplicaSet while paused
    conditions = {c["type"]: c for c in get(fast, "deployment/web")["status"]["conditions"]}
    assert (conditions["Progressing"]["status"], conditions["Progressing"]["reason"]) == (
        "Unknown", "DeploymentPaused")
    assert ok(fast, "rollout", "resume", "deployment/web") == "deployment.apps/web resumed\n"
    assert sorted(replicasets(fast)) == [1, 2, 3]
    assert ok(fast, "rollout", "status", "deployment/web", "--timeout=20s").endswith("successfully rolled out\n")


def test_pruned_revision_cannot_be_restored(fast: kubesim.Sim) -> None:
    extra = "  revisionHistoryLimit: 2\n"
    for n in range(1, 6):
        ok(fast, "apply", "-f", "-", input=deployment_yaml(f"nginx:1.{n}", f"R{n}", replicas=1, extra=extra))
        ok(fast, "rollout", "status", "deployment/web", "--timeout=20s")
    assert ok(fast, "rollout", "history", "deployment/web") == history_text(
        "deployment.apps/web", [(3, "R3"), (4, "R4"), (5, "R5")])
    assert fails(fast, "rollout", "undo", "deployment/web", "--to-revision=1") == \
        "error: unable to find specified revision 1 in history\n"
    assert ok(fast, "rollout", "undo", "deployment/web", "--to-revision=3") == "deployment.apps/web rolled back\n"
    assert ok(fast, "rollout", "history", "deployment/web") == history_text(
        "deployment.apps/web", [(4, "R4"), (5, "R5"), (6, "R3")])


# -- StatefulSets and DaemonSets -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_controller_revision_history_and_undo(fast: kubesim.Sim, kind: str) -> None:
    resource = f"{kind.lower()}/db"
    full = f"{kind.lower()}.apps/db"
    done = ("partitioned roll out complete: 2 new pods have been updated...\n" if kind == "StatefulSet"
            else 'daemon set "db" successfully rolled out\n')
    for n in (1, 2):
        ok(fast, "apply", "-f", "-", input=workload_yaml(kind, f"img:{n}", f"R{n}"))
        assert ok(fast, "rollout", "status", resource, "--timeout=20s").endswith(done)
    assert ok(fast, "rollout", "history", resource) == history_text(full, [(1, "R1"), (2, "R2")])
    assert ok(fast, "rollout", "undo", resource, "--dry-run=server") == f"{full} rolled back (server dry run)\n"
    assert ok(fast, "rollout", "history", resource) == history_text(full, [(1, "R1"), (2, "R2")])

    assert ok(fast, "rollout", "undo", resource, "--to-revision=1") == f"{full} rolled back\n"
    # the equal revision is renumbered, keeping its own change-cause; the workload's annotation is not restored
    assert ok(fast, "rollout", "history", resource) == history_text(full, [(2, "R2"), (3, "R1")])
    assert get(fast, resource)["metadata"]["annotations"][CAUSE] == "R2"
    assert ok(fast, "rollout", "status", resource, "--timeout=20s").endswith(done)
    assert {p["spec"]["containers"][0]["image"] for p in get(fast, "pods")["items"]} == {"img:1"}
    described = ok(fast, "rollout", "history", resource, "--revision=3")
    assert described.startswith(f"{full} with revision #3\nPod Template:\n") and "Image:\timg:1" in described
    assert fails(fast, "rollout", "undo", resource, "--to-revision=9") == \
        "error: unable to find specified revision 9 in history\n"

    require_compact_json(fast, "/apis/apps/v1/namespaces/default/controllerrevisions")
    assert ok(fast, "rollout", "undo", resource, "--to-revision=3") == \
        f"{full} skipped rollback (current template already matches revision 3)\n"


def test_statefulset_bad_revision_pod_blocks_until_deleted(fast: kubesim.Sim) -> None:
    ok(fast, "apply", "-f", "-", input=workload_yaml("StatefulSet", "img:1", "R1"))
    ok(fast, "rollout", "status", "statefulset/db", "--timeout=20s")
    good = get(fast, "statefulset/db")["status"]["updateRevision"]
    ok(fast, "apply", "-f", "-", input=workload_yaml("StatefulSet", "img:broken", "R2"))
    bad = get(fast, "statefulset/db")["status"]["updateRevision"]
    stuck = kubectl(fast, "rollout", "status", "statefulset/db", "--timeout=1s", timeout=30)
    assert stuck.returncode == 1 and "Waiting for 1 pods to be ready..." in stuck.stdout

    assert ok(fast, "rollout", "undo", "statefulset/db") == "statefulset.apps/db rolled back\n"
    status = get(fast, "statefulset/db")["status"]
    assert status["updateRevision"] == good
    still = kubectl(fast, "rollout", "status", "statefulset/db", "--timeout=1s", timeout=30)
    assert still.returncode == 1 and "Waiting for 1 pods to be ready..." in still.stdout
    pod = get(fast, "pod/db-1")
    assert pod["metadata"]["labels"]["controller-revision-hash"] == bad
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"

    assert ok(fast, "delete", "pod", "db-1") == 'pod "db-1" deleted\n'
    assert ok(fast, "rollout", "status", "statefulset/db", "--timeout=20s").endswith(
        "partitioned roll out complete: 2 new pods have been updated...\n")
    assert get(fast, "pod/db-1")["metadata"]["labels"]["controller-revision-hash"] == good


def test_daemonset_bad_image_stalls_and_undo_recovers(fast: kubesim.Sim) -> None:
    ok(fast, "apply", "-f", "-", input=workload_yaml("DaemonSet", "img:1", "R1"))
    ok(fast, "rollout", "status", "daemonset/db", "--timeout=20s")
    ok(fast, "set", "image", "daemonset/db", "app=img:does-not-exist")
    stalled = kubectl(fast, "rollout", "status", "daemonset/db", "--timeout=1s", timeout=30)
    assert stalled.returncode == 1
    assert 'Waiting for daemon set "db" rollout to finish: 1 out of 2 new pods have been updated...' in stalled.stdout
    ok(fast, "rollout", "undo", "daemonset/db")
    assert ok(fast, "rollout", "status", "daemonset/db", "--timeout=20s").endswith(
        'daemon set "db" successfully rolled out\n')
