"""Tests for rollback.inputs: parsing, defaults, validation and error messages."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollback.inputs import (
    INPUT_NAMES,
    KINDS,
    ImageSpec,
    InputError,
    Inputs,
    Mode,
    WorkloadRef,
    from_env,
    from_mapping,
    parse_duration,
    secret_values,
    validate_for_mode,
)

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://k8s.example:6443
users:
- name: u
  user:
    token: s3cr3t-user-token
    client-key-data: "a2V5LWRhdGE="
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
"""
CA_DATA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()


def parse(**values: str) -> Inputs:
    base = {"release": "1.2.3", "deployment": "web"}
    base.update({key.replace("_", "-"): value for key, value in values.items()})
    return from_mapping(base)


def error_for(**values: str) -> InputError:
    with pytest.raises(InputError) as info:
        parse(**values)
    return info.value


def test_input_names_are_exactly_the_action_inputs() -> None:
    assert INPUT_NAMES == (
        "release", "namespace", "deployment", "mode", "images", "manifests", "kubeconfig", "context",
        "server", "token", "certificate-authority-data", "insecure-skip-tls-verify", "wait", "timeout",
        "reason", "dry-run", "rollback-on-failure", "force-statefulset-rollback", "block", "allow-blocked",
        "github-token", "ledger", "allow-managed", "annotate-only", "images-apply-to-all", "wait-for-lease",
        "github-deployments", "github-environment", "ref", "environment-url", "production-environment",
        "fail-fast", "aws-role-arn", "azure-client-id", "azure-tenant-id",
    )
    assert len(dataclasses.fields(Inputs)) == len(INPUT_NAMES)


def test_defaults() -> None:
    inputs = parse()
    assert inputs == Inputs(
        release="1.2.3", namespace="", workloads=(WorkloadRef("Deployment", "web"),), mode=Mode.AUTO,
        images=(), manifests=(), kubeconfig=None, context=None, server=None, token=None,
        certificate_authority_data=None, insecure_skip_tls_verify=False, wait=True, timeout=300.0, reason="",
        dry_run=False, rollback_on_failure=False, force_statefulset_rollback=True, block=True,
        allow_blocked=False, github_token=None, ledger=True, fail_fast=True, aws_role_arn=None,
        azure_client_id=None, azure_tenant_id=None,
    )


def test_from_env_reads_runner_variables_with_hyphens() -> None:
    env = {
        "INPUT_RELEASE": " 2021.09.23.1 ", "INPUT_DEPLOYMENT": "sts/db\nweb", "INPUT_MODE": "rollback",
        "INPUT_DRY-RUN": "true", "INPUT_ROLLBACK-ON-FAILURE": "TRUE", "INPUT_TIMEOUT": "90s",
        "INPUT_NAMESPACE": "prod", "INPUT_REASON": "bad migration\nsee #42", "INPUT_WAIT": "",
        "INPUT_ALLOW-BLOCKED": "False", "INPUT_GITHUB-TOKEN": "ghs_x", "UNRELATED": "1",
    }
    inputs = from_env(env)
    assert inputs.release == "2021.09.23.1"
    assert inputs.workloads == (WorkloadRef("StatefulSet", "db"), WorkloadRef("Deployment", "web"))
    assert inputs.mode is Mode.ROLLBACK
    assert (inputs.dry_run, inputs.rollback_on_failure, inputs.wait, inputs.allow_blocked) == (
        True, True, True, False)
    assert inputs.timeout == 90.0 and inputs.namespace == "prod"
    assert inputs.reason == "bad migration\nsee #42" and inputs.github_token == "ghs_x"


def test_unknown_mapping_key_is_rejected() -> None:
    error = error_for(dryrun="true")
    assert error.input_name == "dryrun" and "known inputs" in str(error)


def test_error_names_the_input() -> None:
    error = error_for(wait="yes")
    assert error.input_name == "wait"
    assert str(error) == "input 'wait': got 'yes'; use true or false (also True/TRUE/False/FALSE)"


@pytest.mark.parametrize("name", ["wait", "dry-run", "rollback-on-failure", "force-statefulset-rollback",
                                  "block", "allow-blocked", "ledger", "insecure-skip-tls-verify",
                                  "github-deployments", "production-environment", "fail-fast"])
@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("True", True), ("TRUE", True),
                                               ("false", False), ("False", False), ("FALSE", False)])
def test_booleans_accept_yaml_core_values(name: str, raw: str, expected: bool) -> None:
    inputs = from_mapping({"release": "1", "deployment": "web", name: raw})
    assert getattr(inputs, name.replace("-", "_")) is expected


@pytest.mark.parametrize("raw", ["yes", "no", "1", "0", "on", "tRUE", "t"])
def test_booleans_reject_everything_else(raw: str) -> None:
    error = error_for(dry_run=raw)
    assert error.input_name == "dry-run" and repr(raw) in str(error)


@pytest.mark.parametrize(("raw", "seconds"), [
    ("300ms", 0.3), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("1.5h", 5400), ("2m30s", 150),
    ("300", 300), ("1.5", 1.5), (".5s", 0.5), ("6h", 21600), ("1h0m0s", 3600), ("500us", 0.0005),
    ("1µs", 1e-6), ("5m ", 300),
])
def test_durations(raw: str, seconds: float) -> None:
    assert parse_duration("timeout", raw) == pytest.approx(seconds)


@pytest.mark.parametrize("raw", ["0", "0s", "-5m", "6h1s", "7h", "5 m", "5x", "1h30", "m", "1d", "abc",
                                 "1e3s"])
def test_bad_durations(raw: str) -> None:
    with pytest.raises(InputError, match="input 'timeout'.*Go-style duration"):
        parse_duration("timeout", raw)


@given(st.lists(st.tuples(st.integers(0, 50), st.sampled_from(["ms", "s", "m", "h"])),
                min_size=1, max_size=4))
def test_duration_is_the_sum_of_its_parts(parts: list[tuple[int, str]]) -> None:
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    text = "".join(f"{value}{suffix}" for value, suffix in parts)
    total = sum(value * unit[suffix] for value, suffix in parts)
    if 0 < total <= 6 * 3600:
        assert parse_duration("timeout", text) == pytest.approx(total)
    else:
        with pytest.raises(InputError):
            parse_duration("timeout", text)


def test_workload_lines() -> None:
    inputs = parse(deployment="""
        # the web tier
        web
        Deployment/api   # inline comment
        deploy/worker, sts/db
        StatefulSets/cache
        daemonset.apps/agent
        DS/logs

    """)
    assert [str(ref) for ref in inputs.workloads] == [
        "deployment/web", "deployment/api", "deployment/worker", "statefulset/db", "statefulset/cache",
        "daemonset/agent", "daemonset/logs"]


@given(st.lists(st.tuples(st.sampled_from(sorted(KINDS)), st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?",
                                                                        fullmatch=True),
                          st.booleans()), max_size=6, unique_by=lambda item: (KINDS[item[0]], item[2])))
def test_workload_aliases_round_trip(items: list[tuple[str, str, bool]]) -> None:
    refs = [WorkloadRef(KINDS[alias], name) for alias, name, _ in items]
    if len(set(refs)) != len(refs):
        return
    text = "\n".join(f"{alias.upper() if upper else alias}/{name}" for alias, name, upper in items)
    mode = "auto" if refs else "unblock"
    assert parse(deployment=text, mode=mode).workloads == tuple(refs)


@pytest.mark.parametrize(("text", "fragment"), [
    ("Web", "not a valid name (names are lowercase)"),
    ("pod/web", "unknown kind 'pod'"),
    ("web_1", "not a valid name"),
    ("-web", "not a valid name"),
    ("deployment/", "not a valid name"),
    ("web\ndeployment/web", "deployment/web is listed twice"),
    ("a" * 254, "not a valid name"),
])
def test_bad_workloads(text: str, fragment: str) -> None:
    error = error_for(deployment=text)
    assert error.input_name == "deployment" and fragment in str(error)


def test_long_subdomain_workload_name_is_fine() -> None:
    name = ".".join(["a" * 63] * 4)[:253]
    assert parse(deployment=name).workloads == (WorkloadRef("Deployment", name),)


def test_workloads_required_except_for_unblock() -> None:
    for mode in ("auto", "calculate", "deploy", "rollback", "history"):
        error = error_for(deployment="# nothing\n", mode=mode)
        assert error.input_name == "deployment" and "at least one" in str(error)
    assert parse(deployment="", mode="unblock").workloads == ()


def test_mode_unknown_lists_allowed_and_is_case_insensitive() -> None:
    error = error_for(mode="undo")
    assert str(error) == ("input 'mode': got 'undo'; use one of: auto, calculate, deploy, rollback, history, "
                          "unblock")
    assert parse(mode="RollBack").mode is Mode.ROLLBACK


def test_release_rules() -> None:
    assert parse(release="x" * 253).release == "x" * 253
    assert "at most 253" in str(error_for(release="x" * 254))
    assert "control characters" in str(error_for(release="1.2\x1b[31m"))
    assert parse(release="build 42 (hotfix)").release == "build 42 (hotfix)"
    assert parse(release="", mode="rollback").release == ""
    assert parse(release="", mode="history").release == ""
    for mode in ("auto", "calculate", "deploy", "unblock"):
        error = error_for(release="", mode=mode)
        assert error.input_name == "release" and f"required for mode {mode}" in str(error)


def test_namespace_is_a_dns_label() -> None:
    assert parse(namespace="team-a").namespace == "team-a"
    for bad in ["Team", "a.b", "a" * 64, "-a", "a_b"]:
        assert error_for(namespace=bad).input_name == "namespace"


def test_images() -> None:
    inputs = parse(images="web=ghcr.io/acme/web:1.2.3, sidecar=envoy@sha256:abc\n\n# comment\ninit=busybox")
    assert inputs.images == (ImageSpec("web", "ghcr.io/acme/web:1.2.3"),
                             ImageSpec("sidecar", "envoy@sha256:abc"), ImageSpec("init", "busybox"))
    assert str(inputs.images[0]) == "web=ghcr.io/acme/web:1.2.3"


@pytest.mark.parametrize(("text", "fragment"), [
    ("web", "write CONTAINER=IMAGE"),
    ("=nginx", "write CONTAINER=IMAGE"),
    ("web=", "write CONTAINER=IMAGE"),
    ("Web=nginx", "not a DNS-1123 label"),
    ("web=ng inx", "contains whitespace"),
    ("web=a\nweb=b", "given twice"),
])
def test_bad_images(text: str, fragment: str) -> None:
    error = error_for(images=text)
    assert error.input_name == "images" and fragment in str(error)


@pytest.mark.parametrize(("text", "expected", "shown"), [
    ("api:app=reg/api:2.0.0", ImageSpec("app", "reg/api:2.0.0", WorkloadRef("Deployment", "api"), any_kind=True),
     "api:app=reg/api:2.0.0"),
    ("statefulset/db:db=reg/db:2", ImageSpec("db", "reg/db:2", WorkloadRef("StatefulSet", "db")),
     "statefulset/db:db=reg/db:2"),
    ("sts/db:db=reg:5000/db:2", ImageSpec("db", "reg:5000/db:2", WorkloadRef("StatefulSet", "db")),
     "statefulset/db:db=reg:5000/db:2"),
    ("app=reg:5000/api:2", ImageSpec("app", "reg:5000/api:2"), "app=reg:5000/api:2"),
])
def test_images_for_one_workload(text: str, expected: ImageSpec, shown: str) -> None:
    [spec] = parse(images=text).images
    assert spec == expected and str(spec) == shown


def test_image_lines_name_their_workloads() -> None:
    api, bare = parse(images="api:app=a, app=b").images
    assert api.applies_to(WorkloadRef("Deployment", "api")) and api.applies_to(WorkloadRef("StatefulSet", "api"))
    assert not api.applies_to(WorkloadRef("Deployment", "web"))
    assert not bare.applies_to(WorkloadRef("Deployment", "api"))  # a bare line names no workload
    [sts] = parse(images="statefulset/api:app=a").images
    assert sts.applies_to(WorkloadRef("StatefulSet", "api")) and not sts.applies_to(WorkloadRef("Deployment", "api"))


@pytest.mark.parametrize(("text", "fragment"), [
    (":app=nginx", "WORKLOAD:CONTAINER=IMAGE"),
    ("api:=nginx", "WORKLOAD:CONTAINER=IMAGE"),
    ("Api:app=nginx", "the workload before ':' is not valid"),
    ("job/api:app=nginx", "the workload before ':' is not valid"),
    ("api:app=a\napi:app=b", "container 'app' of api is given twice"),
])
def test_bad_images_for_one_workload(text: str, fragment: str) -> None:
    error = error_for(images=text)
    assert error.input_name == "images" and fragment in str(error)


def test_the_same_container_for_two_workloads_is_not_a_duplicate() -> None:
    assert len(parse(images="web:app=a\napi:app=b\napp=c").images) == 3


def test_annotate_only_cannot_come_with_images_or_manifests() -> None:
    assert parse(annotate_only="true").annotate_only
    for other in ({"images": "web=nginx"}, {"manifests": "k8s/*.yaml"}):
        assert error_for(annotate_only="true", **other).input_name == "annotate-only"


def test_images_and_manifests_rules() -> None:
    manifests = parse(manifests="k8s/*.yaml\n# skip\n deploy/web.yml ").manifests
    assert manifests == ("k8s/*.yaml", "deploy/web.yml")
    assert "cannot be used together" in str(error_for(images="web=nginx", manifests="k8s/*.yaml"))
    for mode in ("rollback", "history"):
        error = error_for(images="web=nginx", mode=mode)
        assert error.input_name == "images" and f"not {mode}" in str(error)
        assert error_for(manifests="a.yaml", mode=mode).input_name == "manifests"
    assert parse(images="web=nginx", mode="calculate").images


def test_kubeconfig_plain_base64_and_json() -> None:
    assert parse(kubeconfig=KUBECONFIG).kubeconfig == KUBECONFIG.strip()
    encoded = base64.b64encode(KUBECONFIG.encode()).decode()
    assert parse(kubeconfig=encoded).kubeconfig == KUBECONFIG
    wrapped = "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
    assert parse(kubeconfig=wrapped).kubeconfig == KUBECONFIG
    as_json = '{"apiVersion": "v1", "clusters": [], "users": []}'
    assert parse(kubeconfig=as_json).kubeconfig == as_json


@pytest.mark.parametrize("raw", ["not a kubeconfig: true", base64.b64encode(b"foo: bar").decode(),
                                 '{"users": []}', "   users:\n  clusters: []", "!!!"])
def test_kubeconfig_rejected_without_echoing_it(raw: str) -> None:
    error = error_for(kubeconfig=raw)
    assert error.input_name == "kubeconfig"
    assert raw not in str(error) and "not shown" in str(error)


def test_kubeconfig_path_gets_a_hint() -> None:
    assert "KUBECONFIG environment variable" in str(error_for(kubeconfig="/home/runner/.kube/config"))


@given(st.sampled_from(["kubeconfig", "certificate-authority-data"]), st.text())
def test_invalid_secret_inputs_are_never_echoed(name: str, text: str) -> None:
    raw = f"Qz{text.strip()}Xw"  # markers: the value can only appear in the message by being echoed
    values = {"release": "1", "deployment": "web", name: raw}
    if name == "certificate-authority-data":
        values["server"] = "https://k8s.example"
    try:
        from_mapping(values)
    except InputError as error:
        assert raw not in str(error)


def test_secrets_are_not_in_repr() -> None:
    inputs = parse(server="https://k8s.example", token="tok-123456", github_token="ghs_abcdef",
                   certificate_authority_data=CA_DATA)
    text = repr(inputs)
    assert "tok-123456" not in text and "ghs_abcdef" not in text and CA_DATA not in text
    assert inputs.token == "tok-123456" and inputs.certificate_authority_data == CA_DATA


def test_server_rules() -> None:
    assert parse(server="https://k8s.example:6443", token="t").server == "https://k8s.example:6443"
    assert parse(server="http://127.0.0.1:8080").token is None  # e.g. a local test cluster
    assert error_for(server="k8s.example:6443").input_name == "server"
    assert error_for(server="ftp://k8s.example").input_name == "server"
    assert "cannot be used together" in str(error_for(server="https://k", kubeconfig=KUBECONFIG))
    assert error_for(server="https://k", context="ctx").input_name == "context"
    assert "only used together with server" in str(error_for(token="t"))
    assert error_for(certificate_authority_data=CA_DATA).input_name == "certificate-authority-data"
    assert error_for(server="https://k", certificate_authority_data="bm90IGEgY2VydA==").input_name == (
        "certificate-authority-data")


def test_context_with_kubeconfig() -> None:
    assert parse(kubeconfig=KUBECONFIG, context="ctx").context == "ctx"


def test_reason_rules() -> None:
    reason = "DB migration failed\r\n\tsee incident 7"
    assert parse(reason=reason).reason == reason
    assert "at most 1024" in str(error_for(reason="x" * 1025))
    assert "control characters" in str(error_for(reason="bad\x07bell"))


def test_validate_for_mode_applies_to_constructed_inputs() -> None:
    inputs = dataclasses.replace(parse(), mode=Mode.HISTORY, images=(ImageSpec("web", "nginx"),))
    with pytest.raises(InputError, match="input 'images'"):
        validate_for_mode(inputs)


def test_secret_values() -> None:
    inputs = parse(kubeconfig=KUBECONFIG, github_token="ghs_abc")
    assert secret_values(inputs) == ("ghs_abc", "s3cr3t-user-token", "a2V5LWRhdGE=")
    assert secret_values(parse()) == ()


def test_workload_ref_str() -> None:
    assert str(WorkloadRef("Deployment", "web")) == "deployment/web"
    assert str(WorkloadRef("StatefulSet", "db")) == "statefulset/db"


def test_github_deployment_inputs() -> None:
    inputs = parse()
    assert (inputs.github_deployments, inputs.github_environment, inputs.ref, inputs.environment_url,
            inputs.production_environment) == (True, None, None, None, None)
    given = parse(github_environment="Production EU", ref="refs/tags/v1.2.3",
                  environment_url="https://shop.example/eu", production_environment="true",
                  github_deployments="false")
    assert (given.github_deployments, given.github_environment, given.ref, given.environment_url,
            given.production_environment) == (False, "Production EU", "refs/tags/v1.2.3", "https://shop.example/eu",
                                              True)


@pytest.mark.parametrize(("name", "raw", "fragment"), [
    ("github-environment", "x" * 256, "at most 255"),
    ("github-environment", "prod\x01", "control characters"),
    ("ref", "main branch", "use a branch, tag or commit SHA"),
    ("environment-url", "shop.example", "use an http:// or https:// URL"),
    ("environment-url", "ftp://shop.example", "use an http:// or https:// URL"),
    ("production-environment", "yes", "use true or false"),
])
def test_bad_github_deployment_inputs(name: str, raw: str, fragment: str) -> None:
    error = error_for(**{name.replace("-", "_"): raw})
    assert error.input_name == name and fragment in str(error)
