"""A GitHub Actions OIDC token, requested the way ``@actions/core`` ``getIDToken`` does.

The runner gives a job with ``permissions: id-token: write`` two variables (container actions receive them
too): ``ACTIONS_ID_TOKEN_REQUEST_URL`` and ``ACTIONS_ID_TOKEN_REQUEST_TOKEN``. A GET of the URL with
``&audience=<audience>`` and ``Authorization: Bearer <request token>`` answers ``{"value": "<JWT>"}``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping

from . import http


def request_token(environ: Mapping[str, str], audience: str, input_name: str,
                  on_secret: Callable[[str], None]) -> str:
    """The OIDC token for ``audience``; ``on_secret`` is told the request token and the OIDC token."""
    url = environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    request_token_ = environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if not url or not request_token_:
        raise http.CredentialError(
            input_name, "a GitHub OIDC token is needed, but ACTIONS_ID_TOKEN_REQUEST_URL is not set: give the job "
                        "(or workflow) 'permissions: id-token: write' (with pull requests from forks GitHub "
                        "does not hand out OIDC tokens)")
    on_secret(request_token_)
    separator = "&" if "?" in url else "?"
    full = f"{url}{separator}audience={urllib.parse.quote(audience, safe='')}"
    body = http.request("GET", full, "the GitHub OIDC token request", input_name,
                        headers={"Authorization": f"Bearer {request_token_}", "Accept": "application/json"})
    value = http.json_object(body, "the GitHub OIDC token request", input_name).get("value")
    if not isinstance(value, str) or not value:
        raise http.CredentialError(input_name, "the GitHub OIDC token request answered without a token")
    on_secret(value)
    return value
