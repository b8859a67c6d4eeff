"""GitHub Deployments: what is deployed where, on the repository's Environments page, across clusters.

A run that changes an environment creates a Deployment for its release (``ref`` = the workflow's commit,
``environment``, ``payload`` with the release, workloads, cluster host and revision; ``auto_merge: false``,
``required_contexts: []``, ``transient_environment: false``) and posts statuses ``in_progress`` → ``success``
| ``failure`` | ``error`` with ``log_url`` (the run) and ``environment_url``. A rollback marks the deployment
of the release it left ``inactive``; its own deployment (for the restored release) says why in its
description. The environment's deployments are also read back: the release of the newest one whose latest
status is ``success`` is Octopus's CurrentForEnvironment (S), the newest one's release PreviousForEnvironment
(A). Only deployments whose ``payload.release`` is set count (those this action made).

The pure part (``deployment_body``, ``status_body``, ``facts_from``) decides what is sent and read; the I/O is
``GitHubDeployments`` over ``rollback.github.client``. ``Recorder`` runs it around one run: every GitHub
failure is a warning (collected for the job summary) and never touches the Kubernetes part.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rollback.github.client import GitHubApiError, GitHubClient
from rollback.modes import LedgerFacts

SOURCE = "GitHub Deployments"
DESCRIPTION_LIMIT = 140  # GitHub refuses longer status descriptions (422)
RECENT = 30  # deployments read back to find S and A
STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")


def clip(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Target:
    """Where deployments are recorded: the environment, and what the Environments page links to."""

    environment: str
    ref: str
    log_url: str | None = None  # the run
    environment_url: str | None = None
    production: bool | None = None  # None: GitHub's default (true for an environment named "production")


def deployment_body(target: Target, release: str, payload: Mapping[str, Any], description: str
                    ) -> dict[str, Any]:
    """The body of ``POST /repos/{owner}/{repo}/deployments`` for one release."""
    body: dict[str, Any] = {
        "ref": target.ref, "task": "deploy", "environment": target.environment, "auto_merge": False,
        "required_contexts": [], "transient_environment": False, "description": clip(description),
        "payload": {"release": release, **payload},
    }
    if target.production is not None:
        body["production_environment"] = target.production
    return body


def status_body(target: Target, state: str, description: str) -> dict[str, Any]:
    """The body of ``POST …/deployments/{id}/statuses``."""
    if state not in STATES:
        raise ValueError(f"unknown deployment state {state!r}")
    body: dict[str, Any] = {"state": state, "description": clip(description)}
    if target.log_url:
        body["log_url"] = target.log_url
    if target.environment_url and state not in ("inactive",):
        body["environment_url"] = target.environment_url
    return body


@dataclass(frozen=True)
class Seen:
    """One deployment read back: its id, release (``payload.release``) and latest status (None: none yet)."""

    id: int
    release: str
    state: str | None


def facts_from(seen: Sequence[Seen]) -> LedgerFacts | None:
    """S and A from an environment's deployments, newest first; None when none of them is ours."""
    ours = [s for s in seen if s.release]
    if not ours:
        return None
    succeeded = tuple(dict.fromkeys(s.release for s in ours if s.state == "success"))
    return LedgerFacts(last_successful=succeeded[0] if succeeded else None, last_attempted=ours[0].release,
                       succeeded=succeeded, source=SOURCE)


def release_label(release: str | None) -> str:
    return f"release {release}" if release else "the release"


def release_of(deployment: Mapping[str, Any]) -> str:
    payload = deployment.get("payload")
    if isinstance(payload, Mapping) and isinstance(payload.get("release"), str):
        return str(payload["release"])
    return ""


class GitHubDeployments:
    """Deployments of one repository (``owner/name``) through ``client``."""

    def __init__(self, client: GitHubClient, repository: str) -> None:
        owner, sep, repo = repository.partition("/")
        if not sep or not owner or not repo or "/" in repo:
            raise ValueError(f"repository must be owner/name, got {repository!r}")
        self.client = client
        self.repository = repository
        self.path = f"/repos/{urllib.parse.quote(owner, safe='')}/{urllib.parse.quote(repo, safe='')}/deployments"

    def create(self, body: Mapping[str, Any]) -> int:
        return int(self.client.request("POST", self.path, body).body["id"])

    def post_status(self, deployment_id: int, body: Mapping[str, Any]) -> bool:
        self.client.request("POST", f"{self.path}/{deployment_id}/statuses", body)
        return True

    def latest_state(self, deployment_id: int) -> str | None:
        statuses = self.client.request("GET", f"{self.path}/{deployment_id}/statuses", query={"per_page": 1}).body
        return str(statuses[0]["state"]) if isinstance(statuses, list) and statuses else None

    def recent(self, environment: str, count: int = RECENT) -> list[Seen]:
        """The environment's newest deployments (at most ``count``) with their latest state, newest first, up
        to the first of ours whose latest state is ``success`` (older ones cannot change S or A)."""
        listed = self.client.request("GET", self.path, query={"environment": environment, "per_page": count}).body
        found = []
        for deployment in listed if isinstance(listed, list) else []:
            release = release_of(deployment)
            state = self.latest_state(int(deployment["id"])) if release else None
            found.append(Seen(int(deployment["id"]), release, state))
            if release and state == "success":
                break
        return found

    def newest_for(self, environment: str, release: str, pages: int = 3) -> int | None:
        """The id of the environment's newest deployment of ``release``."""
        for deployment in self.client.pages(self.path, {"environment": environment, "per_page": 100}, pages):
            if release_of(deployment) == release:
                return int(deployment["id"])
        return None


@dataclass
class Recorder:
    """GitHub Deployments around one run. Never raises: failures become ``warnings`` (for the log and the
    job summary), and after a 401/403/404 the rest of the run makes no more Deployment calls."""

    api: GitHubDeployments
    target: Target
    payload: Mapping[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was posted, for the log
    logged: list[str] = field(default_factory=list)  # warnings already printed
    deployment_id: int | None = None
    release: str | None = None
    disabled: bool = False
    _facts: tuple[LedgerFacts | None] | None = None

    def _call(self, what: str, call: Any) -> Any:
        if self.disabled:
            return None
        try:
            return call()
        except (KeyError, TypeError, ValueError) as err:  # an answer not shaped like GitHub's
            self.warnings.append(f"GitHub Deployments: could not {what}: unexpected answer ({err!r}). The "
                                 "Kubernetes part is not affected")
            return None
        except GitHubApiError as err:
            hint = ""
            if err.status in (401, 403, 404):
                self.disabled = True
                hint = ("; give the job `permissions: deployments: write` (and check github-token), or set "
                        "github-deployments: false")
            self.warnings.append(f"GitHub Deployments: could not {what}: {err.message}{hint}. The Kubernetes part "
                                 "is not affected")
            return None

    def facts(self) -> LedgerFacts | None:
        """S and A from the environment's deployments (read once per run)."""
        if self._facts is None:
            seen = self._call(f"read the deployments of environment {self.target.environment}",
                              lambda: self.api.recent(self.target.environment))
            self._facts = (facts_from(seen) if seen is not None else None,)
        return self._facts[0]

    def start(self, release: str, description: str) -> None:
        """A deployment for ``release``, ``in_progress``."""
        self.release = release
        body = deployment_body(self.target, release, self.payload, description)
        self.deployment_id = self._call(f"create a deployment of {release}", lambda: self.api.create(body))
        if self.deployment_id is not None:
            self.status("in_progress", description)

    def status(self, state: str, description: str, deployment_id: int | None = None,
               release: str | None = None) -> None:
        number = deployment_id if deployment_id is not None else self.deployment_id
        if number is None:
            return
        body = status_body(self.target, state, description)
        if self._call(f"set deployment {number} to {state}", lambda: self.api.post_status(number, body)):
            self.notes.append(f"GitHub deployment {number} of {release_label(release or self.release)} in "
                              f"environment {self.target.environment}: {state}")

    def inactivate(self, release: str, why: str) -> None:
        """Mark the newest deployment of ``release`` in the environment ``inactive`` (it is no longer live)."""
        number = self._call(f"find the deployment of {release}",
                            lambda: self.api.newest_for(self.target.environment, release))
        if number is not None and number != self.deployment_id:
            self.status("inactive", why, number, release)

    def record(self, release: str, state: str, description: str, payload: Mapping[str, Any] | None = None
               ) -> None:
        """A deployment for ``release`` that goes straight to ``state`` (a release restored after a failure)."""
        body = deployment_body(self.target, release, {**self.payload, **(payload or {})}, description)
        number = self._call(f"create a deployment of {release}", lambda: self.api.create(body))
        if number is not None:
            self.status(state, description, number, release)
