"""The few HTTPS calls the cloud exchanges make (standard library; HTTPS_PROXY/NO_PROXY are honoured)."""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

TIMEOUT = 20.0  # seconds per request, at most
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("credential_deadline", default=None)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A token endpoint that redirects is refused: following it would resend the credentials elsewhere."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


class CredentialError(Exception):
    """A credential could not be obtained. ``input_name`` names the input (or variable) to fix."""

    def __init__(self, input_name: str, message: str):
        super().__init__(message)
        self.input_name = input_name
        self.message = message


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Within the block, requests share ``seconds`` (the step's ``timeout``): each gets what is left."""
    token = _DEADLINE.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _request_timeout(what: str, url: str) -> float:
    end = _DEADLINE.get()
    if end is None:
        return TIMEOUT
    left = end - time.monotonic()
    if left <= 0:
        raise CredentialError("timeout", f"{what}: the timeout ran out before {_origin(url)} was asked; nothing "
                                         f"was changed. Raise the timeout input if the cloud's endpoints are this "
                                         f"slow")
    return min(TIMEOUT, left)


def request(method: str, url: str, what: str, input_name: str, data: bytes | None = None,
            headers: Mapping[str, str] | None = None) -> bytes:
    """The response body; a refusal or no answer raises ``CredentialError`` in the service's own words.

    ``what`` names the exchange for the message ("AWS STS AssumeRole"). Request bodies and headers are never
    part of a message: they carry the credentials.
    """
    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        raise CredentialError(input_name, f"{what}: {_origin(url)} is not an https:// (or http://) URL")
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    timeout = _request_timeout(what, url)
    try:
        with _OPENER.open(req, timeout=timeout) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as err:
        said = _error_text(err.read())
        raise CredentialError(input_name, f"{what} at {_origin(url)} refused: HTTP {err.code}"
                                          f"{': ' + said if said else ''}") from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        if isinstance(reason, socket.timeout | TimeoutError) and _DEADLINE.get() is not None \
                and time.monotonic() >= (_DEADLINE.get() or 0) - 0.01:
            raise CredentialError("timeout", f"{what}: {_origin(url)} did not answer within the timeout; "
                                             f"nothing was changed. Raise the timeout input if the cloud's "
                                             f"endpoints are this slow") from None
        raise CredentialError(input_name, f"{what}: no answer from {_origin(url)}: {reason}") from None


def post_form(url: str, fields: Mapping[str, str], what: str, input_name: str,
              headers: Mapping[str, str] | None = None) -> bytes:
    body = urllib.parse.urlencode(dict(fields)).encode()
    merged = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json", **(headers or {})}
    return request("POST", url, what, input_name, body, merged)


def json_object(body: bytes, what: str, input_name: str) -> dict[str, Any]:
    try:
        loaded = json.loads(body)
    except ValueError:
        loaded = None
    if not isinstance(loaded, dict):
        raise CredentialError(input_name, f"{what} answered something that is not a JSON object")
    return loaded


def _origin(url: str) -> str:
    """Scheme, host and path only: query strings can carry credentials (presigned URLs, OIDC request URLs)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _error_text(body: bytes) -> str:
    """The message of an OAuth/Google/AWS error body, shortened; never the body's other fields."""
    text = body.decode("utf-8", "replace")
    try:
        loaded = json.loads(text)
    except ValueError:
        loaded = None
    if isinstance(loaded, dict):
        error = loaded.get("error")
        if isinstance(error, dict):  # Google: {"error": {"code", "message", "status"}}
            return str(error.get("message") or error.get("status") or "")[:300]
        description = loaded.get("error_description") or loaded.get("message") or error
        return str(description or "")[:300]


    code = re.search(r"<Code>([^<]*)</Code>", text)  # AWS query APIs answer XML
    message = re.search(r"<Message>([^<]*)</Message>", text)
    if code or message:
        return ": ".join(m.group(1) for m in (code, message) if m)[:300]
    return ""
