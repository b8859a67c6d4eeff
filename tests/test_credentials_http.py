"""The cloud token requests (rollback/credentials/http.py): no redirects, http(s) only, errors in the
service's words without the request's credentials."""

from __future__ import annotations

import http.server
import threading
from typing import Any

import pytest

from rollback.credentials import http as credentials_http
from rollback.credentials.http import CredentialError


def test_token_requests_do_not_follow_redirects_or_leave_http() -> None:
    """A redirect would resend the request's credentials to another host; file:// and the like are refused."""
    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(CredentialError, match="refused: HTTP 302"):
            credentials_http.request("GET", f"http://127.0.0.1:{server.server_address[1]}/token", "the test",
                                     "x", headers={"Authorization": "Bearer secret"})
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(CredentialError, match="not an https"):
        credentials_http.request("GET", "file:///etc/passwd", "the test", "x")


@pytest.mark.parametrize("body,expected", [
    (b'{"error": "invalid_client", "error_description": "AADSTS700024: bad assertion"}', "AADSTS700024: bad assertion"),
    (b'{"error": {"code": 403, "message": "Permission iam.serviceAccounts.getAccessToken denied"}}',
     "Permission iam.serviceAccounts.getAccessToken denied"),
    (b"<ErrorResponse><Error><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>",
     "AccessDenied: no"),
    (b"plain text with client_assertion=eyJsecret", ""),
])
def test_error_text_is_the_services_message_only(body: bytes, expected: str) -> None:
    assert credentials_http._error_text(body) == expected


def test_no_request_is_sent_once_the_steps_timeout_ran_out() -> None:
    with credentials_http.deadline(0.0), pytest.raises(CredentialError, match="timeout ran out before") as info:
        credentials_http.request("POST", "http://127.0.0.1:9/token", "the Azure AD token exchange", "azure-client-id")
    assert info.value.input_name == "timeout"
    with credentials_http.deadline(None):  # no deadline: the per-request bound only
        assert credentials_http._request_timeout("x", "http://h") == credentials_http.TIMEOUT
