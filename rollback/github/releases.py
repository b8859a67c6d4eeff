"""Blocks recorded on GitHub Releases: the signal that crosses environments (clusters and namespaces).

A release blocked in staging is marked on the GitHub Release whose tag is the release: its name gets the
prefix ``⛔ BLOCKED: `` and its body a note between ``<!-- kube-release-rollback:block -->`` and ``<!--
/kube-release-rollback:block -->`` with the reason, actor, environment, time and run link, for people, plus
the same facts as JSON in an HTML comment, for the deploy in production that reads them back
(``check_block``).

Only ``name`` and ``body`` are ever changed (``prerelease``, ``draft``, ``make_latest`` are left alone). The
requests go through ``rollback.github.client`` (``GITHUB_API_URL``, rate limits, redirects, the token kept
out of every message).
"""

from __future__ import annotations

import html
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollback.github.client import GitHubApiError, GitHubClient
from rollback.ledger import Block, utc_now

NAME_PREFIX = "⛔ BLOCKED: "
BLOCK_START = "<!-- kube-release-rollback:block -->"
BLOCK_END = "<!-- /kube-release-rollback:block -->"
UNBLOCKED_START = "<!-- kube-release-rollback:unblocked -->"
UNBLOCKED_END = "<!-- /kube-release-rollback:unblocked -->"
DATA_PREFIX = "<!-- kube-release-rollback:data "
DATA_SUFFIX = " -->"

# Outcome statuses
DONE = "done"
NO_SUCH_RELEASE = "no-such-release"
FORBIDDEN = "forbidden"
ERROR = "error"


@dataclass(frozen=True)
class Release:
    id: int
    tag: str
    name: str  # "" when the release has no title (GitHub shows the tag)
    body: str
    html_url: str
    prerelease: bool = False
    draft: bool = False

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Release:
        return cls(
            id=int(obj["id"]),
            tag=str(obj.get("tag_name") or ""),
            name=str(obj.get("name") or ""),
            body=str(obj.get("body") or ""),
            html_url=str(obj.get("html_url") or ""),
            prerelease=obj.get("prerelease") is True,
            draft=obj.get("draft") is True,
        )


@dataclass(frozen=True)
class Outcome:
    """What happened on GitHub. ``status``: ``done`` | ``no-such-release`` | ``forbidden`` | ``error``.

    ``message`` is a sentence for the log (``level`` says whether it is a ``notice`` or a ``warning``); it
    never contains the token. ``changed`` is False when the release already was in the wanted state.
    """

    status: str
    message: str
    http_status: int | None = None
    release: Release | None = None
    changed: bool = False

    @property
    def ok(self) -> bool:
        return self.status == DONE

    @property
    def level(self) -> str:
        return "notice" if self.status in (DONE, NO_SUCH_RELEASE) else "warning"


@dataclass(frozen=True)
class BlockCheck:
    """The answer of ``check_block``: the block (None: not blocked, or unknown when ``outcome`` is not ok)."""

    block: Block | None
    outcome: Outcome


class GitHubError(Exception):
    """A GitHub API request failed (other than 404 from ``find``). ``outcome`` classifies it."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


# --------------------------------------------------------------------------------------------------
# Pure: the note in the release body


def _data_comment(data: Mapping[str, Any]) -> str:
    """JSON inside an HTML comment; ``<``, ``>`` and ``--`` are escaped so the comment cannot end early."""
    text = json.dumps(data, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("--", "-\\u002d")
    return DATA_PREFIX + text + DATA_SUFFIX


def _quote_lines(text: str) -> list[str]:
    return ["> " + line if line else ">" for line in text.splitlines()]


def _visible(text: str) -> str:
    """Free text shown in Markdown: HTML is escaped (so it cannot open comments or tags), Markdown stays."""
    return html.escape(text, quote=False)


def render_block(block: Block, tag: str, original_name: str) -> str:
    """The marked section appended to the release body."""
    env = f" in `{_visible(block.namespace)}`" if block.namespace else ""
    reason = _visible(block.reason).strip() or "_(no reason given)_"
    who = f"@{block.actor}" if block.actor else "unknown"
    facts = [f"**Blocked by:** {_visible(who)}", f"**When:** {_visible(block.time)}"]
    if block.run_url:
        facts.append(f"**Run:** {_visible(block.run_url)}")
    lines = [
        BLOCK_START,
        "> [!CAUTION]",
        f"> **Blocked by kube-release-rollback:** this release was rolled back{env} and must not be "
        f"deployed to other environments until unblocked (`mode: unblock`, `release: {_visible(tag)}`).",
        ">",
        "> **Reason:**",
        *_quote_lines(reason),
        ">",
        "> " + " · ".join(facts),
        _data_comment(
            {
                "release": block.release,
                "namespace": block.namespace,
                "reason": block.reason,
                "actor": block.actor,
                "time": block.time,
                "run_url": block.run_url,
                "name": original_name,
            }
        ),
        BLOCK_END,
    ]
    return "\n".join(lines)


def render_unblocked(actor: str | None, time: str, run_url: str | None) -> str:
    who = f"@{actor}" if actor else "an unknown actor"
    run = f" ({_visible(run_url)})" if run_url else ""
    return "\n".join(
        [UNBLOCKED_START, f"> Unblocked by {_visible(who)} at {_visible(time)}{run}.", UNBLOCKED_END]
    )


def _find_section(body: str, start: str, end: str) -> tuple[int, int] | None:
    """Span of the last ``start``…``end`` section in ``body``."""
    s = body.rfind(start)
    if s < 0:
        return None
    e = body.find(end, s + len(start))
    if e < 0:
        return None
    return s, e + len(end)


def _remove_sections(body: str, start: str, end: str) -> str:
    while (span := _find_section(body, start, end)) is not None:
        before = body[: span[0]].rstrip()
        after = body[span[1] :].lstrip("\r\n")
        body = before + ("\n\n" + after if before and after else after)
    return body


def _append(body: str, section: str) -> str:
    body = body.rstrip()
    return body + "\n\n" + section if body else section


def _parse_data(section: str) -> dict[str, Any] | None:
    s = section.find(DATA_PREFIX)
    if s < 0:
        return None
    e = section.find(DATA_SUFFIX, s + len(DATA_PREFIX))
    if e < 0:
        return None
    try:
        data = json.loads(section[s + len(DATA_PREFIX) : e])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _opt_str(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def mark_blocked(name: str, body: str, tag: str, block: Block) -> tuple[str, str]:
    """(name, body) of the release marked as blocked; marking again replaces the note, never duplicates it."""
    existing = _find_section(body, BLOCK_START, BLOCK_END)
    original = name[len(NAME_PREFIX) :] if name.startswith(NAME_PREFIX) else name
    if existing is not None:
        data = _parse_data(body[existing[0] : existing[1]])
        if data is not None and isinstance(data.get("name"), str):
            original = data["name"]
    body = _remove_sections(body, BLOCK_START, BLOCK_END)
    body = _remove_sections(body, UNBLOCKED_START, UNBLOCKED_END)
    new_name = name if name.startswith(NAME_PREFIX) else NAME_PREFIX + (name or tag)
    return new_name, _append(body, render_block(block, tag, original))


def mark_unblocked(name: str, body: str, tag: str, note: str | None) -> tuple[str, str]:
    """(name, body) without the block note and the name prefix (and with ``note`` appended, when given)."""
    span = _find_section(body, BLOCK_START, BLOCK_END)
    data = _parse_data(body[span[0] : span[1]]) if span else None
    new_name = name
    if name.startswith(NAME_PREFIX):
        rest = name[len(NAME_PREFIX) :]
        original = data.get("name") if data else None
        if isinstance(original, str) and rest == (original or tag):
            new_name = original
        else:
            new_name = "" if rest == tag and not original else rest
    body = _remove_sections(body, BLOCK_START, BLOCK_END)
    body = _remove_sections(body, UNBLOCKED_START, UNBLOCKED_END)
    if note:
        body = _append(body, note)
    return new_name, body


def parse_block(name: str, body: str, tag: str) -> Block | None:
    """The block recorded on a release, or None. A release counts as blocked when it carries the note or the
    name prefix (a person may add either by hand); an unreadable note still counts, so a damaged note fails
    closed."""
    span = _find_section(body, BLOCK_START, BLOCK_END)
    if span is None:
        if name.startswith(NAME_PREFIX):
            return Block(
                release=tag,
                namespace="",
                reason="the GitHub Release title is marked blocked",
                actor=None,
                time="",
                run_url=None,
                source="github-release",
            )
        return None
    data = _parse_data(body[span[0] : span[1]])
    if data is None:
        return Block(
            release=tag,
            namespace="",
            reason="the block note on the GitHub Release could not be read",
            actor=None,
            time="",
            run_url=None,
            source="github-release",
        )
    return Block(
        release=str(data.get("release") or tag),
        namespace=str(data.get("namespace") or ""),
        reason=str(data.get("reason") or ""),
        actor=_opt_str(data.get("actor")),
        time=str(data.get("time") or ""),
        run_url=_opt_str(data.get("run_url")),
        source="github-release",
    )


# --------------------------------------------------------------------------------------------------
# I/O: the REST API


class GitHubReleases:
    """Releases of one repository (``owner/name``) through ``client``."""

    def __init__(self, client: GitHubClient, repository: str) -> None:
        owner, sep, repo = repository.partition("/")
        if not sep or not owner or not repo or "/" in repo:
            raise ValueError(f"repository must be owner/name, got {repository!r}")
        self.client = client
        self.api_url = client.api_url
        self.repository = repository
        self._repo_path = f"/repos/{urllib.parse.quote(owner, safe='')}/{urllib.parse.quote(repo, safe='')}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], token: str, **kwargs: Any) -> GitHubReleases:
        """From ``GITHUB_API_URL`` (default api.github.com) and ``GITHUB_REPOSITORY``."""
        return cls(GitHubClient.from_env(environ, token, **kwargs), environ.get("GITHUB_REPOSITORY", ""))

    def __repr__(self) -> str:
        return f"GitHubReleases(api_url={self.api_url!r}, repository={self.repository!r})"

    # -- requests

    def _request(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> Any:
        """JSON of a successful answer; raises GitHubError(outcome) otherwise."""
        try:
            return self.client.request(method, path, payload).body
        except GitHubApiError as exc:
            raise GitHubError(self._classify(exc)) from None

    def _classify(self, exc: GitHubApiError) -> Outcome:
        status = exc.status
        said = f"HTTP {status}" + (f": {exc.detail}" if exc.detail else "")
        if status == 0:
            return Outcome(ERROR, exc.message)
        if status == 404:
            return Outcome(NO_SUCH_RELEASE, f"no such GitHub Release in {self.repository} ({said})", status)
        if exc.rate_limited:
            return Outcome(ERROR, f"the GitHub API rate limit was hit ({said}); try again later", status)
        if status == 403:
            return Outcome(
                FORBIDDEN,
                f"the github-token may not change releases of {self.repository} ({said}); give "
                f"the job `permissions: contents: write`",
                status,
            )
        if status == 401:
            return Outcome(ERROR, f"the GitHub API rejected the github-token ({said})", status)
        return Outcome(ERROR, exc.message, status)

    # -- public API

    def find(self, tag: str) -> Release | None:
        """The published release with this tag, or None (404). Other failures raise GitHubError."""
        try:
            obj = self._request("GET", f"{self._repo_path}/releases/tags/{urllib.parse.quote(tag, safe='')}")
        except GitHubError as exc:
            if exc.outcome.status == NO_SUCH_RELEASE:
                return None
            raise
        return Release.from_json(obj)

    def _edit(self, release: Release, name: str, body: str) -> Release:
        obj = self._request("PATCH", f"{self._repo_path}/releases/{release.id}", {"name": name, "body": body})
        return Release.from_json(obj)

    def check_block(self, tag: str) -> BlockCheck:
        """Whether the GitHub Release ``tag`` is blocked. Never raises; ``outcome`` says why the answer may be
        unknown (no such release, forbidden, error)."""
        try:
            release = self.find(tag)
        except GitHubError as exc:
            return BlockCheck(None, exc.outcome)
        if release is None:
            return BlockCheck(None, Outcome(NO_SUCH_RELEASE, self._missing(tag), 404))
        block = parse_block(release.name, release.body, tag)
        state = "is blocked" if block else "is not blocked"
        return BlockCheck(
            block, Outcome(DONE, f"GitHub Release {tag} {state} ({release.html_url})", 200, release)
        )

    def block_for(self, tag: str) -> Block | None:
        """The block on the GitHub Release ``tag``, or None: not blocked, no such release, or the API failed
        (use ``check_block`` to tell these apart). Never raises."""
        return self.check_block(tag).block

    def block(self, tag: str, block: Block) -> Outcome:
        """Mark the GitHub Release ``tag`` as blocked (name prefix and note). Idempotent. Never raises."""
        try:
            release = self.find(tag)
            if release is None:
                return Outcome(
                    NO_SUCH_RELEASE,
                    self._missing(tag) + "; the block is kept in the in-cluster ledger only",
                    404,
                )
            name, body = mark_blocked(release.name, release.body, tag, block)
            if (name, body) == (release.name, release.body):
                return Outcome(
                    DONE, f"GitHub Release {tag} already marked blocked ({release.html_url})", 200, release
                )
            edited = self._edit(release, name, body)
        except GitHubError as exc:
            return self._failed(exc.outcome, "block", tag)
        return Outcome(
            DONE,
            f"marked GitHub Release {tag} as blocked ({edited.html_url or release.html_url})",
            200,
            edited,
            changed=True,
        )

    def unblock(
        self,
        tag: str,
        actor: str | None,
        *,
        time: str | None = None,
        run_url: str | None = None,
        note: bool = True,
    ) -> Outcome:
        """Remove the block note and the name prefix from the GitHub Release ``tag``; with ``note``, leave a
        one-line "Unblocked by @actor at time" note in its place. Never raises."""
        try:
            release = self.find(tag)
            if release is None:
                return Outcome(NO_SUCH_RELEASE, self._missing(tag), 404)
            if parse_block(release.name, release.body, tag) is None:
                return Outcome(
                    DONE, f"GitHub Release {tag} was not blocked ({release.html_url})", 200, release
                )
            text = render_unblocked(actor, time or utc_now(), run_url) if note else None
            name, body = mark_unblocked(release.name, release.body, tag, text)
            edited = self._edit(release, name, body)
        except GitHubError as exc:
            return self._failed(exc.outcome, "unblock", tag)
        return Outcome(
            DONE,
            f"removed the block from GitHub Release {tag} ({edited.html_url or release.html_url})",
            200,
            edited,
            changed=True,
        )

    def _missing(self, tag: str) -> str:
        return f"no GitHub Release with tag {tag} in {self.repository}"

    def _failed(self, outcome: Outcome, verb: str, tag: str) -> Outcome:
        where = "; the block is kept in the in-cluster ledger only" if verb == "block" else ""
        if outcome.status == NO_SUCH_RELEASE:
            return Outcome(NO_SUCH_RELEASE, self._missing(tag) + where, outcome.http_status)
        return Outcome(
            outcome.status,
            f"could not {verb} GitHub Release {tag}: {outcome.message}{where}",
            outcome.http_status,
        )
