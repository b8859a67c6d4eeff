"""EKS tokens: byte for byte what botocore's presigner produces (fixed clock and credentials), and the
kubeconfig forms ``aws eks update-kubeconfig`` and ``aws-iam-authenticator`` users have."""

from __future__ import annotations

import base64
import datetime
import os
import urllib.parse
from typing import Any

import pytest

from rollback.credentials import eks
from rollback.credentials.exec_plugins import Eks, classify

if os.environ.get("CI"):  # in CI the oracle must be there: a skip would hide that nothing was compared
    import botocore.session as botocore_session
else:
    botocore_session = pytest.importorskip("botocore.session", reason="botocore is the oracle (make venv installs it)")

NOW = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
KEYS = eks.AwsCredentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
SESSION = eks.AwsCredentials("ASIAXAMPLEROLEKEY000", "role/secret+key=", "FwoGZXIvYXdz//session+token/==")


def botocore_token(credentials: eks.AwsCredentials, cluster: str, region: str, monkeypatch: Any,
                   endpoint_url: str | None = None) -> str:
    """What aws-cli's ``eks get-token`` does: botocore presigns GetCallerIdentity for 60 s with the cluster
    name in the signed ``x-k8s-aws-id`` header (aws-cli ``customizations/eks/get_token.py``)."""
    import botocore.auth

    monkeypatch.setattr(botocore.auth, "get_current_datetime",
                        lambda remove_tzinfo=True: NOW.replace(tzinfo=None) if remove_tzinfo else NOW)
    session = botocore_session.Session()
    session.set_credentials(credentials.access_key_id, credentials.secret_access_key, credentials.session_token)
    client = session.create_client("sts", region_name=region, endpoint_url=endpoint_url
                                   or f"https://sts.{region}.amazonaws.com")

    def add_cluster_header(request: Any, **kwargs: Any) -> None:
        request.headers["x-k8s-aws-id"] = cluster

    client.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_header)
    url = client.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET")
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


@pytest.mark.parametrize("credentials", [KEYS, SESSION], ids=["long-term-keys", "session-token"])
@pytest.mark.parametrize("region,cluster", [("us-east-1", "prod"), ("eu-west-1", "shop cluster/ä")])
def test_token_is_byte_for_byte_the_one_botocore_presigns(credentials: eks.AwsCredentials, region: str,
                                                          cluster: str, monkeypatch: Any) -> None:
    ours = eks.token(credentials, cluster, region, NOW, eks.sts_endpoint(region, {}))
    assert ours == botocore_token(credentials, cluster, region, monkeypatch)


def test_token_for_a_custom_sts_endpoint_matches_botocore(monkeypatch: Any) -> None:
    endpoint = "http://127.0.0.1:4566"
    ours = eks.token(SESSION, "prod", "us-west-2", NOW, eks.sts_endpoint("us-west-2", {"AWS_ENDPOINT_URL": endpoint}))
    assert ours == botocore_token(SESSION, "prod", "us-west-2", monkeypatch, endpoint_url=endpoint)


def test_a_different_second_or_key_gives_a_different_token(monkeypatch: Any) -> None:
    base = eks.token(KEYS, "prod", "us-east-1", NOW, eks.sts_endpoint("us-east-1", {}))
    assert base != eks.token(KEYS, "prod", "us-east-1", NOW + datetime.timedelta(seconds=1),
                             eks.sts_endpoint("us-east-1", {}))
    other = eks.AwsCredentials(KEYS.access_key_id, KEYS.secret_access_key + "x")
    assert base != eks.token(other, "prod", "us-east-1", NOW, eks.sts_endpoint("us-east-1", {}))


def test_token_layout() -> None:
    minted = eks.token(SESSION, "prod", "us-east-1", NOW, eks.sts_endpoint("us-east-1", {}))
    assert minted.startswith("k8s-aws-v1.") and "=" not in minted
    url = base64.urlsafe_b64decode(minted[len("k8s-aws-v1."):] + "==").decode()
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "sts.us-east-1.amazonaws.com", "/")
    assert query["Action"] == "GetCallerIdentity" and query["X-Amz-Expires"] == "60"
    assert query["X-Amz-SignedHeaders"] == "host;x-k8s-aws-id"
    assert query["X-Amz-Date"] == "20260304T050607Z"
    assert query["X-Amz-Security-Token"] == SESSION.session_token


@pytest.mark.parametrize("environ,expected", [
    ({}, "https://sts.eu-central-1.amazonaws.com"),
    ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9/"}, "http://127.0.0.1:9"),
    ({"AWS_ENDPOINT_URL": "http://a", "AWS_ENDPOINT_URL_STS": "http://b"}, "http://b"),
])
def test_sts_endpoint(environ: dict[str, str], expected: str) -> None:
    assert eks.sts_endpoint("eu-central-1", environ) == expected


def test_china_regions_use_their_own_domain() -> None:
    assert eks.sts_endpoint("cn-north-1", {}) == "https://sts.cn-north-1.amazonaws.com.cn"


# The user entries below are typed from aws-cli's customizations/eks/update_kubeconfig.py (the exec entry it
# writes: command aws, args --region R eks get-token --cluster-name N --output json, plus --role-arn with
# `update-kubeconfig --role-arn`, env AWS_PROFILE with --profile) and from aws-iam-authenticator's README
# (`aws-iam-authenticator token -i CLUSTER [-r ROLE]`).
UPDATE_KUBECONFIG_USER = {"exec": {
    "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
    "args": ["--region", "eu-west-1", "eks", "get-token", "--cluster-name", "shop", "--output", "json",
             "--role-arn", "arn:aws:iam::111122223333:role/deployer"],
    "env": [{"name": "AWS_PROFILE", "value": "prod"}]}}


@pytest.mark.parametrize("user,expected", [
    (UPDATE_KUBECONFIG_USER, Eks("aws eks get-token", "shop", "eu-west-1",
                                 "arn:aws:iam::111122223333:role/deployer")),
    ({"exec": {"command": "aws", "args": ["eks", "get-token", "--cluster-name=prod"]}},
     Eks("aws eks get-token", "prod", None, None)),
    ({"exec": {"command": "/usr/local/bin/aws-iam-authenticator", "args": ["token", "-i", "legacy", "-r",
                                                                           "arn:aws:iam::1:role/r"]}},
     Eks("/usr/local/bin/aws-iam-authenticator token", "legacy", None, "arn:aws:iam::1:role/r")),
])
def test_eks_kubeconfig_users_are_recognised(user: dict[str, Any], expected: Eks) -> None:
    assert classify(user) == expected
