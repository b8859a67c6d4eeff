"""Token authentication as managed clusters do it, for tests of the cloud credential paths.

- **EKS**: a bearer token ``k8s-aws-v1.<base64url of a presigned STS GetCallerIdentity URL>``. EKS's
  authenticator (aws-iam-authenticator) forwards that URL to STS with the header ``x-k8s-aws-id: <cluster>``
  and maps the caller to a user. kubesim cannot ask STS, so it does what STS does: it recomputes the SigV4
  signature with the secret key it was given for the access key, over the cluster id it was configured with,
  and maps the access key to a user. A token minted for another cluster, with another secret, or older than
  15 minutes (what the authenticator accepts) is refused.
- **JWT**: bearer tokens that a (fake) token endpoint issued, as HS256 JWTs signed with a shared test key: the
  signature, ``iss``, ``aud`` and ``exp`` are checked and ``sub`` becomes the user (the shape of the API
  server's JWT authenticator, with a shared key instead of the issuer's JWKS).

Authenticated users get full access (a ``Grant`` without restrictions).
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from .knobs import Grant

EKS_PREFIX = "k8s-aws-v1."
EKS_MAX_AGE = 15 * 60  # seconds: aws-iam-authenticator accepts tokens up to 15 minutes after signing
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class AwsKey:
    secret: str = field(repr=False)
    user: str


@dataclass
class Authenticators:
    eks_cluster_id: str | None = None
    aws_keys: dict[str, AwsKey] = field(default_factory=dict)  # access key id -> secret and user
    jwt_key: str | None = field(default=None, repr=False)
    jwt_issuers: tuple[str, ...] = ()  # empty: any issuer
    jwt_audiences: tuple[str, ...] = ()  # empty: any audience
    now: Callable[[], float] = time.time

    def authenticate(self, token: str) -> Grant | None:
        if token.startswith(EKS_PREFIX):
            user = self.eks_user(token)
        else:
            user = self.jwt_user(token)
        return Grant(user) if user else None

    # -- EKS -------------------------------------------------------------------------------------------------

    def eks_user(self, token: str) -> str | None:
        if not self.eks_cluster_id:
            return None
        encoded = token[len(EKS_PREFIX):]
        try:
            url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        parts = urllib.parse.urlsplit(url)
        raw_pairs = [p.partition("=") for p in parts.query.split("&") if p]
        query = {urllib.parse.unquote(k): urllib.parse.unquote(v) for k, _, v in raw_pairs}
        if query.get("Action") != "GetCallerIdentity" or query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            return None
        signed = query.get("X-Amz-SignedHeaders", "").split(";")
        if "x-k8s-aws-id" not in signed or "host" not in signed:
            return None
        try:
            key_id, day, region, service, terminal = query["X-Amz-Credential"].split("/")
            stamp = query["X-Amz-Date"]
            signed_at = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
        except (KeyError, ValueError):
            return None
        key = self.aws_keys.get(key_id)
        if key is None or service != "sts" or terminal != "aws4_request" or not stamp.startswith(day):
            return None
        if not -60 <= self.now() - signed_at <= EKS_MAX_AGE:  # a minute of clock skew either way
            return None
        headers = {"host": parts.netloc, "x-k8s-aws-id": self.eks_cluster_id}
        canonical_query = "&".join(f"{k}={v}" for k, _, v in sorted(
            (p for p in raw_pairs if p[0] != "X-Amz-Signature"), key=lambda p: (p[0], p[2])))
        canonical = "\n".join([
            "GET", parts.path or "/", canonical_query,
            *(f"{name}:{headers.get(name, '')}" for name in signed), "", ";".join(signed), EMPTY_SHA256])
        to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, f"{day}/{region}/sts/aws4_request",
                             hashlib.sha256(canonical.encode()).hexdigest()])
        signing = ("AWS4" + key.secret).encode()
        for part in (day, region, "sts", "aws4_request"):
            signing = hmac.new(signing, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
        return key.user if hmac.compare_digest(expected, query.get("X-Amz-Signature", "")) else None

    # -- JWT -------------------------------------------------------------------------------------------------

    def jwt_user(self, token: str) -> str | None:
        if not self.jwt_key:
            return None
        claims = verify_hs256(token, self.jwt_key)
        if claims is None:
            return None
        if self.jwt_issuers and claims.get("iss") not in self.jwt_issuers:
            return None
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        if self.jwt_audiences and not set(audiences) & set(self.jwt_audiences):
            return None
        expiry = claims.get("exp")
        if not isinstance(expiry, int | float) or expiry < self.now():
            return None
        subject = claims.get("sub")
        return str(subject) if subject else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def sign_hs256(claims: dict[str, object], key: str) -> str:
    """A compact JWT: what the fake token endpoints in tests issue."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def verify_hs256(token: str, key: str) -> dict[str, object] | None:
    try:
        head, body, signature = token.split(".")
        expected = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(_b64(expected), signature):
            return None
        if json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))).get("alg") != "HS256":
            return None
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, AttributeError):
        return None
    return claims if isinstance(claims, dict) else None
