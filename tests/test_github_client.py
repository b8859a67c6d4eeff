"""rollback.github.client against the local fake GitHub API: base URL, pagination, rate limits, redirects and
the token (never in a message, never sent to another host)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakes.github import FakeGitHub, serve

from rollback.github.client import GitHubApiError, GitHubClient, next_link, rate_limit_wait

TOKEN = "ghs_client-test-token-0123456789"
REPO = "octo-org/shop"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with serve(TOKEN, REPO) as fake:
        yield fake


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(gh: FakeGitHub, sleeps: Sleeps | None = None, **kwargs: object) -> GitHubClient:
    return GitHubClient(gh.api_url, TOKEN, proxies={}, sleep=sleeps if sleeps is not None else Sleeps(),
                        clock=lambda: 1_000_000.0, **kwargs)  # type: ignore[arg-type]


def test_pages_follow_the_link_header_until_the_last_page(gh: FakeGitHub) -> None:
    for n in range(5):
        gh.add_deployment(f"1.0.{n}", "staging", "success")
    gh.add_deployment("9.9.9", "production", "success")
    items = list(client(gh).pages(f"/repos/{REPO}/deployments", {"environment": "staging", "per_page": 2}))
    assert [d["payload"]["release"] for d in items] == ["1.0.4", "1.0.3", "1.0.2", "1.0.1", "1.0.0"]
    assert [r.query for r in gh.requests] == [
        {"environment": "staging", "per_page": "2"},
        {"environment": "staging", "per_page": "2", "page": "2"},
        {"environment": "staging", "per_page": "2", "page": "3"},
    ]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in gh.requests)


def test_pages_stop_at_the_limit(gh: FakeGitHub) -> None:
    for n in range(5):
        gh.add_deployment(f"1.0.{n}", "staging")
    assert len(list(client(gh).pages(f"/repos/{REPO}/deployments", {"per_page": 1}, limit=3))) == 3
    assert len(gh.requests) == 3


def test_enterprise_server_prefix(gh: FakeGitHub) -> None:
    gh.prefix = "/api/v3"
    gh.add("v1")
    api = GitHubClient.from_env({"GITHUB_API_URL": gh.url + "/api/v3/"}, TOKEN, proxies={})
    assert api.request("GET", f"/repos/{REPO}/releases/tags/v1").body["tag_name"] == "v1"
    assert gh.requests[0].path == f"/api/v3/repos/{REPO}/releases/tags/v1"
    assert GitHubClient.from_env({}, TOKEN).api_url == "https://api.github.com"


def test_retry_after_is_waited_then_the_request_is_sent_again(gh: FakeGitHub) -> None:
    gh.add("v1")
    gh.fail("GET", "/releases/tags/v1", 403, {"message": "You have exceeded a secondary rate limit."},
            {"Retry-After": "3"}, times=1)
    sleeps = Sleeps()
    assert client(gh, sleeps).request("GET", f"/repos/{REPO}/releases/tags/v1").status == 200
    assert sleeps == [3.0] and len(gh.requests) == 2


def test_the_steps_timeout_bounds_github_requests(gh: FakeGitHub) -> None:
    """GitHub requests share the step's timeout (cluster.Api.remaining): none is sent once it ran out, and
    a rate-limit wait longer than what is left gives up instead of waiting past it."""
    gh.add("v1")
    with pytest.raises(GitHubApiError, match="not sent: the timeout input ran out"):
        client(gh, remaining=lambda: 0.0).request("GET", f"/repos/{REPO}/releases/tags/v1")
    assert gh.requests == []
    gh.fail("GET", "/releases/tags/v1", 403, {"message": "You have exceeded a secondary rate limit."},
            {"Retry-After": "3"}, times=1)
    sleeps = Sleeps()
    with pytest.raises(GitHubApiError, match="rate limit"):
        client(gh, sleeps, remaining=lambda: 2.0).request("GET", f"/repos/{REPO}/releases/tags/v1")
    assert sleeps == [] and len(gh.requests) == 1
    assert client(gh, remaining=lambda: 5.0).request("GET", f"/repos/{REPO}/releases/tags/v1").status == 200


def test_secondary_rate_limit_without_retry_after_waits_a_minute_or_gives_up(gh: FakeGitHub) -> None:
    gh.fail("POST", "/deployments", 403, {"message": "You have exceeded a secondary rate limit"}, times=1)
    sleeps = Sleeps()
    api = client(gh, sleeps, max_wait=120.0)
    assert api.request("POST", f"/repos/{REPO}/deployments", {"ref": "main"}).status == 201
    assert sleeps == [60.0]
    gh.fail("POST", "/deployments", 403, {"message": "You have exceeded a secondary rate limit"}, times=1)
    with pytest.raises(GitHubApiError) as caught:
        client(gh, Sleeps(), max_wait=10.0).request("POST", f"/repos/{REPO}/deployments", {"ref": "main"})
    assert caught.value.rate_limited and "try again in 60s" in caught.value.message


def test_primary_rate_limit_waits_until_reset_and_gives_up_past_max_wait(gh: FakeGitHub) -> None:
    gh.add("v1")
    gh.fail("GET", "/tags/v1", 403, {"message": "API rate limit exceeded"},
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1000005"}, times=1)
    sleeps = Sleeps()
    assert client(gh, sleeps).request("GET", f"/repos/{REPO}/releases/tags/v1").status == 200
    assert sleeps == [5.0]
    gh.fail("GET", "/tags/v1", 429, {"message": "API rate limit exceeded"},
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1003600"})
    sleeps = Sleeps()
    with pytest.raises(GitHubApiError) as caught:
        client(gh, sleeps).request("GET", f"/repos/{REPO}/releases/tags/v1")
    assert sleeps == [] and caught.value.status == 429 and "try again in 3600s" in caught.value.message


def test_retries_are_bounded(gh: FakeGitHub) -> None:
    gh.fail("GET", "/tags/", 429, {"message": "slow down"}, {"Retry-After": "1"})
    sleeps = Sleeps()
    with pytest.raises(GitHubApiError):
        client(gh, sleeps, retries=2).request("GET", f"/repos/{REPO}/releases/tags/v1")
    assert sleeps == [1.0, 1.0] and len(gh.requests) == 3


def test_a_plain_403_is_not_retried(gh: FakeGitHub) -> None:
    gh.fail("POST", "/deployments", 403, {"message": "Resource not accessible by integration"})
    with pytest.raises(GitHubApiError) as caught:
        client(gh).request("POST", f"/repos/{REPO}/deployments", {"ref": "main"})
    assert caught.value.status == 403 and not caught.value.rate_limited and len(gh.requests) == 1
    assert caught.value.message == (f"GitHub API POST /repos/{REPO}/deployments failed (HTTP 403: Resource not "
                                    f"accessible by integration)")


def test_redirect_to_the_same_origin_keeps_the_token(gh: FakeGitHub) -> None:
    gh.add("v1")
    gh.fail("GET", "/repos/old-org/shop/", 301, {"message": "Moved Permanently"},
            {"Location": f"{gh.url}/repos/{REPO}/releases/tags/v1"})
    assert client(gh).request("GET", "/repos/old-org/shop/releases/tags/v1").body["tag_name"] == "v1"
    first, second = gh.requests
    assert second.path == f"/repos/{REPO}/releases/tags/v1"
    assert first.headers["authorization"] == second.headers["authorization"] == f"Bearer {TOKEN}"


def test_redirect_to_another_host_never_carries_the_token(gh: FakeGitHub) -> None:
    with serve("another-token", REPO) as other:
        other.add("v1")
        gh.fail("GET", "/tags/v1", 302, {"message": "Found"},
                {"Location": f"{other.url}/repos/{REPO}/releases/tags/v1"})
        with pytest.raises(GitHubApiError) as caught:
            client(gh).request("GET", f"/repos/{REPO}/releases/tags/v1")
        (arrived,) = other.requests
        assert "authorization" not in arrived.headers
        assert caught.value.status == 401 and TOKEN not in caught.value.message


def test_the_token_is_never_in_messages_or_repr(gh: FakeGitHub) -> None:
    gh.fail("GET", "/tags/", 422, {"message": f"bad token {TOKEN}"})
    api = client(gh)
    with pytest.raises(GitHubApiError) as caught:
        api.request("GET", f"/repos/{REPO}/releases/tags/v1")
    assert TOKEN not in str(caught.value) and "***" in caught.value.detail
    assert TOKEN not in repr(api)


def test_unreachable_is_an_error_with_status_0() -> None:
    with pytest.raises(GitHubApiError) as caught:
        GitHubClient("http://127.0.0.1:9", TOKEN, proxies={}, timeout=2).request("GET", "/x")
    assert caught.value.status == 0 and "could not reach the GitHub API at http://127.0.0.1:9" in caught.value.message


@pytest.mark.parametrize(("header", "expected"), [
    ('<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=5>; rel="last"',
     "https://api.github.com/x?page=2"),
    ('<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=3>; rel="next"',
     "https://api.github.com/x?page=3"),
    ('<https://api.github.com/x?page=5>; rel="last"', None),
    ("", None), (None, None),
])
def test_next_link(header: str | None, expected: str | None) -> None:
    assert next_link(header) == expected


@pytest.mark.parametrize(("status", "headers", "detail", "expected"), [
    (403, {"retry-after": "7"}, "", 7.0),
    (429, {}, "", 60.0),
    (403, {}, "You have exceeded a secondary rate limit", 60.0),
    (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "100"}, "", 40.0),
    (403, {"x-ratelimit-remaining": "0"}, "", float("inf")),
    (403, {}, "Resource not accessible by integration", None),
    (404, {"retry-after": "1"}, "", None),
])
def test_rate_limit_wait(status: int, headers: dict[str, str], detail: str, expected: float | None) -> None:
    assert rate_limit_wait(status, headers, detail, now=60.0) == expected
