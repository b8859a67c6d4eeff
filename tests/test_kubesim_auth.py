"""kubesim's token authentication (kubesim/auth.py): EKS tokens are verified by recomputing their SigV4
signature, JWTs by their HS256 signature and claims; the real kubectl authenticates with both."""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import kubectl
from helpers import make_deployment

import kubesim
from kubesim.__main__ import authenticators, build_parser
from kubesim.auth import Authenticators, AwsKey, sign_hs256
from rollback.credentials import eks

KEY = eks.AwsCredentials("AKIAKUBESIMTEST00001", "kubesim/test+secret0000000000000000000000")
NOW = time.time()


def authn(**changes: Any) -> Authenticators:
    base: dict[str, Any] = {"eks_cluster_id": "shop", "aws_keys": {KEY.access_key_id: AwsKey(KEY.secret_access_key,
                                                                                           "deployer")},
                            "jwt_key": "k", "jwt_issuers": ("https://issuer",), "jwt_audiences": ("aud",),
                            "now": lambda: NOW}
    base.update(changes)
    return Authenticators(**base)


def minted(credentials: eks.AwsCredentials = KEY, cluster: str = "shop", age: float = 0.0,
           endpoint: str = "https://sts.eu-west-1.amazonaws.com") -> str:
    when = datetime.datetime.fromtimestamp(NOW - age, datetime.UTC)
    return eks.token(credentials, cluster, "eu-west-1", when, endpoint)


def test_a_valid_eks_token_maps_the_access_key_to_its_user() -> None:
    assert authn().authenticate(minted()) is not None
    assert authn().authenticate(minted()).user == "deployer"  # type: ignore[union-attr]
    with_session = eks.AwsCredentials(KEY.access_key_id, KEY.secret_access_key, "session/token+=")
    assert authn().authenticate(minted(with_session, endpoint="http://127.0.0.1:1/sts")) is not None


@pytest.mark.parametrize("token", [
    minted(eks.AwsCredentials(KEY.access_key_id, "wrong-secret")),
    minted(cluster="other"),
    minted(age=16 * 60),
    minted(age=-5 * 60),
    minted(eks.AwsCredentials("AKIAUNKNOWN000000001", KEY.secret_access_key)),
    minted()[:-4] + "AAAA",
    "k8s-aws-v1.not-base64!",
], ids=["wrong-secret", "other-cluster", "too-old", "from-the-future", "unknown-key", "tampered", "garbage"])
def test_eks_tokens_that_sts_would_refuse_are_refused(token: str) -> None:
    assert authn().authenticate(token) is None


def jwt(**claims: Any) -> str:
    base: dict[str, Any] = {"iss": "https://issuer", "aud": "aud", "sub": "alice", "exp": NOW + 60}
    base.update(claims)
    return sign_hs256(base, "k")


def test_jwts_are_checked_for_signature_issuer_audience_and_expiry() -> None:
    assert authn().authenticate(jwt()).user == "alice"  # type: ignore[union-attr]
    assert authn().authenticate(jwt(aud=["x", "aud"])) is not None
    for bad in (jwt(iss="https://other"), jwt(aud="other"), jwt(exp=NOW - 1), jwt(sub=""),
                sign_hs256({"iss": "https://issuer", "aud": "aud", "sub": "a", "exp": NOW + 60}, "other-key")):
        assert authn().authenticate(bad) is None
    assert authn(jwt_key=None).authenticate(jwt()) is None


def test_cli_flags_build_the_same_authenticators() -> None:
    args = build_parser().parse_args(["--eks-cluster-id", "shop", "--aws-key", "AKIA1:sec/ret:deployer",
                                      "--jwt-key", "k", "--jwt-issuer", "https://i", "--jwt-audience", "a"])
    built = authenticators(args)
    assert built is not None and built.eks_cluster_id == "shop" and built.jwt_key == "k"
    assert built.aws_keys == {"AKIA1": AwsKey("sec/ret", "deployer")}
    assert (built.jwt_issuers, built.jwt_audiences) == (("https://i",), ("a",))
    assert authenticators(build_parser().parse_args([])) is None
    with pytest.raises(SystemExit):
        authenticators(build_parser().parse_args(["--eks-cluster-id", "x", "--aws-key", "no-secret"]))


def test_real_kubectl_authenticates_with_an_eks_token_and_is_refused_with_a_forged_one(tmp_path: Path) -> None:
    with kubesim.serve(tls=True, kubeconfig_path=str(tmp_path / "kubeconfig")) as sim:
        make_deployment(sim, "web")
        sim.knobs.authn = authn(now=time.time)
        good = eks.token(KEY, "shop", "eu-west-1", datetime.datetime.now(datetime.UTC),
                         "https://sts.eu-west-1.amazonaws.com")
        ok = kubectl(sim, "get", "deployments", "-o", "name", token=good)
        assert ok.returncode == 0 and ok.stdout.strip() == "deployment.apps/web", ok.stderr
        forged = eks.token(eks.AwsCredentials(KEY.access_key_id, "guessed"), "shop", "eu-west-1",
                           datetime.datetime.now(datetime.UTC), "https://sts.eu-west-1.amazonaws.com")
        refused = kubectl(sim, "get", "deployments", token=forged)
        assert refused.returncode != 0 and "Unauthorized" in refused.stderr
