"""A local stand-in for the GitHub REST API: Releases, Deployments and deployment statuses of one repository.

It answers on 127.0.0.1 (``serve()``), reached the way a user's run reaches GitHub: through
``GITHUB_API_URL``. It records every request (method, raw path, lower-case headers, JSON body), so tests
check exactly what is sent, and it answers like GitHub does where our code depends on it:

- ``Authorization: Bearer <token>`` is required (else 401 ``Bad credentials``);
- ``GET …/releases/tags/{tag}`` (404 when missing), ``PATCH …/releases/{id}``;
- ``POST …/deployments`` (201; ``ref`` required, ``payload`` object or JSON text), ``GET …/deployments``
  newest first, filtered by ``environment``/``ref``/``sha``/``task``, paginated by ``per_page`` (default 30,
  max 100) and ``page`` with a ``Link: <…>; rel="next"`` header;
- ``POST …/deployments/{id}/statuses`` (201; ``state`` one of GitHub's, ``description`` at most 140
  characters else 422; ``log_url`` also sets ``target_url``; ``auto_inactive`` (default true) adds an
  ``inactive`` status to the environment's earlier non-transient, non-production deployments whose latest
  status is ``success``), ``GET …/deployments/{id}/statuses`` newest first, paginated the same way;
- ``prefix = "/api/v3"`` serves the same under GitHub Enterprise Server's path.

``fail(method, path_part, status, body, headers, times)`` forces answers (403, 429 with ``Retry-After``,
…) for matching requests; ``force[method] = (status, body[, headers])`` forces every request of a method.
"""

from __future__ import annotations

import itertools
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEPLOYMENT_STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")


@dataclass
class Request:
    method: str
    path: str  # raw, as sent (percent-encoding and query kept)
    headers: dict[str, str]
    body: Any

    @property
    def route(self) -> str:
        return self.path.split("?", 1)[0]

    @property
    def query(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))


@dataclass
class Rule:
    method: str
    path_part: str
    status: int
    body: Any
    headers: dict[str, str]
    times: int | None  # None: every time


@dataclass
class FakeGitHub:
    token: str
    repository: str = "octo-org/shop"
    prefix: str = ""  # "/api/v3" for GitHub Enterprise Server
    url: str = ""  # http://127.0.0.1:PORT, set by serve()
    releases: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # oldest first
    requests: list[Request] = field(default_factory=list)
    force: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # method -> (status, body[, headers])
    rules: list[Rule] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(7001))
    clock: Iterator[int] = field(default_factory=lambda: itertools.count(0))
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def api_url(self) -> str:
        return self.url + self.prefix

    @property
    def repo_path(self) -> str:
        return f"{self.prefix}/repos/{self.repository}"

    # -- state ------------------------------------------------------------------------------------------------

    def add(self, tag: str, name: str | None = "Shop {tag}", body: str | None = "Changes.", prerelease: bool = False
            ) -> dict[str, Any]:
        """A published release; ``name``/``body`` None are JSON null (a release without title or notes)."""
        release = {"id": next(self.ids), "tag_name": tag, "name": name.format(tag=tag) if name else name,
                   "body": body, "draft": False, "prerelease": prerelease,
                   "html_url": f"https://github.example/{self.repository}/releases/tag/{tag}"}
        self.releases[tag] = release
        return release

    def add_deployment(self, release: str, environment: str, *states: str, ref: str = "main",
                       payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """A deployment made earlier (by this action on another cluster, say), with these statuses in order."""
        deployment = self._create_deployment({
            "ref": ref, "environment": environment,
            "payload": payload if payload is not None else {"release": release}})
        for state in states:
            self._create_status(deployment, {"state": state})
        return deployment

    def latest_state(self, deployment: dict[str, Any]) -> str | None:
        statuses = self.statuses.get(deployment["id"]) or []
        return statuses[-1]["state"] if statuses else None

    def states(self, deployment: dict[str, Any]) -> list[str]:
        return [s["state"] for s in self.statuses.get(deployment["id"]) or []]

    def by_release(self, release: str) -> list[dict[str, Any]]:
        return [d for d in self.deployments if (d.get("payload") or {}).get("release") == release]

    def fail(self, method: str, path_part: str, status: int, body: Any = None, headers: dict[str, str] | None = None,
             times: int | None = None) -> None:
        self.rules.append(Rule(method, path_part, status, body if body is not None else {"message": "forced"},
                               headers or {}, times))

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]

    def take(self) -> list[Request]:
        taken, self.requests = self.requests, []
        return taken

    def reset(self) -> None:
        self.releases.clear()
        self.deployments.clear()
        self.statuses.clear()
        self.requests.clear()
        self.force.clear()
        self.rules.clear()
        self.prefix = ""

    def tag_path(self, tag: str) -> str:
        return f"{self.repo_path}/releases/tags/{urllib.parse.quote(tag, safe='')}"

    def release_path(self, release: dict[str, Any]) -> str:
        return f"{self.repo_path}/releases/{release['id']}"

    def deployments_path(self) -> str:
        return f"{self.repo_path}/deployments"

    def statuses_path(self, deployment: dict[str, Any] | int) -> str:
        number = deployment if isinstance(deployment, int) else deployment["id"]
        return f"{self.repo_path}/deployments/{number}/statuses"

    # -- GitHub's behaviour -----------------------------------------------------------------------------------

    def _stamp(self) -> str:
        second = next(self.clock)
        return f"2024-05-01T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"

    def _create_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        payload = body.get("payload", {})
        if isinstance(payload, str):
            payload = json.loads(payload) if payload else {}
        number = next(self.ids)
        environment = body.get("environment", "production")
        deployment = {
            "id": number, "url": f"{self.api_url}/repos/{self.repository}/deployments/{number}",
            "sha": "0123456789abcdef0123456789abcdef01234567", "ref": body["ref"],
            "task": body.get("task", "deploy"), "payload": payload, "environment": environment,
            "original_environment": environment, "description": body.get("description"),
            "creator": {"login": "github-actions[bot]"}, "created_at": self._stamp(),
            "transient_environment": body.get("transient_environment", False),
            "production_environment": body.get("production_environment", environment == "production"),
            "statuses_url": f"{self.api_url}/repos/{self.repository}/deployments/{number}/statuses",
        }
        self.deployments.append(deployment)
        self.statuses[number] = []
        return deployment

    def _create_status(self, deployment: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        status = {
            "id": next(self.ids), "state": body["state"], "description": body.get("description", ""),
            "environment": body.get("environment", deployment["environment"]),
            "log_url": body.get("log_url", ""), "target_url": body.get("log_url", body.get("target_url", "")),
            "environment_url": body.get("environment_url", ""), "created_at": self._stamp(),
            "deployment_url": deployment["url"],
        }
        if body["state"] == "success" and body.get("auto_inactive", True):
            for other in self.deployments:
                if (other["id"] != deployment["id"] and other["environment"] == deployment["environment"]
                        and not other["transient_environment"] and not other["production_environment"]
                        and self.latest_state(other) == "success"):
                    self.statuses[other["id"]].append({**status, "id": next(self.ids), "state": "inactive",
                                                       "description": "", "deployment_url": other["url"]})
        self.statuses[deployment["id"]].append(status)
        return status

    def answer(self, method: str, raw_path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON body, extra headers) for one request; the routes GitHub has that we use."""
        route, _, query_text = raw_path.partition("?")
        query = dict(urllib.parse.parse_qsl(query_text))
        base = self.repo_path
        if not route.startswith(base + "/"):
            return 404, {"message": "Not Found"}, {}
        rest = route[len(base) + 1:].split("/")
        if rest[:2] == ["releases", "tags"] and method == "GET" and len(rest) == 3:
            release = self.releases.get(urllib.parse.unquote(rest[2]))
            return (200, release, {}) if release else (404, {"message": "Not Found"}, {})
        if rest[0] == "releases" and len(rest) == 2 and rest[1].isdigit() and method == "PATCH":
            for release in self.releases.values():
                if release["id"] == int(rest[1]):
                    release.update(body or {})
                    return 200, release, {}
            return 404, {"message": "Not Found"}, {}
        if rest == ["deployments"] and method == "POST":
            if not isinstance(body, dict) or not body.get("ref"):
                return 422, {"message": "Invalid request.\n\n\"ref\" wasn't supplied."}, {}
            return 201, self._create_deployment(body), {}
        if rest == ["deployments"] and method == "GET":
            found = [d for d in reversed(self.deployments)
                     if all(str(d.get(key)) == query[key] for key in ("environment", "ref", "sha", "task")
                            if key in query)]
            return self._page(route, query, found)
        if len(rest) == 3 and rest[0] == "deployments" and rest[2] == "statuses" and rest[1].isdigit():
            deployment = next((d for d in self.deployments if d["id"] == int(rest[1])), None)
            if deployment is None:
                return 404, {"message": "Not Found"}, {}
            if method == "GET":
                return self._page(route, query, list(reversed(self.statuses[deployment["id"]])))
            if method == "POST":
                if not isinstance(body, dict) or body.get("state") not in DEPLOYMENT_STATES:
                    return 422, {"message": "Validation Failed", "errors": [{"field": "state"}]}, {}
                if len(body.get("description") or "") > 140:
                    return 422, {"message": "Validation Failed",
                                 "errors": [{"field": "description", "code": "custom",
                                             "message": "description is too long (maximum is 140 characters)"}]}, {}
                return 201, self._create_status(deployment, body), {}
        return 404, {"message": "Not Found"}, {}

    def _page(self, route: str, query: dict[str, str], items: list[Any]) -> tuple[int, Any, dict[str, str]]:
        per_page = min(int(query.get("per_page", 30)), 100)
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {}
        if page * per_page < len(items):
            next_query = urllib.parse.urlencode({**query, "page": page + 1, "per_page": per_page})
            headers["Link"] = f'<{self.url}{route}?{next_query}>; rel="next"'
        return 200, chunk, headers

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: Any
               ) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.requests.append(Request(method, raw_path, headers, body))
            if method in self.force:
                forced = self.force[method]
                return forced[0], forced[1], dict(forced[2]) if len(forced) > 2 else {}
            for rule in self.rules:
                if rule.method in (method, "*") and rule.path_part in raw_path and rule.times != 0:
                    if rule.times is not None:
                        rule.times -= 1
                    return rule.status, rule.body, dict(rule.headers)
            if headers.get("authorization") != f"Bearer {self.token}":
                return 401, {"message": "Bad credentials"}, {}
            return self.answer(method, raw_path, body)


def _handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, answer, extra = fake.handle(self.command, self.path,
                                                {k.lower(): v for k, v in self.headers.items()}, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = do_POST = _handle

    return Handler


@contextmanager
def serve(token: str, repository: str = "octo-org/shop") -> Iterator[FakeGitHub]:
    """The fake on 127.0.0.1 (a free port) for the duration of the ``with`` block."""
    fake = FakeGitHub(token=token, repository=repository)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
