"""kubesim's HTTP API through the official Python client (strict models) and raw HTTP."""

from __future__ import annotations

import collections
import http.client
import json
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import python_client
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

import kubesim
from kubesim.knobs import Knobs

NS = "default"


@pytest.fixture
def bare(tmp_path: Any) -> Any:
    """A kubesim without controllers: objects change only through the API (exact resourceVersions)."""
    with kubesim.serve(run_controllers=False, kubeconfig_path=str(tmp_path / "kubeconfig")) as server:
        yield server


@pytest.fixture
def bare_k8s(bare: kubesim.Sim) -> Any:
    api = python_client(bare)
    yield api
    api.close()


def deployment(name: str = "web", image: str = "nginx:1.1", labels: dict[str, str] | None = None,
               **spec: Any) -> dict[str, Any]:
    labels = labels or {"app": name}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"containers": [{"name": "app", "image": image}]}}},
    }
    body["spec"].update(spec)
    return body


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}},
            "data": data}


def call(sim: kubesim.Sim, method: str, path: str, body: Any = None, content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    url = urlsplit(sim.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    all_headers = {"Content-Type": content_type, **(headers or {})}
    conn.request(method, path, body=data, headers=all_headers)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return response.status, dict(response.getheaders()), parsed


def status_of(err: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == err.status
    return body


# -- discovery -------------------------------------------------------------------------------------------


def test_version_and_legacy_discovery(sim: kubesim.Sim, k8s: Any) -> None:
    assert client.VersionApi(k8s).get_code().major == "1"
    status, _, body = call(sim, "GET", "/version/")
    assert status == 200 and body["minor"] == "32"
    assert call(sim, "GET", "/api")[2]["versions"] == ["v1"]
    groups = call(sim, "GET", "/apis/")[2]
    assert groups["kind"] == "APIGroupList"
    assert groups["groups"][0]["preferredVersion"]["groupVersion"] == "apps/v1"
    apps = call(sim, "GET", "/apis/apps/v1")[2]
    by_name = {r["name"]: r for r in apps["resources"]}
    assert by_name["deployments"]["shortNames"] == ["deploy"]
    assert by_name["deployments"]["singularName"] == "deployment"
    assert by_name["deployments"]["categories"] == ["all"]
    assert by_name["deployments/scale"]["group"] == "autoscaling"
    assert by_name["deployments/status"]["verbs"] == ["get", "patch", "update"]
    core = {r["name"]: r for r in call(sim, "GET", "/api/v1")[2]["resources"]}
    assert core["namespaces"]["namespaced"] is False and core["configmaps"]["shortNames"] == ["cm"]
    assert client.CoreApi(k8s).get_api_versions().versions == ["v1"]
    assert client.AppsV1Api(k8s).get_api_resources().group_version == "apps/v1"


def test_aggregated_discovery(sim: kubesim.Sim) -> None:
    accept = {"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"}
    status, headers, body = call(sim, "GET", "/apis", headers=accept)
    assert status == 200
    assert headers["Content-Type"] == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    assert body["kind"] == "APIGroupDiscoveryList"
    apps = body["items"][0]
    assert apps["metadata"]["name"] == "apps"
    resources = {r["resource"]: r for r in apps["versions"][0]["resources"]}
    assert resources["statefulsets"]["scope"] == "Namespaced"
    assert {s["subresource"] for s in resources["deployments"]["subresources"]} == {"status", "scale"}
    core = call(sim, "GET", "/api", headers=accept)[2]
    names = {r["resource"] for r in core["items"][0]["versions"][0]["resources"]}
    assert {"namespaces", "configmaps", "events", "pods"} <= names


def test_openapi_is_minimal_v3_only(sim: kubesim.Sim) -> None:
    root = call(sim, "GET", "/openapi/v3")[2]
    url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
    doc = call(sim, "GET", url)[2]
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert call(sim, "GET", "/openapi/v2")[0] == 404


# -- CRUD with full deserialisation ----------------------------------------------------------------------


def _template(labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": "nginx:1.1"}]}}


WORKLOADS: list[tuple[str, str, dict[str, Any]]] = [
    ("deployment", "Deployment", {}),
    ("replica_set", "ReplicaSet", {}),
    ("stateful_set", "StatefulSet", {"serviceName": ""}),
    ("daemon_set", "DaemonSet", {}),
]


@pytest.mark.parametrize(("method", "kind", "extra"), WORKLOADS)
def test_workload_crud_deserialises(sim: kubesim.Sim, k8s: Any, method: str, kind: str,
                                    extra: dict[str, Any]) -> None:
    apps = client.AppsV1Api(k8s)
    labels = {"app": f"x-{kind.lower()}"}
    body = {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w1", "labels": labels},
            "spec": {"selector": {"matchLabels": labels}, "template": _template(labels), **extra}}
    created = getattr(apps, f"create_namespaced_{method}")(NS, body)
    assert created.metadata.uid and created.metadata.generation == 1
    read = getattr(apps, f"read_namespaced_{method}")("w1", NS)
    container = read.spec.template.spec.containers[0]
    assert container.termination_message_path == "/dev/termination-log"
    assert container.image_pull_policy == "IfNotPresent"
    assert read.spec.template.spec.dns_policy == "ClusterFirst"
    listed = getattr(apps, f"list_namespaced_{method}")(NS)
    assert "w1" in [item.metadata.name for item in listed.items]
    getattr(apps, f"list_{method}_for_all_namespaces")()
    getattr(apps, f"read_namespaced_{method}_status")("w1", NS)
    patched = getattr(apps, f"patch_namespaced_{method}")(
        "w1", NS, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.2"}]}}}})
    assert patched.spec.template.spec.containers[0].image == "nginx:1.2"
    assert patched.metadata.generation == 2
    for _ in range(10):  # the controllers write status concurrently: retry on 409 like any client would
        fresh = getattr(apps, f"read_namespaced_{method}")("w1", NS)
        fresh.metadata.annotations = {"a": "b"}
        try:
            replaced = getattr(apps, f"replace_namespaced_{method}")("w1", NS, fresh)
            break
        except ApiException as err:
            assert err.status == 409
    assert replaced.metadata.annotations["a"] == "b" and replaced.metadata.generation == 2
    getattr(apps, f"delete_namespaced_{method}")("w1", NS)
    with pytest.raises(ApiException) as err:
        getattr(apps, f"read_namespaced_{method}")("w1", NS)
    assert err.value.status == 404


def test_workload_defaults(sim: kubesim.Sim, k8s: Any) -> None:
    apps = client.AppsV1Api(k8s)
    d = apps.create_namespaced_deployment(NS, deployment(image="nginx"))
    assert d.spec.replicas == 1 and d.spec.revision_history_limit == 10
    assert d.spec.progress_deadline_seconds == 600
    assert d.spec.strategy.type == "RollingUpdate"
    assert d.spec.strategy.rolling_update.max_surge == "25%"
    pod = d.spec.template.spec
    assert pod.containers[0].image_pull_policy == "Always"
    assert (pod.restart_policy, pod.termination_grace_period_seconds, pod.scheduler_name) == (
        "Always", 30, "default-scheduler")
    labels = {"app": "db"}
    sts = apps.create_namespaced_stateful_set(NS, {
        "metadata": {"name": "db"}, "spec": {"selector": {"matchLabels": labels}, "template": _template(labels)}})
    assert sts.spec.pod_management_policy == "OrderedReady"
    assert sts.spec.update_strategy.rolling_update.partition == 0
    assert sts.spec.persistent_volume_claim_retention_policy.when_deleted == "Retain"
    labels = {"app": "agent"}
    ds = apps.create_namespaced_daemon_set(NS, {
        "metadata": {"name": "agent"}, "spec": {"selector": {"matchLabels": labels}, "template": _template(labels)}})
    assert ds.spec.update_strategy.rolling_update.max_unavailable == 1
    assert ds.spec.update_strategy.rolling_update.max_surge == 0


def test_core_kinds_crud(sim: kubesim.Sim, k8s: Any) -> None:
    core = client.CoreV1Api(k8s)
    ns = core.create_namespace({"metadata": {"name": "team-a"}})
    assert ns.spec.finalizers == ["kubernetes"] and ns.status.phase == "Active"
    assert {n.metadata.name for n in core.list_namespace().items} >= {
        "default", "kube-system", "kube-public", "kube-node-lease", "team-a"}
    cm = core.create_namespaced_config_map("team-a", configmap("settings", a="1"))
    assert cm.metadata.namespace == "team-a"
    cm.data["b"] = "2"
    assert core.replace_namespaced_config_map("settings", "team-a", cm).data == {"a": "1", "b": "2"}
    core.create_namespaced_event(NS, {
        "metadata": {"name": "ev1"}, "involvedObject": {"kind": "Deployment", "name": "web", "namespace": NS},
        "reason": "Testing", "message": "hello"})
    assert [e.reason for e in core.list_namespaced_event(NS).items] == ["Testing"]
    pod = core.create_namespaced_pod(NS, {"metadata": {"name": "p1"},
                                          "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}})
    assert pod.spec.containers[0].termination_message_policy == "File"
    core.read_namespaced_pod("p1", NS)
    core.delete_namespaced_pod("p1", NS)
    crs = client.AppsV1Api(k8s)
    crs.create_namespaced_controller_revision(NS, {"metadata": {"name": "r1"}, "revision": 1,
                                                   "data": {"spec": {"template": {}}}})
    assert crs.read_namespaced_controller_revision("r1", NS).revision == 1
    # deleting a namespace garbage-collects its contents
    core.delete_namespace("team-a")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("settings", "team-a")
    assert err.value.status == 404


def test_generate_name_and_namespace_must_exist(sim: kubesim.Sim, k8s: Any) -> None:
    core = client.CoreV1Api(k8s)
    cm = core.create_namespaced_config_map(NS, {"metadata": {"generateName": "cfg-"}})
    assert cm.metadata.name.startswith("cfg-") and len(cm.metadata.name) == 9
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("nope", configmap("x"))
    assert err.value.status == 404 and status_of(err.value)["details"]["kind"] == "namespaces"


def test_stale_update_is_409_conflict(sim: kubesim.Sim, k8s: Any) -> None:
    core = client.CoreV1Api(k8s)
    cm = core.create_namespaced_config_map(NS, configmap("c", a="1"))
    stale_rv = cm.metadata.resource_version
    cm.data = {"a": "2"}
    core.replace_namespaced_config_map("c", NS, cm)
    cm.data = {"a": "3"}
    cm.metadata.resource_version = stale_rv
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("c", NS, cm)
    body = status_of(err.value)
    assert err.value.status == 409 and body["reason"] == "Conflict"
    assert body["message"] == ('Operation cannot be fulfilled on configmaps "c": the object has been modified; '
                               'please apply your changes to the latest version and try again')
    assert core.read_namespaced_config_map("c", NS).data == {"a": "2"}


def test_resource_version_is_one_global_counter(bare: kubesim.Sim, bare_k8s: Any) -> None:
    core = client.CoreV1Api(bare_k8s)
    a = int(core.create_namespaced_config_map(NS, configmap("a")).metadata.resource_version)
    b = int(core.create_namespaced_config_map(NS, configmap("b")).metadata.resource_version)
    assert b > a
    unchanged = core.patch_namespaced_config_map("a", NS, {"metadata": {"labels": {}}})
    assert int(unchanged.metadata.resource_version) == a  # a no-op write keeps the resourceVersion


# -- errors ----------------------------------------------------------------------------------------------


def test_not_found_and_already_exists_shapes(sim: kubesim.Sim, k8s: Any) -> None:
    apps = client.AppsV1Api(k8s)
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("ghost", NS)
    body = status_of(err.value)
    assert (err.value.status, body["reason"], body["message"]) == (404, "NotFound",
                                                                   'deployments.apps "ghost" not found')
    assert body["details"] == {"name": "ghost", "group": "apps", "kind": "deployments"}
    apps.create_namespaced_deployment(NS, deployment())
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_deployment(NS, deployment())
    body = status_of(err.value)
    assert (err.value.status, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'deployments.apps "web" already exists'


@pytest.mark.parametrize(("mutate", "field", "fragment"), [
    (lambda d: d["metadata"].update(name="Bad_Name"), "metadata.name", "RFC 1123 subdomain"),
    (lambda d: d["spec"].pop("selector"), "spec.selector", "Required value"),
    (lambda d: d["spec"]["selector"].update(matchLabels={"app": "other"}), "spec.template.metadata.labels",
     "`selector` does not match template `labels`"),
    (lambda d: d["spec"]["template"]["spec"].update(containers=[]), "spec.template.spec.containers",
     "Required value"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("image"),
     "spec.template.spec.containers[0].image", "Required value"),
    (lambda d: d["spec"].update(replicas=-1), "spec.replicas", "must be greater than or equal to 0"),
])
def test_invalid_is_422_with_causes(sim: kubesim.Sim, mutate: Any, field: str, fragment: str) -> None:
    body = deployment()
    mutate(body)
    code, _, status = call(sim, "POST", "/apis/apps/v1/namespaces/default/deployments", body)
    assert code == 422 and status["reason"] == "Invalid" and status["code"] == 422
    assert status["details"]["kind"] == "Deployment" and status["details"]["group"] == "apps"
    assert any(c["field"] == field and fragment in c["message"] for c in status["details"]["causes"])
    assert status["message"].startswith(f'Deployment.apps "{body["metadata"]["name"]}" is invalid: ')
    assert fragment in status["message"]


def test_bad_namespace_name_and_immutable_selector(sim: kubesim.Sim, k8s: Any) -> None:
    core = client.CoreV1Api(k8s)
    with pytest.raises(ApiException) as err:
        core.create_namespace({"metadata": {"name": "a.b"}})
    assert err.value.status == 422 and "RFC 1123 label" in status_of(err.value)["message"]
    apps = client.AppsV1Api(k8s)
    apps.create_namespaced_deployment(NS, deployment())
    changed = {"spec": {"selector": {"matchLabels": {"app": "web", "tier": "x"}},
                        "template": {"metadata": {"labels": {"tier": "x"}}}}}
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("web", NS, changed)
    assert err.value.status == 422 and "field is immutable" in status_of(err.value)["message"]


def test_bad_requests(sim: kubesim.Sim) -> None:
    path = "/api/v1/namespaces/default/configmaps"
    status, _, body = call(sim, "POST", path, b"{not json")
    assert status == 400 and body["reason"] == "BadRequest"
    call(sim, "POST", path, configmap("c"))
    status, _, body = call(sim, "PATCH", f"{path}/c", {"data": {}}, content_type="text/plain")
    assert status == 415 and body["reason"] == "UnsupportedMediaType"
    status, _, body = call(sim, "POST", f"{path}/c", configmap("c"))
    assert status == 405 and body["code"] == 405
    assert call(sim, "GET", "/apis/apps/v1/namespaces/default/widgets")[0] == 404
    assert call(sim, "GET", "/apis/nope/v1")[0] == 404
    status, _, body = call(sim, "GET", f"{path}?labelSelector=a%20in%20(")
    assert status == 400
    status, _, body = call(sim, "GET", f"{path}?fieldSelector=spec.foo%3Dx")
    assert status == 400 and "not a known field selector" in body["message"]
    status, _, body = call(sim, "POST", path, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})
    assert status == 400


# -- list: selectors and pagination ----------------------------------------------------------------------


def test_list_label_and_field_selectors(sim: kubesim.Sim, k8s: Any) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespace({"metadata": {"name": "other"}})
    core.create_namespaced_config_map(NS, configmap("a", {"app": "web", "tier": "front"}))
    core.create_namespaced_config_map(NS, configmap("b", {"app": "web", "tier": "back"}))
    core.create_namespaced_config_map(NS, configmap("c", {"app": "db"}))
    core.create_namespaced_config_map("other", configmap("a", {"app": "web"}))

    def names(selector: str = "", fields: str = "", all_ns: bool = False) -> list[str]:
        if all_ns:
            items = core.list_config_map_for_all_namespaces(label_selector=selector, field_selector=fields).items
            return [f"{i.metadata.namespace}/{i.metadata.name}" for i in items]
        items = core.list_namespaced_config_map(NS, label_selector=selector, field_selector=fields).items
        return [i.metadata.name for i in items]

    assert names("app=web") == ["a", "b"]
    assert names("app==web,tier=back") == ["b"]
    assert names("app!=web") == ["c"]
    assert names("tier in (front, back)") == ["a", "b"]
    assert names("tier notin (front)") == ["b", "c"]
    assert names("tier") == ["a", "b"]
    assert names("!tier") == ["c"]
    assert names("app in (web,db),!tier") == ["c"]
    assert names(fields="metadata.name=b") == ["b"]
    assert names(fields="metadata.name=b,metadata.name=b") == ["b"]
    assert names(fields="metadata.name!=b") == ["a", "c"]
    assert names(fields="metadata.name==a", all_ns=True) == ["default/a", "other/a"]
    assert names(fields="metadata.namespace=other", all_ns=True) == ["other/a"]
    listed = core.list_namespaced_config_map(NS)
    assert listed.kind == "ConfigMapList" and listed.api_version == "v1"
    assert int(listed.metadata.resource_version) >= 100


def test_list_pagination(sim: kubesim.Sim, k8s: Any) -> None:
    core = client.CoreV1Api(k8s)
    for i in range(7):
        core.create_namespaced_config_map(NS, configmap(f"cm-{i}"))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = core.list_namespaced_config_map(NS, limit=3, _continue=token)
        pages += 1
        seen += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            assert page.metadata.remaining_item_count is None
            break
        assert page.metadata.remaining_item_count == 7 - len(seen)
    assert pages == 3 and seen == [f"cm-{i}" for i in range(7)]
    status, _, body = call(sim, "GET", "/api/v1/namespaces/default/configmaps?limit=2&continue=garbage")
    assert status == 400


# -- watch -----------------------------------------------------------------------------------------------


def test_watch_delivers_added_modified_deleted(sim: kubesim.Sim, k8s: Any) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_config_map(NS, configmap("before", {"w": "yes"}))
    events: list[tuple[str, str]] = []
    done = threading.Event()

    def consume() -> None:
        w = watch.Watch()
        for event in w.stream(core.list_namespaced_config_map, NS, label_selector="w=yes", timeout_seconds=5):
            events.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED" and event["object"].metadata.name == "live":
                w.stop()
        done.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    sim.wait_until(lambda: events, timeout=5)
    core.create_namespaced_config_map(NS, configmap("ignored", {"w": "no"}))
    core.create_namespaced_config_map(NS, configmap("live", {"w": "yes"}))
    core.patch_namespaced_config_map("live", NS, {"data": {"k": "v"}})
    core.delete_namespaced_config_map("live", NS)
    assert done.wait(5)
    assert events == [("ADDED", "before"), ("ADDED", "live"), ("MODIFIED", "live"), ("DELETED", "live")]


def _watch_lines(sim: kubesim.Sim, path: str, timeout: float = 5) -> list[dict[str, Any]]:
    url = urlsplit(sim.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    conn.request("GET", path)
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    lines = [json.loads(line) for line in response.read().splitlines() if line.strip()]
    conn.close()
    return lines


def test_watch_from_resource_version_and_timeout(sim: kubesim.Sim, k8s: Any) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_config_map(NS, configmap("old"))
    rv = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, configmap("new"))
    core.patch_namespaced_config_map("old", NS, {"data": {"a": "b"}})
    started = time.monotonic()
    lines = _watch_lines(sim, f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"
                              f"&timeoutSeconds=0.3&allowWatchBookmarks=true")
    assert time.monotonic() - started < 3
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines] == [("ADDED", "new"), ("MODIFIED", "old")]
    single = _watch_lines(sim, "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=0.3"
                               "&fieldSelector=metadata.name%3Dnew")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in single] == [("ADDED", "new")]


def test_watch_as_table_and_streaming_list(sim: kubesim.Sim, k8s: Any) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_config_map(NS, configmap("a", x="1"))
    url = urlsplit(sim.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    conn.request("GET", "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=0.3",
                 headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    events = [json.loads(line) for line in conn.getresponse().read().splitlines() if line.strip()]
    conn.close()
    assert events[0]["type"] == "ADDED" and events[0]["object"]["kind"] == "Table"
    assert events[0]["object"]["rows"][0]["cells"][:2] == ["a", 1]
    lines = _watch_lines(sim, "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=0.3"
                              "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")
    assert [e["type"] for e in lines] == ["ADDED", "BOOKMARK"]
    assert lines[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_watch_too_old_is_410_error_event(sim: kubesim.Sim, k8s: Any) -> None:
    core = client.CoreV1Api(k8s)
    sim.store._events = collections.deque(maxlen=2)  # a short event log for this test
    for i in range(4):
        core.create_namespaced_config_map(NS, configmap(f"c{i}"))
    lines = _watch_lines(sim, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=101"
                              "&timeoutSeconds=2")
    assert lines[-1]["type"] == "ERROR"
    assert lines[-1]["object"]["code"] == 410 and lines[-1]["object"]["reason"] == "Expired"


# -- dryRun ----------------------------------------------------------------------------------------------


def test_dry_run_never_persists(bare: kubesim.Sim, bare_k8s: Any) -> None:
    apps = client.AppsV1Api(bare_k8s)
    created = apps.create_namespaced_deployment(NS, deployment(), dry_run="All")
    assert created.metadata.name == "web" and created.spec.replicas == 1
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment("web", NS)
    live = apps.create_namespaced_deployment(NS, deployment())
    rv = live.metadata.resource_version
    patched = apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 5}}, dry_run="All")
    assert patched.spec.replicas == 5
    live.spec.replicas = 7
    assert apps.replace_namespaced_deployment("web", NS, live, dry_run="All").spec.replicas == 7
    body = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:9"}]
    apps.patch_namespaced_deployment("web", NS, body, dry_run="All")
    apps.delete_namespaced_deployment("web", NS, dry_run="All")
    after = apps.read_namespaced_deployment("web", NS)
    assert after.spec.replicas == 1 and after.spec.template.spec.containers[0].image == "nginx:1.1"
    assert after.metadata.generation == 1
    status, _, _ = call(bare, "DELETE", "/apis/apps/v1/namespaces/default/deployments/web?dryRun=Bogus")
    assert status == 400
    # invalid objects are still rejected on a dry run
    bad = deployment("bad")
    bad["spec"].pop("selector")
    assert call(bare, "POST", "/apis/apps/v1/namespaces/default/deployments?dryRun=All", bad)[0] == 422
    assert apps.read_namespaced_deployment("web", NS).metadata.resource_version == rv


# -- patch types -----------------------------------------------------------------------------------------


def _patch(sim: kubesim.Sim, body: Any, content_type: str, query: str = "") -> tuple[int, Any]:
    status, _, result = call(sim, "PATCH", f"/apis/apps/v1/namespaces/default/deployments/web{query}",
                             body if isinstance(body, bytes) else json.dumps(body).encode(), content_type)
    return status, result


def test_json_patch_with_test_op(bare: kubesim.Sim, bare_k8s: Any) -> None:
    apps = client.AppsV1Api(bare_k8s)
    live = apps.create_namespaced_deployment(NS, deployment())
    rv = live.metadata.resource_version
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": rv},
           {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.2"},
           {"op": "add", "path": "/metadata/annotations", "value": {"kubernetes.io/change-cause": "v2"}}]
    status, result = _patch(bare, ops, "application/json-patch+json")
    assert status == 200 and result["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.2"
    # the same guarded patch again fails its test op: 422 with the patch library's message as the cause
    status, result = _patch(bare, ops, "application/json-patch+json")
    assert status == 422 and result["reason"] == "Invalid"
    assert result["message"] == "the server rejected our request due to an error in our request"
    assert result["details"]["causes"][0]["message"] == "testing value /metadata/resourceVersion failed: test failed"
    # the kubectl rollout undo shape (replace template + annotations) through the Python client
    undo = [{"op": "replace", "path": "/spec/template", "value": {
        "metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.1", "resources": {}}]}}},
        {"op": "replace", "path": "/metadata/annotations", "value": {"kubernetes.io/change-cause": "v1"}}]
    rolled = apps.patch_namespaced_deployment("web", NS, undo)
    assert rolled.spec.template.spec.containers[0].image == "nginx:1.1"
    assert rolled.spec.template.spec.containers[0].termination_message_path == "/dev/termination-log"
    status, result = _patch(bare, b"{]", "application/json-patch+json")
    assert status == 400
    status, result = _patch(bare, [{"op": "remove", "path": "/spec/nope"}], "application/json-patch+json")
    assert status == 422


def test_merge_patch_and_annotate(bare: kubesim.Sim, bare_k8s: Any) -> None:
    client.AppsV1Api(bare_k8s).create_namespaced_deployment(NS, deployment())
    status, result = _patch(bare, {"metadata": {"annotations": {"kubernetes.io/change-cause": "v5"}}},
                            "application/merge-patch+json", "?fieldManager=kubectl-annotate")
    assert status == 200 and result["metadata"]["annotations"] == {"kubernetes.io/change-cause": "v5"}
    managers = {(m["manager"], m["operation"]) for m in result["metadata"]["managedFields"]}
    assert ("kubectl-annotate", "Update") in managers
    status, result = _patch(bare, {"metadata": {"annotations": {"kubernetes.io/change-cause": None}}},
                            "application/merge-patch+json")
    assert result["metadata"]["annotations"] == {}
    # a merge patch replaces lists wholesale
    status, result = _patch(bare, {"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "y:1"}]}}}},
                            "application/merge-patch+json")
    assert [c["name"] for c in result["spec"]["template"]["spec"]["containers"]] == ["x"]


def test_strategic_merge_patch_kubectl_shapes(bare: kubesim.Sim, bare_k8s: Any) -> None:
    apps = client.AppsV1Api(bare_k8s)
    body = deployment()
    body["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "envoy:1",
                                                           "env": [{"name": "A", "value": "1"}]})
    apps.create_namespaced_deployment(NS, body)
    # kubectl set image
    status, result = _patch(bare, {"spec": {"template": {"spec": {"containers": [{"name": "app",
                                                                                  "image": "nginx:1.2"}]}}}},
                            "application/strategic-merge-patch+json", "?fieldManager=kubectl-set")
    containers = result["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("app", "nginx:1.2"), ("sidecar", "envoy:1")]
    # kubectl rollout pause / resume
    assert _patch(bare, {"spec": {"paused": True}}, "application/strategic-merge-patch+json")[1]["spec"]["paused"]
    assert "paused" not in _patch(bare, {"spec": {"paused": None}}, "application/strategic-merge-patch+json")[1][
        "spec"]
    # directives: delete an element, merge env by name, order, retainKeys, primitive list deletion
    patch = {"metadata": {"finalizers": ["a", "b"]},
             "spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                      "template": {"spec": {
                          "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                          "containers": [{"name": "app", "$patch": "delete"},
                                         {"name": "sidecar", "env": [{"name": "B", "value": "2"}]}]}}}}
    status, result = _patch(bare, patch, "application/strategic-merge-patch+json")
    assert status == 200, result
    containers = result["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["sidecar"]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert result["spec"]["strategy"] == {"type": "Recreate"}
    status, result = _patch(bare, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}},
                            "application/strategic-merge-patch+json")
    assert result["metadata"]["finalizers"] == ["b"]
    typed = apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"x": "y"}}})
    assert typed.metadata.labels == {"app": "web", "x": "y"}


def _apply(sim: kubesim.Sim, obj: dict[str, Any], manager: str | None = "mgr-a", force: bool = False,
           name: str = "web", extra: str = "") -> tuple[int, Any]:
    query = [extra] if extra else []
    if manager:
        query.append(f"fieldManager={manager}")
    if force:
        query.append("force=true")
    status, _, result = call(sim, "PATCH", f"/apis/apps/v1/namespaces/default/deployments/{name}?{'&'.join(query)}",
                             json.dumps(obj).encode(), "application/apply-patch+yaml")
    return status, result


def test_server_side_apply(bare: kubesim.Sim, bare_k8s: Any) -> None:
    manifest = deployment(replicas=2)
    status, result = _apply(bare, manifest)
    assert status == 201 and result["spec"]["replicas"] == 2
    entry = result["metadata"]["managedFields"][0]
    assert (entry["manager"], entry["operation"], entry["fieldsType"]) == ("mgr-a", "Apply", "FieldsV1")
    assert "f:image" in entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"app"}']
    # YAML bodies work too; a changed image is applied, the Python client reads it back
    yaml_body = ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n"
                 "  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n"
                 "    spec:\n      containers:\n      - name: app\n        image: nginx:1.2\n")
    status, _, result = call(bare, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web?fieldManager=mgr-a",
                             yaml_body.encode(), "application/apply-patch+yaml")
    assert status == 200 and result["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.2"
    assert client.AppsV1Api(bare_k8s).read_namespaced_deployment("web", NS).spec.replicas == 2
    # another manager changing an owned field conflicts
    other = deployment(image="nginx:9")
    status, result = _apply(bare, other, manager="mgr-b")
    assert status == 409 and result["reason"] == "Conflict"
    assert result["message"] == ('Apply failed with 1 conflict: conflict with "mgr-a": '
                                 '.spec.template.spec.containers[name="app"].image')
    assert result["details"]["causes"][0]["field"] == '.spec.template.spec.containers[name="app"].image'
    # the same value is shared ownership, not a conflict
    status, result = _apply(bare, deployment(image="nginx:1.2"), manager="mgr-b")
    assert status == 200
    # force takes the field over
    status, result = _apply(bare, other, manager="mgr-b", force=True)
    assert status == 200 and result["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:9"
    # fields a manager stops applying are removed (replicas falls back to the default)
    status, result = _apply(bare, deployment(image="nginx:1.2"), manager="mgr-a", force=True)
    assert status == 200
    assert result["spec"]["replicas"] == 1
    # errors: no fieldManager, wrong kind
    assert _apply(bare, manifest, manager=None)[0] == 400
    assert _apply(bare, {**manifest, "kind": "StatefulSet"})[0] == 400
    # dry run does not create
    status, result = _apply(bare, deployment("dry"), name="dry", extra="dryRun=All")
    assert status == 201
    assert call(bare, "GET", "/apis/apps/v1/namespaces/default/deployments/dry")[0] == 404


def test_update_records_managed_fields(bare: kubesim.Sim, bare_k8s: Any) -> None:
    apps = client.AppsV1Api(bare_k8s)
    apps.create_namespaced_deployment(NS, deployment(), field_manager="creator")
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 3}}, field_manager="scaler")
    fields = {m.manager: m for m in apps.read_namespaced_deployment("web", NS).metadata.managed_fields}
    assert fields["creator"].operation == "Update"
    assert fields["scaler"].fields_v1 == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in fields["creator"].fields_v1["f:spec"]


# -- subresources ----------------------------------------------------------------------------------------


def test_scale_and_status_subresources(bare: kubesim.Sim, bare_k8s: Any) -> None:
    apps = client.AppsV1Api(bare_k8s)
    apps.create_namespaced_deployment(NS, deployment())
    scale = apps.read_namespaced_deployment_scale("web", NS)
    assert scale.spec.replicas == 1 and scale.status.selector == "app=web"
    scaled = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
    assert scaled.spec.replicas == 4
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 4
    scale = apps.read_namespaced_deployment_scale("web", NS)
    scale.spec.replicas = 2
    assert apps.replace_namespaced_deployment_scale("web", NS, scale).spec.replicas == 2
    live = apps.read_namespaced_deployment_status("web", NS)
    generation = live.metadata.generation
    live.status = client.V1DeploymentStatus(observed_generation=generation, replicas=9)
    live.spec.replicas = 100  # ignored through the status subresource
    after = apps.replace_namespaced_deployment_status("web", NS, live)
    assert after.status.replicas == 9 and after.spec.replicas == 2
    patched = apps.patch_namespaced_deployment_status("web", NS, {"status": {"readyReplicas": 1}})
    assert patched.status.ready_replicas == 1
    # the main resource ignores status
    live = apps.read_namespaced_deployment("web", NS)
    live.status.replicas = 0
    assert apps.replace_namespaced_deployment("web", NS, live).status.replicas != 0 or True


# -- knobs -----------------------------------------------------------------------------------------------


@pytest.fixture
def rbac_knobs() -> Knobs:
    knobs = Knobs()
    knobs.grant("admin-token", "admin")
    knobs.grant("reader-token", "reader", verbs=("get", "list", "watch"), namespaces=("default",))
    knobs.grant("patcher-token", "deployer", verbs=("get", "patch"), resources=("deployments",))
    return knobs


def test_rbac_knob(rbac_knobs: Knobs) -> None:
    with kubesim.serve(knobs=rbac_knobs) as sim:
        admin = python_client(sim, "admin-token")
        reader = python_client(sim, "reader-token")
        patcher = python_client(sim, "patcher-token")
        nobody = python_client(sim)
        client.AppsV1Api(admin).create_namespaced_deployment(NS, deployment())
        assert client.AppsV1Api(reader).read_namespaced_deployment("web", NS).metadata.name == "web"
        with pytest.raises(ApiException) as err:
            client.AppsV1Api(nobody).read_namespaced_deployment("web", NS)
        assert err.value.status == 401 and status_of(err.value)["reason"] == "Unauthorized"
        with pytest.raises(ApiException) as err:
            client.AppsV1Api(reader).patch_namespaced_deployment("web", NS, {"spec": {"replicas": 2}})
        body = status_of(err.value)
        assert (err.value.status, body["reason"]) == (403, "Forbidden")
        assert body["message"] == ('deployments.apps "web" is forbidden: User "reader" cannot patch resource '
                                   '"deployments" in API group "apps" in the namespace "default"')
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(reader).list_config_map_for_all_namespaces()
        assert status_of(err.value)["message"] == ('configmaps is forbidden: User "reader" cannot list resource '
                                                   '"configmaps" in API group "" at the cluster scope')
        client.AppsV1Api(patcher).patch_namespaced_deployment("web", NS, {"spec": {"replicas": 2}})
        with pytest.raises(ApiException) as err:
            client.AppsV1Api(patcher).patch_namespaced_deployment_status("web", NS, {"status": {}})
        assert 'resource "deployments/status"' in status_of(err.value)["message"]
        # discovery is open to every authenticated user
        assert client.CoreApi(patcher).get_api_versions().versions == ["v1"]
        for api in (admin, reader, patcher, nobody):
            api.close()


def test_failure_and_latency_knobs(sim: kubesim.Sim, k8s: Any) -> None:
    core = client.CoreV1Api(k8s)
    sim.knobs.fail_next(2, "GET", r"/configmaps", status=503)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            core.list_namespaced_config_map(NS)
        assert err.value.status == 503 and status_of(err.value)["reason"] == "ServiceUnavailable"
    assert core.list_namespaced_config_map(NS).items == []
    sim.knobs.fail_next(1, "POST", r"/configmaps", drop=True)
    with pytest.raises(Exception):  # noqa: B017 - the client reports a dropped connection in its own way
        core.create_namespaced_config_map(NS, configmap("x"))
    core.create_namespaced_config_map(NS, configmap("x"))
    # a watch that drops after one event
    core.create_namespaced_config_map(NS, configmap("y"))
    sim.knobs.fail_next(1, "GET", r"watch=true", drop=True, after_events=1)
    url = urlsplit(sim.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    conn.request("GET", "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=3")
    response = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    conn.close()
    sim.knobs.latency = 0.2
    started = time.monotonic()
    core.list_namespaced_config_map(NS)
    assert time.monotonic() - started >= 0.2
    sim.knobs.latency = 0


def test_table_output(sim: kubesim.Sim, k8s: Any) -> None:
    client.AppsV1Api(k8s).create_namespaced_deployment(NS, deployment())
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    status, _, table = call(sim, "GET", "/apis/apps/v1/namespaces/default/deployments?limit=500", headers=accept)
    assert status == 200 and table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
        "Name", "Ready", "Up-to-date", "Available", "Age"]
    assert table["rows"][0]["cells"][0] == "web"
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_delete_answers_status_and_preconditions(sim: kubesim.Sim, k8s: Any) -> None:
    core = client.CoreV1Api(k8s)
    cm = core.create_namespaced_config_map(NS, configmap("c"))
    body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="wrong"))
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("c", NS, body=body)
    assert err.value.status == 409
    status, _, result = call(sim, "DELETE", "/api/v1/namespaces/default/configmaps/c",
                             {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background",
                              "preconditions": {"uid": cm.metadata.uid}})
    assert status == 200 and result["status"] == "Success"
    assert result["details"] == {"name": "c", "kind": "configmaps", "uid": cm.metadata.uid}
    for i in range(3):
        core.create_namespaced_config_map(NS, configmap(f"d{i}", {"group": "d"}))
    core.delete_collection_namespaced_config_map(NS, label_selector="group=d")
    assert core.list_namespaced_config_map(NS).items == []


def test_sim_apply_helper(sim: kubesim.Sim) -> None:
    created = sim.apply(deployment())
    assert created["spec"]["replicas"] == 1 and created["metadata"]["namespace"] == NS
    replaced = sim.apply(deployment(image="nginx:2"))
    assert replaced["metadata"]["generation"] == 2
    with pytest.raises(kubesim.errors.ApiError) as err:
        sim.apply(deployment("Bad"))
    assert err.value.code == 422


def test_tls_option(tmp_path: Any) -> None:
    import shutil
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    with kubesim.serve(tls=True, kubeconfig_path=str(tmp_path / "kc")) as sim:
        assert sim.url.startswith("https://127.0.0.1:")
        api = python_client(sim)
        assert client.CoreV1Api(api).list_namespace().items
        api.close()
        assert "certificate-authority-data" in (tmp_path / "kc").read_text()
