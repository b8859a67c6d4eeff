"""kubesim's Secrets, autoscaling/v2 HorizontalPodAutoscalers and metadata-only reads, checked against the real
kubectl and raw HTTP the way client-go's metadata client asks (``as=PartialObjectMetadata``)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from conftest import kubectl
from helpers import make_deployment

import kubesim

PARTIAL = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
PARTIAL_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def get(sim: kubesim.Sim, path: str, accept: str) -> tuple[int, str, Any]:
    request = urllib.request.Request(sim.url + path, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], json.loads(err.read())


def test_kubectl_creates_and_reads_secrets(sim: kubesim.Sim) -> None:
    kubectl(sim, "create", "secret", "generic", "db", "--from-literal=password=s3cret", check=True)
    shown = json.loads(kubectl(sim, "get", "secret", "db", "-o", "json", check=True).stdout)
    assert shown["type"] == "Opaque"
    assert base64.b64decode(shown["data"]["password"]) == b"s3cret"
    table = kubectl(sim, "get", "secrets", check=True).stdout
    assert table.split("\n")[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert table.split("\n")[1].split()[:3] == ["db", "Opaque", "1"]


def test_string_data_is_merged_into_data_and_bad_base64_is_refused(sim: kubesim.Sim) -> None:
    created = sim.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                         "data": {"a": base64.b64encode(b"1").decode()}, "stringData": {"b": "2"}})
    assert "stringData" not in created
    assert {k: base64.b64decode(v) for k, v in created["data"].items()} == {"a": b"1", "b": b"2"}
    bad = kubectl(sim, "apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"}, "data": {"x": "not base64!"}}))
    assert bad.returncode != 0 and "illegal base64 data" in bad.stderr


def test_metadata_only_get_and_list_never_carry_data(sim: kubesim.Sim) -> None:
    sim.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "labels": {"app": "web"}},
               "stringData": {"password": "s3cret"}})
    status, content_type, body = get(sim, "/api/v1/namespaces/default/secrets/db", PARTIAL)
    assert status == 200 and content_type == PARTIAL
    assert body["kind"] == "PartialObjectMetadata" and body["apiVersion"] == "meta.k8s.io/v1"
    assert set(body) == {"kind", "apiVersion", "metadata"} and body["metadata"]["labels"] == {"app": "web"}
    assert body["metadata"]["creationTimestamp"] and body["metadata"]["managedFields"]
    status, content_type, listed = get(sim, "/api/v1/namespaces/default/secrets", PARTIAL_LIST)
    assert status == 200 and listed["kind"] == "PartialObjectMetadataList"
    assert [set(item) for item in listed["items"]] == [{"kind", "apiVersion", "metadata"}]
    assert "s3cret" not in json.dumps(listed) and all("data" not in item for item in listed["items"])


@pytest.mark.parametrize("accept,status", [
    (PARTIAL_LIST, 406),  # a get must ask for the object, not the list
    ("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v9", 406),
    (PARTIAL + ",application/json", 200),  # with a plain JSON fallback the server may answer that
])
def test_metadata_only_negotiation(sim: kubesim.Sim, accept: str, status: int) -> None:
    sim.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "b"}})
    code, _, body = get(sim, "/api/v1/namespaces/default/configmaps/cfg", accept)
    assert code == status
    if status == 406:
        assert body["kind"] == "Status" and body["reason"] == "NotAcceptable"


def test_kubectl_applies_and_reads_an_autoscaling_v2_hpa(sim: kubesim.Sim) -> None:
    make_deployment(sim, "web")
    kubectl(sim, "apply", "-f", "-", check=True, input=json.dumps(
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                  "minReplicas": 2, "maxReplicas": 5}}))
    hpa = json.loads(kubectl(sim, "get", "hpa", "web", "-o", "json", check=True).stdout)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    table = kubectl(sim, "get", "horizontalpodautoscalers", check=True).stdout.split("\n")
    assert table[0].split()[:5] == ["NAME", "REFERENCE", "MINPODS", "MAXPODS", "REPLICAS"]
    assert table[1].split()[:4] == ["web", "Deployment/web", "2", "5"]


@pytest.mark.parametrize("spec,cause", [
    ({"scaleTargetRef": {"kind": "Deployment"}, "maxReplicas": 3}, "spec.scaleTargetRef.name: Required value"),
    ({"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 0}, "spec.maxReplicas"),
    ({"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 4, "maxReplicas": 3},
     "must be greater than or equal to `minReplicas`"),
])
def test_invalid_hpas_are_refused(sim: kubesim.Sim, spec: dict[str, Any], cause: str) -> None:
    result = kubectl(sim, "apply", "-f", "-", input=json.dumps(
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
         "spec": spec}))
    assert result.returncode != 0 and cause in result.stderr


def test_hpa_defaults(sim: kubesim.Sim) -> None:
    created = sim.apply({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                         "metadata": {"name": "h"},
                         "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3}})
    assert created["spec"]["minReplicas"] == 1
    assert created["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]


def test_the_autoscaling_group_is_discovered(sim: kubesim.Sim) -> None:
    _, _, group = get(sim, "/apis/autoscaling", "application/json")
    assert group["kind"] == "APIGroup" and group["preferredVersion"]["groupVersion"] == "autoscaling/v2"
    resources = kubectl(sim, "api-resources", "--api-group=autoscaling", check=True).stdout
    assert "horizontalpodautoscalers" in resources and "hpa" in resources
