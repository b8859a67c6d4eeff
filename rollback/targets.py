"""What one run works with: the workloads it read and what it did to them (``Target``), what it needs from
around it (``Context``), and the error that stops it (``RunError``). Shared by ``run`` and the rooms it calls:
``prepare`` (before any write), ``results`` (what each workload ended as) and ``recording`` (ledger, blocks,
GitHub).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import compensation
from . import plan as change_plan
from .cancellation import Cancellation
from .cluster import Api
from .diagnostics import Diagnosis
from .github.deployments import Recorder
from .github.releases import GitHubReleases
from .history import History, Revision
from .inputs import Inputs
from .lease import Leases
from .ledger import ConfigMapLedger, GitHubContext
from .modes import Decision
from .report import Action, Rollout
from .workloads import Obj, Workload


class RunError(Exception):
    """The run cannot go on; ``input_name`` names the input to fix when the cause is an input."""

    def __init__(self, message: str, input_name: str | None = None):
        super().__init__(message)
        self.message = message
        self.input_name = input_name


class ChangedByOthers(RunError):
    """Compensation found the workload changed by someone else since this run's write: it is left alone."""


@dataclass
class Target:
    """One workload as read at the start of the run, and what the run plans and did to it."""

    workload: Workload
    obj: Obj
    history: History
    decision: Decision | None = None
    revision: Revision | None = None  # rollback target
    duplicates: tuple[int, ...] = ()
    skipped: bool = False
    changed: bool = False
    action: Action = "unchanged"
    rollout: Rollout = "n/a"
    message: str = ""
    after: Obj | None = None
    written: Obj | None = None  # the workload as this run's write left it (the answer to that write)
    foreign: compensation.ForeignChange | None = None  # someone else changed it after this run's write
    unverified: str | None = None  # ledger.APPLIED / NOT_VERIFIED: written, but no rollout verified it
    ahead: bool = False  # a write-ahead (in-progress) ledger entry was written for it
    live_unknown: bool = False  # it could not be read back at the end: what is live is unknown
    history_after: History | None = None
    stuck_pods: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # pre-flight warnings, for the summary
    managed_by: tuple[str, ...] = ()  # managers overridden with allow-managed: true (recorded in the ledger)
    plan: change_plan.WorkloadPlan | None = None
    diagnosis: Diagnosis | None = None  # why its rollout failed, from the new revision's pods
    failure_reason: str = ""  # the cluster's reason for the failure (CrashLoopBackOff, ProgressDeadlineExceeded)


@dataclass(frozen=True)
class Context:
    """What the run needs from around it: the API, the clock, who is acting, the ledger and GitHub."""

    api: Api
    github: GitHubContext = field(default_factory=GitHubContext)
    now: Callable[[], float] = time.monotonic
    ledger: ConfigMapLedger | None = None  # None: `ledger: false`
    releases: GitHubReleases | None = None  # None: no github-token (blocks stay in the cluster)
    deployments: Recorder | None = None  # None: no github-token, or github-deployments: false
    manifest_loader: Callable[[Inputs], list[Obj]] | None = None  # raises ManifestError
    leases: Leases | None = None  # None: no leases taken (tests of the engine alone)
    cancellation: Cancellation = field(default_factory=Cancellation)  # cli.run installs its signal handlers
    notes: list[str] = field(default_factory=list)  # run-level warnings for the job summary
    cluster: str | None = None  # the API server (host:port) this run talks to; stamped on its ledger entries
