"""Renewing minted tokens (rollback/credentials/refresh.py), on a fake clock."""

from __future__ import annotations

from typing import Any

from rollback.credentials.exec_plugins import Aks, Eks, Gke, OidcIdToken
from rollback.credentials.http import CredentialError
from rollback.credentials.refresh import RefreshingToken, refresh_after


class FakeConfiguration:
    def __init__(self) -> None:
        self.api_key: dict[str, str] = {}


def test_a_token_is_minted_again_only_when_due_and_a_failure_keeps_the_old_one() -> None:
    now = [0.0]
    minted = iter(["second", "third"])
    failing = [False]
    warnings: list[str] = []

    def mint() -> str:
        if failing[0]:
            raise CredentialError("aws-role-arn", "AWS STS AssumeRole refused: HTTP 403: AccessDenied")
        return next(minted)

    token = RefreshingToken("first", mint, 600, warnings.append, clock=lambda: now[0])
    config: Any = FakeConfiguration()
    token.hook(config)
    assert config.api_key == {"BearerToken": "Bearer first"}
    now[0] = 599
    assert token.current() == "first"
    now[0] = 600
    token.hook(config)
    assert config.api_key == {"BearerToken": "Bearer second"}
    failing[0] = True
    now[0] = 1200
    assert token.current() == "second" and len(warnings) == 1 and "AccessDenied" in warnings[0]
    assert token.current() == "second" and len(warnings) == 1  # not retried on every request
    failing[0] = False
    now[0] = 1800
    assert token.current() == "third"


def test_refresh_intervals_stay_inside_each_tokens_lifetime() -> None:
    assert refresh_after(Eks("aws", "c")) == 600  # EKS tokens are accepted for 15 minutes
    assert refresh_after(Aks("kubelogin")) == refresh_after(Gke("gke-gcloud-auth-plugin")) == 2400  # ~1 h
    assert refresh_after(OidcIdToken("t")) is None


