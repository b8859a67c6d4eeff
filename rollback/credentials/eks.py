"""EKS bearer tokens without the AWS CLI: a SigV4-presigned STS ``GetCallerIdentity`` URL (standard library).

What ``aws eks get-token`` prints (aws-cli ``customizations/eks/get_token.py``): ``k8s-aws-v1.`` followed by
the unpadded base64url of a GET URL to the regional STS endpoint, presigned for 60 seconds, whose signed
headers include ``x-k8s-aws-id: <cluster name>``. EKS (aws-iam-authenticator) calls that URL and maps the
caller's ARN to a Kubernetes user. ``tests/test_credentials_eks.py`` proves the token byte for byte against
botocore's presigner.

Credentials come from the environment ``aws-actions/configure-aws-credentials`` exports (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``/``AWS_DEFAULT_REGION``); with a role ARN
they are first exchanged with STS ``AssumeRole``, or, without keys, a GitHub OIDC token is exchanged with
``AssumeRoleWithWebIdentity``. ``AWS_ENDPOINT_URL_STS`` / ``AWS_ENDPOINT_URL`` replace the STS endpoint, as in
the AWS SDKs.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from . import http, oidc
from .exec_plugins import Eks

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_HEADER = "x-k8s-aws-id"
PRESIGN_SECONDS = 60  # what aws-cli and aws-iam-authenticator presign for
STS_VERSION = "2011-06-15"
WEB_IDENTITY_AUDIENCE = "sts.amazonaws.com"  # what configure-aws-credentials requests
_SAFE = "-_.~"  # SigV4's unreserved characters
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # botocore signs a presigned GET's empty body, not UNSIGNED-PAYLOAD


@dataclass(frozen=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def secrets(self) -> tuple[str, ...]:
        return tuple(v for v in (self.secret_access_key, self.session_token) if v)


def sts_endpoint(region: str, environ: Mapping[str, str]) -> str:
    """The STS endpoint: ``AWS_ENDPOINT_URL_STS``, else ``AWS_ENDPOINT_URL``, else the regional one."""
    override = environ.get("AWS_ENDPOINT_URL_STS") or environ.get("AWS_ENDPOINT_URL")
    if override:
        return override.rstrip("/")
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sts.{region}.{suffix}"


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe=_SAFE)


def _encode(params: list[tuple[str, str]]) -> str:
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in params)


def _signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _signature(credentials: AwsCredentials, stamp: str, region: str, service: str, canonical: str) -> str:
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(("AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()))
    key = _signing_key(credentials.secret_access_key, stamp[:8], region, service)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _canonical_query(query: str) -> str:
    pairs = [part.partition("=") for part in query.split("&") if part]
    return "&".join(f"{k}={v}" for k, _, v in sorted(pairs, key=lambda p: (p[0], p[2])))


def presigned_url(credentials: AwsCredentials, cluster_name: str, region: str, now: datetime.datetime,
                  endpoint: str) -> str:
    """The presigned ``GetCallerIdentity`` URL, laid out as botocore lays it out (operation parameters, then
    the signing parameters, then the signature)."""
    stamp = now.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    parts = urllib.parse.urlsplit(endpoint)
    path = parts.path or "/"
    auth = [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", f"{credentials.access_key_id}/{stamp[:8]}/{region}/sts/aws4_request"),
            ("X-Amz-Date", stamp), ("X-Amz-Expires", str(PRESIGN_SECONDS)),
            ("X-Amz-SignedHeaders", f"host;{CLUSTER_HEADER}")]
    if credentials.session_token:
        auth.append(("X-Amz-Security-Token", credentials.session_token))
    query = _encode([("Action", "GetCallerIdentity"), ("Version", STS_VERSION)]) + "&" + _encode(auth)
    canonical = "\n".join(("GET", _quote_path(path), _canonical_query(query), f"host:{parts.netloc}",
                           f"{CLUSTER_HEADER}:{cluster_name.strip()}", "", f"host;{CLUSTER_HEADER}",
                           EMPTY_SHA256))
    signature = _signature(credentials, stamp, region, "sts", canonical)
    return f"{parts.scheme}://{parts.netloc}{path}?{query}&X-Amz-Signature={signature}"


def _quote_path(path: str) -> str:
    return urllib.parse.quote(path, safe="/" + _SAFE)


def token(credentials: AwsCredentials, cluster_name: str, region: str, now: datetime.datetime,
          endpoint: str) -> str:
    url = presigned_url(credentials, cluster_name, region, now, endpoint)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def signed_post_headers(credentials: AwsCredentials, url: str, body: str, region: str, service: str,
                        now: datetime.datetime) -> dict[str, str]:
    """SigV4 ``Authorization`` headers for a form POST (STS ``AssumeRole``)."""
    stamp = now.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    parts = urllib.parse.urlsplit(url)
    headers = {"content-type": "application/x-www-form-urlencoded; charset=utf-8", "host": parts.netloc,
               "x-amz-date": stamp}
    if credentials.session_token:
        headers["x-amz-security-token"] = credentials.session_token
    names = sorted(headers)
    canonical = "\n".join(("POST", _quote_path(parts.path or "/"), _canonical_query(parts.query),
                           *(f"{n}:{headers[n].strip()}" for n in names), "", ";".join(names),
                           hashlib.sha256(body.encode()).hexdigest()))
    signature = _signature(credentials, stamp, region, service, canonical)
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={credentials.access_key_id}/{scope}, "
                                f"SignedHeaders={';'.join(names)}, Signature={signature}")
    del headers["host"]  # urllib sets it from the URL, to the same value
    return headers


def from_environment(environ: Mapping[str, str]) -> AwsCredentials | None:
    key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        return AwsCredentials(key, secret, environ.get("AWS_SESSION_TOKEN") or None)
    return None


def region_for(plan: Eks, environ: Mapping[str, str]) -> str | None:
    return plan.region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None


def _credentials_from_xml(body: bytes, what: str) -> AwsCredentials:
    text = body.decode("utf-8", "replace")
    found = {name: re.search(rf"<{name}>([^<]*)</{name}>", text) for name in
             ("AccessKeyId", "SecretAccessKey", "SessionToken")}
    if not all(found.values()):
        raise http.CredentialError("aws-role-arn", f"{what} answered without credentials")
    key, secret, session = (m.group(1).strip() for m in found.values() if m)
    return AwsCredentials(key, secret, session)


def _session_name(environ: Mapping[str, str]) -> str:
    # what configure-aws-credentials uses by default; [\w+=,.@-]{2,64} is what STS accepts
    return "GitHubActions" if environ.get("GITHUB_ACTIONS") else "kube-release-rollback"


def assume_role(credentials: AwsCredentials, role_arn: str, region: str, environ: Mapping[str, str],
                now: datetime.datetime) -> AwsCredentials:
    url = sts_endpoint(region, environ) + "/"
    body = _encode([("Action", "AssumeRole"), ("Version", STS_VERSION), ("RoleArn", role_arn),
                    ("RoleSessionName", _session_name(environ)), ("DurationSeconds", "900")])
    headers = signed_post_headers(credentials, url, body, region, "sts", now)
    answer = http.request("POST", url, "AWS STS AssumeRole", "aws-role-arn", body.encode(), headers)
    return _credentials_from_xml(answer, "AWS STS AssumeRole")


def assume_role_with_web_identity(role_arn: str, region: str, environ: Mapping[str, str],
                                  on_secret: Callable[[str], None]) -> AwsCredentials:
    web_token = oidc.request_token(environ, WEB_IDENTITY_AUDIENCE, "aws-role-arn", on_secret)
    url = sts_endpoint(region, environ) + "/"
    fields = {"Action": "AssumeRoleWithWebIdentity", "Version": STS_VERSION, "RoleArn": role_arn,
              "RoleSessionName": _session_name(environ), "WebIdentityToken": web_token,
              "DurationSeconds": "900"}
    answer = http.post_form(url, fields, "AWS STS AssumeRoleWithWebIdentity", "aws-role-arn",
                            headers={"Accept": "application/xml"})
    return _credentials_from_xml(answer, "AWS STS AssumeRoleWithWebIdentity")


def bearer_token(plan: Eks, role_arn_input: str | None, environ: Mapping[str, str], now: datetime.datetime,
                 on_secret: Callable[[str], None]) -> tuple[str, str]:
    """(token, description safe to print). ``on_secret`` is told every credential as soon as it is known."""
    region = region_for(plan, environ)
    if not region:
        raise http.CredentialError("kubeconfig", f"the kubeconfig runs {plan.command!r} for EKS cluster "
                                                 f"{plan.cluster_name!r} but names no --region, and neither "
                                                 f"AWS_REGION nor AWS_DEFAULT_REGION is set: set AWS_REGION "
                                                 f"(aws-actions/configure-aws-credentials does)")
    role_arn = role_arn_input or plan.role_arn
    credentials = from_environment(environ)
    if credentials is not None:
        for secret in credentials.secrets():
            on_secret(secret)
        how = "AWS_ACCESS_KEY_ID"
        if role_arn:
            credentials = assume_role(credentials, role_arn, region, environ, now)
            how += f", role {role_arn}"
    elif role_arn and environ.get("ACTIONS_ID_TOKEN_REQUEST_URL"):
        credentials = assume_role_with_web_identity(role_arn, region, environ, on_secret)
        how = f"GitHub OIDC, role {role_arn}"
    else:
        raise http.CredentialError(
            "aws-role-arn",
            f"the kubeconfig runs {plan.command!r} for EKS cluster {plan.cluster_name!r}, and there are no AWS "
            f"credentials: run aws-actions/configure-aws-credentials before this step (it exports "
            f"AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and AWS_REGION), or set the "
            f"aws-role-arn input and give the job 'permissions: id-token: write' so the action assumes the role "
            f"with GitHub OIDC itself")
    for secret in credentials.secrets():
        on_secret(secret)
    minted = token(credentials, plan.cluster_name, region, now, sts_endpoint(region, environ))
    on_secret(minted)
    return minted, f"EKS token for cluster {plan.cluster_name} ({how})"
