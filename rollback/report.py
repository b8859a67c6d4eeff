"""What a run did, as action outputs and as a job summary (pure: no I/O).

The orchestration fills a :class:`RunReport`; :func:`outputs` turns it into every action output (strings) and
:func:`summary_markdown` into the Markdown appended to ``$GITHUB_STEP_SUMMARY``. Text that comes from the
cluster or the user is escaped for Markdown, so a change-cause can neither break a table nor inject HTML.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rollback.modes import Decision, run_on_flags

Action = Literal["deployed", "redeployed", "rolled-back", "skipped", "failed", "compensated", "dry-run",
                 "refused", "unchanged"]
Rollout = Literal["complete", "failed", "timeout", "not-waited", "n/a"]
ACTIONS: tuple[str, ...] = ("deployed", "redeployed", "rolled-back", "skipped", "failed", "compensated",
                            "dry-run", "refused", "unchanged")
ROLLOUTS: tuple[str, ...] = ("complete", "failed", "timeout", "not-waited", "n/a")

OUTPUT_NAMES: tuple[str, ...] = (
    "mode", "run-on-deploy", "run-on-redeploy", "run-on-rollback", "run-on-deploy-or-rollback",
    "run-on-deploy-or-redeploy", "run-on-redeploy-or-rollback", "version-change", "release", "previous-release",
    "revision", "previous-revision", "rolled-back", "skipped", "failed-release", "history", "result",
    "blocked-release", "blocked", "last-successful-release", "last-attempted-release", "plan", "failure-reason",
)


@dataclass(frozen=True)
class WorkloadResult:
    """How one workload ended.

    ``action``: deployed / redeployed / rolled-back; skipped (the rollback target was already live: nothing
    to do); failed (changed, and the rollout failed or timed out; left so); compensated (changed, failed, and
    put back to where it was); dry-run (nothing persisted); refused (blocked release); unchanged (not touched
    because the run stopped first, e.g. another workload lacked the release).
    """

    workload: str  # "deployment/web"
    kind: str
    name: str
    namespace: str
    mode: str  # deploy | redeploy | rollback | history | ... as applied to this workload
    action: Action
    release: str | None  # live after the run
    previous_release: str | None  # live before the run
    revision: int | None  # live revision after the run
    previous_revision: int | None  # live revision before the run
    rollout: Rollout
    message: str = ""
    history: tuple[Mapping[str, Any], ...] = ()  # rows from history.to_json_rows, after the run
    duplicates: tuple[int, ...] = ()  # other revisions carrying the target release
    pruned: tuple[int, ...] = ()  # revisions known to be pruned
    unknown: bool = False  # it could not be read back at the end: release is "unknown", revision None
    diagnosis: Mapping[str, Any] | None = None  # why its rollout failed (diagnostics.Diagnosis.to_json())
    failure_reason: str = ""  # the cluster's reason: CrashLoopBackOff, ..., ProgressDeadlineExceeded, Timeout

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; one of {', '.join(ACTIONS)}")
        if self.rollout not in ROLLOUTS:
            raise ValueError(f"unknown rollout {self.rollout!r}; one of {', '.join(ROLLOUTS)}")

    def to_json(self) -> dict[str, Any]:
        """The entry of the ``result`` output (everything but the history)."""
        return {
            "workload": self.workload, "kind": self.kind, "name": self.name, "namespace": self.namespace,
            "mode": self.mode, "action": self.action, "release": self.release,
            "previous_release": self.previous_release, "revision": self.revision,
            "previous_revision": self.previous_revision, "rollout": self.rollout, "message": self.message,
            "duplicates": list(self.duplicates), "pruned": list(self.pruned),
            **({"diagnosis": dict(self.diagnosis)} if self.diagnosis is not None else {}),
            **({"failure_reason": self.failure_reason} if self.failure_reason else {}),
        }


@dataclass(frozen=True)
class RunReport:
    mode: str  # the requested mode (auto, calculate, deploy, rollback, history, unblock)
    decision: Decision | None = None  # the calculated mode, when one was calculated
    results: tuple[WorkloadResult, ...] = ()
    reason: str = ""  # the user's reason input
    dry_run: bool = False
    rolled_back: bool = False  # an older release is live because of this run (a rollback, or a failed deploy
    # put back by rollback-on-failure: then failed_release is set too)
    failed_release: str | None = None
    blocked_release: str | None = None  # the release this run blocked, or the blocked one that refused it
    blocked: bool = False  # this run was refused because its release is blocked
    last_successful_release: str | None = None
    last_attempted_release: str | None = None
    error: str | None = None  # why the run failed, if it did
    warnings: tuple[str, ...] = ()  # run-level warnings, shown with the decision's
    release: str = ""  # the requested release (empty: the previous revision, for rollback)
    ledger_entries: tuple[Mapping[str, Any], ...] = ()  # newest first, as ledger.Entry.to_json()
    blocks: tuple[Mapping[str, Any], ...] = ()  # active blocks in the namespace, as ledger.Block.to_json()
    plan: tuple[Mapping[str, Any], ...] = ()  # the change per workload, as plan.WorkloadPlan.to_json()
    cancelled: bool = False  # a signal (the runner cancelling the step) stopped the run

    @property
    def applied_mode(self) -> str:
        """What the run did: an explicit rollback is a rollback (even when skipped), an explicit deploy of the
        live release a redeploy; auto and calculate report the calculated mode."""
        calculated = self.decision.mode if self.decision else None
        if self.mode == "rollback":
            return "rollback"
        if self.mode == "deploy":
            return "redeploy" if calculated == "redeploy" else "deploy"
        return calculated or self.mode


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def outputs(report: RunReport) -> dict[str, str]:
    """Every action output, in ``OUTPUT_NAMES`` order, as strings (booleans are ``true``/``false``).

    With several workloads, ``release``, ``previous-release``, ``revision``, ``previous-revision`` and
    ``history`` (the revision rows as JSON) describe the first workload; ``result`` has one entry per
    workload; ``skipped`` is true only when every workload was skipped and the run did not fail.
    """
    first = report.results[0] if report.results else None
    values = {
        "mode": report.applied_mode,
        **run_on_flags(report.applied_mode),
        "version-change": report.decision.version_change if report.decision else "none",
        "release": _text(first.release if first else None),
        "previous-release": _text(first.previous_release if first else None),
        "revision": "unknown" if first and first.unknown else _text(first.revision if first else None),
        "previous-revision": _text(first.previous_revision if first else None),
        "rolled-back": _bool(report.rolled_back),
        "skipped": _bool(bool(report.results) and report.error is None
                         and all(result.action == "skipped" for result in report.results)),
        "failed-release": _text(report.failed_release),
        "history": _json(list(first.history) if first else []),
        "result": _json([result.to_json() for result in report.results]),
        "blocked-release": _text(report.blocked_release),
        "blocked": _bool(report.blocked),
        "last-successful-release": _text(report.last_successful_release),
        "last-attempted-release": _text(report.last_attempted_release),
        "plan": _json(list(report.plan)),
        "failure-reason": next((r.failure_reason for r in report.results if r.failure_reason), ""),
    }
    return {name: values[name] for name in OUTPUT_NAMES}


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")


def escape_markdown(text: object) -> str:
    """Untrusted text as inline Markdown that renders literally, safe inside a table cell.

    HTML is escaped (``<``, ``>``, ``&``), Markdown punctuation that could start emphasis, code, links,
    strikethrough, math or a cell border is backslash-escaped, line breaks become ``<br>`` and other control
    characters become U+FFFD.
    """
    escaped = html.escape(_text(text), quote=False)
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", escaped)
    escaped = _CONTROL.sub("\ufffd", escaped.replace("\t", " "))
    return re.sub(r"\r\n|[\r\n\u2028\u2029]", "<br>", escaped)  # U+2028/2029 end lines for many readers


def _paragraph_start(escaped: str) -> str:
    """Escape what would make a line start a block (heading, list, quote, setext underline, code)."""
    escaped = re.sub(r"^([#+\-=>])", r"\\\1", escaped.lstrip())
    return re.sub(r"^(\d+)([.)])", r"\1\\\2", escaped)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; cells must already be escaped (see :func:`escape_markdown`)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _release_cell(release: object) -> str:
    return "*(none)*" if release is None or release == "" else escape_markdown(release)


def history_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """REVISION | RELEASE | IMAGES | CREATED | LIVE, the live row in bold and marked."""
    body = []
    for row in rows:
        live = bool(row.get("current"))
        revision = escape_markdown(row.get("revision"))
        body.append([
            f"**{revision}**" if live else revision,
            _release_cell(row.get("release")),
            "<br>".join(escape_markdown(image) for image in row.get("images") or []),
            escape_markdown(row.get("created")),
            "**live**" if live else "",
        ])
    return markdown_table(["REVISION", "RELEASE", "IMAGES", "CREATED", "LIVE"], body)


def _lines_cell(lines: Iterable[object]) -> str:
    return "<br>".join(f"<code>{escape_markdown(line)}</code>" for line in lines) or "-"


def diagnosis_section(result: WorkloadResult) -> str:
    """Why a workload's rollout failed: one row per failing pod of the new revision (at most 3 listed)."""
    diagnosis = result.diagnosis or {}
    pods = list(diagnosis.get("pods") or [])
    final = "" if diagnosis.get("final", True) else " (still changing when the wait ended)"
    head = (f"### Why {escape_markdown(result.workload)} failed: {escape_markdown(diagnosis.get('reason'))}"
            f"{final}")
    rows = []
    for pod in pods:
        container = escape_markdown(pod.get("container") or "-")
        if pod.get("init_container"):
            container += " (init)"
        exit_code = pod.get("exit_code")
        last = "-" if exit_code is None else escape_markdown(
            f"{exit_code}" + (f" ({pod['terminated_reason']})" if pod.get("terminated_reason") else ""))
        rows.append([escape_markdown(pod.get("pod")), container, escape_markdown(pod.get("reason")),
                     escape_markdown(pod.get("message") or "-"), escape_markdown(pod.get("restart_count", 0)),
                     last,
                     "<br>".join(escape_markdown(f"{e.get('reason')}: {e.get('message')}")
                                 for e in pod.get("events") or []) or "-",
                     _lines_cell(pod.get("logs") or [])])
    parts = [head, markdown_table(["POD", "CONTAINER", "REASON", "MESSAGE", "RESTARTS", "LAST EXIT", "EVENTS",
                                   "LAST LOG LINES"], rows)]
    more = int(diagnosis.get("more_pods") or 0)
    if more:
        parts.append(f"and {more} more failing pod(s)")
    for note in diagnosis.get("notes") or []:
        parts.append(f"Note: {escape_markdown(note)}")
    return "\n\n".join(parts)


LEDGER_ROWS = 15  # ledger entries shown in the job summary


def _link(url: object) -> str:
    """A Markdown link for an http(s) URL from the ledger; anything else is shown escaped, not linked."""
    text = _text(url)
    if re.fullmatch(r"https?://[^\s()<>\[\]]+", text):
        return f"[run]({text})"
    return escape_markdown(text)


def _status(report: RunReport) -> str:
    if report.blocked and report.mode == "calculate":
        return "⛔ blocked: deploying this release would be refused"
    if report.blocked:
        return "⛔ refused: the release is blocked"
    if report.cancelled:
        return "🛑 cancelled" + (": the changed workloads were put back" if report.rolled_back else "")
    if report.rolled_back and report.failed_release is not None:
        return "↩️ failed and rolled back"
    if report.error is not None:
        return "❌ failed"
    if report.dry_run:
        return "🧪 dry run: nothing was changed"
    return "✅ succeeded"


def _title(report: RunReport) -> str:
    release = escape_markdown(report.release) if report.release else ""
    if report.mode == "calculate":
        mode = escape_markdown(report.applied_mode)
        return f"Calculated mode for {release}: {mode}" if release else f"Calculated mode: {mode}"
    if report.mode == "history":
        return "Revision history"
    if report.applied_mode == "rollback":
        return f"Roll back to {release}" if release else "Roll back to the previous revision"
    return f"{escape_markdown(report.applied_mode.capitalize())} {release}".strip()


def plan_markdown(plans: Sequence[Mapping[str, Any]]) -> str:
    """The ``plan`` (``plan.WorkloadPlan.to_json()`` rows) as a summary section: one table row per change."""
    rows = []
    for item in plans:
        start, end = item.get("from") or {}, item.get("to") or {}
        step = (f"{_text(start.get('revision')) or '-'} ({_text(start.get('release')) or 'none'}) → "
                f"{_text(end.get('revision')) or 'new'} ({_text(end.get('release')) or 'none'})")
        changes = item.get("changes") or [{"field": "no change", "before": None, "after": None}]
        for change in changes:
            rows.append([escape_markdown(item.get("workload")), escape_markdown(item.get("action")),
                         escape_markdown(step), escape_markdown(change.get("field")),
                         escape_markdown(change.get("before") if change.get("before") is not None else ""),
                         escape_markdown(change.get("after") if change.get("after") is not None else "")])
        rows += [[escape_markdown(item.get("workload")), "", "", "note", escape_markdown(note), ""]
                 for note in item.get("notes") or []]
    return "### Plan\n\n" + markdown_table(["WORKLOAD", "ACTION", "REVISION (RELEASE)", "FIELD", "BEFORE", "AFTER"],
                                           rows)


def summary_markdown(report: RunReport) -> str:
    """The job summary: what happened per workload, why, warnings, and each workload's revision history."""
    parts = [f"## kube-release-rollback: {_title(report)}"]
    parts.append(f"**{_status(report)}**" + (" (dry run)" if report.dry_run and report.error else ""))
    if report.error:
        parts.append(f"**Error:** {escape_markdown(report.error)}")
    if report.decision:
        decision = report.decision
        parts.append(
            f"**Mode:** {escape_markdown(decision.mode)} (requested: {escape_markdown(report.mode)}) · "
            f"**version change:** {escape_markdown(decision.version_change)} · **previous release:** "
            f"{_release_cell(decision.previous_release)}<br>{escape_markdown(decision.reason)}"
        )
    if report.results:
        parts.append(markdown_table(
            ["WORKLOAD", "NAMESPACE", "ACTION", "RELEASE", "PREVIOUS", "REVISION", "ROLLOUT", "MESSAGE"],
            ([escape_markdown(r.workload), escape_markdown(r.namespace), escape_markdown(r.action),
              _release_cell(r.release), _release_cell(r.previous_release),
              escape_markdown(f"{_text(r.previous_revision) or '-'} → {_text(r.revision) or '-'}"),
              escape_markdown(r.rollout), escape_markdown(r.message)] for r in report.results),
        ))
    if report.plan:
        parts.append(plan_markdown(report.plan))
    parts.extend(diagnosis_section(r) for r in report.results if r.diagnosis)
    if report.reason:
        parts.append(f"**Reason:**\n> {_paragraph_start(escape_markdown(report.reason.strip()))}")
    warnings = list(dict.fromkeys((*(report.decision.warnings if report.decision else ()), *report.warnings)))
    if warnings:
        parts.append("**Warnings:**\n" + "\n".join(f"- ⚠️ {escape_markdown(w)}" for w in warnings))
    ledger = [(label, value) for label, value in (
        ("Last successful release", report.last_successful_release),
        ("Last attempted release", report.last_attempted_release),
        ("Failed release", report.failed_release),
        ("Blocked release", report.blocked_release),
    ) if value]
    if ledger:
        parts.append("**Release ledger:**\n" + "\n".join(f"- {label}: {escape_markdown(value)}"
                                                       for label, value in ledger))
    if report.blocks:
        parts.append("### Blocked releases\n\n" + markdown_table(
            ["RELEASE", "NAMESPACE", "BLOCKED BY", "WHEN", "REASON", "RUN"],
            ([_release_cell(b.get("release")), escape_markdown(b.get("namespace")),
              escape_markdown(b.get("actor") or "?"), escape_markdown(b.get("time")),
              escape_markdown(b.get("reason")), _link(b.get("run_url"))] for b in report.blocks)))
    if report.ledger_entries:
        shown = report.ledger_entries[:LEDGER_ROWS]
        parts.append(f"### Release ledger (newest {len(shown)} of {len(report.ledger_entries)})\n\n" + markdown_table(
            ["TIME", "WORKLOAD", "RELEASE", "MODE", "RESULT", "REVISION", "BY", "REASON", "RUN"],
            ([escape_markdown(e.get("time")), escape_markdown(e.get("workload")), _release_cell(e.get("release")),
              escape_markdown(e.get("mode")), escape_markdown(e.get("result")), escape_markdown(e.get("revision")),
              escape_markdown(e.get("actor") or ""), escape_markdown(e.get("reason") or ""),
              _link(e.get("run_url"))] for e in shown)))
    for result in report.results:
        if not result.history:
            continue
        section = [f"### History of {escape_markdown(result.workload)} "
                   f"(namespace {escape_markdown(result.namespace)})", history_table(result.history)]
        if result.pruned:
            section.append(f"Pruned revisions (no longer available): "
                           f"{escape_markdown(', '.join(map(str, result.pruned)))}")
        parts.append("\n\n".join(section))
    return "\n\n".join(parts) + "\n"
