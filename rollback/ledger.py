"""The release ledger: who deployed what, when, with which result, and which releases are blocked.

One ledger per namespace (the "environment"), kept in a ConfigMap the action owns
(``kube-release-rollback-ledger``; layout in ``docs/ledger.md``). Revision history cannot hold these facts: it
is pruned and renumbered, and it never records failed attempts, reasons or blocks.

Everything about the ledger's content is pure (``LedgerState`` and its methods); only ``ConfigMapLedger``
talks to the API server, through ``read``/``create``/``replace`` of one ConfigMap with optimistic concurrency.
"""

from __future__ import annotations

import json
import random
import time as _time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from rollback.cluster import AnswerLost, Api, ApiFailure, DeadlineExceeded, resource_path
from rollback.modes import LedgerFacts

LEDGER_NAME = "kube-release-rollback-ledger"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kube-release-rollback"
FORMAT = "1"
ENTRIES_KEY = "entries.json"
BLOCKS_KEY = "blocks.json"
FORMAT_KEY = "format"

MAX_ENTRIES = 200  # newest entries kept; older ones are dropped on the next write
MAX_BLOCKS = 100  # active blocks kept (the oldest dropped beyond this; not reached in practice)
# A ConfigMap holds at most 1 MiB: entries.json and blocks.json are trimmed, oldest first, below these budgets.
MAX_ENTRIES_BYTES = 512 * 1024
MAX_BLOCKS_BYTES = 256 * 1024
MAX_TEXT = 1000  # a reason is clipped to this many characters when recorded

# Results an entry can carry. Only some of them say something about what is (or was meant to be) live.
SUCCEEDED = "succeeded"  # the release is live and rolled out (deploy, redeploy, rollback, or already live)
FAILED = "failed"  # the release was attempted and did not become ready; the workload was left as it was
ROLLED_BACK = (
    "rolled-back"  # the release was attempted, failed, and the action undid it to the previous revision
)
REFUSED = "refused"  # nothing changed: the release is blocked (or the run was refused before any write)
UNBLOCKED = "unblocked"  # `mode: unblock` removed the block of the release
DRY_RUN = "dry-run"  # nothing persisted
IN_PROGRESS = "in-progress"  # written before the run's first workload write, replaced when the run completes
APPLIED = "applied"  # written, not waited for (`wait: false`): not known to work
NOT_VERIFIED = "not-verified"  # written, and no rollout could verify it (OnDelete; or changed by someone else)
CANCELLED = "cancelled"  # the step was cancelled (a signal) after it changed the workload
INTERRUPTED = "interrupted"  # an in-progress entry whose run died; completed by a later run from the cluster
RESULTS = (SUCCEEDED, FAILED, ROLLED_BACK, REFUSED, UNBLOCKED, DRY_RUN, IN_PROGRESS, APPLIED, NOT_VERIFIED,
           CANCELLED, INTERRUPTED)

SUCCESS_RESULTS = frozenset({SUCCEEDED})  # Octopus CurrentForEnvironment: last successful (a verified rollout)
ATTEMPT_RESULTS = frozenset(
    {SUCCEEDED, FAILED, ROLLED_BACK, IN_PROGRESS, APPLIED, NOT_VERIFIED, CANCELLED, INTERRUPTED}
)  # Octopus PreviousForEnvironment: last attempted

BLOCK_SOURCES = ("ledger", "github-release")


def utc_now() -> str:
    """The current time as RFC 3339 UTC with second precision (``2024-05-01T12:00:00Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class GitHubContext:
    """The GitHub Actions run that is acting, from the runner's environment. Every field is optional: a local
    CLI run has none of them."""

    actor: str | None = None
    repository: str | None = None  # owner/name
    workflow: str | None = None
    run_id: str | None = None
    server_url: str | None = None
    event_name: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> GitHubContext:
        def get(name: str) -> str | None:
            value = environ.get(name, "").strip()
            return value or None

        return cls(
            actor=get("GITHUB_ACTOR"),
            repository=get("GITHUB_REPOSITORY"),
            workflow=get("GITHUB_WORKFLOW"),
            run_id=get("GITHUB_RUN_ID"),
            server_url=get("GITHUB_SERVER_URL"),
            event_name=get("GITHUB_EVENT_NAME"),
        )

    @property
    def run_url(self) -> str | None:
        """``{GITHUB_SERVER_URL}/{GITHUB_REPOSITORY}/actions/runs/{GITHUB_RUN_ID}``, or None."""
        if not (self.server_url and self.repository and self.run_id):
            return None
        return f"{self.server_url.rstrip('/')}/{self.repository}/actions/runs/{self.run_id}"


@dataclass(frozen=True)
class Entry:
    """One run's outcome for one workload."""

    time: str  # RFC 3339 UTC
    namespace: str
    workload: str  # "deployment/web"
    release: str
    mode: str  # deploy | redeploy | rollback | unblock | ...
    result: str  # one of RESULTS
    revision: int | None = None  # revision live after the run (None: unknown / nothing changed)
    images: tuple[str, ...] = ()  # "container=image"
    reason: str = ""
    actor: str | None = None
    repository: str | None = None
    workflow: str | None = None
    run_url: str | None = None
    event: str | None = None
    allow_blocked: bool = False  # the run deployed a blocked release on purpose (`allow-blocked: true`)
    managed_by: tuple[str, ...] = ()  # GitOps/Helm managers of the workload overridden (`allow-managed: true`)
    run: str | None = None  # the run's identity (its lease holder): ties an in-progress entry to its run
    would_block: str | None = None  # in-progress rollback: the release it blocks once the rollback is live
    cluster: str | None = None  # the API server (host:port) the run recorded it through

    @classmethod
    def new(
        cls,
        ctx: GitHubContext,
        *,
        namespace: str,
        workload: str,
        release: str,
        mode: str,
        result: str,
        revision: int | None = None,
        images: Iterable[str] = (),
        reason: str = "",
        allow_blocked: bool = False,
        time: str | None = None,
    ) -> Entry:
        """An entry stamped with the current time and the GitHub context."""
        return cls(
            time=time or utc_now(),
            namespace=namespace,
            workload=workload,
            release=release,
            mode=mode,
            result=result,
            revision=revision,
            images=tuple(images),
            reason=_clip(reason),
            actor=ctx.actor,
            repository=ctx.repository,
            workflow=ctx.workflow,
            run_url=ctx.run_url,
            event=ctx.event_name,
            allow_blocked=allow_blocked,
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "images": list(self.images),  # the fields, in order, as documented
                "managed_by": list(self.managed_by)}

    @classmethod
    def from_json(cls, obj: object) -> Entry:
        data = _object(obj, "entry")
        revision = data.get("revision")
        images = data.get("images") or []
        if not isinstance(images, list):
            raise ValueError(f"entry images must be a list, got {type(images).__name__}")
        return cls(
            time=_str(data, "time"),
            namespace=_str(data, "namespace"),
            workload=_str(data, "workload"),
            release=_str(data, "release"),
            mode=_str(data, "mode"),
            result=_str(data, "result"),
            revision=revision if isinstance(revision, int) and not isinstance(revision, bool) else None,
            images=tuple(str(i) for i in images),
            reason=_str(data, "reason"),
            actor=_opt(data, "actor"),
            repository=_opt(data, "repository"),
            workflow=_opt(data, "workflow"),
            run_url=_opt(data, "run_url"),
            event=_opt(data, "event"),
            allow_blocked=data.get("allow_blocked") is True,
            managed_by=tuple(str(m) for m in data.get("managed_by") or [] if isinstance(m, str)),
            run=_opt(data, "run"),
            would_block=_opt(data, "would_block"),
            cluster=_opt(data, "cluster"),
        )


@dataclass(frozen=True)
class Block:
    """A release that must not be deployed (in this namespace; with ``source="github-release"``: anywhere)."""

    release: str
    namespace: str  # the environment where it was blocked
    reason: str
    actor: str | None
    time: str
    run_url: str | None = None
    source: str = "ledger"  # "ledger" | "github-release"

    @classmethod
    def new(
        cls,
        ctx: GitHubContext,
        *,
        release: str,
        namespace: str,
        reason: str,
        source: str = "ledger",
        time: str | None = None,
    ) -> Block:
        return cls(
            release=release,
            namespace=namespace,
            reason=_clip(reason),
            actor=ctx.actor,
            time=time or utc_now(),
            run_url=ctx.run_url,
            source=source,
        )

    def describe(self) -> str:
        """One line for error messages: who blocked it, when, where and why."""
        who = f"by {self.actor}" if self.actor else "by an unknown actor"
        where = f" in namespace {self.namespace}" if self.namespace else ""
        why = f": {self.reason}" if self.reason else " (no reason given)"
        run = f" (run: {self.run_url})" if self.run_url else ""
        return f"release {self.release} was blocked {who} at {self.time}{where}{why}{run}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # the fields, in order, as documented

    @classmethod
    def from_json(cls, obj: object) -> Block:
        data = _object(obj, "block")
        source = _str(data, "source") or "ledger"
        return cls(
            release=_str(data, "release"),
            namespace=_str(data, "namespace"),
            reason=_str(data, "reason"),
            actor=_opt(data, "actor"),
            time=_str(data, "time"),
            run_url=_opt(data, "run_url"),
            source=source,
        )


def _object(obj: object, what: str) -> Mapping[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"each {what} must be a JSON object, got {type(obj).__name__}")
    return obj


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return "" if value is None else str(value)


def _opt(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None or value == "" else str(value)


def _entries_json(entries: Iterable[Entry]) -> str:
    return _json_lines(e.to_json() for e in entries)


def _json_lines(items: Iterable[Mapping[str, Any]]) -> str:
    """A JSON array with one element per line, so ``kubectl get -o yaml`` stays readable."""
    lines = [json.dumps(item, ensure_ascii=False, separators=(",", ":")) for item in items]
    return "[\n" + ",\n".join(lines) + "\n]" if lines else "[]"


def _bounded(items: tuple[Any, ...], count: int, budget: int) -> tuple[Any, ...]:
    """The newest ``count`` items whose JSON lines fit in ``budget`` bytes (at least the newest one)."""
    items = items[-count:]
    sizes = [
        len(json.dumps(i.to_json(), ensure_ascii=False, separators=(",", ":")).encode()) + 2 for i in items
    ]
    total = sum(sizes) + 4
    start = 0
    while total > budget and start < len(items) - 1:
        total -= sizes[start]
        start += 1
    return items[start:]


@dataclass(frozen=True)
class LedgerState:
    """The ledger's content: entries oldest first (the order the writes landed) and the active blocks."""

    entries: tuple[Entry, ...] = ()
    blocks: tuple[Block, ...] = ()
    exists: bool = field(
        default=False, compare=False
    )  # False: no ConfigMap yet (first run in this namespace)

    def facts(self, workload: str | None = None) -> LedgerFacts:
        """Last successful and last attempted release (Octopus CurrentForEnvironment, PreviousForEnvironment),
        and every release recorded as deployed successfully (newest first, each once).

        ``workload`` ("deployment/web") restricts to that workload's entries; None looks at the whole
        namespace. Releases are compared as exact strings: pre-release tags are kept, SHAs and any version
        shape work.
        """
        last_attempted: str | None = None
        succeeded: list[str] = []
        for entry in reversed(self.entries):
            if workload is not None and entry.workload != workload:
                continue
            if last_attempted is None and entry.result in ATTEMPT_RESULTS:
                last_attempted = entry.release
            if entry.result in SUCCESS_RESULTS and entry.release not in succeeded:
                succeeded.append(entry.release)
        return LedgerFacts(
            last_successful=succeeded[0] if succeeded else None,
            last_attempted=last_attempted,
            succeeded=tuple(succeeded),
        )

    def entries_for(self, workload: str) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.workload == workload)

    def block_for(self, release: str) -> Block | None:
        for block in self.blocks:
            if block.release == release:
                return block
        return None

    def with_entry(self, entry: Entry) -> LedgerState:
        """Appended as the newest entry; the oldest are dropped beyond MAX_ENTRIES / MAX_ENTRIES_BYTES."""
        entry = replace(entry, reason=_clip(entry.reason))
        return replace(self, entries=_bounded((*self.entries, entry), MAX_ENTRIES, MAX_ENTRIES_BYTES))

    def with_block(self, block: Block) -> LedgerState:
        """Blocks ``block.release``, replacing an earlier block of the same release."""
        block = replace(block, reason=_clip(block.reason))
        others = tuple(b for b in self.blocks if b.release != block.release)
        return replace(self, blocks=_bounded((*others, block), MAX_BLOCKS, MAX_BLOCKS_BYTES))

    def in_progress(self, workloads: Iterable[str] | None = None, exclude_run: str | None = None
                    ) -> tuple[Entry, ...]:
        """Entries still ``in-progress`` (of other runs than ``exclude_run``), on ``workloads`` if given."""
        wanted = None if workloads is None else set(workloads)
        return tuple(e for e in self.entries if e.result == IN_PROGRESS and e.run != exclude_run
                     and (wanted is None or e.workload in wanted))

    def without_in_progress(self, run: str | None, workloads: Iterable[str] | None = None) -> LedgerState:
        """Drop the ``in-progress`` entries of ``run`` (on ``workloads`` if given): the run completes them."""
        wanted = None if workloads is None else set(workloads)
        kept = tuple(e for e in self.entries if not (e.result == IN_PROGRESS and e.run == run
                                                     and (wanted is None or e.workload in wanted)))
        return replace(self, entries=kept) if len(kept) != len(self.entries) else self

    def without_block(self, release: str) -> LedgerState:
        return replace(self, blocks=tuple(b for b in self.blocks if b.release != release))

    def to_data(self) -> dict[str, str]:
        """The ConfigMap ``data`` this state is stored as."""
        return {
            FORMAT_KEY: FORMAT,
            ENTRIES_KEY: _entries_json(self.entries),
            BLOCKS_KEY: _json_lines(b.to_json() for b in self.blocks),
        }

    @classmethod
    def from_data(
        cls, data: Mapping[str, str] | None, *, exists: bool = True, where: str = "ledger"
    ) -> LedgerState:
        """Parse ConfigMap ``data``; LedgerError when it is not a ledger this version can safely rewrite."""
        data = data or {}
        fmt = data.get(FORMAT_KEY, FORMAT)
        if fmt != FORMAT:
            raise LedgerError(
                f"{where} has format {fmt!r}, this version of kube-release-rollback writes format "
                f"{FORMAT!r}; use a newer version of the action (the ledger was left untouched)"
            )
        try:
            entries = tuple(Entry.from_json(o) for o in _array(data.get(ENTRIES_KEY)))
            blocks = tuple(Block.from_json(o) for o in _array(data.get(BLOCKS_KEY)))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise LedgerError(
                f"{where} is not a valid ledger ({exc}); fix it by hand or delete the ConfigMap "
                f"(the ledger was left untouched)"
            ) from exc
        return cls(entries=entries, blocks=blocks, exists=exists)


def _array(text: str | None) -> list[object]:
    if text is None or not text.strip():
        return []
    value = json.loads(text)
    if not isinstance(value, list):
        raise ValueError(f"expected a JSON array, got {type(value).__name__}")
    return value


class LedgerError(Exception):
    """The ledger could not be read or written. ``status`` is the HTTP status when the API server answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConfigMapLedger:
    """The ledger of one namespace, stored in a ConfigMap.

    ``api`` is a ``rollback.cluster.Api`` (raw JSON through the official client). Needs ``configmaps`` ``get``,
    ``create``, ``update``
    in the namespace. ``update`` is a read-modify-write with optimistic concurrency
    (``metadata.resourceVersion``): on a conflict it re-reads and re-applies ``change``, so concurrent writers
    all land.
    """

    def __init__(
        self,
        api: Api,
        namespace: str,
        name: str = LEDGER_NAME,
        *,
        max_attempts: int = 10,
        backoff: float = 0.05,
        max_backoff: float = 1.0,
        sleep: Callable[[float], None] = _time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._jitter = jitter

    @property
    def where(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name}"

    def load(self) -> LedgerState:
        """The ledger's content; an empty state with ``exists=False`` when there is no ConfigMap yet."""
        state, _ = self._read()
        return state

    def update(self, change: Callable[[LedgerState], LedgerState], dry_run: bool = False) -> LedgerState:
        """Apply ``change`` to the current content and store the result; returns the stored state.

        ``change`` must be pure: it is re-applied to freshly read content after a conflict. No write happens
        when it returns an equal state. ``dry_run`` sends the write with ``dryRun=All``: validated, nothing
        persisted.
        """
        dry = "All" if dry_run else None
        for attempt in range(self.max_attempts):
            if attempt:
                self._sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * (0.5 + self._jitter()))
            state, current = self._read()
            new = change(state)
            if new == state:
                return state
            body = self._body(new, current)
            try:
                if current is None:
                    written = self.api.create(resource_path("", self.namespace, "configmaps"),
                                              body, dryRun=dry, fieldManager=MANAGED_BY)
                else:
                    written = self.api.replace(resource_path("", self.namespace, "configmaps", self.name),
                                               body, dryRun=dry, fieldManager=MANAGED_BY)
            except AnswerLost:
                # The write may or may not have landed: never write it again blindly (the entries would be
                # there twice). Re-read: if the ConfigMap holds what we sent, it landed; else go round again.
                _, landed = self._read()
                if not dry_run and landed is not None and (landed.get("data") or {}) == body["data"]:
                    return LedgerState.from_data(landed.get("data"), where=self.where)
                continue
            except ApiFailure as exc:
                # 409 Conflict / AlreadyExists, or 404 on replace (deleted meanwhile): re-read and retry.
                # A 404 on create means the namespace itself is missing: retrying cannot help.
                if exc.status == 409 or (exc.status == 404 and current is not None):
                    continue
                raise self._error("write", exc) from exc
            return LedgerState.from_data(written.get("data") or new.to_data(), where=self.where)
        raise LedgerError(
            f"could not write {self.where}: {self.max_attempts} attempts in a row lost to concurrent "
            f"writers; run again",
            status=409,
        )

    def _read(self) -> tuple[LedgerState, dict[str, Any] | None]:
        try:
            cm = self.api.get(resource_path("", self.namespace, "configmaps", self.name))
        except DeadlineExceeded:
            raise  # the timeout input ran out: say that, not that the ledger is unreadable
        except ApiFailure as exc:
            if exc.status == 404:
                return LedgerState(exists=False), None
            raise self._error("read", exc) from exc
        return LedgerState.from_data(cm.get("data"), exists=True, where=self.where), cm

    def _body(self, state: LedgerState, current: Mapping[str, Any] | None) -> dict[str, Any]:
        labels: dict[str, str] = {}
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        data: dict[str, str] = {}
        if current is not None:
            old = current.get("metadata") or {}
            labels.update(old.get("labels") or {})
            if old.get("annotations"):
                meta["annotations"] = old["annotations"]
            meta["resourceVersion"] = old.get("resourceVersion")
            data.update(current.get("data") or {})  # keep keys we do not own
        labels[MANAGED_BY_LABEL] = MANAGED_BY
        meta["labels"] = labels
        data.update(state.to_data())
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}

    def _error(self, verb: str, exc: ApiFailure) -> LedgerError:
        status = exc.status
        if status in (401, 403):
            verbs = "get" if verb == "read" else "get, create and update"
            return LedgerError(
                f"not allowed to {verb} the release ledger {self.where} (HTTP {status}); grant the action's "
                f"service account `configmaps` verbs {verbs} in namespace {self.namespace} (docs/ledger.md)",
                status=status,
            )
        if status == 404:
            return LedgerError(
                f"could not {verb} the release ledger {self.where}: namespace {self.namespace} not found",
                status=status,
            )
        if status == 0:  # no answer at all: say what the connection said
            return LedgerError(f"could not {verb} the release ledger {self.where}: {exc.message}", status=status)
        return LedgerError(
            f"could not {verb} the release ledger {self.where}: HTTP {status} {exc.reason or ''}".rstrip(),
            status=status,
        )


def interrupted(entry: Entry, live_release: str | None, reconciled_by: str, time: str | None = None
                ) -> tuple[Entry, Block | None]:
    """An ``in-progress`` entry whose run died (its lease is gone, it never completed the entry), completed
    from what the cluster shows now: result ``interrupted`` (an attempt, never a success: nothing verified
    its rollout), with the live release in the reason. An interrupted rollback whose target is live keeps
    the block it implied (``would_block``); an interrupted deploy counts as a failed newer attempt, so going
    back below it is a rollback that blocks it (modes.py)."""
    when = time or utc_now()
    note = (f"interrupted: the run never completed this entry; {reconciled_by} found release "
            f"{live_release or '<none>'} live at {when}")
    reason = f"{entry.reason} ({note})" if entry.reason else note
    done = replace(entry, result=INTERRUPTED, reason=_clip(reason))
    block = None
    if entry.mode == "rollback" and entry.would_block and live_release == entry.release:
        block = Block(release=entry.would_block, namespace=entry.namespace,
                      reason=_clip(entry.reason or f"rolled back to {entry.release} (run interrupted)"),
                      actor=entry.actor, time=entry.time, run_url=entry.run_url)
    return done, block


def describe_run(entry: Entry) -> str:
    """``the run https://github.com/o/r/actions/runs/9 by mona`` for messages about another run's entry."""
    who = f" by {entry.actor}" if entry.actor else ""
    return f"the run {entry.run_url or entry.run or '(unknown)'}{who}"
