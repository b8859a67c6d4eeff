"""Blocks on GitHub Releases, against a local HTTP server standing in for the GitHub REST API.

The server records every request, so the tests check exactly what our code sends: method, path (tag quoting,
GHE path prefix), headers (auth, API version) and the JSON body, and that nothing but ``name`` and ``body``
changes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakes.github import FakeGitHub, Request, serve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollback.github.client import GitHubClient
from rollback.github.releases import (
    BLOCK_END,
    BLOCK_START,
    DONE,
    ERROR,
    FORBIDDEN,
    NAME_PREFIX,
    NO_SUCH_RELEASE,
    UNBLOCKED_END,
    UNBLOCKED_START,
    GitHubReleases,
    mark_blocked,
    mark_unblocked,
    parse_block,
    render_unblocked,
)
from rollback.ledger import Block

TOKEN = "ghs_test-token-0123456789abcdef"
REPO = "octo-org/shop"
NO_PROXY: dict[str, str] = {}  # the fake is on 127.0.0.1: never through a proxy of this machine
Recorded = Request


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGitHub]:
    with serve(TOKEN, REPO) as fake:
        yield fake


@pytest.fixture()
def gh(server: FakeGitHub) -> FakeGitHub:
    server.reset()
    return server


def client(gh: FakeGitHub, token: str = TOKEN) -> GitHubReleases:
    return GitHubReleases(GitHubClient(gh.api_url, token, proxies=NO_PROXY, sleep=no_sleep), REPO)


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"a release call would wait {seconds}s")


def a_block(reason: str = "checkout returns 500 for EU customers", release: str = "v1.2.3") -> Block:
    return Block(
        release=release,
        namespace="staging",
        reason=reason,
        actor="mona",
        time="2024-05-01T12:00:00Z",
        run_url="https://github.com/octo-org/shop/actions/runs/42",
        source="github-release",
    )


def check_headers(rec: Recorded) -> None:
    assert rec.headers["authorization"] == f"Bearer {TOKEN}"
    assert rec.headers["accept"] == "application/vnd.github+json"
    assert rec.headers["x-github-api-version"] == "2022-11-28"
    assert rec.headers["user-agent"] == "kube-release-rollback"


# --- find -----------------------------------------------------------------------------------------


def test_find_sends_exact_request_and_parses(gh: FakeGitHub) -> None:
    gh.add("v1.2.3")
    release = client(gh).find("v1.2.3")
    assert release is not None and release.tag == "v1.2.3" and release.name == "Shop v1.2.3"
    [rec] = gh.requests
    assert (rec.method, rec.path, rec.body) == ("GET", f"/repos/{REPO}/releases/tags/v1.2.3", None)
    check_headers(rec)


def test_find_quotes_the_tag(gh: FakeGitHub) -> None:
    gh.add("release/2024.09 #1+b")
    assert client(gh).find("release/2024.09 #1+b") is not None
    assert gh.requests[0].path == f"/repos/{REPO}/releases/tags/release%2F2024.09%20%231%2Bb"


def test_find_missing_is_none(gh: FakeGitHub) -> None:
    assert client(gh).find("v9.9.9") is None
    assert [r.method for r in gh.requests] == ["GET"]


def test_ghe_base_url_with_path_prefix(gh: FakeGitHub) -> None:
    gh.prefix = "/api/v3"
    gh.add("v1.2.3")
    api = client(gh)
    assert api.find("v1.2.3") is not None
    assert api.block("v1.2.3", a_block()).status == DONE
    assert [(r.method, r.path) for r in gh.requests] == [
        ("GET", f"/api/v3/repos/{REPO}/releases/tags/v1.2.3"),
        ("GET", f"/api/v3/repos/{REPO}/releases/tags/v1.2.3"),
        ("PATCH", f"/api/v3/repos/{REPO}/releases/{gh.releases['v1.2.3']['id']}"),
    ]


def test_from_env_uses_github_api_url(gh: FakeGitHub) -> None:
    gh.prefix = "/api/v3"
    gh.add("v1")
    api = GitHubReleases.from_env(
        {"GITHUB_API_URL": gh.url + "/api/v3/", "GITHUB_REPOSITORY": REPO}, TOKEN, proxies=NO_PROXY
    )
    assert api.find("v1") is not None
    assert gh.requests[0].path == f"/api/v3/repos/{REPO}/releases/tags/v1"


def test_token_never_in_repr_or_messages(gh: FakeGitHub) -> None:
    api = client(gh)
    assert TOKEN not in repr(api)
    gh.force["GET"] = (403, {"message": f"token {TOKEN} is not allowed"}, {})
    outcome = api.block("v1", a_block())
    assert outcome.status == FORBIDDEN and TOKEN not in outcome.message and "***" in outcome.message


# --- block ----------------------------------------------------------------------------------------


def test_block_patches_name_and_body_only(gh: FakeGitHub) -> None:
    rel = gh.add("v1.2.3", prerelease=True)
    outcome = client(gh).block("v1.2.3", a_block())
    assert outcome.status == DONE and outcome.changed and outcome.level == "notice"
    get, patch = gh.requests
    assert (get.method, get.path) == ("GET", f"/repos/{REPO}/releases/tags/v1.2.3")
    assert (patch.method, patch.path) == ("PATCH", f"/repos/{REPO}/releases/{rel['id']}")
    check_headers(patch)
    assert patch.headers["content-type"] == "application/json"
    assert set(patch.body) == {"name", "body"}  # prerelease, draft, make_latest untouched
    assert patch.body["name"] == "⛔ BLOCKED: Shop v1.2.3"
    body = patch.body["body"]
    assert body.startswith("Changes.\n\n" + BLOCK_START)
    assert body.endswith(BLOCK_END)
    for fact in (
        "checkout returns 500 for EU customers",
        "@mona",
        "`staging`",
        "2024-05-01T12:00:00Z",
        "https://github.com/octo-org/shop/actions/runs/42",
        "mode: unblock",
    ):
        assert fact in body
    assert gh.releases["v1.2.3"]["prerelease"] is True


def test_block_twice_yields_one_section_and_one_prefix(gh: FakeGitHub) -> None:
    gh.add("v1.2.3")
    api = client(gh)
    api.block("v1.2.3", a_block("first reason"))
    api.block("v1.2.3", a_block("second reason"))
    rel = gh.releases["v1.2.3"]
    assert rel["name"] == "⛔ BLOCKED: Shop v1.2.3"
    assert rel["body"].count(BLOCK_START) == 1 and rel["body"].count(BLOCK_END) == 1
    assert "second reason" in rel["body"] and "first reason" not in rel["body"]
    # the same block again changes nothing and sends no PATCH
    gh.requests.clear()
    outcome = api.block("v1.2.3", a_block("second reason"))
    assert outcome.status == DONE and not outcome.changed
    assert [r.method for r in gh.requests] == ["GET"]


def test_block_release_without_title_or_body(gh: FakeGitHub) -> None:
    gh.add("abc1234", name=None, body=None)
    api = client(gh)
    assert api.block("abc1234", a_block(release="abc1234")).status == DONE
    rel = gh.releases["abc1234"]
    assert rel["name"] == NAME_PREFIX + "abc1234" and rel["body"].startswith(BLOCK_START)
    assert api.unblock("abc1234", "hubot", time="2024-05-02T00:00:00Z", note=False).status == DONE
    assert (rel["name"], rel["body"]) == ("", "")


def test_block_for_round_trip(gh: FakeGitHub) -> None:
    gh.add("v1.2.3")
    api = client(gh)
    assert api.block_for("v1.2.3") is None
    api.block("v1.2.3", a_block())
    assert api.block_for("v1.2.3") == a_block()
    check = api.check_block("v1.2.3")
    assert check.outcome.status == DONE and check.block == a_block()


def test_unblock_removes_section_and_prefix_and_notes_who(gh: FakeGitHub) -> None:
    gh.add("v1.2.3")
    api = client(gh)
    api.block("v1.2.3", a_block())
    outcome = api.unblock(
        "v1.2.3",
        "hubot",
        time="2024-05-02T08:00:00Z",
        run_url="https://github.com/octo-org/shop/actions/runs/43",
    )
    assert outcome.status == DONE and outcome.changed
    patch = gh.requests[-1]
    assert patch.method == "PATCH" and set(patch.body) == {"name", "body"}
    rel = gh.releases["v1.2.3"]
    assert rel["name"] == "Shop v1.2.3"
    assert BLOCK_START not in rel["body"] and BLOCK_END not in rel["body"]
    assert rel["body"].startswith("Changes.\n\n" + UNBLOCKED_START)
    assert "@hubot" in rel["body"] and "2024-05-02T08:00:00Z" in rel["body"]
    assert api.block_for("v1.2.3") is None
    # blocking again replaces the unblocked note; unblocking without a note restores the original body
    api.block("v1.2.3", a_block())
    assert UNBLOCKED_START not in gh.releases["v1.2.3"]["body"]
    api.unblock("v1.2.3", "hubot", note=False)
    assert (rel["name"], rel["body"]) == ("Shop v1.2.3", "Changes.")


def test_unblock_not_blocked_sends_no_patch(gh: FakeGitHub) -> None:
    gh.add("v1.2.3")
    outcome = client(gh).unblock("v1.2.3", "hubot")
    assert outcome.status == DONE and not outcome.changed
    assert [r.method for r in gh.requests] == ["GET"]


def test_hand_marked_title_counts_as_blocked(gh: FakeGitHub) -> None:
    gh.add("v2", name=NAME_PREFIX + "Shop 2")
    api = client(gh)
    block = api.block_for("v2")
    assert block is not None and block.source == "github-release"
    assert api.unblock("v2", "mona", note=False).status == DONE
    assert gh.releases["v2"]["name"] == "Shop 2"


# --- 404 / 403 / other errors ---------------------------------------------------------------------


def test_block_missing_release_is_notice(gh: FakeGitHub) -> None:
    outcome = client(gh).block("v9.9.9", a_block(release="v9.9.9"))
    assert outcome.status == NO_SUCH_RELEASE and outcome.level == "notice" and not outcome.ok
    assert "v9.9.9" in outcome.message and REPO in outcome.message and "ledger" in outcome.message
    assert [r.method for r in gh.requests] == ["GET"]
    assert client(gh).unblock("v9.9.9", "mona").status == NO_SUCH_RELEASE
    check = client(gh).check_block("v9.9.9")
    assert check.block is None and check.outcome.status == NO_SUCH_RELEASE


def test_block_forbidden_on_patch_is_warning(gh: FakeGitHub) -> None:
    gh.add("v1.2.3")
    gh.force["PATCH"] = (403, {"message": "Resource not accessible by integration"}, {})
    outcome = client(gh).block("v1.2.3", a_block())
    assert outcome.status == FORBIDDEN and outcome.level == "warning" and outcome.http_status == 403
    assert (
        "contents: write" in outcome.message and "Resource not accessible by integration" in outcome.message
    )
    assert client(gh).unblock("v1.2.3", "mona").status == DONE  # not blocked: nothing to patch
    gh.releases["v1.2.3"]["name"] = NAME_PREFIX + "x"
    assert client(gh).unblock("v1.2.3", "mona").status == FORBIDDEN


def test_forbidden_read_and_rate_limit_and_server_error(gh: FakeGitHub) -> None:
    gh.add("v1")
    gh.force["GET"] = (403, {"message": "Resource not accessible by integration"}, {})
    check = client(gh).check_block("v1")
    assert check.block is None and check.outcome.status == FORBIDDEN
    gh.force["GET"] = (403, {"message": "API rate limit exceeded"}, {"X-RateLimit-Remaining": "0"})
    assert client(gh).check_block("v1").outcome.status == ERROR
    assert "rate limit" in client(gh).block("v1", a_block()).message
    gh.force["GET"] = (500, {"message": "boom"}, {})
    outcome = client(gh).block("v1", a_block())
    assert outcome.status == ERROR and "500" in outcome.message and outcome.level == "warning"


def test_bad_token_is_error(gh: FakeGitHub) -> None:
    gh.add("v1")
    outcome = client(gh, token="wrong").block("v1", a_block())
    assert outcome.status == ERROR and outcome.http_status == 401 and "wrong" not in outcome.message


def test_unreachable_api_is_error_not_exception() -> None:
    api = GitHubReleases(GitHubClient("http://127.0.0.1:9", TOKEN, proxies=NO_PROXY, timeout=2), REPO)
    outcome = api.block("v1", a_block())
    assert outcome.status == ERROR and "could not reach" in outcome.message
    assert api.block_for("v1") is None


def test_repository_must_be_owner_slash_name() -> None:
    for bad in ("", "shop", "a/b/c", "/shop"):
        with pytest.raises(ValueError):
            GitHubReleases(GitHubClient("https://api.github.com", TOKEN), bad)


# --- the note: pure round trips -------------------------------------------------------------------

nasty_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=300) | st.sampled_from(
    [
        "-->",
        "<!-- /kube-release-rollback:block -->",
        "<!-- kube-release-rollback:data {} -->",
        "a--b---c",
        "line 1\nline 2\r\n\n> quoted\n```\ncode\n```",
        "<script>alert(1)</script> **bold** [x](http://e)",
        "\\u002d\\",
        "⛔ BLOCKED: ",
        "",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    reason=nasty_text,
    name=nasty_text,
    body=nasty_text,
    actor=st.none() | st.from_regex(r"[A-Za-z0-9-]{1,39}", fullmatch=True),
)
def test_note_round_trip(reason: str, name: str, body: str, actor: str | None) -> None:
    block = Block(
        release="v1.2.3",
        namespace="staging",
        reason=reason,
        actor=actor,
        time="2024-05-01T12:00:00Z",
        run_url="https://github.com/o/r/actions/runs/1",
        source="github-release",
    )
    new_name, new_body = mark_blocked(name, body, "v1.2.3", block)
    assert new_name.startswith(NAME_PREFIX) and not new_name.startswith(NAME_PREFIX * 2)
    assert parse_block(new_name, new_body, "v1.2.3") == block
    # idempotent: marking again with the same block changes nothing
    assert mark_blocked(new_name, new_body, "v1.2.3", block) == (new_name, new_body)
    # the visible part of the note never contains raw HTML from the reason
    assert "<script>" not in new_body[new_body.rfind(BLOCK_START) :]
    markers = (BLOCK_START, BLOCK_END, UNBLOCKED_START, UNBLOCKED_END)
    if not any(m in body for m in markers) and not name.startswith(NAME_PREFIX):
        assert new_body.count(BLOCK_START) == 1 == new_body.count(BLOCK_END)
        # unblocking without a note gives the name and body back
        assert mark_unblocked(new_name, new_body, "v1.2.3", None) == (name, body.rstrip())


def test_note_survives_crlf_line_endings() -> None:
    """The web editor saves CRLF; the note must still parse and be replaced, not duplicated."""
    name, body = mark_blocked("Shop", "Notes", "v1", a_block(release="v1"))
    crlf = body.replace("\n", "\r\n")
    assert parse_block(name, crlf, "v1") == a_block(release="v1")
    name2, body2 = mark_blocked(name, crlf, "v1", a_block("other", release="v1"))
    assert body2.count(BLOCK_START) == 1 and "other" in body2


def test_damaged_note_fails_closed() -> None:
    name, body = mark_blocked("Shop", "", "v1", a_block(release="v1"))
    damaged = body.replace("kube-release-rollback:data {", "kube-release-rollback:data {{")
    block = parse_block(name, damaged, "v1")
    assert block is not None and "could not be read" in block.reason


def test_unblocked_note_renders_actor_and_run() -> None:
    note = render_unblocked("hubot", "2024-05-02T08:00:00Z", "https://x/runs/1")
    assert "@hubot" in note and "https://x/runs/1" in note


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reason=nasty_text)
def test_round_trip_through_the_api(server: FakeGitHub, reason: str) -> None:
    gh = server
    gh.reset()
    gh.add("v1.2.3", body="Notes with <!-- a comment --> and **markdown**")
    api = client(gh)
    block = a_block(reason)
    assert api.block("v1.2.3", block).status == DONE
    assert api.block("v1.2.3", block).changed is False
    assert api.block_for("v1.2.3") == block
    assert api.unblock("v1.2.3", "hubot", note=False).status == DONE
    assert gh.releases["v1.2.3"]["body"] == "Notes with <!-- a comment --> and **markdown**"
    assert gh.releases["v1.2.3"]["name"] == "Shop v1.2.3"
