"""GKE credentials files: the RS256 signature of a service account key (computed with Python integers) is
byte for byte what ``openssl dgst -sha256 -sign`` makes, and the file types are read as google-auth reads them."""

from __future__ import annotations

import base64
import datetime
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rollback.credentials import gke
from rollback.credentials.exec_plugins import Gke
from rollback.credentials.http import CredentialError

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl is the oracle for RS256")


def openssl(*args: str, data: bytes | None = None) -> bytes:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *args], input=data, capture_output=True, check=True).stdout


@pytest.fixture(scope="module", params=["pkcs8", "pkcs1"])
def key(request: Any, tmp_path_factory: Any) -> Path:
    path = tmp_path_factory.mktemp("key") / f"{request.param}.pem"
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path))
    if request.param == "pkcs1":
        openssl("rsa", "-in", str(path), "-out", str(path), "-traditional")
        assert "BEGIN RSA PRIVATE KEY" in path.read_text()
    return path


@pytest.mark.parametrize("message", [b"", b"header.claims", "ünïcode".encode() * 100])
def test_rs256_signature_equals_openssls(key: Path, message: bytes) -> None:
    ours = gke.rs256_sign(message, key.read_text())
    assert ours == openssl("dgst", "-sha256", "-sign", str(key), data=message)


def test_rs256_jwt_verifies_with_openssl(key: Path, tmp_path: Path) -> None:
    token = gke.rs256_jwt({"alg": "RS256", "typ": "JWT"}, {"iss": "sa@p.iam.gserviceaccount.com"}, key.read_text())
    head, body, signature = token.split(".")
    (tmp_path / "sig").write_bytes(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    public = tmp_path / "pub.pem"
    openssl("pkey", "-in", str(key), "-pubout", "-out", str(public))
    out = openssl("dgst", "-sha256", "-verify", str(public), "-signature", str(tmp_path / "sig"),
                  data=f"{head}.{body}".encode())
    assert b"Verified OK" in out
    assert json.loads(base64.urlsafe_b64decode(body + "==")) == {"iss": "sa@p.iam.gserviceaccount.com"}


def test_a_key_that_is_not_rsa_pem_is_refused_plainly() -> None:
    with pytest.raises(CredentialError, match="not an RSA key in PEM"):
        gke.rs256_sign(b"x", "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")


def test_secrets_of_a_credentials_file_are_all_found() -> None:
    info = {"type": "external_account", "credential_source": {"url": "https://x", "headers": {
        "Authorization": "Bearer request-token"}}, "private_key": "pk", "client_secret": "cs", "refresh_token": "rt"}
    assert set(gke.file_secrets(info)) == {"Bearer request-token", "request-token", "pk", "cs", "rt"}


def test_subject_token_from_a_file_in_text_and_json_format(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("subject-text\n")
    (tmp_path / "j").write_text(json.dumps({"id_token": "subject-json"}))
    assert gke.subject_token({"credential_source": {"file": str(tmp_path / "t")}}) == "subject-text"
    assert gke.subject_token({"credential_source": {"file": str(tmp_path / "j"), "format": {
        "type": "json", "subject_token_field_name": "id_token"}}}) == "subject-json"


@pytest.mark.parametrize("environ,content,expected", [
    ({}, None, "GOOGLE_APPLICATION_CREDENTIALS is not set"),
    ({"GOOGLE_APPLICATION_CREDENTIALS": "/home/runner/creds.json"}, None, "cannot be read"),
    ({}, "not json", "is not JSON"),
    ({}, json.dumps({"type": "impersonated_service_account"}), "supported are external_account"),
])
def test_unusable_credentials_files_say_why(tmp_path: Path, environ: dict[str, str], content: str | None,
                                            expected: str) -> None:
    if content is not None:
        (tmp_path / "creds.json").write_text(content)
        environ = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "creds.json")}
    with pytest.raises(CredentialError, match=expected):
        gke.bearer_token(Gke("gke-gcloud-auth-plugin"), environ, lambda s: None,
                         datetime.datetime.now(datetime.UTC))
