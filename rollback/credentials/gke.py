"""GKE (Google) access tokens from the credentials file ``google-github-actions/auth`` writes (standard library).

``auth`` writes the file into the workspace (so the container sees it) and exports
``GOOGLE_APPLICATION_CREDENTIALS``. Its types, as in google-auth:

- ``external_account`` (workload identity federation): read the subject token from ``credential_source``
  (``file``, or ``url`` with ``headers``; ``format`` text or json), exchange it at ``token_url`` (Google STS,
  RFC 8693 token exchange), then, with ``service_account_impersonation_url``, trade that for the service
  account's token (IAM Credentials ``generateAccessToken``);
- ``service_account`` (a JSON key): an RS256-signed JWT assertion exchanged at ``token_uri`` (RFC 7523). The
  signature is PKCS#1 v1.5 computed with Python integers: no cryptography package in the image;
- ``authorized_user`` (``gcloud auth application-default login``): a refresh-token grant.

A kubeconfig from ``google-github-actions/get-gke-credentials`` carries a token already and needs none of this.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from . import http
from .exec_plugins import Gke

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
INPUT = "GOOGLE_APPLICATION_CREDENTIALS"
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def bearer_token(plan: Gke, environ: Mapping[str, str], on_secret: Callable[[str], None],
                 now: datetime.datetime) -> tuple[str, str]:
    path = environ.get(INPUT)
    if not path:
        raise http.CredentialError(INPUT, (
            f"the kubeconfig uses {plan.command!r} (GKE), and GOOGLE_APPLICATION_CREDENTIALS is not set: run "
            f"google-github-actions/auth before this step (it writes a credentials file into the workspace and "
            f"exports the variable), or get the kubeconfig from google-github-actions/get-gke-credentials, "
            f"which embeds a token"))
    try:
        with open(path, encoding="utf-8") as handle:
            info = json.load(handle)
    except OSError as err:
        raise http.CredentialError(INPUT, f"GOOGLE_APPLICATION_CREDENTIALS names {path}, which cannot be read "
                                          f"({err.strerror or err}); a container action sees only the "
                                          f"workspace and RUNNER_TEMP (runner 2.331 or later)") from None
    except ValueError:
        raise http.CredentialError(INPUT, f"GOOGLE_APPLICATION_CREDENTIALS names {path}, which is not "
                                          f"JSON") from None
    if not isinstance(info, dict):
        raise http.CredentialError(INPUT, f"{path} is not a Google credentials file (a JSON object)")
    for secret in file_secrets(info):
        on_secret(secret)
    kind = info.get("type")
    if kind == "external_account":
        token, how = _external_account(info, environ, on_secret), "workload identity federation"
    elif kind == "service_account":
        token, how = _service_account(info, now), f"service account key {info.get('client_email')}"
    elif kind == "authorized_user":
        token, how = _authorized_user(info), "authorized user"
    else:
        raise http.CredentialError(INPUT, f"{path} has type {kind!r}; supported are external_account (what "
                                          f"google-github-actions/auth writes), service_account and "
                                          f"authorized_user")
    on_secret(token)
    return token, f"Google access token for GKE ({how})"


def file_secrets(info: Mapping[str, Any]) -> list[str]:
    """Credentials inside a Google credentials file: keys, secrets, and the headers of a credential URL."""
    found = [str(info[k]) for k in ("private_key", "client_secret", "refresh_token") if info.get(k)]
    source = info.get("credential_source")
    headers = source.get("headers") if isinstance(source, Mapping) else None
    if isinstance(headers, Mapping):
        for value in headers.values():
            found.append(str(value))
            if str(value).lower().startswith("bearer "):
                found.append(str(value)[7:])
    return found


def _field(info: Mapping[str, Any], name: str, where: str) -> str:
    value = info.get(name)
    if not isinstance(value, str) or not value:
        raise http.CredentialError(INPUT, f"the Google credentials file has no {name} ({where})")
    return value


def subject_token(info: Mapping[str, Any]) -> str:
    source = info.get("credential_source")
    if not isinstance(source, Mapping):
        raise http.CredentialError(INPUT, "the external_account credentials file has no credential_source")
    fmt = source.get("format") if isinstance(source.get("format"), Mapping) else {}
    if source.get("file"):
        try:
            with open(str(source["file"]), "rb") as handle:
                raw = handle.read()
        except OSError as err:
            raise http.CredentialError(INPUT, f"credential_source.file {source['file']} cannot be read "
                                              f"({err.strerror or err})") from None
    elif source.get("url"):
        headers = source.get("headers") if isinstance(source.get("headers"), Mapping) else {}
        raw = http.request("GET", str(source["url"]), "the subject token request (credential_source.url)", INPUT,
                           headers={str(k): str(v) for k, v in (headers or {}).items()})
    else:
        raise http.CredentialError(INPUT, "credential_source has neither file nor url; executable and AWS "
                                          "sources are not supported in this action")
    if (fmt or {}).get("type") == "json":
        name = str((fmt or {}).get("subject_token_field_name") or "")
        value = http.json_object(raw, "the subject token source", INPUT).get(name)
        if not isinstance(value, str) or not value:
            raise http.CredentialError(INPUT, f"the subject token source has no field {name!r}")
        return value
    return raw.decode("utf-8").strip()


def _external_account(info: Mapping[str, Any], environ: Mapping[str, str],
                      on_secret: Callable[[str], None]) -> str:
    subject = subject_token(info)
    on_secret(subject)
    answer = http.post_form(_field(info, "token_url", "Google STS"), {
        "grant_type": TOKEN_EXCHANGE, "audience": _field(info, "audience", "workload identity provider"),
        "scope": SCOPE, "requested_token_type": ACCESS_TOKEN_TYPE,
        "subject_token_type": _field(info, "subject_token_type", "type of the subject token"),
        "subject_token": subject,
    }, "the Google STS token exchange", INPUT)
    federated = http.json_object(answer, "the Google STS token exchange", INPUT).get("access_token")
    if not isinstance(federated, str) or not federated:
        raise http.CredentialError(INPUT, "the Google STS token exchange answered without access_token")
    on_secret(federated)
    url = info.get("service_account_impersonation_url")
    if not url:
        return federated
    body = json.dumps({"scope": [SCOPE], "lifetime": "3600s"}).encode()
    answer = http.request("POST", str(url), "the service account impersonation (generateAccessToken)", INPUT,
                          body, {"Authorization": f"Bearer {federated}", "Content-Type": "application/json"})
    token = http.json_object(answer, "the service account impersonation", INPUT).get("accessToken")
    if not isinstance(token, str) or not token:
        raise http.CredentialError(INPUT, "the service account impersonation answered without accessToken")
    return token


def _service_account(info: Mapping[str, Any], now: datetime.datetime) -> str:
    token_uri = _field(info, "token_uri", "token endpoint")
    issued = int(now.timestamp())
    header = {"alg": "RS256", "typ": "JWT"}
    if info.get("private_key_id"):
        header["kid"] = str(info["private_key_id"])
    claims = {"iss": _field(info, "client_email", "service account"), "scope": SCOPE, "aud": token_uri,
              "iat": issued, "exp": issued + 3600}
    assertion = rs256_jwt(header, claims, _field(info, "private_key", "service account key"))
    answer = http.post_form(token_uri, {"grant_type": JWT_BEARER, "assertion": assertion},
                            "the Google OAuth token request (service account)", INPUT)
    token = http.json_object(answer, "the Google OAuth token request", INPUT).get("access_token")
    if not isinstance(token, str) or not token:
        raise http.CredentialError(INPUT, "the Google OAuth token request answered without access_token")
    return token


def _authorized_user(info: Mapping[str, Any]) -> str:
    answer = http.post_form(str(info.get("token_uri") or "https://oauth2.googleapis.com/token"), {
        "grant_type": "refresh_token", "client_id": _field(info, "client_id", "OAuth client"),
        "client_secret": _field(info, "client_secret", "OAuth client"),
        "refresh_token": _field(info, "refresh_token", "user login"),
    }, "the Google OAuth token refresh", INPUT)
    token = http.json_object(answer, "the Google OAuth token refresh", INPUT).get("access_token")
    if not isinstance(token, str) or not token:
        raise http.CredentialError(INPUT, "the Google OAuth token refresh answered without access_token")
    return token


# -- RS256 with Python integers ---------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def rs256_jwt(header: Mapping[str, Any], claims: Mapping[str, Any], private_key_pem: str) -> str:
    signing_input = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
    return f"{signing_input}.{_b64url(rs256_sign(signing_input.encode(), private_key_pem))}"


def rs256_sign(message: bytes, private_key_pem: str) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 8.2.1) for a PKCS#8 or PKCS#1 PEM key."""
    n, d = _rsa_key(private_key_pem)
    size = (n.bit_length() + 7) // 8
    digest_info = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    if size < len(digest_info) + 11:
        raise http.CredentialError(INPUT, "the service account key is too short for RS256")
    encoded = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    return pow(int.from_bytes(encoded, "big"), d, n).to_bytes(size, "big")


def _rsa_key(pem: str) -> tuple[int, int]:
    lines = [line.strip() for line in pem.strip().splitlines()]
    try:
        der = base64.b64decode("".join(line for line in lines if line and not line.startswith("-----")))
        top = _der_sequence(der)
        if "BEGIN RSA PRIVATE KEY" not in pem:  # PKCS#8: version, algorithm, OCTET STRING(RSAPrivateKey)
            tag, inner, _ = _der_read(top[2])
            if tag != 0x04:
                raise ValueError("no private key octet string")
            top = _der_sequence(inner)
        n, d = (int.from_bytes(_der_read(top[i])[1], "big") for i in (1, 3))
    except (ValueError, IndexError) as err:
        raise http.CredentialError(INPUT, f"the service account private_key is not an RSA key in PEM ({err})") from None
    return n, d


def _der_read(data: bytes) -> tuple[int, bytes, bytes]:
    """(tag, content, rest) of the first DER element."""
    tag, length, pos = data[0], data[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, pos = int.from_bytes(data[2:2 + count], "big"), 2 + count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, data[pos:pos + length], data[pos + length:]


def _der_sequence(data: bytes) -> list[bytes]:
    """The encoded elements of a DER SEQUENCE, each with its own tag and length."""
    tag, content, _ = _der_read(data)
    if tag != 0x30:
        raise ValueError("not a DER sequence")
    elements = []
    while content:
        _, _, rest = _der_read(content)
        elements.append(content[:len(content) - len(rest)])
        content = rest
    return elements
