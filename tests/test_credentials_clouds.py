"""End to end on kubesim: the action deploys and rolls back through each cloud's credential path, with kubesim
verifying EKS tokens itself (SigV4) and JWTs from the local fake token endpoints (tests/fakes/clouds.py).
The fakes are reached only through the variables and credential-file fields a user would set, and no
credential appears in anything the run prints or writes, except inside ``::add-mask::``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes import clouds as fake_clouds
from helpers import CliRun, get_deployment, image_of, make_deployment, run_cli

import kubesim
from kubesim.auth import Authenticators, AwsKey
from rollback.credentials.exec_plugins import AKS_SERVER_ID

KEY_ID, KEY_SECRET, SESSION = "ASIAENVKEY0000000001", "env/secret+key0000000000000000000000000", "env-session-token"
ROLE = "arn:aws:iam::111122223333:role/deployer"
ROLE_CREDENTIALS = fake_clouds.Issued("ASIAROLEKEY000000001", "role/secret+key000000000000000000000000",
                                      "role-session-token")
AZURE_CLIENT, AZURE_TENANT = "0c0ffee0-1111-2222-3333-444455556666", "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.fixture
def clouds() -> Iterator[fake_clouds.Clouds]:
    with fake_clouds.serve() as served:
        served.aws_keys[KEY_ID] = KEY_SECRET
        served.roles[ROLE] = ROLE_CREDENTIALS
        served.azure_clients[AZURE_CLIENT] = AZURE_TENANT
        yield served


@pytest.fixture
def seen_tokens(sim: kubesim.Sim, clouds: fake_clouds.Clouds) -> list[str]:
    """Turn kubesim's token authentication on; returns every bearer token it was shown."""
    authn = Authenticators(eks_cluster_id="shop", aws_keys={KEY_ID: AwsKey(KEY_SECRET, "env-user"),
                                                            ROLE_CREDENTIALS.access_key_id: AwsKey(
                                                                ROLE_CREDENTIALS.secret, "deployer")},
                           jwt_key=clouds.cluster_key, jwt_issuers=(clouds.url,),
                           jwt_audiences=(AKS_SERVER_ID, "gke"))
    seen: list[str] = []
    original = authn.authenticate

    def recording(token: str) -> Any:
        seen.append(token)
        return original(token)

    authn.authenticate = recording  # type: ignore[method-assign]
    make_deployment(sim, "web", namespace="shop", image="registry.example/web:0")
    sim.knobs.authn = authn
    return seen


def kubeconfig(sim: kubesim.Sim, path: Path, user: dict[str, Any]) -> str:
    loaded = yaml.safe_load(Path(sim.kubeconfig).read_text())
    loaded["users"][0]["user"] = user
    loaded["contexts"][0]["context"]["namespace"] = "shop"  # the namespace comes from the context
    path.write_text(yaml.safe_dump(loaded))
    return str(path)


def deploy_and_roll_back(sim: kubesim.Sim, env: dict[str, str], *extra: str) -> list[CliRun]:
    runs = []
    for args in (("--mode", "deploy", "--release", "1.0.0", "--images", "web=registry.example/web:1"),
                 ("--mode", "deploy", "--release", "2.0.0", "--images", "web=registry.example/web:2"),
                 ("--mode", "rollback", "--release", "1.0.0", "--reason", "bad checkout")):
        run = run_cli(sim, *args, "--deployment", "web", *extra, extra_env=env)
        assert run.code == 0, run.stdout + run.stderr
        runs.append(run)
    assert runs[-1].outputs["mode"] == "rollback"
    assert image_of(get_deployment(sim, "web", "shop")) == "registry.example/web:1"
    return runs


def assert_no_secret_printed(runs: list[CliRun], secrets: list[str], masked: list[str]) -> None:
    for run in runs:
        for secret in secrets:
            assert secret not in run.stderr and secret not in run.outputs_text and secret not in run.summary
            assert not [line for line in run.lines if secret in line and not line.startswith("::add-mask::")]
    for secret in masked:  # the last run minted the last token the cluster saw
        assert f"::add-mask::{secret}" in runs[-1].lines, secret


def test_eks_with_the_environment_configure_aws_credentials_exports(
        sim: kubesim.Sim, clouds: fake_clouds.Clouds, seen_tokens: list[str], tmp_path: Path) -> None:
    # as `aws eks update-kubeconfig --name shop --region eu-west-1` writes it (see test_credentials_eks.py)
    path = kubeconfig(sim, tmp_path / "kubeconfig", {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
        "args": ["--region", "eu-west-1", "eks", "get-token", "--cluster-name", "shop", "--output", "json"]}})
    env = {"KUBECONFIG": path, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": KEY_SECRET,
           "AWS_SESSION_TOKEN": SESSION, "AWS_REGION": "eu-west-1", **clouds.environ()}
    runs = deploy_and_roll_back(sim, env)
    assert clouds.requests == []  # the token is presigned locally: no STS call
    assert seen_tokens and all(t.startswith("k8s-aws-v1.") for t in seen_tokens)
    assert "EKS token for cluster shop (AWS_ACCESS_KEY_ID)" in runs[0].stdout
    assert_no_secret_printed(runs, [KEY_SECRET, SESSION, *seen_tokens], [KEY_SECRET, SESSION])


def test_eks_role_in_the_kubeconfig_is_assumed_with_the_environment_keys(
        sim: kubesim.Sim, clouds: fake_clouds.Clouds, seen_tokens: list[str], tmp_path: Path) -> None:
    sim.knobs.authn.aws_keys.pop(KEY_ID)  # type: ignore[union-attr]  # only the role may reach the cluster
    path = kubeconfig(sim, tmp_path / "kubeconfig", {"exec": {"command": "aws", "args": [
        "--region", "eu-west-1", "eks", "get-token", "--cluster-name", "shop", "--role-arn", ROLE]}})
    env = {"KUBECONFIG": path, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": KEY_SECRET, **clouds.environ()}
    runs = deploy_and_roll_back(sim, env)
    assert ("POST", "/sts/") in clouds.requests
    assert_no_secret_printed(runs, [KEY_SECRET, ROLE_CREDENTIALS.secret, ROLE_CREDENTIALS.session_token,
                                    *seen_tokens], [KEY_SECRET, ROLE_CREDENTIALS.secret, seen_tokens[-1]])


def test_eks_role_input_with_github_oidc_and_no_aws_keys(
        sim: kubesim.Sim, clouds: fake_clouds.Clouds, seen_tokens: list[str], tmp_path: Path) -> None:
    path = kubeconfig(sim, tmp_path / "kubeconfig", {"exec": {"command": "aws-iam-authenticator",
                                                              "args": ["token", "-i", "shop"]}})
    env = {"KUBECONFIG": path, "AWS_REGION": "us-east-1", **clouds.environ()}
    runs = deploy_and_roll_back(sim, env, "--aws-role-arn", ROLE)
    assert ("GET", clouds.oidc_request_url.removeprefix(clouds.url) + "&audience=sts.amazonaws.com") \
        in clouds.requests
    assert "GitHub OIDC, role " + ROLE in runs[0].stdout
    assert_no_secret_printed(runs, [clouds.request_token, *clouds.issued, *seen_tokens],
                             [clouds.request_token, ROLE_CREDENTIALS.secret, seen_tokens[-1]])


def test_eks_token_for_another_cluster_is_refused_by_the_cluster(
        sim: kubesim.Sim, clouds: fake_clouds.Clouds, seen_tokens: list[str], tmp_path: Path) -> None:
    path = kubeconfig(sim, tmp_path / "kubeconfig", {"exec": {"command": "aws", "args": [
        "eks", "get-token", "--cluster-name", "other"]}})
    env = {"KUBECONFIG": path, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": KEY_SECRET,
           "AWS_REGION": "eu-west-1"}
    run = run_cli(sim, "--mode", "history", "--deployment", "web", extra_env=env)
    assert run.code == 1 and len(seen_tokens) >= 1
    assert "401" in run.commands("error")[0] and "credentials were rejected" in run.commands("error")[0]


def test_eks_without_aws_credentials_says_what_to_run(
        sim: kubesim.Sim, clouds: fake_clouds.Clouds, seen_tokens: list[str], tmp_path: Path) -> None:
    path = kubeconfig(sim, tmp_path / "kubeconfig", {"exec": {"command": "aws", "args": [
        "--region", "eu-west-1", "eks", "get-token", "--cluster-name", "shop"]}})
    run = run_cli(sim, "--mode", "history", "--deployment", "web", extra_env={"KUBECONFIG": path})
    assert run.code == 1 and seen_tokens == []
    [error] = run.commands("error")
    assert "configure-aws-credentials" in error and "id-token: write" in error


def test_aks_with_workload_identity(sim: kubesim.Sim, clouds: fake_clouds.Clouds, seen_tokens: list[str],
                                    tmp_path: Path) -> None:
    # `az aks get-credentials` + `kubelogin convert-kubeconfig -l workloadidentity` (test_credentials_kubeconfig.py)
    path = kubeconfig(sim, tmp_path / "kubeconfig", {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin",
        "args": ["get-token", "--environment", "AzurePublicCloud", "--server-id", AKS_SERVER_ID, "--login",
                 "workloadidentity"]}})
    env = {"KUBECONFIG": path, "AZURE_CLIENT_ID": AZURE_CLIENT, "AZURE_TENANT_ID": AZURE_TENANT,
           **clouds.environ()}
    runs = deploy_and_roll_back(sim, env)
    assert any(p == f"/aad/{AZURE_TENANT}/oauth2/v2.0/token" for _, p in clouds.requests)
    assert_no_secret_printed(runs, [clouds.request_token, *clouds.issued, *seen_tokens],
                             [clouds.request_token, seen_tokens[-1]])


def test_aks_azurecli_login_cannot_work_and_says_how_to_set_up_workload_identity(
        sim: kubesim.Sim, clouds: fake_clouds.Clouds, seen_tokens: list[str], tmp_path: Path) -> None:
    path = kubeconfig(sim, tmp_path / "kubeconfig", {"exec": {"command": "kubelogin", "args": [
        "get-token", "--server-id", AKS_SERVER_ID, "--login", "azurecli"]}})
    run = run_cli(sim, "--mode", "history", "--deployment", "web", extra_env={"KUBECONFIG": path,
                                                                             **clouds.environ()})
    assert run.code == 1 and seen_tokens == [] and clouds.requests == []
    [error] = run.commands("error")
    assert "'azurecli'" in error and "~/.azure" in error and "federated credential" in error
    assert "azure-client-id" in error


def test_aks_azurecli_kubeconfig_with_the_client_input_uses_workload_identity(
        sim: kubesim.Sim, clouds: fake_clouds.Clouds, seen_tokens: list[str], tmp_path: Path) -> None:
    path = kubeconfig(sim, tmp_path / "kubeconfig", {"exec": {"command": "kubelogin", "args": [
        "get-token", "--server-id", AKS_SERVER_ID, "--login", "azurecli"]}})
    env = {"KUBECONFIG": path, **clouds.environ()}
    run = run_cli(sim, "--mode", "history", "--deployment", "web", "--azure-client-id", AZURE_CLIENT,
                  "--azure-tenant-id", AZURE_TENANT, extra_env=env)
    assert run.code == 0, run.stdout
    assert seen_tokens and seen_tokens[-1] in clouds.issued


def test_gke_plugin_with_workload_identity_federation(sim: kubesim.Sim, clouds: fake_clouds.Clouds,
                                                      seen_tokens: list[str], tmp_path: Path) -> None:
    # `gcloud container clusters get-credentials` (test_credentials_kubeconfig.py) + google-github-actions/auth
    path = kubeconfig(sim, tmp_path / "kubeconfig", {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "gke-gcloud-auth-plugin",
        "provideClusterInfo": True}})
    credentials = tmp_path / "gha-creds-1234.json"
    credentials.write_text(json.dumps(clouds.google_credentials()))
    env = {"KUBECONFIG": path, "GOOGLE_APPLICATION_CREDENTIALS": str(credentials), **clouds.environ()}
    runs = deploy_and_roll_back(sim, env)
    paths = [p for _, p in clouds.requests]
    assert "/google-sts/v1/token" in paths and any(p.endswith(":generateAccessToken") for p in paths)
    assert_no_secret_printed(runs, [clouds.request_token, *clouds.issued, *seen_tokens],
                             [clouds.request_token, seen_tokens[-1]])


def test_gke_kubeconfig_from_get_gke_credentials_works_as_it_is(
        sim: kubesim.Sim, clouds: fake_clouds.Clouds, seen_tokens: list[str], tmp_path: Path) -> None:
    token = clouds.cluster_token("deployer@shop.iam.gserviceaccount.com", "gke")
    workspace_kubeconfig = kubeconfig(sim, tmp_path / "gha-kubeconfig-abc123", {"token": token})
    runs = deploy_and_roll_back(sim, {"KUBECONFIG": workspace_kubeconfig})
    assert clouds.requests == [] and set(seen_tokens) == {token}
    assert_no_secret_printed(runs, [token], [token])


def test_gke_plugin_with_a_service_account_key(sim: kubesim.Sim, clouds: fake_clouds.Clouds,
                                               seen_tokens: list[str], tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl makes the test key")
    key = tmp_path / "key.pem"
    subprocess.run([openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)],
                   check=True, capture_output=True)
    modulus = subprocess.run([openssl, "rsa", "-in", str(key), "-noout", "-modulus"], check=True,
                             capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    clouds.google_key_public = (int(modulus, 16), 65537)
    credentials = tmp_path / "sa.json"
    credentials.write_text(json.dumps({  # the layout of a key file from the IAM console / gcloud
        "type": "service_account", "project_id": "shop", "private_key_id": "0123abcd",
        "private_key": key.read_text(), "client_email": clouds.google_service_account,
        "client_id": "1234567890", "token_uri": f"{clouds.url}/google-oauth/token"}))
    path = kubeconfig(sim, tmp_path / "kubeconfig", {"auth-provider": {"name": "gcp"}})
    run = run_cli(sim, "--mode", "history", "--deployment", "web",
                  extra_env={"KUBECONFIG": path, "GOOGLE_APPLICATION_CREDENTIALS": str(credentials)})
    assert run.code == 0, run.stdout
    assert seen_tokens and seen_tokens[-1] in clouds.issued
    key_lines = [line for line in key.read_text().splitlines() if line and not line.startswith("-----")]
    assert_no_secret_printed([run], [*key_lines, *seen_tokens], [seen_tokens[-1]])


def test_the_container_entrypoint_rolls_back_on_eks_and_leaves_nothing_behind(
        sim: kubesim.Sim, clouds: fake_clouds.Clouds, seen_tokens: list[str], tmp_path: Path) -> None:
    """As the runner runs the image: only rollback/ and entrypoint.py, INPUT_* for every input of action.yml,
    the kubeconfig as the `kubeconfig` input, AWS credentials and the OIDC variables in the environment."""
    root = Path(__file__).resolve().parent.parent
    app, workspace, temp = tmp_path / "app", tmp_path / "workspace", tmp_path / "tmp"
    shutil.copytree(root / "rollback", app / "rollback", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(root / "entrypoint.py", app / "entrypoint.py")
    workspace.mkdir()
    temp.mkdir()
    for args in (("--mode", "deploy", "--release", "1.0.0", "--images", "web=registry.example/web:1"),
                 ("--mode", "deploy", "--release", "2.0.0", "--images", "web=registry.example/web:2")):
        sim.knobs.authn, saved = None, sim.knobs.authn  # history to roll back to, written without auth
        assert run_cli(sim, *args, "--deployment", "web", "--namespace", "shop").code == 0
        sim.knobs.authn = saved
    kubeconfig_text = Path(kubeconfig(sim, tmp_path / "kc", {"exec": {"command": "aws", "args": [
        "--region", "eu-west-1", "eks", "get-token", "--cluster-name", "shop", "--role-arn", ROLE]}})).read_text()
    action = yaml.safe_load((root / "action.yml").read_text())
    inputs = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    inputs.update({"mode": "rollback", "deployment": "web", "reason": "bad checkout", "kubeconfig": kubeconfig_text})
    out = tmp_path / "github_output"
    summary = tmp_path / "summary.md"
    out.write_text("")
    summary.write_text("")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "TMPDIR": str(temp), "CI": "true",
           "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workspace), "GITHUB_OUTPUT": str(out),
           "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_REPOSITORY": "acme/shop", "GITHUB_RUN_ID": "1",
           "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": KEY_SECRET, "AWS_SESSION_TOKEN": SESSION,
           **clouds.environ(), **{"INPUT_" + k.upper(): v for k, v in inputs.items()}}
    result = subprocess.run([sys.executable, str(app / "entrypoint.py")], cwd=workspace, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert image_of(get_deployment(sim, "web", "shop")) == "registry.example/web:1"
    assert ("POST", "/sts/") in clouds.requests and seen_tokens
    everything = out.read_text() + summary.read_text() + result.stderr
    for secret in [KEY_SECRET, SESSION, ROLE_CREDENTIALS.secret, ROLE_CREDENTIALS.session_token, *seen_tokens]:
        assert secret not in everything
        assert not [line for line in result.stdout.splitlines()
                    if secret in line and not line.startswith("::add-mask::")]
    assert os.listdir(temp) == []


def test_a_refused_role_fails_in_sts_words_before_any_cluster_request(
        sim: kubesim.Sim, clouds: fake_clouds.Clouds, seen_tokens: list[str], tmp_path: Path) -> None:
    path = kubeconfig(sim, tmp_path / "kubeconfig", {"exec": {"command": "aws", "args": [
        "--region", "eu-west-1", "eks", "get-token", "--cluster-name", "shop"]}})
    env = {"KUBECONFIG": path, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": KEY_SECRET, **clouds.environ()}
    run = run_cli(sim, "--mode", "history", "--deployment", "web", "--aws-role-arn",
                  "arn:aws:iam::111122223333:role/not-trusted", extra_env=env)
    assert run.code == 1 and seen_tokens == []
    [error] = run.commands("error")
    assert "AWS STS AssumeRole" in error and "AccessDenied: not authorized to perform sts:AssumeRole" in error
    assert KEY_SECRET not in run.stdout.replace(f"::add-mask::{KEY_SECRET}", "")


def test_an_unknown_azure_client_fails_in_azure_ad_words(
        sim: kubesim.Sim, clouds: fake_clouds.Clouds, seen_tokens: list[str], tmp_path: Path) -> None:
    path = kubeconfig(sim, tmp_path / "kubeconfig", {"exec": {"command": "kubelogin", "args": [
        "get-token", "--login", "workloadidentity", "--server-id", AKS_SERVER_ID]}})
    env = {"KUBECONFIG": path, "AZURE_TENANT_ID": AZURE_TENANT, **clouds.environ()}
    run = run_cli(sim, "--mode", "history", "--deployment", "web", "--azure-client-id",
                  "99999999-1111-2222-3333-444455556666", extra_env=env)
    assert run.code == 1 and seen_tokens == []
    [error] = run.commands("error")
    assert "Azure AD token exchange" in error and "AADSTS700016" in error


def test_a_long_run_renews_the_eks_token_before_it_expires(
        sim: kubesim.Sim, clouds: fake_clouds.Clouds, seen_tokens: list[str], tmp_path: Path, monkeypatch: Any) -> None:
    """EKS tokens live 15 minutes; a rollout wait may last longer. Each renewal assumes the role again."""
    from rollback import cluster
    from rollback.cluster import Api
    from rollback.credentials import refresh

    path = kubeconfig(sim, tmp_path / "kubeconfig", {"exec": {"command": "aws", "args": [
        "--region", "eu-west-1", "eks", "get-token", "--cluster-name", "shop", "--role-arn", ROLE]}})
    env = {"KUBECONFIG": path, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": KEY_SECRET, **clouds.environ()}
    now = [1000.0]
    monkeypatch.setattr(refresh, "monotonic", lambda: now[0])
    api = Api(cluster.connect(cluster.Credentials(), env).api_client)
    assert api.get("/api/v1/namespaces/shop")["metadata"]["name"] == "shop"
    now[0] += 5 * 60
    api.get("/api/v1/namespaces/shop")
    assert clouds.requests.count(("POST", "/sts/")) == 1  # not due yet: the same token
    now[0] += 6 * 60
    assert api.get("/api/v1/namespaces/shop")["metadata"]["name"] == "shop"
    assert clouds.requests.count(("POST", "/sts/")) == 2
    clouds.roles.clear()  # STS now refuses: the run goes on with the token it has, and says so
    now[0] += 11 * 60
    assert api.get("/api/v1/namespaces/shop")["metadata"]["name"] == "shop"
    assert clouds.requests.count(("POST", "/sts/")) == 3


def test_aks_kubeconfig_from_az_aks_get_credentials_with_azure_client_id_in_the_environment(
        sim: kubesim.Sim, clouds: fake_clouds.Clouds, seen_tokens: list[str], tmp_path: Path) -> None:
    """`az aks get-credentials` writes devicecode login with the Azure CLI's own client id, which cannot be
    federated: the workload identity app from AZURE_CLIENT_ID is used, and the kubeconfig's tenant."""
    path = kubeconfig(sim, tmp_path / "kubeconfig", {"exec": {"command": "kubelogin", "args": [
        "get-token", "--environment", "AzurePublicCloud", "--server-id", AKS_SERVER_ID, "--client-id",
        "80faf920-1908-4b52-b5ef-a8e7bedfc67a", "--tenant-id", AZURE_TENANT]}})
    env = {"KUBECONFIG": path, "AZURE_CLIENT_ID": AZURE_CLIENT, **clouds.environ()}
    run = run_cli(sim, "--mode", "history", "--deployment", "web", extra_env=env)
    assert run.code == 0, run.stdout
    assert seen_tokens and seen_tokens[-1] in clouds.issued
    assert f"client {AZURE_CLIENT}" in run.stdout


def test_a_hung_token_endpoint_ends_within_the_timeout_input_with_nothing_changed(
        sim: kubesim.Sim, clouds: fake_clouds.Clouds, seen_tokens: list[str], tmp_path: Path) -> None:
    """The step's timeout bounds the cloud exchanges too: a hung Azure AD fails the run, naming the input."""
    clouds.delay = 30.0  # far longer than the timeout below; the fake is released when the test ends
    path = kubeconfig(sim, tmp_path / "kubeconfig", {"exec": {"command": "kubelogin", "args": [
        "get-token", "--login", "workloadidentity", "--server-id", AKS_SERVER_ID]}})
    env = {"KUBECONFIG": path, "AZURE_CLIENT_ID": AZURE_CLIENT, "AZURE_TENANT_ID": AZURE_TENANT, **clouds.environ()}
    before = get_deployment(sim, "web", "shop")
    run = run_cli(sim, "--mode", "rollback", "--deployment", "web", "--timeout", "1s", extra_env=env)
    assert run.code == 1 and seen_tokens == []
    [error] = run.commands("error")
    assert "did not answer within the timeout" in error and "Raise the timeout input" in error
    after = get_deployment(sim, "web", "shop")
    assert after["spec"] == before["spec"]
    assert after["metadata"].get("annotations") == before["metadata"].get("annotations")
