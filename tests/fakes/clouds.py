"""Local fakes of the cloud endpoints the credential paths call, on 127.0.0.1, for one test.

One HTTP server plays every part; the product reaches it only through what a user would set:
``ACTIONS_ID_TOKEN_REQUEST_URL`` (GitHub OIDC), ``AWS_ENDPOINT_URL_STS`` (AWS STS), ``AZURE_AUTHORITY_HOST``
(Azure AD), and the ``token_url`` / ``service_account_impersonation_url`` / ``credential_source.url`` fields of
a Google credentials file. Each endpoint checks what the real one checks that matters here (the request token,
SigV4 signatures, the audience and signature of the OIDC token, the client id and scope) and answers in the
real one's shape. Tokens meant for the cluster are HS256 JWTs signed with ``cluster_key``, which kubesim's
JWT authentication verifies (``kubesim/auth.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubesim.auth import sign_hs256, verify_hs256

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
SUBJECT = "repo:acme/shop:ref:refs/heads/main"


@dataclass
class Issued:
    """Temporary AWS credentials the fake STS hands out."""

    access_key_id: str
    secret: str
    session_token: str


@dataclass
class Clouds:
    url: str = ""
    request_token: str = "gh-request-token-0123456789"  # ACTIONS_ID_TOKEN_REQUEST_TOKEN
    oidc_key: str = "github-oidc-signing-key"  # signs the GitHub OIDC tokens (the fakes verify them)
    cluster_key: str = "cluster-jwt-key"  # signs tokens meant for the cluster (kubesim verifies them)
    aws_keys: dict[str, str] = field(default_factory=dict)  # access key id -> secret (for AssumeRole)
    roles: dict[str, Issued] = field(default_factory=dict)  # role ARN -> credentials STS hands out for it
    azure_clients: dict[str, str] = field(default_factory=dict)  # client id -> tenant (federated with GitHub)
    google_audience: str = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/gh"
    google_service_account: str = "deployer@shop.iam.gserviceaccount.com"
    google_key_public: tuple[int, int] | None = None  # (n, e) of the service account key the fake trusts
    delay: float = 0.0  # real seconds each answer waits (a slow or hung endpoint)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of every request
    issued: list[str] = field(default_factory=list)  # every token and secret handed out (tests grep for them)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the URLs a user would configure ---------------------------------------------------------------------

    @property
    def oidc_request_url(self) -> str:
        return f"{self.url}/_apis/distributedtask/oidc?api-version=2.0"

    def environ(self) -> dict[str, str]:
        return {"ACTIONS_ID_TOKEN_REQUEST_URL": self.oidc_request_url,
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
                "AWS_ENDPOINT_URL_STS": f"{self.url}/sts", "AZURE_AUTHORITY_HOST": f"{self.url}/aad/"}

    def google_credentials(self) -> dict[str, Any]:
        """What google-github-actions/auth writes for workload identity federation (src/client/
        workload_identity_federation.ts: credential_source.url is the OIDC request URL with the audience,
        and its headers carry the request token)."""
        audience = urllib.parse.quote("https:" + self.google_audience, safe="")
        return {
            "type": "external_account", "audience": self.google_audience,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": f"{self.url}/google-sts/v1/token",
            "service_account_impersonation_url": f"{self.url}/iamcredentials/v1/projects/-/serviceAccounts/"
                                                 f"{self.google_service_account}:generateAccessToken",
            "credential_source": {"url": f"{self.oidc_request_url}&audience={audience}",
                                  "headers": {"Authorization": f"Bearer {self.request_token}"},
                                  "format": {"type": "json", "subject_token_field_name": "value"}},
        }

    def cluster_token(self, subject: str, audience: str) -> str:
        token = sign_hs256({"iss": self.url, "sub": subject, "aud": audience, "exp": int(time.time()) + 3600},
                           self.cluster_key)
        self.issued.append(token)
        return token

    def oidc_token(self, audience: str) -> str:
        token = sign_hs256({"iss": GITHUB_ISSUER, "sub": SUBJECT, "aud": audience,
                            "exp": int(time.time()) + 300}, self.oidc_key)
        self.issued.append(token)
        return token

    def valid_oidc(self, token: str, audience: str) -> bool:
        claims = verify_hs256(token, self.oidc_key)
        return bool(claims) and claims.get("aud") == audience and claims.get("iss") == GITHUB_ISSUER  # type: ignore[union-attr]

    # -- the endpoints --------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, str, str]:
        parts = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        form = dict(urllib.parse.parse_qsl(body.decode())) if body and not body.startswith(b"{") else {}
        bearer = (headers.get("Authorization") or "")[7:]
        if parts.path == "/_apis/distributedtask/oidc":
            if bearer != self.request_token or "audience" not in query:
                return 401, "application/json", json.dumps({"message": "bad request token"})
            return 200, "application/json", json.dumps({"value": self.oidc_token(query["audience"])})
        if parts.path == "/sts/" and method == "POST":
            return self.sts(form, headers, body)
        if parts.path.startswith("/aad/") and parts.path.endswith("/oauth2/v2.0/token"):
            return self.aad(parts.path.split("/")[2], form)
        if parts.path == "/google-sts/v1/token":
            if form.get("audience") != self.google_audience or not self.valid_oidc(
                    form.get("subject_token", ""), "https:" + self.google_audience):
                return 400, "application/json", json.dumps({"error": "invalid_grant",
                                                             "error_description": "bad subject token"})
            federated = f"federated-{len(self.issued)}-access-token"
            self.issued.append(federated)
            return 200, "application/json", json.dumps({"access_token": federated, "token_type": "Bearer",
                                                        "issued_token_type": form.get("requested_token_type")})
        if parts.path == "/google-oauth/token":
            return self.google_oauth(form)
        if parts.path.startswith("/iamcredentials/v1/projects/-/serviceAccounts/"):
            if not bearer.startswith("federated-") or bearer not in self.issued:
                return 401, "application/json", json.dumps({"error": {"code": 401, "message": "bad token"}})
            token = self.cluster_token(self.google_service_account, "gke")
            return 200, "application/json", json.dumps({"accessToken": token, "expireTime": "2099-01-01T00:00:00Z"})
        return 404, "text/plain", "no such fake endpoint"

    def google_oauth(self, form: dict[str, str]) -> tuple[int, str, str]:
        """Google's OAuth token endpoint for a service account key (RFC 7523 JWT bearer grant)."""
        refused = 400, "application/json", json.dumps({"error": "invalid_grant",
                                                        "error_description": "Invalid JWT Signature."})
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not self.google_key_public:
            return refused
        try:
            head, body, signature = form.get("assertion", "").split(".")
            claims = json.loads(_unb64(body))
            sig = int.from_bytes(_unb64(signature), "big")
        except ValueError:
            return refused
        n, e = self.google_key_public
        size = (n.bit_length() + 7) // 8
        digest = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(
            f"{head}.{body}".encode()).digest()
        expected = b"\x00\x01" + b"\xff" * (size - len(digest) - 3) + b"\x00" + digest
        if pow(sig, e, n).to_bytes(size, "big") != expected:
            return refused
        if claims.get("iss") != self.google_service_account or claims.get("aud") != f"{self.url}/google-oauth/token":
            return refused
        token = self.cluster_token(self.google_service_account, "gke")
        return 200, "application/json", json.dumps({"access_token": token, "expires_in": 3599,
                                                    "token_type": "Bearer"})

    def sts(self, form: dict[str, str], headers: Any, body: bytes) -> tuple[int, str, str]:
        role = self.roles.get(form.get("RoleArn", ""))
        if form.get("Action") == "AssumeRoleWithWebIdentity":
            if not self.valid_oidc(form.get("WebIdentityToken", ""), "sts.amazonaws.com"):
                return 400, "text/xml", _aws_error("InvalidIdentityToken", "the web identity token is invalid")
        elif form.get("Action") == "AssumeRole":
            if not self.sigv4_valid(headers, body):
                return 403, "text/xml", _aws_error("SignatureDoesNotMatch", "the request signature is wrong")
        else:
            return 400, "text/xml", _aws_error("InvalidAction", "unknown action")
        if role is None:
            return 403, "text/xml", _aws_error("AccessDenied", "not authorized to perform sts:AssumeRole")
        self.issued += [role.secret, role.session_token]
        action = form["Action"]
        return 200, "text/xml", (
            f"<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><{action}Result>"
            f"<Credentials><AccessKeyId>{role.access_key_id}</AccessKeyId><SecretAccessKey>{role.secret}"
            f"</SecretAccessKey><SessionToken>{role.session_token}</SessionToken><Expiration>"
            f"2099-01-01T00:00:00Z</Expiration></Credentials></{action}Result></{action}Response>")

    def sigv4_valid(self, headers: Any, body: bytes) -> bool:
        """Recompute the SigV4 header signature of a POST to ``/sts/``."""
        auth = headers.get("Authorization") or ""
        try:
            fields = dict(p.strip().split("=", 1) for p in auth.split(" ", 1)[1].split(","))
            key_id, day, region, service, _ = fields["Credential"].split("/")
        except (IndexError, ValueError, KeyError):
            return False
        secret = self.aws_keys.get(key_id)
        if secret is None:
            return False
        signed = fields["SignedHeaders"].split(";")
        canonical = "\n".join(["POST", "/sts/", "", *(f"{n}:{(headers.get(n) or '').strip()}" for n in signed), "",
                               ";".join(signed), hashlib.sha256(body).hexdigest()])
        stamp = headers.get("X-Amz-Date") or ""
        to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, f"{day}/{region}/{service}/aws4_request",
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + secret).encode()
        for part in (day, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(),
                                   fields.get("Signature", ""))

    def aad(self, tenant: str, form: dict[str, str]) -> tuple[int, str, str]:
        client = form.get("client_id", "")
        if self.azure_clients.get(client) != tenant:
            return 400, "application/json", json.dumps({"error": "unauthorized_client", "error_description":
                                                        f"AADSTS700016: Application {client} not found"})
        if form.get("grant_type") != "client_credentials" or not self.valid_oidc(
                form.get("client_assertion", ""), "api://AzureADTokenExchange"):
            return 400, "application/json", json.dumps({"error": "invalid_client", "error_description":
                                                        "AADSTS700024: client assertion is not valid"})
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            return 400, "application/json", json.dumps({"error": "invalid_scope"})
        token = self.cluster_token(client, scope[: -len("/.default")])
        return 200, "application/json", json.dumps({"token_type": "Bearer", "expires_in": 3599,
                                                    "access_token": token})


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _aws_error(code: str, message: str) -> str:
    return (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"</ErrorResponse>")


@contextlib.contextmanager
def serve() -> Iterator[Clouds]:
    clouds = Clouds()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if clouds.delay:
                stopped.wait(clouds.delay)
            with clouds.lock:
                clouds.requests.append((self.command, self.path))
                code, content_type, text = clouds.handle(self.command, self.path, self.headers, body)
            data = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

    stopped = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    clouds.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield clouds
    finally:
        stopped.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
