"""Kubeconfigs as the clouds write them: which credential each needs, which values are masked, which paths
the container cannot see, and what happens end to end (on kubesim) when a plugin cannot be satisfied."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import make_deployment, run_cli

import kubesim
from rollback import cluster
from rollback.credentials.exec_plugins import (
    AKS_SERVER_ID,
    Aks,
    Gke,
    OidcIdToken,
    Static,
    Unsupported,
    classify,
)
from rollback.credentials.masking import credential_values
from rollback.inputs import from_mapping, secret_values

ROOT = Path(__file__).resolve().parents[1]

# `az aks get-credentials` on an Entra-ID cluster, then `kubelogin convert-kubeconfig -l workloadidentity`:
# Azure/kubelogin docs/book/src/concepts/login-modes/workloadidentity.md and pkg/internal/converter (the
# converted user runs `kubelogin get-token --login workloadidentity --server-id <id>`; client and tenant come
# from AZURE_CLIENT_ID/AZURE_TENANT_ID).
AKS_WORKLOAD_IDENTITY = {"exec": {
    "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin",
    "args": ["get-token", "--environment", "AzurePublicCloud", "--server-id", AKS_SERVER_ID, "--login",
             "workloadidentity"],
    "env": None, "installHint": "kubelogin is not installed", "provideClusterInfo": False}}
# `az aks get-credentials` alone (az CLI writes devicecode login with the az client and the tenant) and
# azure/aks-set-context with use-kubelogin (`kubelogin convert-kubeconfig -l azurecli`).
AKS_DEVICECODE = {"exec": {"command": "kubelogin", "args": [
    "get-token", "--environment", "AzurePublicCloud", "--server-id", AKS_SERVER_ID, "--client-id",
    "80faf920-1908-4b52-b5ef-a8e7bedfc67a", "--tenant-id", "72f988bf-86f1-41af-91ab-2d7cd011db47"]}}
AKS_AZURECLI = {"exec": {"command": "kubelogin", "args": ["get-token", "--server-id", AKS_SERVER_ID, "--login",
                                                          "azurecli"]}}
# `gcloud container clusters get-credentials` (gke-gcloud-auth-plugin, GKE docs "Install kubectl and
# configure cluster access") and get-gke-credentials with use_auth_provider: true (auth-provider gcp).
GCLOUD = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "gke-gcloud-auth-plugin",
                   "installHint": "Install gke-gcloud-auth-plugin for use with kubectl by following https://cloud"
                                  ".google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl#install_plugin",
                   "provideClusterInfo": True}}
GKE_AUTH_PROVIDER = {"auth-provider": {"name": "gcp"}}
# google-github-actions/get-gke-credentials default (src/client.ts): the token is embedded.
GET_GKE_CREDENTIALS = {"token": "ya29.embedded-token"}


@pytest.mark.parametrize("user,expected", [
    (AKS_WORKLOAD_IDENTITY, Aks("kubelogin get-token", AKS_SERVER_ID, "workloadidentity")),
    (AKS_DEVICECODE, Aks("kubelogin get-token", AKS_SERVER_ID, "devicecode",
                         "80faf920-1908-4b52-b5ef-a8e7bedfc67a", "72f988bf-86f1-41af-91ab-2d7cd011db47")),
    (AKS_AZURECLI, Aks("kubelogin get-token", AKS_SERVER_ID, "azurecli")),
    ({"exec": {"command": "kubelogin", "args": ["get-token", "-l", "workloadidentity", "--server-id=abc"]}},
     Aks("kubelogin get-token", "abc", "workloadidentity")),
    (GCLOUD, Gke("gke-gcloud-auth-plugin")),
    (GKE_AUTH_PROVIDER, Gke("auth-provider gcp")),
    (GET_GKE_CREDENTIALS, Static()),
    ({"client-certificate-data": "x", "client-key-data": "y"}, Static()),
    ({}, Static()),
    ({"auth-provider": {"name": "oidc", "config": {"id-token": "eyJid", "idp-issuer-url": "https://i"}}},
     OidcIdToken("eyJid")),
])
def test_cloud_kubeconfig_users_are_recognised(user: dict[str, Any], expected: Any) -> None:
    assert classify(user) == expected


@pytest.mark.parametrize("user,command", [
    ({"exec": {"command": "kubectl", "args": ["oidc-login", "get-token", "--oidc-issuer-url=https://x"]}},
     "kubectl oidc-login get-token"),
    ({"exec": {"command": "my-plugin", "args": ["--password", "hunter2", "login", "--token=abc", "now"]}},
     "my-plugin login now"),
    ({"exec": {"command": "/opt/bin/vault-k8s-token"}}, "/opt/bin/vault-k8s-token"),
    ({"exec": {"command": "aws", "args": ["sts", "get-session-token"]}}, "aws sts get-session-token"),
    ({"auth-provider": {"name": "azure", "config": {"access-token": "x"}}}, "auth-provider azure"),
    ({"auth-provider": {"name": "oidc", "config": {"refresh-token": "r"}}}, "auth-provider oidc"),
])
def test_other_plugins_are_unsupported(user: dict[str, Any], command: str) -> None:
    plan = classify(user)
    assert isinstance(plan, Unsupported) and plan.command == command


# -- masking: every form the issue lists ---------------------------------------------------------------------

FORMS = {
    "flow style": ("users:\n- name: u\n  user: {token: flow-secret-1}\n", ["flow-secret-1"]),
    "folded scalar": ("users:\n- name: u\n  user:\n    token: >-\n      folded-secret-2\n", ["folded-secret-2"]),
    "quoted": ("users:\n- name: u\n  user:\n    \"token\": 'quoted-secret-3'\n", ["quoted-secret-3"]),
    "oidc": (textwrap.dedent("""\
        users:
        - name: u
          user:
            auth-provider:
              name: oidc
              config: {id-token: oidc-id-4, refresh-token: oidc-refresh-5, client-secret: oidc-client-6,
                       client-id: public-client, idp-issuer-url: "https://issuer"}
        """), ["oidc-id-4", "oidc-refresh-5", "oidc-client-6"]),
    "exec env": (textwrap.dedent("""\
        users:
        - name: u
          user:
            exec:
              command: my-plugin
              args: ["--client-secret", exec-arg-7, "--token=exec-arg-8", "--token-cache-dir", "/cache"]
              env: [{name: PLUGIN_KEY, value: exec-env-9}, {name: AWS_PROFILE, value: default}]
        """), ["exec-arg-7", "exec-arg-8", "exec-env-9"]),
    "password and keys": ("users:\n- name: u\n  user: {username: admin, password: pw-10, client-key-data: "
                          "a2V5, client-certificate-data: Y2VydA==}\n", ["pw-10", "a2V5", "Y2VydA=="]),
    "json": ('{"users": [{"name": "u", "user": {"token": "json-secret-11"}}]}', ["json-secret-11"]),
}


@pytest.mark.parametrize("form", FORMS)
def test_every_kubeconfig_credential_form_is_masked(form: str) -> None:
    text, secrets = FORMS[form]
    values = credential_values(yaml.safe_load(text))
    assert sorted(values) == sorted(secrets)
    assert not {">-", "admin", "public-client", "/cache", "my-plugin", "https://issuer", "default"} & set(values)


@pytest.mark.parametrize("form", FORMS)
def test_secret_values_of_the_kubeconfig_input_come_from_the_walk(form: str) -> None:
    text, secrets = FORMS[form]
    kubeconfig = "clusters: [{name: c, cluster: {server: 'https://k'}}]\n" + text if not text.startswith("{") \
        else text.replace("{", '{"clusters": [{"name": "c", "cluster": {"server": "https://k"}}], ', 1)
    inputs = from_mapping({"release": "1", "deployment": "web", "kubeconfig": kubeconfig})
    assert set(secrets) <= set(secret_values(inputs))


# -- paths the runner hands over ------------------------------------------------------------------------------

CONTAINER = {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": "/github/workspace"}


def test_host_path_hint_in_a_container_action() -> None:
    hint = cluster.missing_path_hint("/home/runner/work/_temp/kubeconfig_1", 0, CONTAINER)
    assert "path on the runner" in hint and "2.331" in hint and "workspace" in hint and "kubeconfig input" in hint
    assert "path on the runner" not in cluster.missing_path_hint("/home/me/kc", 0, {"GITHUB_ACTIONS": "true",
                                                                                  "GITHUB_WORKSPACE": "/home/me"})


def test_colon_list_hint_names_the_untranslated_entry() -> None:
    hint = cluster.missing_path_hint("/home/runner/work/_temp/second", 1, CONTAINER)
    assert "only the first entry" in hint


def test_kubeconfig_variable_with_no_visible_file_fails_naming_each_path(tmp_path: Path) -> None:
    run = run_cli(None, "--mode", "history", "--deployment", "web", env={
        **CONTAINER, "HOME": str(tmp_path), "KUBECONFIG": "/github/runner_temp/kc:/home/runner/work/_temp/kc2"})
    assert run.code == 1
    [error] = run.commands("error")
    assert "/github/runner_temp/kc does not exist" in error and "only the first entry" in error


def test_kubeconfig_files_merge_like_kubectl(tmp_path: Path) -> None:
    first = tmp_path / "a" / "config"
    second = tmp_path / "b" / "config"
    first.parent.mkdir()
    second.parent.mkdir()
    first.write_text(yaml.safe_dump({"clusters": [{"name": "c", "cluster": {"server": "https://one",
                                                                            "certificate-authority": "ca.crt"}}],
                                     "users": [{"name": "u", "user": {"token": "t1"}}]}))
    second.write_text(yaml.safe_dump({"current-context": "x",
                                      "clusters": [{"name": "c", "cluster": {"server": "https://two"}}],
                                      "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}]}))
    merged = cluster.read_kubeconfig_files(f"{first}:{tmp_path / 'missing'}:{second}", "KUBECONFIG", {})
    assert merged["current-context"] == "x"
    assert merged["clusters"] == [{"name": "c", "cluster": {"server": "https://one",
                                                            "certificate-authority": str(first.parent / "ca.crt")}}]
    assert [u["name"] for u in merged["users"]] == ["u"] and len(merged["contexts"]) == 1


@pytest.mark.parametrize("server,environ,warned", [
    ("https://127.0.0.1:6443", CONTAINER, True),
    ("https://localhost:6443", CONTAINER, True),
    ("https://[::1]:6443", CONTAINER, True),
    ("https://10.1.2.3:6443", CONTAINER, False),
    ("https://127.0.0.1:6443", {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": "/home/runner/work/x/x"}, False),
    ("https://127.0.0.1:6443", {}, False),
])
def test_loopback_warning_only_in_a_container_action(server: str, environ: dict[str, str], warned: bool) -> None:
    warning = cluster.loopback_warning(server, environ)
    assert (warning is not None) == warned
    if warning:
        assert "networking.apiServerAddress" in warning


# -- end to end on kubesim -----------------------------------------------------------------------------------


def kubeconfig_with_user(sim: kubesim.Sim, path: Path, user: dict[str, Any], namespace: str | None = None) -> str:
    loaded = yaml.safe_load(Path(sim.kubeconfig).read_text())
    loaded["users"][0]["user"] = user
    if namespace is None:
        loaded["contexts"][0]["context"].pop("namespace", None)
    else:
        loaded["contexts"][0]["context"]["namespace"] = namespace
    path.write_text(yaml.safe_dump(loaded))
    return str(path)


def test_unknown_exec_plugin_fails_before_any_request(sim: kubesim.Sim, tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    make_deployment(sim, "web")
    sim.knobs.on_request = lambda method, path: seen.append((method, path))
    marker = tmp_path / "plugin-ran"
    plugin = tmp_path / "vault-k8s-token"
    plugin.write_text(f"#!/bin/sh\ntouch {marker}\necho plugin-output-secret >&2\nexit 1\n")
    plugin.chmod(0o755)
    kubeconfig = kubeconfig_with_user(sim, tmp_path / "kc", {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(plugin), "args": ["login"],
        "env": [{"name": "VAULT_TOKEN", "value": "s.vault-secret"}]}})
    run = run_cli(sim, "--mode", "rollback", "--deployment", "web", extra_env={"KUBECONFIG": kubeconfig})
    assert run.code == 1
    [error] = run.commands("error")
    assert f"running '{plugin} login'" in error and "cannot run credential plugins" in error
    assert "no request was sent" in error and "token inputs" in error
    assert seen == [] and not marker.exists()
    assert "plugin-output-secret" not in run.stdout + run.stderr
    assert "::add-mask::s.vault-secret" in run.lines
    assert not any("s.vault-secret" in line for line in run.lines if not line.startswith("::add-mask::"))


@pytest.mark.parametrize("context_namespace,given,expected", [
    ("shop", None, "shop"), (None, None, "default"), ("shop", "other", "other")])
def test_namespace_comes_from_the_context_unless_given(sim: kubesim.Sim, tmp_path: Path,
                                                       context_namespace: str | None, given: str | None,
                                                       expected: str) -> None:
    for namespace in ("shop", "other", "default"):
        make_deployment(sim, "web", namespace=namespace, image=f"registry.example/web:{namespace}")
    kubeconfig = kubeconfig_with_user(sim, tmp_path / "kc", {}, context_namespace)
    args = ["--mode", "history", "--deployment", "web"] + (["--namespace", given] if given else [])
    run = run_cli(sim, *args, extra_env={"KUBECONFIG": kubeconfig})
    assert run.code == 0, run.stdout
    assert f"History of deployment/web in namespace {expected}" in run.stdout


def test_no_file_is_left_in_the_temp_dir_after_a_run(sim: kubesim.Sim, tmp_path: Path) -> None:
    """A real process (atexit runs): the CA written from certificate-authority-data goes to a private
    directory under TMPDIR, removed at exit."""
    with kubesim.serve(tls=True, kubeconfig_path=str(tmp_path / "tls-kubeconfig")) as tls_sim:
        make_deployment(tls_sim, "web")
        temp = tmp_path / "tmp"
        temp.mkdir()
        seen_during: list[list[str]] = []
        tls_sim.knobs.on_request = lambda method, path: seen_during.append(os.listdir(temp))
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(temp),
               "KUBECONFIG": tls_sim.kubeconfig, "PYTHONPATH": str(ROOT)}
        result = subprocess.run([sys.executable, "-m", "rollback", "--mode", "history", "--deployment", "web"],
                                env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert seen_during and all(entries == [seen_during[0][0]] for entries in seen_during)
        assert seen_during[0][0].startswith("kube-release-rollback-")
        assert os.listdir(temp) == []


def test_in_a_container_action_a_loopback_server_and_an_invisible_entry_are_warned_about(
        sim: kubesim.Sim, tmp_path: Path) -> None:
    """kubesim listens on 127.0.0.1, so the connection works here; inside a real container it would not."""
    make_deployment(sim, "web")
    env = {"KUBECONFIG": f"{sim.kubeconfig}:/home/runner/work/_temp/second"}
    local = run_cli(sim, "--mode", "history", "--deployment", "web", extra_env=env)
    in_container = run_cli(sim, "--mode", "history", "--deployment", "web",
                           extra_env={**env, "GITHUB_WORKSPACE": "/github/workspace"})
    assert local.code == 0 and in_container.code == 0
    assert local.commands("warning") == []
    warnings = in_container.commands("warning")
    assert any("loopback" in w and "networking.apiServerAddress" in w for w in warnings)
    assert any("/home/runner/work/_temp/second" in w and "only the first entry" in w for w in warnings)


def test_cloud_inputs_a_kubeconfig_does_not_use_are_warned_about() -> None:
    from rollback.credentials import CloudOptions, unused_options
    from rollback.credentials.exec_plugins import Eks

    everything = CloudOptions("arn:aws:iam::1:role/r", "client", "tenant")
    assert len(unused_options(Static(), everything)) == 3
    assert [w.split(" ")[0] for w in unused_options(Eks("aws", "c"), everything)] == ["azure-client-id",
                                                                                       "azure-tenant-id"]
    assert [w.split(" ")[0] for w in unused_options(Aks("kubelogin"), everything)] == ["aws-role-arn"]
    assert unused_options(Static(), CloudOptions()) == []
