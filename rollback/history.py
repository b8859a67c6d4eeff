"""Revision history of one workload and finding a release in it (pure functions, no I/O).

The cluster code (``workloads.py``) builds a :class:`History` from ReplicaSets or ControllerRevisions; the
functions here decide which revision a release means, the way ``kubectl rollout undo`` would be pointed at it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rollback.inputs import WorkloadRef


@dataclass(frozen=True)
class Revision:
    number: int  # deployment.kubernetes.io/revision or ControllerRevision.revision
    release: str | None  # kubernetes.io/change-cause of the ReplicaSet / ControllerRevision
    images: tuple[str, ...]  # "container=image", containers then initContainers
    created: str  # RFC 3339 creationTimestamp of the ReplicaSet / ControllerRevision
    source: str  # name of the ReplicaSet / ControllerRevision
    template: Mapping[str, Any] = field(default_factory=dict, compare=False)  # as the undo would write it
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class History:
    workload: WorkloadRef
    revisions: tuple[Revision, ...]  # ascending by number
    live: int | None  # revision number whose template is live (None: no history)
    live_release: str | None  # the workload object's own change-cause annotation
    pruned: tuple[int, ...] = ()  # revision numbers known to have existed but gone (pruned)
    history_limit: int | None = None  # spec.revisionHistoryLimit

    def revision(self, number: int | None) -> Revision | None:
        """The revision with this number, if it is in the history."""
        return next((rev for rev in self.revisions if rev.number == number), None)


@dataclass(frozen=True)
class Resolution:
    target: Revision
    skipped: bool  # the target is already live: nothing to undo (kubectl's "skipped rollback")
    duplicates: tuple[int, ...]  # other revisions with the same release, newest first (warn about them)


class ResolveError(LookupError):
    """The history holds no revision to roll back to."""


class NoPreviousRevision(ResolveError):
    def __init__(self, workload: str, count: int) -> None:
        super().__init__(
            f"{workload} has {count} revision(s) in its history, so there is no previous revision to roll "
            "back to; give the release to roll back to, or deploy it with mode deploy"
        )
        self.workload = workload
        self.count = count


class ReleaseNotFound(ResolveError):
    def __init__(self, release: str, available: tuple[str, ...], pruned: tuple[int, ...],
                 history_limit: int | None, workload: str = "the workload") -> None:
        self.release = release
        self.available = available
        self.pruned = pruned
        self.history_limit = history_limit
        self.workload = workload
        listed = ", ".join(available) if available else "none (no revision has a change-cause)"
        message = (f"release {release!r} is not in the revision history of {workload}. "
                   f"Releases available (newest first): {listed}. ")
        if pruned:
            limit = "the history limit" if history_limit is None else f"revisionHistoryLimit={history_limit}"
            message += (f"{len(pruned)} older revision(s) were pruned by {limit}; the release may have been "
                        "among them: redeploy it with mode deploy")
        else:
            message += ("It was never deployed to this workload (or deployed without a change-cause): deploy "
                        "it with mode deploy")
        super().__init__(message)


def available_releases(history: History) -> tuple[str, ...]:
    """Releases recorded in the history, newest revision first, each once; revisions without one omitted."""
    releases = (rev.release for rev in reversed(history.revisions) if rev.release)
    return tuple(dict.fromkeys(releases))


def resolve(history: History, release: str) -> Resolution:
    """The revision to roll back to for ``release``.

    The newest revision whose change-cause equals ``release`` exactly wins; the other matches are reported in
    ``duplicates``. An empty ``release`` means the previous revision, like ``kubectl rollout undo`` without
    ``--to-revision``: the second-highest revision number.

    Raises :class:`ReleaseNotFound` or :class:`NoPreviousRevision`.
    """
    if not release:
        if len(history.revisions) < 2:
            raise NoPreviousRevision(str(history.workload), len(history.revisions))
        target = sorted(history.revisions, key=lambda rev: rev.number)[-2]
        return Resolution(target, target.number == history.live, ())
    matches = sorted((rev for rev in history.revisions if rev.release == release),
                     key=lambda rev: rev.number, reverse=True)
    if not matches:
        raise ReleaseNotFound(release, available_releases(history), history.pruned, history.history_limit,
                              str(history.workload))
    target = matches[0]
    return Resolution(target, target.number == history.live, tuple(rev.number for rev in matches[1:]))


def previous_release(history: History) -> str | None:
    """The release an empty-``release`` rollback would go to (the second-highest revision's), if any."""
    try:
        return resolve(history, "").target.release
    except NoPreviousRevision:
        return None


def to_json_rows(history: History) -> list[dict[str, Any]]:
    """The ``history`` output: one row per revision, ascending like ``kubectl rollout history``."""
    return [
        {"revision": rev.number, "release": rev.release, "images": list(rev.images), "created": rev.created,
         "current": rev.number == history.live}
        for rev in history.revisions
    ]
