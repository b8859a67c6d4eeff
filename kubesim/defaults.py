"""API-server defaulting and validation per kind.

``apply_defaults`` fills in what a real API server fills in, so clients with strict models (the official Python
client) deserialise every object. ``validate`` raises ``422 Invalid`` with the real message shapes for the rules
kubesim checks: names, apps/v1 selectors (required, matching the template labels, immutable) and containers.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from . import errors, selectors
from .resources import (
    CONFIGMAPS,
    CONTROLLERREVISIONS,
    DAEMONSETS,
    DEPLOYMENTS,
    EVENTS,
    HORIZONTALPODAUTOSCALERS,
    LEASES,
    NAMESPACES,
    PODS,
    REPLICASETS,
    SECRETS,
    STATEFULSETS,
    ResourceType,
)

Obj = dict[str, Any]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                  "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                  "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
              "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
              "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")

WORKLOADS = (DEPLOYMENTS, REPLICASETS, STATEFULSETS, DAEMONSETS)


# -- defaulting ------------------------------------------------------------------------------------------


def _image_pull_policy(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if "@" in image:
        return "IfNotPresent"
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _default_container(container: Obj) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    if isinstance(container.get("image"), str) and not container.get("imagePullPolicy"):
        container["imagePullPolicy"] = _image_pull_policy(container["image"])
    if container.get("resources") is None:
        container["resources"] = {}
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for env in container.get("env") or []:
        source = env.get("valueFrom") if isinstance(env, dict) else None
        if isinstance(source, dict) and isinstance(source.get("fieldRef"), dict):
            source["fieldRef"].setdefault("apiVersion", "v1")


def default_pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    spec.setdefault("schedulerName", "default-scheduler")
    for field in ("containers", "initContainers"):
        for container in spec.get(field) or []:
            if isinstance(container, dict):
                _default_container(container)
    for volume in spec.get("volumes") or []:
        if isinstance(volume, dict):
            for source in ("configMap", "secret"):
                if isinstance(volume.get(source), dict):
                    volume[source].setdefault("defaultMode", 420)
            if not any(k for k in volume if k != "name"):
                volume["emptyDir"] = {}


def _default_template(spec: Obj) -> None:
    template = spec.get("template")
    if not isinstance(template, dict):
        return
    template.setdefault("metadata", {})
    _mapping(template, "spec")
    default_pod_spec(template["spec"])


def _mapping(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """``parent[key]`` as a map, replacing a missing or non-map value with an empty one."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def _default_strategy(spec: dict[str, Any], key: str, **rolling_update: Any) -> None:
    """``spec[key]`` defaults to type RollingUpdate, and a RollingUpdate's ``rollingUpdate`` to these values."""
    strategy = _mapping(spec, key)
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _mapping(strategy, "rollingUpdate")
        for name, value in rolling_update.items():
            rolling.setdefault(name, value)


def apply_defaults(rt: ResourceType, obj: Obj) -> Obj:
    """Fill in server-side defaults in place (and return ``obj``)."""
    meta = obj.setdefault("metadata", {})
    if rt is NAMESPACES:
        spec = obj.setdefault("spec", {})
        if not spec.get("finalizers"):
            spec["finalizers"] = ["kubernetes"]
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Active")
        if meta.get("name"):
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        return obj
    if rt in WORKLOADS:
        spec = _mapping(obj, "spec")
        _default_template(spec)
        if rt in (DEPLOYMENTS, REPLICASETS, STATEFULSETS) and spec.get("replicas") is None:
            spec["replicas"] = 1
        if rt is not REPLICASETS and spec.get("revisionHistoryLimit") is None:
            spec["revisionHistoryLimit"] = 10
        if rt is DEPLOYMENTS:
            _default_strategy(spec, "strategy", maxUnavailable="25%", maxSurge="25%")
            if spec.get("progressDeadlineSeconds") is None:
                spec["progressDeadlineSeconds"] = 600
        elif rt is STATEFULSETS:
            spec.setdefault("podManagementPolicy", "OrderedReady")
            _default_strategy(spec, "updateStrategy", partition=0)
            policy = _mapping(spec, "persistentVolumeClaimRetentionPolicy")
            policy.setdefault("whenDeleted", "Retain")
            policy.setdefault("whenScaled", "Retain")
        elif rt is DAEMONSETS:
            _default_strategy(spec, "updateStrategy", maxUnavailable=1, maxSurge=0)
        obj["status"] = zero_status(rt, obj.get("status") if isinstance(obj.get("status"), dict) else None)
        return obj
    if rt is PODS:
        spec = _mapping(obj, "spec")
        default_pod_spec(spec)
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        _mapping(obj, "status")
        obj["status"].setdefault("phase", "Pending")
        obj["status"].setdefault("qosClass", "BestEffort")
        return obj
    if rt is EVENTS:
        _mapping(obj, "involvedObject")
        if meta.get("namespace") and not obj["involvedObject"].get("namespace"):
            obj["involvedObject"]["namespace"] = meta["namespace"]
        obj.setdefault("type", "Normal")
        return obj
    if rt is SECRETS:
        # stringData is write-only: the API server merges it into data (base64) and never returns it
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = _mapping(obj, "data")
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode("utf-8")).decode("ascii")
        obj.setdefault("type", "Opaque")
        return obj
    if rt is HORIZONTALPODAUTOSCALERS:
        spec = _mapping(obj, "spec")
        if spec.get("minReplicas") is None:
            spec["minReplicas"] = 1
        if not spec.get("metrics"):  # autoscaling/v2 defaulting: 80% average CPU utilisation
            spec["metrics"] = [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
        return obj
    return obj


#: status fields a real API server always serialises (non-omitempty ints), per kind; the Python client's models
#: require them
ZERO_STATUS: dict[str, dict[str, int]] = {
    "ReplicaSet": {"replicas": 0},
    "StatefulSet": {"replicas": 0, "availableReplicas": 0},
    "DaemonSet": {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                  "numberReady": 0},
}


def zero_status(rt: ResourceType, status: Obj | None = None) -> Obj:
    """``status`` with the always-present fields of ``rt`` filled in with zeros."""
    result = dict(ZERO_STATUS.get(rt.kind, {}))
    result.update(status or {})
    return result


# -- validation ------------------------------------------------------------------------------------------

Cause = tuple[str, str, str]  # (reason, field, message)


def _go_repr(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(str(k))}:{json.dumps(v) if isinstance(v, str) else v}"
                          for k, v in sorted(value.items()))
        return "map[string]string{" + inner + "}"
    return json.dumps(value) if value is not None else "null"


def _check_name(rt: ResourceType, meta: Obj, causes: list[Cause]) -> None:
    name = meta.get("name")
    if not name:
        if not meta.get("generateName"):
            causes.append(("FieldValueRequired", "metadata.name", "Required value: name or generateName is "
                                                                  "required"))
        return
    if not isinstance(name, str):
        causes.append(("FieldValueInvalid", "metadata.name", f"Invalid value: {_go_repr(name)}: must be a string"))
        return
    if rt is NAMESPACES:
        if len(name) > 63 or not _DNS1123_LABEL.match(name):
            causes.append(("FieldValueInvalid", "metadata.name", f"Invalid value: {json.dumps(name)}: "
                                                                 f"{_LABEL_MSG}"))
    elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        causes.append(("FieldValueInvalid", "metadata.name", f"Invalid value: {json.dumps(name)}: {_SUBDOMAIN_MSG}"))


def _check_labels(meta: Obj, field: str, causes: list[Cause]) -> None:
    labels = meta.get("labels")
    if labels is None:
        return
    if not isinstance(labels, dict):
        causes.append(("FieldValueInvalid", field, "Invalid value: labels must be a map of strings"))
        return
    for key, value in labels.items():
        if not isinstance(value, str):
            causes.append(("FieldValueInvalid", f"{field}", f"Invalid value: {_go_repr(value)}: label values "
                                                            f"must be strings"))
        elif len(value) > 63 or not selectors._LABEL_VALUE.match(value):
            causes.append(("FieldValueInvalid", f"{field}", f"Invalid value: {json.dumps(value)}: a valid label must "
                                                            f"be an empty string or consist of alphanumeric "
                                                            f"characters, '-', '_' or '.', and must start and end "
                                                            f"with an alphanumeric character"))
        if not selectors._LABEL_KEY.match(str(key)):
            causes.append(("FieldValueInvalid", f"{field}", f"Invalid value: {json.dumps(key)}: name part must "
                                                            f"consist of alphanumeric characters, '-', '_' or '.'"))


def _check_annotations(meta: Obj, causes: list[Cause]) -> None:
    annotations = meta.get("annotations")
    if annotations is None:
        return
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        causes.append(("FieldValueInvalid", "metadata.annotations", "Invalid value: annotation values must be "
                                                                    "strings"))


def _check_pod_spec(spec: Any, field: str, causes: list[Cause]) -> None:
    if not isinstance(spec, dict):
        causes.append(("FieldValueRequired", field, "Required value"))
        return
    containers = spec.get("containers")
    if not containers:
        causes.append(("FieldValueRequired", f"{field}.containers", "Required value"))
    for list_field in ("containers", "initContainers"):
        items = spec.get(list_field) or []
        if not isinstance(items, list):
            causes.append(("FieldValueInvalid", f"{field}.{list_field}", "Invalid value: must be a list"))
            continue
        seen: set[str] = set()
        for index, container in enumerate(items):
            where = f"{field}.{list_field}[{index}]"
            if not isinstance(container, dict):
                causes.append(("FieldValueInvalid", where, "Invalid value: must be an object"))
                continue
            name = container.get("name")
            if not name:
                causes.append(("FieldValueRequired", f"{where}.name", "Required value"))
            elif not isinstance(name, str) or len(name) > 63 or not _DNS1123_LABEL.match(name):
                causes.append(("FieldValueInvalid", f"{where}.name", f"Invalid value: {_go_repr(name)}: "
                                                                     f"{_LABEL_MSG}"))
            elif name in seen:
                causes.append(("FieldValueDuplicate", f"{where}.name", f"Duplicate value: {json.dumps(name)}"))
            else:
                seen.add(name)
            image = container.get("image")
            if not image or not isinstance(image, str) or not image.strip():
                causes.append(("FieldValueRequired", f"{where}.image", "Required value"))


def _check_workload(rt: ResourceType, obj: Obj, old: Obj | None, causes: list[Cause]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        causes.append(("FieldValueRequired", "spec", "Required value"))
        return
    selector = spec.get("selector")
    template: Obj = spec["template"] if isinstance(spec.get("template"), dict) else {}
    template_meta: Obj = template["metadata"] if isinstance(template.get("metadata"), dict) else {}
    template_labels = template_meta.get("labels") or {}
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        causes.append(("FieldValueRequired", "spec.selector", "Required value"))
        if isinstance(selector, dict):
            causes.append(("FieldValueInvalid", "spec.selector",
                           "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
                           "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
                           "deployment" if rt is DEPLOYMENTS else "Invalid value: empty selector is invalid"))
    else:
        try:
            reqs = selectors.selector_from_label_selector(selector)
        except (KeyError, TypeError):
            causes.append(("FieldValueInvalid", "spec.selector", "Invalid value: malformed label selector"))
            reqs = None
        if reqs is not None and not selectors.labels_match(reqs, template_labels):
            causes.append(("FieldValueInvalid", "spec.template.metadata.labels",
                           f"Invalid value: {_go_repr(template_labels)}: `selector` does not match template "
                           f"`labels`"))
    if old is not None and isinstance(old.get("spec"), dict):
        old_selector = old["spec"].get("selector")
        if old_selector is not None and _normal(old_selector) != _normal(selector):
            causes.append(("FieldValueInvalid", "spec.selector",
                           f"Invalid value: {_selector_repr(selector)}: field is immutable"))
    replicas = spec.get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or isinstance(replicas, bool)):
        causes.append(("FieldValueInvalid", "spec.replicas", f"Invalid value: {_go_repr(replicas)}: must be an "
                                                             f"integer"))
    elif isinstance(replicas, int) and replicas < 0:
        causes.append(("FieldValueInvalid", "spec.replicas", f"Invalid value: {replicas}: must be greater than or "
                                                             f"equal to 0"))
    for field in ("revisionHistoryLimit", "progressDeadlineSeconds", "minReadySeconds"):
        value = spec.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            causes.append(("FieldValueInvalid", f"spec.{field}", f"Invalid value: {value}: must be greater than "
                                                                 f"or equal to 0"))
    if rt is DEPLOYMENTS:
        deadline = spec.get("progressDeadlineSeconds")
        ready = spec.get("minReadySeconds") or 0
        if isinstance(deadline, int) and isinstance(ready, int) and deadline <= ready:
            causes.append(("FieldValueInvalid", "spec.progressDeadlineSeconds",
                           f"Invalid value: {deadline}: must be greater than minReadySeconds"))
        strategy = spec.get("strategy") or {}
        if strategy.get("type") not in (None, "RollingUpdate", "Recreate"):
            causes.append(("FieldValueNotSupported", "spec.strategy.type",
                           f'Unsupported value: {json.dumps(strategy.get("type"))}: supported values: '
                           f'"Recreate", "RollingUpdate"'))
        rolling = strategy.get("rollingUpdate") if isinstance(strategy, dict) else None
        if isinstance(rolling, dict) and rolling.get("maxSurge") in (0, "0%") and \
                rolling.get("maxUnavailable") in (0, "0%"):
            causes.append(("FieldValueInvalid", "spec.strategy.rollingUpdate.maxUnavailable",
                           "Invalid value: 0: may not be 0 when `maxSurge` is 0"))
    if not template:
        causes.append(("FieldValueRequired", "spec.template", "Required value"))
        return
    _check_labels(template_meta, "spec.template.metadata.labels", causes)
    _check_pod_spec(template.get("spec"), "spec.template.spec", causes)


def _normal(selector: Any) -> Any:
    if not isinstance(selector, dict):
        return selector
    return {k: v for k, v in selector.items() if v not in (None, {}, [])}


def _selector_repr(selector: Any) -> str:
    labels = (selector or {}).get("matchLabels") if isinstance(selector, dict) else None
    inner = _go_repr(labels) if labels else "map[string]string(nil)"
    return f"v1.LabelSelector{{MatchLabels:{inner}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}"


def _check_lease_spec(spec: Any, causes: list[Cause]) -> None:
    """coordination.k8s.io Lease: the duration must be positive, the transitions not negative."""
    if spec is None:
        return
    if not isinstance(spec, dict):
        causes.append(("FieldValueInvalid", "spec", "Invalid value: must be an object"))
        return
    for field, minimum, rule in (("leaseDurationSeconds", 1, "must be greater than 0"),
                                 ("leaseTransitions", 0, "must be greater than or equal to 0")):
        value = spec.get(field)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            causes.append(("FieldValueInvalid", f"spec.{field}", f"Invalid value: {_go_repr(value)}: {rule}"))


def validate(rt: ResourceType, obj: Obj, old: Obj | None = None) -> None:
    """Raise ``422 Invalid`` when ``obj`` (the new state; ``old`` for an update) breaks a rule kubesim checks."""
    causes: list[Cause] = []
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        causes.append(("FieldValueRequired", "metadata", "Required value"))
    _check_name(rt, meta, causes)
    _check_labels(meta, "metadata.labels", causes)
    _check_annotations(meta, causes)
    if rt.namespaced and meta.get("namespace") is not None:
        namespace = meta["namespace"]
        if not isinstance(namespace, str) or len(namespace) > 63 or not _DNS1123_LABEL.match(namespace):
            causes.append(("FieldValueInvalid", "metadata.namespace", f"Invalid value: {_go_repr(namespace)}: "
                                                                      f"{_LABEL_MSG}"))
    if rt in WORKLOADS:
        _check_workload(rt, obj, old, causes)
    elif rt is PODS:
        _check_pod_spec(obj.get("spec"), "spec", causes)
    elif rt is CONFIGMAPS:
        for field in ("data", "binaryData"):
            data = obj.get(field)
            if data is None:
                continue
            if not isinstance(data, dict):
                causes.append(("FieldValueInvalid", field, "Invalid value: must be a map"))
                continue
            for key, value in data.items():
                if not _CONFIGMAP_KEY.match(key) or len(key) > 253:
                    causes.append(("FieldValueInvalid", f"{field}[{key}]",
                                   f"Invalid value: {json.dumps(key)}: a valid config key must consist of "
                                   f"alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  "
                                   f"or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"))
                if not isinstance(value, str):
                    causes.append(("FieldValueInvalid", f"{field}[{key}]", "Invalid value: must be a string"))
    elif rt is SECRETS:
        data = obj.get("data")
        for key, value in (data.items() if isinstance(data, dict) else ()):
            if not _CONFIGMAP_KEY.match(key) or len(key) > 253:
                causes.append(("FieldValueInvalid", f"data[{key}]", f"Invalid value: {json.dumps(key)}: a valid "
                                                                    f"config key must consist of alphanumeric "
                                                                    f"characters, '-', '_' or '.'"))
            try:
                base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                causes.append(("FieldValueInvalid", f"data[{key}]", "Invalid value: illegal base64 data"))
    elif rt is HORIZONTALPODAUTOSCALERS:
        spec: Obj = obj["spec"] if isinstance(obj.get("spec"), dict) else {}
        target: Obj = spec["scaleTargetRef"] if isinstance(spec.get("scaleTargetRef"), dict) else {}
        for field in ("kind", "name"):
            if not target.get(field):
                causes.append(("FieldValueRequired", f"spec.scaleTargetRef.{field}", "Required value"))
        high, low = spec.get("maxReplicas"), spec.get("minReplicas", 1)
        if not isinstance(high, int) or high < 1:
            causes.append(("FieldValueInvalid", "spec.maxReplicas", f"Invalid value: {_go_repr(high)}: must be "
                                                                    f"greater than or equal to 1"))
        elif isinstance(low, int) and low > high:
            causes.append(("FieldValueInvalid", "spec.maxReplicas", f"Invalid value: {high}: must be greater than "
                                                                    f"or equal to `minReplicas`"))
    elif rt is LEASES:
        _check_lease_spec(obj.get("spec"), causes)
    elif rt is CONTROLLERREVISIONS:
        revision = obj.get("revision")
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
            causes.append(("FieldValueInvalid", "revision", f"Invalid value: {_go_repr(revision)}: must be greater "
                                                            f"than or equal to 0"))
    if causes:
        raise errors.invalid(rt.group, rt.kind, rt.plural, str(meta.get("name") or ""), causes)
