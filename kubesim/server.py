"""The HTTP half of kubesim: discovery, routing, verbs, dryRun, watch streaming, content negotiation and the
test knobs (failures, latency, RBAC), on a threaded HTTP/1.1 server bound to 127.0.0.1."""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import yaml

from . import defaults, errors, faults, patching, pods, selectors
from .clock import Clock
from .knobs import FailureRule, Knobs
from .resources import (
    CONFIGMAPS,
    CONTROLLERREVISIONS,
    DAEMONSETS,
    DEPLOYMENTS,
    EVENTS,
    GROUP_VERSIONS,
    HORIZONTALPODAUTOSCALERS,
    LEASES,
    NAMESPACES,
    PODS,
    REPLICASETS,
    RESOURCES,
    SECRETS,
    STATEFULSETS,
    ResourceType,
    lookup,
)
from .store import Obj, Store

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-kubesim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
SUBRESOURCE_VERBS = ("get", "patch", "update")
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")
WATCH_POLL = 0.25  # real seconds between checks of a watch's deadline and the server's shutdown flag

_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid",
            429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def encode_json(body: Any) -> bytes:
    """JSON bytes as the real API server (Go's encoding/json) writes them: no spaces, UTF-8, and ``<``, ``>``,
    ``&``, U+2028, U+2029 escaped. kubectl's StatefulSet/DaemonSet "skipped rollback" check compares a
    ControllerRevision's ``data`` bytes as served with the bytes Go marshals, so spacing matters."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    for char, escape in _GO_ESCAPES.items():
        text = text.replace(char, escape)
    return text.encode("utf-8")


class Reconciler(Protocol):
    def reconcile(self) -> None: ...


def injected_error(code: int, retry_after: int | None = None) -> errors.ApiError:
    """The answer of a failure rule; with ``retry_after`` also the ``Retry-After`` header (sent by ``_send``) and
    ``details.retryAfterSeconds``, as the API server's throttling answers carry both."""
    error = errors.ApiError(code, _REASONS.get(code, "Unknown"), f"kubesim: injected failure (HTTP {code})",
                            {"retryAfterSeconds": retry_after} if retry_after is not None else None)
    error.retry_after = retry_after  # type: ignore[attr-defined]
    return error


class _DropConnection(Exception):
    """Close the connection without answering."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any
    body: bytes

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    @property
    def dry_run(self) -> bool:
        values = self.query.get("dryRun") or []
        for value in values:
            if value != "All":
                raise errors.bad_request(f'Invalid value: "{value}": supported values: "All"')
        return bool(values)

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()

    def accepts(self, fragment: str) -> bool:
        return fragment in (self.headers.get("Accept") or "")


@dataclass
class Route:
    rt: ResourceType
    namespace: str | None  # None: cluster scope or all namespaces
    name: str | None
    subresource: str | None


# -- discovery documents ---------------------------------------------------------------------------------


def _resources_in(group: str, version: str) -> list[ResourceType]:
    return [rt for rt in RESOURCES if rt.group == group and rt.version == version]


def _subresource_kind(rt: ResourceType, sub: str) -> tuple[str, str, str]:
    if sub == "scale":
        return "autoscaling", "v1", "Scale"
    return rt.group, rt.version, rt.kind


def _subresource_verbs(sub: str) -> list[str]:
    return ["get"] if sub == "log" else list(SUBRESOURCE_VERBS)


def api_resource_list(group: str, version: str) -> Obj:
    resources: list[Obj] = []
    for rt in _resources_in(group, version):
        entry: Obj = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                      "kind": rt.kind, "verbs": list(rt.verbs)}
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            sub_group, sub_version, sub_kind = _subresource_kind(rt, sub)
            sub_entry: Obj = {"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced,
                              "kind": sub_kind, "verbs": _subresource_verbs(sub)}
            if sub == "scale":
                sub_entry["group"] = sub_group
                sub_entry["version"] = sub_version
            resources.append(sub_entry)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources}


def _discovery_group(group: str) -> Obj:
    versions = []
    for g, version in GROUP_VERSIONS:
        if g != group:
            continue
        resources = []
        for rt in _resources_in(group, version):
            entry: Obj = {"resource": rt.plural,
                          "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                          "scope": "Namespaced" if rt.namespaced else "Cluster",
                          "singularResource": rt.singular, "verbs": list(rt.verbs)}
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            subs = []
            for sub in rt.subresources:
                sub_group, sub_version, sub_kind = _subresource_kind(rt, sub)
                subs.append({"subresource": sub,
                             "responseKind": {"group": sub_group, "version": sub_version, "kind": sub_kind},
                             "verbs": _subresource_verbs(sub)})
            if subs:
                entry["subresources"] = subs
            resources.append(entry)
        versions.append({"version": version, "resources": resources, "freshness": "Current"})
    metadata: Obj = {"creationTimestamp": None}
    if group:
        metadata["name"] = group
    return {"metadata": metadata, "versions": versions}


def aggregated_discovery(core: bool) -> Obj:
    groups = [""] if core else sorted({g for g, _ in GROUP_VERSIONS if g})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
            "items": [_discovery_group(g) for g in groups]}


def api_group(group: str) -> Obj:
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for g, v in GROUP_VERSIONS if g == group]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions,
            "preferredVersion": versions[0]}


def api_group_list() -> Obj:
    groups = sorted({g for g, _ in GROUP_VERSIONS if g})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {k: v for k, v in api_group(g).items() if k not in ("kind", "apiVersion")} for g in groups]}


OPENAPI_HASH = "6B6E6265C5C1E5D7"


def openapi_v3_document(group: str, version: str) -> Obj:
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths: Obj = {}
    for rt in _resources_in(group, version):
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        scope = f"{prefix}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{prefix}/{rt.plural}"
        query = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                 for n in ("dryRun", "fieldManager", "fieldValidation")]
        response = {"200": {"description": "OK"}}
        paths[f"{scope}/{{name}}"] = {
            "get": {"operationId": f"read{rt.kind}", "x-kubernetes-action": "get",
                    "x-kubernetes-group-version-kind": gvk, "responses": response},
            "put": {"operationId": f"replace{rt.kind}", "x-kubernetes-action": "put",
                    "x-kubernetes-group-version-kind": gvk, "parameters": query, "responses": response},
            "patch": {"operationId": f"patch{rt.kind}", "x-kubernetes-action": "patch",
                      "x-kubernetes-group-version-kind": gvk,
                      "parameters": query + [{"name": "force", "in": "query", "schema": {"type": "boolean"}}],
                      "responses": response},
            "delete": {"operationId": f"delete{rt.kind}", "x-kubernetes-action": "delete",
                       "x-kubernetes-group-version-kind": gvk, "responses": response},
        }
        paths[scope] = {
            "get": {"operationId": f"list{rt.kind}", "x-kubernetes-action": "list",
                    "x-kubernetes-group-version-kind": gvk, "responses": response},
            "post": {"operationId": f"create{rt.kind}", "x-kubernetes-action": "post",
                     "x-kubernetes-group-version-kind": gvk, "parameters": query, "responses": response},
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (kubesim)", "version": "v1.32.0"},
            "paths": paths, "components": {"schemas": {}}}


# -- protobuf request bodies -----------------------------------------------------------------------------
#
# kubectl's typed clients (``kubectl create configmap|deployment|namespace``) send bodies as
# ``application/vnd.kubernetes.protobuf``: the bytes ``k8s\0`` and a ``runtime.Unknown`` envelope (1: TypeMeta
# {1: apiVersion, 2: kind}, 2: the object's message). Below is a decoder for the wire format and the field numbers
# of the messages those commands use (from the published ``generated.proto`` files); unknown fields are skipped.
# Zero values of non-pointer fields are dropped like ``omitempty`` would; "?" marks pointer fields whose zero
# value is meaningful.

ProtoField = tuple[str, Any, bool]  # json name, kind, repeated

_TIME: dict[int, ProtoField] = {1: ("seconds", "int", False), 2: ("nanos", "int", False)}
_OWNER_REF: dict[int, ProtoField] = {1: ("kind", "string", False), 3: ("name", "string", False),
                                     4: ("uid", "string", False), 5: ("apiVersion", "string", False),
                                     6: ("controller", "bool?", False), 7: ("blockOwnerDeletion", "bool?", False)}
_OBJECT_META: dict[int, ProtoField] = {
    1: ("name", "string", False), 2: ("generateName", "string", False), 3: ("namespace", "string", False),
    5: ("uid", "string", False), 6: ("resourceVersion", "string", False), 7: ("generation", "int", False),
    8: ("creationTimestamp", "time", False), 11: ("labels", ("map", "string"), False),
    12: ("annotations", ("map", "string"), False), 13: ("ownerReferences", _OWNER_REF, True),
    14: ("finalizers", "string", True)}
_REQUIREMENT: dict[int, ProtoField] = {1: ("key", "string", False), 2: ("operator", "string", False),
                                       3: ("values", "string", True)}
_LABEL_SELECTOR: dict[int, ProtoField] = {1: ("matchLabels", ("map", "string"), False),
                                          2: ("matchExpressions", _REQUIREMENT, True)}
_CONTAINER_PORT: dict[int, ProtoField] = {1: ("name", "string", False), 2: ("hostPort", "int", False),
                                          3: ("containerPort", "int", False), 4: ("protocol", "string", False),
                                          5: ("hostIP", "string", False)}
_ENV_VAR: dict[int, ProtoField] = {1: ("name", "string", False), 2: ("value", "string", False)}
_RESOURCES: dict[int, ProtoField] = {1: ("limits", ("map", "quantity"), False),
                                     2: ("requests", ("map", "quantity"), False)}
_VOLUME_MOUNT: dict[int, ProtoField] = {1: ("name", "string", False), 2: ("readOnly", "bool", False),
                                        3: ("mountPath", "string", False), 4: ("subPath", "string", False)}
_CONTAINER: dict[int, ProtoField] = {
    1: ("name", "string", False), 2: ("image", "string", False), 3: ("command", "string", True),
    4: ("args", "string", True), 5: ("workingDir", "string", False), 6: ("ports", _CONTAINER_PORT, True),
    7: ("env", _ENV_VAR, True), 8: ("resources", _RESOURCES, False), 9: ("volumeMounts", _VOLUME_MOUNT, True),
    13: ("terminationMessagePath", "string", False), 14: ("imagePullPolicy", "string", False),
    20: ("terminationMessagePolicy", "string", False)}
_POD_SPEC: dict[int, ProtoField] = {
    2: ("containers", _CONTAINER, True), 3: ("restartPolicy", "string", False),
    4: ("terminationGracePeriodSeconds", "int?", False), 6: ("dnsPolicy", "string", False),
    7: ("nodeSelector", ("map", "string"), False), 8: ("serviceAccountName", "string", False),
    14: ("securityContext", {}, False), 19: ("schedulerName", "string", False),
    20: ("initContainers", _CONTAINER, True)}
_POD_TEMPLATE: dict[int, ProtoField] = {1: ("metadata", _OBJECT_META, False), 2: ("spec", _POD_SPEC, False)}
_ROLLING_DEPLOYMENT: dict[int, ProtoField] = {1: ("maxUnavailable", "intorstr", False),
                                              2: ("maxSurge", "intorstr", False)}
_DEPLOYMENT_SPEC: dict[int, ProtoField] = {
    1: ("replicas", "int?", False), 2: ("selector", _LABEL_SELECTOR, False), 3: ("template", _POD_TEMPLATE, False),
    4: ("strategy", {1: ("type", "string", False), 2: ("rollingUpdate", _ROLLING_DEPLOYMENT, False)}, False),
    5: ("minReadySeconds", "int", False), 6: ("revisionHistoryLimit", "int?", False),
    7: ("paused", "bool", False), 9: ("progressDeadlineSeconds", "int?", False)}
PROTO_SCHEMAS: dict[str, dict[int, ProtoField]] = {
    "ConfigMap": {1: ("metadata", _OBJECT_META, False), 2: ("data", ("map", "string"), False),
                  3: ("binaryData", ("map", "bytes"), False), 4: ("immutable", "bool?", False)},
    "Secret": {1: ("metadata", _OBJECT_META, False), 2: ("data", ("map", "bytes"), False),
               3: ("type", "string", False), 4: ("stringData", ("map", "string"), False),
               5: ("immutable", "bool?", False)},
    "Namespace": {1: ("metadata", _OBJECT_META, False),
                  2: ("spec", {1: ("finalizers", "string", True)}, False)},
    "Deployment": {1: ("metadata", _OBJECT_META, False), 2: ("spec", _DEPLOYMENT_SPEC, False)},
    "Pod": {1: ("metadata", _OBJECT_META, False), 2: ("spec", _POD_SPEC, False)},
}
_ZERO_TIME = -62135596800


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _proto_fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) triples of one message."""
    fields = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value = data[pos:pos + length]
            if len(value) != length:
                raise ValueError("truncated field")
            pos += length
        elif wire == 1:
            value = int.from_bytes(data[pos:pos + 8], "little", signed=True)
            pos += 8
        elif wire == 5:
            value = int.from_bytes(data[pos:pos + 4], "little", signed=True)
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        fields.append((number, wire, value))
    return fields


def _proto_scalar(kind: str, raw: Any) -> Any:
    base = kind.rstrip("?")
    if base == "string":
        return raw.decode("utf-8")
    if base == "bytes":
        return base64.b64encode(raw).decode()
    if base == "bool":
        return bool(raw)
    if base == "int":
        return raw - (1 << 64) if raw >= 1 << 63 else raw
    if base == "quantity":
        return _proto_message({1: ("string", "string", False)}, raw).get("string", "0")
    if base == "intorstr":
        value = _proto_message({1: ("type", "int", False), 2: ("intVal", "int", False),
                                3: ("strVal", "string", False)}, raw)
        return value.get("strVal", "") if value.get("type") == 1 else value.get("intVal", 0)
    if base == "time":
        stamp = _proto_message(_TIME, raw)
        seconds = stamp.get("seconds", 0)
        if seconds in (0, _ZERO_TIME):
            return None
        return Clock().timestamp(seconds)
    raise ValueError(f"unknown scalar kind {kind}")


def _is_zero(kind: Any, value: Any) -> bool:
    if isinstance(kind, str) and kind.endswith("?"):
        return False
    return value in ("", 0, False, None) and not isinstance(kind, dict)


def _proto_message(schema: dict[int, ProtoField], data: bytes) -> Obj:
    result: Obj = {}
    for number, _, raw in _proto_fields(data):
        spec = schema.get(number)
        if spec is None:
            continue
        name, kind, repeated = spec
        if isinstance(kind, tuple):  # a map: entries with key 1 and value 2
            entry = _proto_message({1: ("k", "string", False), 2: ("v", kind[1], False)}, raw)
            result.setdefault(name, {})[entry.get("k", "")] = entry.get("v", "" if kind[1] == "string" else None)
            continue
        if isinstance(kind, dict):
            value: Any = _proto_message(kind, raw)
        elif repeated and isinstance(raw, bytes) and kind.rstrip("?") not in ("string", "bytes", "quantity",
                                                                             "intorstr", "time"):
            values = []  # packed scalars
            pos = 0
            while pos < len(raw):
                item, pos = _varint(raw, pos)
                values.append(_proto_scalar(kind, item))
            result.setdefault(name, []).extend(values)
            continue
        else:
            value = _proto_scalar(kind, raw)
        if repeated:
            result.setdefault(name, []).append(value)
        elif not _is_zero(kind, value):
            result[name] = value
    return result


PROTOBUF_MAGIC = b"k8s\x00"


def decode_protobuf(body: bytes) -> Obj:
    """Decode a Kubernetes protobuf request body into the JSON form (400 BadRequest if it cannot)."""
    if not body.startswith(PROTOBUF_MAGIC):
        raise errors.bad_request("the protobuf body does not start with the Kubernetes magic number")
    try:
        envelope = _proto_message({1: ("typeMeta", {1: ("apiVersion", "string", False),
                                                    2: ("kind", "string", False)}, False),
                                   2: ("raw", "bytes?", False)}, body[len(PROTOBUF_MAGIC):])
        type_meta = envelope.get("typeMeta", {})
        kind = type_meta.get("kind", "")
        schema = PROTO_SCHEMAS.get(kind)
        if schema is None:
            raise errors.unsupported_media_type(f"application/vnd.kubernetes.protobuf (kind {kind!r})")
        obj = _proto_message(schema, base64.b64decode(envelope.get("raw", "")))
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.bad_request(f"the protobuf body could not be decoded: {exc}") from None
    obj["apiVersion"] = type_meta.get("apiVersion", "")
    obj["kind"] = kind
    return obj


# -- scale -----------------------------------------------------------------------------------------------


def to_scale(obj: Obj) -> Obj:
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    selector = selectors.selector_from_label_selector(spec.get("selector"))
    selector_text = ",".join(f"{r.key}={r.values[0]}" if r.op == "=" else
                             (f"{r.key} {r.op} ({','.join(r.values)})" if r.op in ("in", "notin") else
                              (r.key if r.op == "exists" else f"!{r.key}")) for r in selector)
    scale_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                  if k in meta}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_meta,
            "spec": {"replicas": int(spec.get("replicas", 0))},
            "status": {"replicas": int((obj.get("status") or {}).get("replicas", 0) or 0), "selector": selector_text}}


# -- Table output (kubectl get) --------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """Ages the way kubectl prints them (``45s``, ``3m20s``, ``5h``, ``12d``)."""
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years = hours // (24 * 365)
    if years < 8:
        days = (hours // 24) % 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{years}y"


Column = tuple[str, str, int, Callable[[Obj], Any]]  # name, type, priority, cell


def _age(now: float) -> Callable[[Obj], Any]:
    def cell(obj: Obj) -> Any:
        stamp = obj.get("metadata", {}).get("creationTimestamp")
        if not stamp:
            return "<unknown>"
        return human_duration(now - Clock.parse(stamp))
    return cell


def _containers(obj: Obj) -> list[Obj]:
    spec = obj.get("spec") or {}
    template = (spec.get("template") or {}).get("spec") if "template" in spec else spec
    return list((template or {}).get("containers") or [])


def _selector_text(obj: Obj) -> str:
    selector = (obj.get("spec") or {}).get("selector") or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    return ",".join(parts) or "<none>"


def _status(obj: Obj, field: str) -> Any:
    return int((obj.get("status") or {}).get(field) or 0)


def _spec_replicas(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("replicas") or 0)


def _pod_ready(obj: Obj) -> str:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    return f"{ready}/{len(_containers(obj))}"


def _wide_columns() -> list[Column]:
    return [("Containers", "string", 1, lambda o: ",".join(c.get("name", "") for c in _containers(o))),
            ("Images", "string", 1, lambda o: ",".join(c.get("image", "") for c in _containers(o))),
            ("Selector", "string", 1, _selector_text)]


def _columns(rt: ResourceType, now: float) -> list[Column]:
    name: Column = ("Name", "string", 0, lambda o: o["metadata"]["name"])
    age: Column = ("Age", "string", 0, _age(now))
    if rt is DEPLOYMENTS:
        return [name, ("Ready", "string", 0, lambda o: f"{_status(o, 'readyReplicas')}/{_spec_replicas(o)}"),
                ("Up-to-date", "integer", 0, lambda o: _status(o, "updatedReplicas")),
                ("Available", "integer", 0, lambda o: _status(o, "availableReplicas")), age] + _wide_columns()
    if rt is REPLICASETS:
        return [name, ("Desired", "integer", 0, _spec_replicas), ("Current", "integer", 0,
                                                                   lambda o: _status(o, "replicas")),
                ("Ready", "integer", 0, lambda o: _status(o, "readyReplicas")), age] + _wide_columns()
    if rt is STATEFULSETS:
        return [name, ("Ready", "string", 0, lambda o: f"{_status(o, 'readyReplicas')}/{_spec_replicas(o)}"),
                age] + _wide_columns()[:2]
    if rt is DAEMONSETS:
        return [name, ("Desired", "integer", 0, lambda o: _status(o, "desiredNumberScheduled")),
                ("Current", "integer", 0, lambda o: _status(o, "currentNumberScheduled")),
                ("Ready", "integer", 0, lambda o: _status(o, "numberReady")),
                ("Up-to-date", "integer", 0, lambda o: _status(o, "updatedNumberScheduled")),
                ("Available", "integer", 0, lambda o: _status(o, "numberAvailable")),
                ("Node Selector", "string", 0, lambda o: ",".join(
                    f"{k}={v}" for k, v in sorted((((o.get("spec") or {}).get("template") or {}).get("spec") or {})
                                                  .get("nodeSelector", {}).items())) or "<none>"),
                age] + _wide_columns()
    if rt is PODS:
        return [name, ("Ready", "string", 0, _pod_ready),
                ("Status", "string", 0, pods.display_status),
                ("Restarts", "string", 0, lambda o: pods.restarts_text(o, now, human_duration)), age,
                ("IP", "string", 1, lambda o: (o.get("status") or {}).get("podIP") or "<none>"),
                ("Node", "string", 1, lambda o: (o.get("spec") or {}).get("nodeName") or "<none>")]
    if rt is CONFIGMAPS:
        return [name, ("Data", "integer", 0, lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
                age]
    if rt is NAMESPACES:
        return [name, ("Status", "string", 0, lambda o: (o.get("status") or {}).get("phase") or ""), age]
    if rt is SECRETS:
        return [name, ("Type", "string", 0, lambda o: o.get("type") or ""),
                ("Data", "integer", 0, lambda o: len(o.get("data") or {})), age]
    if rt is HORIZONTALPODAUTOSCALERS:
        def reference(o: Obj) -> str:
            target = (o.get("spec") or {}).get("scaleTargetRef") or {}
            return f"{target.get('kind', '')}/{target.get('name', '')}"
        return [name, ("Reference", "string", 0, reference),
                ("MinPods", "integer", 0, lambda o: (o.get("spec") or {}).get("minReplicas") or 1),
                ("MaxPods", "integer", 0, lambda o: (o.get("spec") or {}).get("maxReplicas") or 0),
                ("Replicas", "integer", 0, lambda o: (o.get("status") or {}).get("currentReplicas") or 0), age]
    if rt is LEASES:  # kubectl get leases: NAME HOLDER AGE
        return [name, ("Holder", "string", 0, lambda o: (o.get("spec") or {}).get("holderIdentity") or ""), age]
    if rt is CONTROLLERREVISIONS:
        def controller(o: Obj) -> str:
            for ref in o["metadata"].get("ownerReferences") or []:
                if ref.get("controller"):
                    group = ref.get("apiVersion", "").rpartition("/")[0]
                    kind = ref.get("kind", "").lower() + (f".{group}" if group else "")
                    return f"{kind}/{ref.get('name')}"
            return "<none>"
        return [name, ("Controller", "string", 0, controller),
                ("Revision", "integer", 0, lambda o: int(o.get("revision") or 0)), age]
    if rt is EVENTS:
        return [("Last Seen", "string", 0, lambda o: _age(now)({"metadata": {"creationTimestamp": o.get(
                    "lastTimestamp") or o["metadata"].get("creationTimestamp")}})),
                ("Type", "string", 0, lambda o: o.get("type") or ""),
                ("Reason", "string", 0, lambda o: o.get("reason") or ""),
                ("Object", "string", 0, lambda o: f"{(o.get('involvedObject') or {}).get('kind', '').lower()}/"
                                                  f"{(o.get('involvedObject') or {}).get('name', '')}"),
                ("Message", "string", 0, lambda o: o.get("message") or "")]
    return [name, age]


def table_for(rt: ResourceType, items: list[Obj], now: float, include_object: str = "Metadata") -> Obj:
    columns = _columns(rt, now)
    rows = []
    for item in items:
        row: Obj = {"cells": [cell(item) for _, _, _, cell in columns]}
        if include_object == "Object":
            row["object"] = item
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": item.get("metadata", {})}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
            "columnDefinitions": [{"name": n, "type": t, "format": "name" if n == "Name" else "",
                                   "description": n, "priority": p} for n, t, p, _ in columns],
            "rows": rows}


# -- metadata-only responses (the metadata client, PartialObjectMetadata) --------------------------------


def partial_object_metadata(accept: str, items: list[Obj], body: Any, list_meta: Obj | None
                            ) -> tuple[int, Any, str]:
    """The object (or list) with nothing but its metadata, as the API server answers an ``Accept`` of
    ``application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`` (client-go's metadata client, and the
    garbage collector, read objects so without their spec or data). A get must ask for ``PartialObjectMetadata``
    and a list for ``PartialObjectMetadataList``; the server answers 406 to any other combination unless the
    ``Accept`` header also offers plain JSON."""
    wanted = "PartialObjectMetadataList" if list_meta is not None else "PartialObjectMetadata"
    for media in accept.split(","):
        params = dict(part.strip().partition("=")[::2] for part in media.split(";")[1:])
        if (media.split(";", 1)[0].strip() in ("application/json", "*/*") and params.get("as") == wanted
                and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1")):
            version = params["v"]
            content_type = f"application/json;as={wanted};g=meta.k8s.io;v={version}"
            if list_meta is None:
                return 200, {"kind": wanted, "apiVersion": f"meta.k8s.io/{version}",
                             "metadata": items[0].get("metadata", {})}, content_type
            return 200, {"kind": wanted, "apiVersion": f"meta.k8s.io/{version}", "metadata": dict(list_meta),
                         "items": [{"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{version}",
                                    "metadata": item.get("metadata", {})} for item in items]}, content_type
    if any(media.split(";", 1)[0].strip() in ("application/json", "*/*") and "as=" not in media
           for media in accept.split(",")):
        return 200, body, "application/json"
    raise errors.ApiError(406, "NotAcceptable", f"only the following media types are accepted: application/json, "
                                                 f"application/yaml, application/vnd.kubernetes.protobuf; and for "
                                                 f"metadata only {wanted}", {})


# -- the API ---------------------------------------------------------------------------------------------


class Api:
    """Request handling, independent of the HTTP plumbing (so tests and ``Sim.apply`` can share it)."""

    def __init__(self, store: Store, knobs: Knobs, clock: Clock, controllers: Reconciler | None = None):
        self.store = store
        self.knobs = knobs
        self.clock = clock
        self.controllers = controllers
        self.stopping = threading.Event()
        self.server_address = "127.0.0.1:0"
        self.arrivals = faults.Arrivals()  # every API request received, for GET /_kubesim/requests

    # -- bookkeeping helpers ---------------------------------------------------------------------------------

    def after_write(self, dry_run: bool) -> None:
        if not dry_run and self.knobs.controller_sync and self.controllers is not None:
            self.controllers.reconcile()

    def prepare(self, rt: ResourceType, obj: Any, namespace: str | None, old: Obj | None = None) -> Obj:
        """Check kind/apiVersion and namespace, then default and validate."""
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        kind = obj.get("kind")
        api_version = obj.get("apiVersion")
        if kind and kind != rt.kind or api_version and api_version != rt.api_version:
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match the expected "
                                     f"API version ({rt.api_version})" if api_version != rt.api_version else
                                     f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        obj["kind"] = rt.kind
        obj["apiVersion"] = rt.api_version
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if rt.namespaced:
            if namespace is not None:
                if meta.get("namespace") and meta["namespace"] != namespace:
                    raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                             "sent on the request")
                meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        defaults.apply_defaults(rt, obj)
        defaults.validate(rt, obj, old)
        return obj

    def create(self, rt: ResourceType, namespace: str | None, obj: Any, dry_run: bool = False,
               manager: str | None = None) -> Obj:
        obj = self.prepare(rt, copy.deepcopy(obj), namespace)
        if manager:
            obj = patching.record_update(None, obj, manager, self.clock.timestamp(), rt.api_version)
        created = self.store.create(rt, namespace if rt.namespaced else None, obj, dry_run=dry_run)
        self.after_write(dry_run)
        return created

    def replace(self, rt: ResourceType, namespace: str | None, name: str, obj: Any, dry_run: bool = False,
                manager: str | None = None, subresource: str | None = None, old: Obj | None = None) -> Obj:
        if old is None:
            old = self.store.get(rt, namespace, name)
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {}) if isinstance(obj.get("metadata"), dict | None) else None
        if meta is None:
            raise errors.bad_request("metadata must be an object")
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL "
                                     f"({name})")
        meta["name"] = name
        if subresource == "status":
            merged = copy.deepcopy(old)
            merged["status"] = obj.get("status") or {}
            if meta.get("resourceVersion"):
                merged["metadata"]["resourceVersion"] = meta["resourceVersion"]
            obj = merged
        else:
            if rt.has_status() and "status" in old:
                obj["status"] = copy.deepcopy(old["status"])
            for keep in ("uid", "creationTimestamp"):
                if keep in old["metadata"]:
                    meta[keep] = old["metadata"][keep]
        obj = self.prepare(rt, obj, namespace, old if subresource != "status" else None)
        sent_fields = obj["metadata"].get("managedFields")
        if sent_fields is not None and sent_fields != old["metadata"].get("managedFields"):
            pass  # a client that rewrites managedFields (kubectl's client-side to server-side apply migration) wins
        elif manager:
            obj = patching.record_update(old, obj, manager, self.clock.timestamp(), rt.api_version, subresource)
        elif "managedFields" not in obj["metadata"] and "managedFields" in old["metadata"]:
            obj["metadata"]["managedFields"] = old["metadata"]["managedFields"]
        result = self.store.replace(rt, namespace, name, obj, dry_run=dry_run, subresource=subresource)
        self.after_write(dry_run)
        return result

    def apply_object(self, obj: Obj) -> Obj:
        """Create-or-replace through the same defaulting/validation path as HTTP (for ``Sim.apply``)."""
        api_version = obj.get("apiVersion", "")
        group, _, version = api_version.rpartition("/")
        rt = next((r for r in RESOURCES if r.kind == obj.get("kind") and r.group == group
                   and r.version == version), None)
        if rt is None:
            raise errors.bad_request(f"no kind {obj.get('kind')!r} in {api_version!r}")
        meta = obj.get("metadata") or {}
        namespace = (meta.get("namespace") or "default") if rt.namespaced else None
        existing = self.store.find(rt, namespace, meta.get("name", "")) if meta.get("name") else None
        if existing is None:
            return self.create(rt, namespace, obj, manager="kubesim")
        body = copy.deepcopy(obj)
        body.setdefault("metadata", {}).pop("resourceVersion", None)
        return self.replace(rt, namespace, existing["metadata"]["name"], body, manager="kubesim", old=existing)

    # -- routing ---------------------------------------------------------------------------------------------

    def route(self, parts: list[str]) -> tuple[str, str, list[str]] | None:
        """Split ``/api/v1/...`` and ``/apis/g/v/...`` into group, version and the rest."""
        if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
            return "", "v1", parts[2:]
        if len(parts) >= 3 and parts[0] == "apis":
            return parts[1], parts[2], parts[3:]
        return None

    def resolve(self, group: str, version: str, rest: list[str]) -> Route:
        def unknown() -> errors.ApiError:
            return errors.ApiError(404, "NotFound", "the server could not find the requested resource",
                                   {})

        if not rest:
            raise unknown()
        if rest[0] == "namespaces" and len(rest) >= 3:
            rt = lookup(group, version, rest[2])
            if rt is not None and rt.namespaced:
                if len(rest) > 5:
                    raise unknown()
                name = rest[3] if len(rest) > 3 else None
                sub = rest[4] if len(rest) > 4 else None
                if sub is not None and sub not in rt.subresources:
                    raise unknown()
                return Route(rt, rest[1], name, sub)
        rt = lookup(group, version, rest[0])
        if rt is None or len(rest) > 3:
            raise unknown()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in rt.subresources:
            raise unknown()
        if rt.namespaced and name is not None:
            raise unknown()
        return Route(rt, None, name, sub)

    # -- authorisation ---------------------------------------------------------------------------------------

    def authorize(self, req: Request, verb: str | None, route: Route | None) -> None:
        rbac, authn = self.knobs.rbac, self.knobs.authn
        if rbac is None and authn is None:
            return
        header = req.headers.get("Authorization") or ""
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        grant = rbac.get(token) if token and rbac is not None else None
        if grant is None and token and authn is not None:
            grant = authn.authenticate(token)  # EKS and JWT tokens (kubesim/auth.py)
        if grant is None:
            raise errors.unauthorized()
        if route is None or verb is None:
            return  # discovery and /version are open to every authenticated user
        resource = route.rt.plural + (f"/{route.subresource}" if route.subresource else "")
        namespace = route.namespace if route.rt.namespaced else None
        if not grant.allows(verb, resource, namespace):
            raise errors.forbidden(grant.user, verb, route.rt.group, resource, namespace, route.name)

    # -- entry point -----------------------------------------------------------------------------------------

    def verb_of(self, req: Request, route: Route) -> str:
        watching = (req.param("watch") or "").lower() in ("true", "1")
        if req.method == "GET":
            if route.name is None:
                return "watch" if watching else "list"
            return "watch" if watching else "get"
        if req.method == "POST":
            if route.name is not None:
                raise errors.method_not_allowed()
            return "create"
        if req.method == "PUT":
            return "update"
        if req.method == "PATCH":
            return "patch"
        if req.method == "DELETE":
            return "deletecollection" if route.name is None else "delete"
        raise errors.method_not_allowed()

    def handle(self, req: Request) -> tuple[int, Any, str] | Callable[[Callable[[bytes], None]], None]:
        """Answer a request: (status, body, content type), or a streaming function for a watch."""
        path = req.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        if path == "/version":
            self.authorize(req, None, None)
            return 200, SERVER_VERSION, "application/json"
        if parts and parts[0] == "openapi":
            self.authorize(req, None, None)
            return self.openapi(parts)
        if path in ("/api", "/apis"):
            self.authorize(req, None, None)
            if req.accepts("as=APIGroupDiscoveryList") and req.accepts("v=v2"):
                return 200, aggregated_discovery(core=path == "/api"), AGGREGATED_V2
            if path == "/api":
                return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server_address}]}, "application/json"
            return 200, api_group_list(), "application/json"
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in {g for g, _ in GROUP_VERSIONS if g}:
            self.authorize(req, None, None)
            return 200, api_group(parts[1]), "application/json"
        legacy_watch = False
        if len(parts) > 3 and parts[0] == "apis" and parts[3] == "watch" or \
                len(parts) > 2 and parts[0] == "api" and parts[2] == "watch":
            index = 3 if parts[0] == "apis" else 2
            parts = parts[:index] + parts[index + 1:]
            legacy_watch = True
        split = self.route(parts)
        if split is None:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource", {})
        group, version, rest = split
        if (group, version) not in GROUP_VERSIONS:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if not rest:
            self.authorize(req, None, None)
            if req.method != "GET":
                raise errors.method_not_allowed()
            return 200, api_resource_list(group, version), "application/json"
        route = self.resolve(group, version, rest)
        if legacy_watch:
            req.query["watch"] = ["true"]
        verb = self.verb_of(req, route)
        self.authorize(req, verb, route)
        if verb not in route.rt.verbs and route.subresource is None:
            raise errors.method_not_allowed()
        if verb == "watch":
            return self.watch(req, route)
        if route.subresource is not None:
            return self.handle_subresource(req, route, verb)
        handler = getattr(self, f"do_{verb}")
        result: tuple[int, Any, str] = handler(req, route)
        return result

    def openapi(self, parts: list[str]) -> tuple[int, Any, str]:
        """A minimal OpenAPI v3: just enough for kubectl's field-validation check (``kubectl apply``/``create
        -f`` download it before sending anything). Each PATCH operation declares the ``fieldValidation`` query
        parameter, so kubectl leaves validation to the server instead of validating against schemas; without a
        request body declaration kubectl builds strategic merge patches from its compiled-in types. There is no
        OpenAPI v2 (kubectl only falls back to it when v3 is missing)."""
        if parts == ["openapi", "v3"]:
            paths = {}
            for group, version in GROUP_VERSIONS:
                prefix = f"apis/{group}/{version}" if group else f"api/{version}"
                paths[prefix] = {"serverRelativeURL": f"/openapi/v3/{prefix}?hash={OPENAPI_HASH}"}
            return 200, {"paths": paths}, "application/json"
        rest = parts[2:]
        split = self.route(rest) if len(parts) > 2 and parts[1] == "v3" else None
        if split is None or split[2] or (split[0], split[1]) not in GROUP_VERSIONS:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource", {})
        return 200, openapi_v3_document(split[0], split[1]), "application/json"

    # -- verbs -----------------------------------------------------------------------------------------------

    def manager(self, req: Request, default_suffix: str = "") -> str:
        explicit = req.param("fieldManager")
        if explicit:
            return explicit
        agent = req.headers.get("User-Agent") or "unknown"
        return agent.split("/", 1)[0] + default_suffix

    def parse_body(self, req: Request) -> Any:
        ctype = req.content_type
        if ctype == "application/vnd.kubernetes.protobuf":
            return decode_protobuf(req.body)
        if "protobuf" in ctype:
            raise errors.unsupported_media_type(ctype)
        try:
            if ctype in ("application/yaml", "application/apply-patch+yaml"):
                return yaml.safe_load(req.body.decode("utf-8"))
            return json.loads(req.body or b"null")
        except (ValueError, yaml.YAMLError, UnicodeDecodeError) as exc:
            raise errors.bad_request(f"the body of the request could not be decoded: {exc}") from None

    def do_get(self, req: Request, route: Route) -> tuple[int, Any, str]:
        obj = self.store.get(route.rt, route.namespace, route.name or "")
        return self._maybe_table(req, route, [obj], obj)

    def do_list(self, req: Request, route: Route) -> tuple[int, Any, str]:
        rt = route.rt
        predicate = selectors.make_predicate(req.param("labelSelector"), req.param("fieldSelector"))
        items, rv = self.store.list(rt, route.namespace if rt.namespaced else None, predicate)
        meta: Obj = {"resourceVersion": str(rv)}
        token = req.param("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
                start = (str(state["ns"]), str(state["name"]))
                rv = int(state["rv"])
            except (ValueError, KeyError, TypeError, binascii.Error):
                raise errors.bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                                         "(version meta.k8s.io/v1)") from None
            items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start]
            meta["resourceVersion"] = str(rv)
        limit_text = req.param("limit")
        try:
            limit = int(limit_text) if limit_text else 0
        except ValueError:
            raise errors.bad_request(f"invalid limit: {limit_text}") from None
        if limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            state = {"rv": rv, "ns": last.get("namespace", ""), "name": last["name"]}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        body = {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta, "items": items}
        return self._maybe_table(req, route, items, body, meta)

    def _maybe_table(self, req: Request, route: Route, items: list[Obj], body: Any,
                     list_meta: Obj | None = None) -> tuple[int, Any, str]:
        if req.accepts("as=PartialObjectMetadata"):
            return partial_object_metadata(req.headers.get("Accept") or "", items, body, list_meta)
        if req.accepts("as=Table"):
            table = table_for(route.rt, items, self.clock.now(),
                                     include_object=req.param("includeObject") or "Metadata")
            if list_meta is not None:
                table["metadata"] = dict(list_meta)
            else:
                table["metadata"] = {"resourceVersion": items[0]["metadata"].get("resourceVersion", "")}
            return 200, table, "application/json"
        return 200, body, "application/json"

    def do_create(self, req: Request, route: Route) -> tuple[int, Any, str]:
        body = self.parse_body(req)
        namespace = route.namespace if route.rt.namespaced else None
        if route.rt.namespaced and namespace is None:
            raise errors.method_not_allowed()
        created = self.create(route.rt, namespace, body, dry_run=req.dry_run, manager=self.manager(req))
        return 201, created, "application/json"

    def do_update(self, req: Request, route: Route) -> tuple[int, Any, str]:
        body = self.parse_body(req)
        updated = self.replace(route.rt, route.namespace, route.name or "", body, dry_run=req.dry_run,
                               manager=self.manager(req))
        return 200, updated, "application/json"

    def apply_patch(self, req: Request, current: Obj) -> Obj:
        ctype = req.content_type
        if ctype == "application/json-patch+json":
            patched = patching.json_patch(current, patching.decode_json_patch(req.body))
        elif ctype == "application/merge-patch+json":
            patched = patching.merge_patch(current, self._json_body(req))
        elif ctype == "application/strategic-merge-patch+json":
            patched = patching.strategic_merge_patch(current, self._json_body(req))
        else:
            raise errors.unsupported_media_type(ctype)
        if not isinstance(patched, dict):
            raise patching.unprocessable("the patched object is not a JSON object")
        return dict(patched)

    def _json_body(self, req: Request) -> Any:
        try:
            return json.loads(req.body or b"null")
        except ValueError as exc:
            raise errors.bad_request(f"the body of the request could not be decoded: {exc}") from None

    def do_patch(self, req: Request, route: Route) -> tuple[int, Any, str]:
        rt, name = route.rt, route.name or ""
        if req.content_type == "application/apply-patch+yaml":
            return self.server_side_apply(req, route)
        if req.content_type not in PATCH_TYPES:
            raise errors.unsupported_media_type(req.content_type)
        dry_run = req.dry_run
        manager = self.manager(req)
        for attempt in range(5):
            current = self.store.get(rt, route.namespace, name)
            patched = self.apply_patch(req, current)
            explicit_rv = patched.get("metadata", {}).get("resourceVersion") != current["metadata"].get(
                "resourceVersion")
            try:
                result = self.replace(rt, route.namespace, name, patched, dry_run=dry_run, manager=manager,
                                      old=current)
                return 200, result, "application/json"
            except errors.ApiError as err:
                if err.code != 409 or err.reason != "Conflict" or explicit_rv or attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def server_side_apply(self, req: Request, route: Route) -> tuple[int, Any, str]:
        rt, name = route.rt, route.name or ""
        manager = req.param("fieldManager")
        if not manager:
            raise errors.bad_request("PATCH request for apply must specify fieldManager (fieldManager is "
                                     "required for apply patch)")
        force_text = (req.param("force") or "false").lower()
        if force_text not in ("true", "false", "1", "0"):
            raise errors.bad_request(f"invalid force value: {force_text}")
        force = force_text in ("true", "1")
        applied = self.parse_body(req)
        if not isinstance(applied, dict):
            raise errors.bad_request("the applied configuration must be an object")
        if applied.get("apiVersion") != rt.api_version or applied.get("kind") != rt.kind:
            raise errors.bad_request(f"the API version in the data ({applied.get('apiVersion')}) and kind "
                                     f"({applied.get('kind')}) must match the request ({rt.api_version}, "
                                     f"{rt.kind})")
        meta: Obj = applied["metadata"] if isinstance(applied.get("metadata"), dict) else {}
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the "
                                     f"URL ({name})")
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != route.namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on "
                                     "the request")
        dry_run = req.dry_run
        now = self.clock.timestamp()
        for attempt in range(5):
            live = self.store.find(rt, route.namespace, name)
            result = patching.server_side_apply(live, applied, manager, force, now, rt.api_version, rt.group,
                                                rt.plural)
            result.setdefault("metadata", {})["name"] = name
            if live is None:
                obj = self.prepare(rt, result, route.namespace)
                created = self.store.create(rt, route.namespace, obj, dry_run=dry_run)
                self.after_write(dry_run)
                return 201, created, "application/json"
            result["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
            try:
                obj = self.prepare(rt, result, route.namespace, live)
                updated = self.store.replace(rt, route.namespace, name, obj, dry_run=dry_run)
                self.after_write(dry_run)
                return 200, updated, "application/json"
            except errors.ApiError as err:
                if err.code != 409 or err.reason != "Conflict" or attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def do_delete(self, req: Request, route: Route) -> tuple[int, Any, str]:
        rt, name = route.rt, route.name or ""
        options = self.parse_body(req) if req.body.strip() else None
        dry_run = req.dry_run
        if isinstance(options, dict):
            body_dry_run = options.get("dryRun") or []
            if any(value != "All" for value in body_dry_run):
                raise errors.bad_request(f'Invalid value: {json.dumps(body_dry_run)}: supported values: "All"')
            dry_run = dry_run or bool(body_dry_run)  # client-go sends DeleteOptions.dryRun in the body
            policy = options.get("propagationPolicy")
            if policy not in (None, "Orphan", "Background", "Foreground"):
                raise errors.bad_request(f'Unsupported value: "{policy}"')
            pre = options.get("preconditions") or {}
            if pre:
                current = self.store.get(rt, route.namespace, name)
                if pre.get("uid") and pre["uid"] != current["metadata"]["uid"]:
                    raise errors.conflict(rt.group, rt.plural, name,
                                          f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                                          f"meta: {current['metadata']['uid']}")
                if pre.get("resourceVersion") and pre["resourceVersion"] != current["metadata"]["resourceVersion"]:
                    raise errors.conflict(rt.group, rt.plural, name,
                                          f"Precondition failed: ResourceVersion in precondition: "
                                          f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                          f"{current['metadata']['resourceVersion']}")
        body_policy = options.get("propagationPolicy") if isinstance(options, dict) else None
        policy = req.param("propagationPolicy") or body_policy
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise errors.bad_request(f'Unsupported value: "{policy}"')
        gone = self.store.delete(rt, route.namespace, name, dry_run=dry_run, orphan=policy == "Orphan")
        self.after_write(dry_run)
        if rt is PODS:  # pods answer with the deleted object (the Python client expects a V1Pod)
            return 200, gone, "application/json"
        details: Obj = {"name": name, "kind": rt.plural, "uid": gone["metadata"].get("uid")}
        if rt.group:
            details["group"] = rt.group
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "details": details}, "application/json"

    def do_deletecollection(self, req: Request, route: Route) -> tuple[int, Any, str]:
        rt = route.rt
        predicate = selectors.make_predicate(req.param("labelSelector"), req.param("fieldSelector"))
        items, _ = self.store.list(rt, route.namespace if rt.namespaced else None, predicate)
        dry_run = req.dry_run
        deleted = []
        for item in items:
            try:
                deleted.append(self.store.delete(rt, item["metadata"].get("namespace"), item["metadata"]["name"],
                                                 dry_run=dry_run))
            except errors.ApiError as err:
                if err.code != 404:
                    raise
        self.after_write(dry_run)
        return 200, {"kind": rt.list_kind, "apiVersion": rt.api_version,
                     "metadata": {"resourceVersion": str(self.store.resource_version())}, "items": deleted}, \
            "application/json"

    # -- subresources ----------------------------------------------------------------------------------------

    def handle_subresource(self, req: Request, route: Route, verb: str) -> tuple[int, Any, str]:
        rt, name, sub = route.rt, route.name or "", route.subresource
        if sub == "log":
            if verb != "get":
                raise errors.method_not_allowed()
            return 200, pods.log_text(self.store.get(rt, route.namespace, name), req.query), "text/plain"
        if verb not in SUBRESOURCE_VERBS:
            raise errors.method_not_allowed()
        current = self.store.get(rt, route.namespace, name)
        manager = self.manager(req)
        if sub == "status":
            if verb == "get":
                return 200, current, "application/json"
            if verb == "update":
                body = self.parse_body(req)
            elif req.content_type == "application/apply-patch+yaml":
                raise errors.unsupported_media_type(req.content_type)
            else:
                body = self.apply_patch(req, current)
            result = self.replace(rt, route.namespace, name, body, dry_run=req.dry_run, manager=manager,
                                  subresource="status", old=current)
            return 200, result, "application/json"
        # scale
        scale = to_scale(current)
        if verb == "get":
            return 200, scale, "application/json"
        if verb == "update":
            new_scale = self.parse_body(req)
        elif req.content_type == "application/apply-patch+yaml":
            raise errors.unsupported_media_type(req.content_type)
        else:
            new_scale = self.apply_patch(req, scale)
        if not isinstance(new_scale, dict):
            raise errors.bad_request("the body of the request must be a Scale object")
        replicas = (new_scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid("autoscaling", "Scale", rt.plural, name, [
                ("FieldValueInvalid", "spec.replicas", f"Invalid value: {json.dumps(replicas)}: must be greater "
                                                       f"than or equal to 0")])
        wanted_rv = (new_scale.get("metadata") or {}).get("resourceVersion")
        updated = copy.deepcopy(current)
        updated["spec"]["replicas"] = replicas
        if wanted_rv:
            updated["metadata"]["resourceVersion"] = wanted_rv
        result = self.replace(rt, route.namespace, name, updated, dry_run=req.dry_run, manager=manager,
                              old=current)
        return 200, to_scale(result), "application/json"

    # -- watch -----------------------------------------------------------------------------------------------

    def watch(self, req: Request, route: Route) -> Callable[[Callable[[bytes], None]], None]:
        rt = route.rt
        field_selector = req.param("fieldSelector")
        if route.name is not None:
            field_selector = f"metadata.name={route.name}" + (f",{field_selector}" if field_selector else "")
        predicate = selectors.make_predicate(req.param("labelSelector"), field_selector)
        namespace = route.namespace if rt.namespaced else None
        rv_text = req.param("resourceVersion")
        try:
            timeout = float(req.param("timeoutSeconds") or 1800)
        except ValueError:
            raise errors.bad_request("invalid timeoutSeconds") from None
        try:
            start_rv = int(rv_text) if rv_text not in (None, "") else 0
        except ValueError:
            raise errors.bad_request(f"invalid resource version: {rv_text}") from None
        rule = getattr(req, "failure", None)
        as_table = req.accepts("as=Table")  # kubectl get -w prints rows the server renders
        initial_events = (req.param("sendInitialEvents") or "").lower() == "true"

        def in_scope(obj: Obj) -> bool:
            if namespace is not None and obj.get("metadata", {}).get("namespace") != namespace:
                return False
            return predicate is None or predicate(obj)

        def stream(write: Callable[[bytes], None]) -> None:
            deadline = time.monotonic() + timeout
            sent = 0

            def send(kind: str, obj: Obj) -> None:
                nonlocal sent
                if isinstance(rule, FailureRule) and rule.drop and sent >= rule.after_events:
                    raise _DropConnection()
                if as_table and kind not in ("ERROR", "BOOKMARK"):
                    table = table_for(rt, [obj], self.clock.now(), req.param("includeObject") or "Metadata")
                    table["metadata"] = {"resourceVersion": obj.get("metadata", {}).get("resourceVersion", "")}
                    obj = table
                write(encode_json({"type": kind, "object": obj}) + b"\n")
                sent += 1

            visible: set[tuple[str, str]] = set()
            if start_rv == 0 or initial_events:
                items, last_rv = self.store.list(rt, namespace, predicate)
                for item in items:
                    visible.add((item["metadata"].get("namespace", ""), item["metadata"]["name"]))
                    send("ADDED", item)
                if initial_events:  # the streaming-list protocol ends the initial state with a bookmark
                    send("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": {
                        "resourceVersion": str(last_rv),
                        "annotations": {"k8s.io/initial-events-end": "true"}}})
            else:
                last_rv = start_rv
                items, _ = self.store.list(rt, namespace, predicate)
                visible = {(i["metadata"].get("namespace", ""), i["metadata"]["name"]) for i in items}
            if isinstance(rule, FailureRule) and rule.drop and sent >= rule.after_events:
                raise _DropConnection()
            while not self.stopping.is_set():
                try:
                    events = self.store.events_since(last_rv)
                except errors.ApiError as err:
                    send("ERROR", err.status())
                    return
                for event in events:
                    last_rv = max(last_rv, event.rv)
                    if event.resource is not rt:
                        continue
                    key = (event.obj["metadata"].get("namespace", ""), event.obj["metadata"]["name"])
                    if in_scope(event.obj):
                        kind = event.type
                        if kind == "MODIFIED" and key not in visible:
                            kind = "ADDED"
                        if kind == "DELETED":
                            visible.discard(key)
                        else:
                            visible.add(key)
                        send(kind, event.obj)
                    elif key in visible:
                        visible.discard(key)
                        send("DELETED", event.obj)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self.store.wait_for_change(last_rv, min(remaining, WATCH_POLL))

        return stream


# -- HTTP plumbing ---------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body leave in separate writes: with Nagle on, the client's delayed ACK adds ~40 ms to
    # every keep-alive request
    disable_nagle_algorithm = True
    server_version = "kubesim"
    sys_version = ""
    api: Api  # set on the subclass per server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_OPTIONS(self) -> None:
        self._serve("OPTIONS")

    def _send(self, code: int, body: Any, content_type: str = "application/json", retry_after: int | None = None
              ) -> None:
        encoded = body if isinstance(body, bytes) else encode_json(body)
        data = encoded if self.command != "HEAD" else b""
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.send_header("Content-Length", str(len(encoded)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _serve(self, method: str) -> None:
        api = self.api
        if faults.is_control(self.path):  # kubesim's own fault controls, not part of the API
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            code, answer = faults.control(api.knobs, method, self.path, body, api.arrivals)
            self._send(code, answer)
            return
        api.arrivals.add(method, self.path)
        if api.knobs.on_request is not None:
            api.knobs.on_request(method, self.path)
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        req = Request(method, split.path, parse_qs(split.query, keep_blank_values=True), self.headers, body)
        if api.knobs.latency > 0:
            time.sleep(api.knobs.latency)
        try:
            rule = api.knobs.take_failure(method, self.path)
            if rule is not None:
                faults.hold(rule, api.stopping)
                if rule.hang > 0:
                    raise _DropConnection()
                watching = (req.param("watch") or "").lower() in ("true", "1")
                if rule.drop and not watching:
                    if rule.after_apply:  # carry the request out (a write lands), then lose the answer
                        with contextlib.suppress(Exception):
                            api.handle(req)
                    raise _DropConnection()
                if rule.drop:
                    req.failure = rule  # type: ignore[attr-defined]
                elif rule.status is not None:
                    raise injected_error(rule.status, rule.retry_after)
            if method in ("HEAD", "OPTIONS"):
                raise errors.method_not_allowed()
            outcome = api.handle(req)
        except _DropConnection:
            self._drop()
            return
        except errors.ApiError as err:
            self._send(err.code, err.status(), retry_after=getattr(err, "retry_after", None))
            return
        except Exception as exc:  # noqa: BLE001 - a bug must answer 500 instead of hanging the client
            self._send(500, errors.internal(f"kubesim: {type(exc).__name__}: {exc}").status())
            return
        if isinstance(outcome, tuple):
            code, payload, content_type = outcome
            self._send(code, payload, content_type)
            return
        self._stream(outcome)

    def _stream(self, stream: Callable[[Callable[[bytes], None]], None]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()

        def write(data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        try:
            stream(write)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except _DropConnection:
            self._drop()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


class ApiServer:
    """The HTTP server thread around an ``Api``."""

    def __init__(self, api: Api, port: int = 0, ssl_context: ssl.SSLContext | None = None):
        self.api = api
        handler = type("Handler", (_Handler,), {"api": api})
        self.httpd = _Server(("127.0.0.1", port), handler)
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True)
        self.tls = ssl_context is not None
        self.port = self.httpd.server_address[1]
        api.server_address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"kubesim-http-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.api.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
