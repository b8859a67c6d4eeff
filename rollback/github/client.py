"""One small GitHub REST client, shared by Releases and Deployments (``urllib.request``, no dependency).

- Base URL from ``GITHUB_API_URL`` (``https://api.github.com``; GitHub Enterprise Server: ``https://HOST/api/v3``).
- Pagination: ``pages`` follows the ``Link: <…>; rel="next"`` header, only to the API's own origin.
- Rate limits: a 403/429 with ``Retry-After`` waits that many seconds; one with ``x-ratelimit-remaining: 0``
  waits until ``x-ratelimit-reset``; a secondary rate limit without either waits a minute (GitHub's advice).
  A wait longer than ``max_wait`` is not made: the error is raised instead, saying when to try again.
- Redirects are followed by hand (at most 5): the token goes along only to the API's own origin (scheme,
  host, port); to another host the request goes without it.
- The token is sent only in the ``Authorization`` header; it never appears in messages, errors or ``repr``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
USER_AGENT = "kube-release-rollback"
MAX_REDIRECTS = 5
SECONDARY_WAIT = 60.0  # seconds GitHub asks to wait after a secondary rate limit that names no time


class GitHubApiError(Exception):
    """A request failed. ``status`` is the HTTP status (0: no answer); ``message`` names the request and what
    GitHub said, never the token."""

    def __init__(self, status: int, message: str, detail: str = "", headers: Mapping[str, str] | None = None,
                 rate_limited: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail  # GitHub's "message" field
        self.headers = dict(headers or {})
        self.rate_limited = rate_limited


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects come back as HTTPError 3xx, so the client decides where the token may go."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def next_link(header: str | None) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, or None."""
    for part in (header or "").split(","):
        url, _, params = part.partition(";")
        url = url.strip()
        if url.startswith("<") and url.endswith(">") and any(
                p.strip().replace(" ", "") in ('rel="next"', "rel=next") for p in params.split(";")):
            return url[1:-1]
    return None


def rate_limit_wait(status: int, headers: Mapping[str, str], detail: str, now: float) -> float | None:
    """Seconds to wait before retrying a rate-limited answer, or None when the answer is no rate limit."""
    if status not in (403, 429):
        return None
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            return SECONDARY_WAIT
    if headers.get("x-ratelimit-remaining") == "0":
        try:
            return max(0.0, float(headers.get("x-ratelimit-reset", "")) - now)
        except ValueError:
            return float("inf")  # exhausted, and no word on when it resets: do not wait
    if status == 429 or "rate limit" in detail.lower():
        return SECONDARY_WAIT
    return None


class GitHubClient:
    """Requests to one GitHub REST API. ``sleep``/``clock`` are injectable so tests never wait for real."""

    def __init__(self, api_url: str, token: str, *, proxies: Mapping[str, str] | None = None,
                 timeout: float = 15.0, max_wait: float = 10.0, retries: int = 2,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 remaining: Callable[[], float | None] | None = None) -> None:
        self.api_url = (api_url or DEFAULT_API_URL).rstrip("/")
        self._token = token
        handlers: list[Any] = [_NoRedirect()]
        if proxies is not None:  # None: the proxies of the environment (HTTPS_PROXY, NO_PROXY), like curl
            handlers.append(urllib.request.ProxyHandler(dict(proxies)))
        self._opener = urllib.request.build_opener(*handlers)
        self.timeout = timeout
        self.max_wait = max_wait
        self.retries = retries
        self._sleep = sleep
        self._clock = clock
        # seconds left of the step's timeout (cluster.Api.remaining), so GitHub requests are bounded by it too
        self._remaining = remaining or (lambda: None)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], token: str, **kwargs: Any) -> GitHubClient:
        return cls(environ.get("GITHUB_API_URL") or DEFAULT_API_URL, token, **kwargs)

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r})"

    def scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    # -- requests

    def request(self, method: str, path: str, payload: Mapping[str, Any] | None = None,
                query: Mapping[str, str | int] | None = None) -> Response:
        """One request (``path`` below the API URL, or an absolute URL of the API's origin); waits out rate
        limits up to ``max_wait``; raises GitHubApiError for any non-2xx answer."""
        url = path if path.startswith(("http://", "https://")) else self.api_url + path
        if query:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(query)
        for attempt in range(self.retries + 1):
            try:
                return self._send(method, url, payload)
            except GitHubApiError as err:
                wait = rate_limit_wait(err.status, err.headers, err.detail, self._clock())
                if wait is None:
                    raise
                left = self._remaining()
                if attempt == self.retries or wait > self.max_wait or (left is not None and wait >= left):
                    when = f"in {wait:.0f}s" if 0 < wait < float("inf") else "later"
                    raise GitHubApiError(err.status, f"{err.message}: the GitHub API rate limit was hit; try "
                                         f"again {when}", err.detail, err.headers, rate_limited=True) from None
                self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def pages(self, path: str, query: Mapping[str, str | int] | None = None, limit: int = 10) -> Iterator[Any]:
        """Every item of a list endpoint, page after page (``Link: rel="next"``), at most ``limit`` pages."""
        response = self.request("GET", path, query=query)
        for page in range(1, limit + 1):
            yield from response.body if isinstance(response.body, list) else []
            link = next_link(response.headers.get("link"))
            if link is None or origin(link) != origin(self.api_url) or page == limit:
                return
            response = self.request("GET", link)

    def _send(self, method: str, url: str, payload: Mapping[str, Any] | None) -> Response:
        data = json.dumps(payload).encode() if payload is not None else None
        home = origin(self.api_url)
        where = urllib.parse.urlsplit(url).path
        for _ in range(MAX_REDIRECTS + 1):
            request = urllib.request.Request(url, data=data, method=method)
            request.add_header("Accept", "application/vnd.github+json")
            request.add_header("X-GitHub-Api-Version", API_VERSION)
            request.add_header("User-Agent", USER_AGENT)
            if data is not None:
                request.add_header("Content-Type", "application/json")
            if self._token and origin(url) == home:
                request.add_unredirected_header("Authorization", f"Bearer {self._token}")
            left = self._remaining()
            if left is not None and left <= 0:
                raise GitHubApiError(0, f"GitHub API {method} {where} not sent: the timeout input ran out")
            try:
                with self._opener.open(request, timeout=self.timeout if left is None else min(self.timeout, left)
                                       ) as answer:
                    raw = answer.read()
                    status, headers = answer.status, _lower(answer.headers)
            except urllib.error.HTTPError as exc:
                headers = _lower(exc.headers)
                location = headers.get("location")
                if exc.code in (301, 302, 303, 307, 308) and location:
                    url = urllib.parse.urljoin(url, location)
                    if exc.code == 303 or (exc.code in (301, 302) and method == "POST"):
                        method, data = "GET", None
                    continue
                detail = self._detail(exc)
                said = f"HTTP {exc.code}" + (f": {detail}" if detail else "")
                raise GitHubApiError(exc.code, f"GitHub API {method} {where} failed ({said})", detail,
                                     headers) from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise GitHubApiError(0, self.scrub(f"could not reach the GitHub API at {self.api_url}: "
                                                   f"{reason}")) from None
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                raise GitHubApiError(status, f"the GitHub API at {self.api_url} answered {method} {where} with "
                                     f"something that is not JSON", headers=headers) from None
            return Response(status, body, headers)
        raise GitHubApiError(0, f"GitHub API {method} {where}: more than {MAX_REDIRECTS} redirects")

    def _detail(self, exc: urllib.error.HTTPError) -> str:
        try:
            detail = json.loads(exc.read() or b"{}").get("message", "")
        except (ValueError, AttributeError, OSError):
            detail = ""
        return self.scrub(str(detail))


def _lower(headers: Message | Mapping[str, str] | None) -> dict[str, str]:
    if headers is None:
        return {}
    return {str(k).lower(): str(v) for k, v in headers.items()}
