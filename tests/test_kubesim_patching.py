"""kubesim's patch mechanics, selectors and defaults as pure functions (with property tests)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubesim import defaults, errors, patching, selectors
from kubesim.resources import DEPLOYMENTS, NAMESPACES

# -- strategies ------------------------------------------------------------------------------------------

keys = st.text(alphabet="ab/~c", min_size=1, max_size=3)
scalars = st.one_of(st.booleans(), st.integers(-5, 5), st.text(alphabet="xyz", max_size=3))
json_values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=3)), max_leaves=12)
json_objects = st.dictionaries(keys, json_values, max_size=4)
# merge patches: objects whose values may be null (delete) at any depth
merge_patches = st.recursive(st.one_of(scalars, st.none()), lambda children: st.one_of(
    st.lists(st.one_of(scalars), max_size=3), st.dictionaries(keys, children, max_size=3)), max_leaves=12)


def strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    return value


def merge_diff(source: Any, target: Any) -> Any:
    """A merge patch turning ``source`` into ``target`` (both null-free)."""
    if not isinstance(source, dict) or not isinstance(target, dict):
        return copy.deepcopy(target)
    patch: dict[str, Any] = {k: None for k in source if k not in target}
    for key, value in target.items():
        if key not in source:
            patch[key] = copy.deepcopy(value)
        elif source[key] != value or type(source[key]) is not type(value):
            patch[key] = merge_diff(source[key], value) if isinstance(value, dict) and isinstance(
                source[key], dict) else copy.deepcopy(value)
    return patch


def pointers(doc: Any, prefix: str = "") -> list[str]:
    """Every JSON pointer into ``doc`` (escaped per RFC 6901)."""
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += pointers(value, f"{prefix}/{patching.escape_token(key)}")
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += pointers(value, f"{prefix}/{index}")
    return found


# -- JSON merge patch (RFC 7386) -------------------------------------------------------------------------


RFC7386_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC7386_EXAMPLES)
def test_merge_patch_rfc_examples(target: Any, patch: Any, result: Any) -> None:
    original = copy.deepcopy(target)
    assert patching.merge_patch(target, patch) == result
    assert target == original  # inputs are never mutated


@settings(max_examples=150, deadline=None)
@given(json_objects, merge_patches)
def test_merge_patch_is_idempotent(target: dict[str, Any], patch: Any) -> None:
    once = patching.merge_patch(target, patch)
    assert patching.merge_patch(once, patch) == once


@settings(max_examples=150, deadline=None)
@given(merge_patches)
def test_merge_patch_on_empty_is_patch_without_nulls(patch: Any) -> None:
    assert patching.merge_patch({}, patch) == (strip_nulls(patch) if patch is not None else None)


@settings(max_examples=150, deadline=None)
@given(json_objects, json_objects)
def test_merge_patch_diff_round_trip(source: dict[str, Any], target: dict[str, Any]) -> None:
    assert patching.merge_patch(source, merge_diff(source, target)) == target


# -- JSON patch (RFC 6902) -------------------------------------------------------------------------------


def test_json_patch_operations_and_escaping() -> None:
    doc = {"a/b": {"m~n": 1}, "list": [1, 2, 3], "obj": {"x": 1}}
    ops = [
        {"op": "add", "path": "/a~1b/new", "value": 2},
        {"op": "replace", "path": "/a~1b/m~0n", "value": 10},
        {"op": "add", "path": "/list/1", "value": 9},
        {"op": "add", "path": "/list/-", "value": 4},
        {"op": "remove", "path": "/list/0"},
        {"op": "copy", "from": "/obj", "path": "/copy"},
        {"op": "move", "from": "/obj/x", "path": "/moved"},
        {"op": "test", "path": "/moved", "value": 1},
        {"op": "test", "path": "/copy", "value": {"x": 1}},
    ]
    result = patching.json_patch(doc, ops)
    assert result == {"a/b": {"m~n": 10, "new": 2}, "list": [9, 2, 3, 4], "obj": {}, "copy": {"x": 1},
                      "moved": 1}
    assert doc["list"] == [1, 2, 3]  # atomic and pure


@pytest.mark.parametrize("ops", [
    [{"op": "test", "path": "/a", "value": 2}],
    [{"op": "test", "path": "/a", "value": True}],  # 1 is not true in JSON
    [{"op": "test", "path": "/missing", "value": 1}],
    [{"op": "remove", "path": "/missing"}],
    [{"op": "replace", "path": "/missing", "value": 1}],
    [{"op": "add", "path": "/nested/deeper", "value": 1}],
    [{"op": "add", "path": "/l/5", "value": 1}],
    [{"op": "add", "path": "/l/01", "value": 1}],
    [{"op": "move", "from": "/b", "path": "/b/c"}],
    [{"op": "bogus", "path": "/a"}],
    [{"op": "add", "path": "a", "value": 1}],
    [{"op": "add", "path": "/a"}],
])
def test_json_patch_failures_are_422(ops: list[dict[str, Any]]) -> None:
    with pytest.raises(errors.ApiError) as err:
        patching.json_patch({"a": 1, "b": {"c": 1}, "l": [0]}, ops)
    assert err.value.code == 422 and err.value.reason == "Invalid"
    causes = err.value.status()["details"]["causes"]
    assert causes[0]["reason"] == "UnexpectedServerResponse"


def test_failed_test_op_message_matches_the_real_server() -> None:
    with pytest.raises(errors.ApiError) as err:
        patching.json_patch({"metadata": {"resourceVersion": "5"}},
                            [{"op": "test", "path": "/metadata/resourceVersion", "value": "4"}])
    status = err.value.status()
    assert status["message"] == "the server rejected our request due to an error in our request"
    assert status["details"] == {"causes": [{"reason": "UnexpectedServerResponse",
                                             "message": "testing value /metadata/resourceVersion failed: "
                                                        "test failed"}]}


def test_decode_json_patch_rejects_non_lists() -> None:
    for body in (b"{", b'{"op": "add"}', b"[1]"):
        with pytest.raises(errors.ApiError) as err:
            patching.decode_json_patch(body)
        assert err.value.code == 400


@settings(max_examples=150, deadline=None)
@given(json_objects, st.data())
def test_json_patch_test_and_copy_round_trips(doc: dict[str, Any], data: st.DataObject) -> None:
    paths = pointers(doc)
    if not paths:
        return
    path = data.draw(st.sampled_from(paths))
    value = patching.json_patch(doc, [{"op": "copy", "from": path, "path": "/__copy"}])["__copy"]
    # test succeeds on the current value, and remove after add restores the document
    assert patching.json_patch(doc, [{"op": "test", "path": path, "value": value}]) == doc
    added = patching.json_patch(doc, [{"op": "add", "path": "/__new", "value": value}])
    assert patching.json_patch(added, [{"op": "remove", "path": "/__new"}]) == doc
    # replacing with the same value changes nothing; move out and back in restores the document
    assert patching.json_patch(doc, [{"op": "replace", "path": path, "value": value}]) == doc
    if path.count("/") == 1 and not isinstance(doc, list):
        moved = patching.json_patch(doc, [{"op": "move", "from": path, "path": "/__moved"},
                                          {"op": "move", "from": "/__moved", "path": path}])
        assert moved == doc


@settings(max_examples=100, deadline=None)
@given(json_objects, json_objects)
def test_json_patch_replace_root_and_merge_agree(source: dict[str, Any], target: dict[str, Any]) -> None:
    assert patching.json_patch(source, [{"op": "replace", "path": "", "value": target}]) == target
    ops = [{"op": "remove", "path": "/" + patching.escape_token(k)} for k in source if k not in target]
    ops += [{"op": "add", "path": "/" + patching.escape_token(k), "value": v} for k, v in target.items()]
    assert patching.json_patch(source, ops) == target


# -- strategic merge patch -------------------------------------------------------------------------------


def pod_spec(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": list(containers)}}}}


def test_smp_merges_containers_env_ports_by_key() -> None:
    live = pod_spec({"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}],
                     "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                    {"name": "b", "image": "b:1"})
    patch = pod_spec({"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "3"}],
                      "ports": [{"containerPort": 81}]})
    merged = patching.strategic_merge_patch(live, patch)
    a, b = merged["spec"]["template"]["spec"]["containers"]
    assert a["image"] == "a:2" and b == {"name": "b", "image": "b:1"}
    assert a["env"] == [{"name": "X", "value": "3"}, {"name": "Y", "value": "2"}]
    assert a["ports"] == [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 81}]
    # a new container is appended, unknown lists are replaced
    merged = patching.strategic_merge_patch(merged, {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "c:1"}], "tolerations": [{"key": "k"}]}}}})
    assert [c["name"] for c in merged["spec"]["template"]["spec"]["containers"]] == ["a", "b", "c"]
    assert merged["spec"]["template"]["spec"]["tolerations"] == [{"key": "k"}]


def test_smp_directives() -> None:
    live = {"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"],
                         "ownerReferences": [{"uid": "u1", "name": "one"}, {"uid": "u2", "name": "two"}]},
            "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                     "template": {"spec": {"containers": [{"name": "a", "image": "a:1"},
                                                          {"name": "b", "image": "b:1"}],
                                           "volumes": [{"name": "v1", "emptyDir": {}}]}}}}
    patch = {"metadata": {"labels": {"$patch": "replace", "c": "3"},
                          "$deleteFromPrimitiveList/finalizers": ["x"],
                          "finalizers": ["z"],
                          "ownerReferences": [{"uid": "u1", "$patch": "delete"}]},
             "spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                      "template": {"spec": {
                          "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                          "containers": [{"name": "a", "image": "a:2"}],
                          "volumes": [{"$patch": "replace"}, {"name": "v2", "configMap": {"name": "cm"}}]}}}}
    merged = patching.strategic_merge_patch(live, patch)
    assert merged["metadata"]["labels"] == {"c": "3"}
    assert merged["metadata"]["finalizers"] == ["y", "z"]
    assert merged["metadata"]["ownerReferences"] == [{"uid": "u2", "name": "two"}]
    assert merged["spec"]["strategy"] == {"type": "Recreate"}
    spec = merged["spec"]["template"]["spec"]
    assert spec["containers"] == [{"name": "b", "image": "b:1"}, {"name": "a", "image": "a:2"}]
    assert spec["volumes"] == [{"name": "v2", "configMap": {"name": "cm"}}]
    deleted = patching.strategic_merge_patch(live, {"spec": {"strategy": {"$patch": "delete"}}})
    assert "strategy" not in deleted["spec"]
    assert patching.strategic_merge_patch(live, {"spec": {"strategy": None}})["spec"].keys() == {"template"}
    with pytest.raises(errors.ApiError):
        patching.strategic_merge_patch(live, ["not", "an", "object"])


@settings(max_examples=100, deadline=None)
@given(json_objects, st.dictionaries(st.sampled_from(["p", "q", "r"]), scalars, max_size=3))
def test_smp_without_lists_equals_merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> None:
    assert patching.strategic_merge_patch(target, patch) == patching.merge_patch(target, patch)


# -- field sets and server-side apply --------------------------------------------------------------------


def test_field_set_and_fields_v1_round_trip() -> None:
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "labels": {"app": "w"}},
           "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i"}],
                                                         "tolerations": [{"key": "k"}]}}},
           "status": {"replicas": 1}}
    paths = patching.field_set(obj)
    assert ("f:metadata", "f:labels", "f:app") in paths
    assert ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"c"}') in paths
    assert ("f:spec", "f:template", "f:spec", "f:tolerations") in paths  # atomic list
    assert not any(p[0] == "f:status" for p in paths)
    tree = patching.to_fields_v1(paths)
    assert tree["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"c"}'] == {
        ".": {}, "f:image": {}, "f:name": {}}
    assert patching.from_fields_v1(tree) == paths


def test_server_side_apply_ownership() -> None:
    def apply(live: Any, obj: Any, manager: str, force: bool = False) -> Any:
        return patching.server_side_apply(live, obj, manager, force, "2025-01-01T00:00:00Z", "v1", "", "configmaps")

    first = apply(None, {"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"x": "1", "y": "2"}}, "m1")
    assert first["metadata"]["managedFields"][0]["fieldsV1"] == {
        "f:data": {"f:x": {}, "f:y": {}}, "f:metadata": {"f:labels": {"f:a": {}}}}
    # m2 co-owns x with the same value, adds z
    second = apply(first, {"metadata": {"name": "c"}, "data": {"x": "1", "z": "3"}}, "m2")
    assert second["data"] == {"x": "1", "y": "2", "z": "3"}
    # m2 changing x conflicts with m1
    with pytest.raises(errors.ApiError) as err:
        apply(second, {"metadata": {"name": "c"}, "data": {"x": "9"}}, "m2")
    assert err.value.code == 409
    assert err.value.message == 'Apply failed with 1 conflict: conflict with "m1": .data.x'
    forced = apply(second, {"metadata": {"name": "c"}, "data": {"x": "9"}}, "m2", force=True)
    owners = {e["manager"]: patching.from_fields_v1(e["fieldsV1"]) for e in forced["metadata"]["managedFields"]}
    assert ("f:data", "f:x") in owners["m2"] and ("f:data", "f:x") not in owners["m1"]
    # m2 dropped z from its config: removed; m1 drops y: removed; the label stays (m1 still applies it)
    assert "z" not in forced["data"]
    last = apply(forced, {"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {}}, "m1")
    assert last["data"] == {"x": "9"} and last["metadata"]["labels"] == {"a": "1"}


def test_record_update_moves_changed_fields() -> None:
    old = patching.record_update(None, {"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}, "creator",
                                 "t", "v1")
    new = copy.deepcopy(old)
    new["data"]["a"] = "9"
    result = patching.record_update(old, new, "editor", "t", "v1")
    owners = {e["manager"]: e["fieldsV1"] for e in result["metadata"]["managedFields"]}
    assert owners == {"creator": {"f:data": {"f:b": {}}}, "editor": {"f:data": {"f:a": {}}}}


# -- selectors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("", {}, True),
    ("a=1", {"a": "1"}, True),
    ("a==1", {"a": "2"}, False),
    ("a!=1", {}, True),
    ("a in (1, 2)", {"a": "2"}, True),
    ("a notin (1,2)", {"a": "3"}, True),
    ("a notin (1,2)", {}, True),
    ("a", {"a": ""}, True),
    ("!a", {"a": "x"}, False),
    ("app.kubernetes.io/name=web,tier in (front)", {"app.kubernetes.io/name": "web", "tier": "front"}, True),
])
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert selectors.labels_match(selectors.parse_label_selector(selector), labels) is expected


@pytest.mark.parametrize("selector", ["a in (", "a=b=c", "=x", "a b", ",", "a=" + "x" * 64])
def test_bad_label_selectors_are_400(selector: str) -> None:
    with pytest.raises(errors.ApiError) as err:
        selectors.parse_label_selector(selector)
    assert err.value.code == 400


def test_label_selector_objects_and_field_selectors() -> None:
    reqs = selectors.selector_from_label_selector({"matchLabels": {"a": "1"}, "matchExpressions": [
        {"key": "b", "operator": "In", "values": ["x"]}, {"key": "c", "operator": "DoesNotExist"}]})
    assert selectors.labels_match(reqs, {"a": "1", "b": "x"})
    assert not selectors.labels_match(reqs, {"a": "1", "b": "x", "c": ""})
    obj = {"metadata": {"name": "n", "namespace": "ns"}}
    assert selectors.fields_match(selectors.parse_field_selector("metadata.name=n,metadata.name==n"), obj)
    assert not selectors.fields_match(selectors.parse_field_selector("metadata.namespace!=ns"), obj)
    assert selectors.make_predicate(None, "") is None


# -- defaults and validation -----------------------------------------------------------------------------


def test_image_pull_policy_defaults() -> None:
    for image, policy in [("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.2", "IfNotPresent"),
                          ("registry:5000/nginx", "Always"), ("registry:5000/nginx:1", "IfNotPresent"),
                          ("nginx@sha256:abc", "IfNotPresent")]:
        obj = {"metadata": {"name": "w"}, "spec": {"template": {"spec": {"containers": [{"name": "c",
                                                                                       "image": image}]}}}}
        defaults.apply_defaults(DEPLOYMENTS, obj)
        assert obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == policy, image


def test_defaults_keep_explicit_values_and_recreate_has_no_rolling_update() -> None:
    obj = {"metadata": {"name": "w"}, "spec": {"replicas": 0, "strategy": {"type": "Recreate"},
                                               "revisionHistoryLimit": 2, "template": {"spec": {}}}}
    defaults.apply_defaults(DEPLOYMENTS, obj)
    assert obj["spec"]["replicas"] == 0 and obj["spec"]["revisionHistoryLimit"] == 2
    assert obj["spec"]["strategy"] == {"type": "Recreate"}
    ns = defaults.apply_defaults(NAMESPACES, {"metadata": {"name": "x"}})
    assert ns["spec"] == {"finalizers": ["kubernetes"]} and ns["status"] == {"phase": "Active"}


def test_validation_collects_several_causes() -> None:
    obj = {"metadata": {"name": "w"}, "spec": {"selector": {"matchLabels": {"app": "w"}},
                                               "template": {"metadata": {"labels": {"app": "x"}},
                                                            "spec": {"containers": [{"name": "c"}]}}}}
    with pytest.raises(errors.ApiError) as err:
        defaults.validate(DEPLOYMENTS, obj)
    assert err.value.code == 422
    assert err.value.message.startswith('Deployment.apps "w" is invalid: [spec.template.metadata.labels: ')
    assert len(err.value.status()["details"]["causes"]) == 2
