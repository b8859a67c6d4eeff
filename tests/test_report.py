"""Tests for rollback.report: every output, and a job summary that cluster text cannot break."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollback.history import History, Revision, to_json_rows
from rollback.inputs import WorkloadRef
from rollback.modes import Decision
from rollback.report import (
    OUTPUT_NAMES,
    RunReport,
    WorkloadResult,
    escape_markdown,
    history_table,
    markdown_table,
    outputs,
    summary_markdown,
)

ROWS = to_json_rows(History(
    WorkloadRef("Deployment", "web"),
    (Revision(1, "1.0.0", ("web=nginx:1.0",), "2024-01-01T00:00:00Z", "web-1"),
     Revision(3, "1.2.0", ("web=nginx:1.2", "init=busybox"), "2024-01-03T00:00:00Z", "web-3"),
     Revision(4, "1.1.0", ("web=nginx:1.1",), "2024-01-02T00:00:00Z", "web-2")),
    live=4, live_release="1.1.0", pruned=(), history_limit=10))


def result(workload: str = "deployment/web", action: str = "rolled-back", **changes: object) -> WorkloadResult:
    kind, name = workload.split("/")
    values: dict[str, object] = {
        "workload": workload, "kind": kind.capitalize(), "name": name, "namespace": "prod", "mode": "rollback",
        "action": action, "release": "1.1.0", "previous_release": "1.2.0", "revision": 4,
        "previous_revision": 3, "rollout": "complete", "message": "rolled back to revision 2",
        "history": tuple(ROWS), "duplicates": (), "pruned": (),
    }
    values.update(changes)
    return WorkloadResult(**values)  # type: ignore[arg-type]


ROLLBACK = Decision("rollback", "minor", "1.2.0", ("release 1.1.0 appears twice",),
                    "release 1.1.0 is in revision 2 of deployment/web", 2, "1.2.0")


def test_output_names_exactly() -> None:
    assert OUTPUT_NAMES == (
        "mode", "run-on-deploy", "run-on-redeploy", "run-on-rollback", "run-on-deploy-or-rollback",
        "run-on-deploy-or-redeploy", "run-on-redeploy-or-rollback", "version-change", "release",
        "previous-release", "revision", "previous-revision", "rolled-back", "skipped", "failed-release",
        "history", "result", "blocked-release", "blocked", "last-successful-release", "last-attempted-release",
        "plan",
        "failure-reason",
    )


def test_outputs_for_a_rollback() -> None:
    report = RunReport("auto", ROLLBACK, (result(),), reason="bad deploy", last_successful_release="1.1.0",
                       last_attempted_release="1.2.0", blocked_release="1.2.0")
    out = outputs(report)
    assert list(out) == list(OUTPUT_NAMES)
    assert all(isinstance(value, str) for value in out.values())
    assert out["plan"] == "[]"
    assert {k: v for k, v in out.items() if k not in ("history", "result", "plan")} == {
        "mode": "rollback", "run-on-deploy": "false", "run-on-redeploy": "false", "run-on-rollback": "true",
        "run-on-deploy-or-rollback": "true", "run-on-deploy-or-redeploy": "false",
        "run-on-redeploy-or-rollback": "true", "version-change": "minor", "release": "1.1.0",
        "previous-release": "1.2.0", "revision": "4", "previous-revision": "3", "rolled-back": "false",
        "skipped": "false", "failed-release": "", "blocked-release": "1.2.0", "blocked": "false",
        "last-successful-release": "1.1.0", "last-attempted-release": "1.2.0", "failure-reason": "",
    }
    assert json.loads(out["history"]) == ROWS
    assert " " not in out["history"].replace("web=nginx", "")  # compact JSON
    assert json.loads(out["result"]) == [{
        "workload": "deployment/web", "kind": "Deployment", "name": "web", "namespace": "prod",
        "mode": "rollback", "action": "rolled-back", "release": "1.1.0", "previous_release": "1.2.0",
        "revision": 4, "previous_revision": 3, "rollout": "complete", "message": "rolled back to revision 2",
        "duplicates": [], "pruned": [],
    }]


def test_several_workloads_first_one_fills_the_scalar_outputs() -> None:
    second = result("statefulset/db", release="db-1", previous_release="db-2", revision=7, previous_revision=9)
    out = outputs(RunReport("rollback", None, (result(), second)))
    assert (out["release"], out["revision"]) == ("1.1.0", "4")
    assert [entry["workload"] for entry in json.loads(out["result"])] == ["deployment/web", "statefulset/db"]
    assert out["mode"] == "rollback" and out["run-on-rollback"] == "true"  # requested mode without decision
    assert out["version-change"] == "none"


def test_skipped_only_when_every_workload_was_skipped_and_no_error() -> None:
    skipped = result(action="skipped", rollout="n/a")
    assert outputs(RunReport("rollback", None, (skipped, skipped)))["skipped"] == "true"
    assert outputs(RunReport("rollback", None, (skipped, result())))["skipped"] == "false"
    assert outputs(RunReport("rollback", None, (skipped,), error="boom"))["skipped"] == "false"
    assert outputs(RunReport("rollback", None, ()))["skipped"] == "false"


def test_calculate_takes_flags_from_the_decision() -> None:
    deploy = Decision("deploy", "patch", "1.2.0", (), "new", None, None)
    out = outputs(RunReport("calculate", deploy, (result(action="unchanged", rollout="n/a"),)))
    assert out["mode"] == "deploy" and out["run-on-deploy"] == "true" and out["run-on-rollback"] == "false"
    assert out["version-change"] == "patch"


def test_history_and_unblock_modes() -> None:
    out = outputs(RunReport("history", None, (result(action="unchanged", rollout="n/a", mode="history"),)))
    assert out["mode"] == "history"
    assert all(out[name] == "false" for name in OUTPUT_NAMES if name.startswith("run-on-"))
    out = outputs(RunReport("unblock", blocked_release="1.2.0"))
    assert out["mode"] == "unblock" and out["history"] == "[]" and out["result"] == "[]"
    assert out["release"] == "" and out["revision"] == "" and out["blocked-release"] == "1.2.0"


def test_failed_and_rolled_back_outputs() -> None:
    compensated = result(action="compensated", rollout="timeout", release="1.1.0", mode="deploy")
    out = outputs(RunReport("deploy", None, (compensated,), rolled_back=True, failed_release="1.3.0",
                            error="rollout of deployment/web timed out"))
    assert out["rolled-back"] == "true" and out["failed-release"] == "1.3.0" and out["release"] == "1.1.0"
    out = outputs(RunReport("deploy", None, (result(action="refused", rollout="n/a"),), blocked=True,
                            blocked_release="1.3.0"))
    assert out["blocked"] == "true" and out["blocked-release"] == "1.3.0"


def test_workload_result_rejects_unknown_action_or_rollout() -> None:
    with pytest.raises(ValueError, match="unknown action 'done'"):
        result(action="done")
    with pytest.raises(ValueError, match="unknown rollout 'ok'"):
        result(rollout="ok")


# --- summary ---------------------------------------------------------------------------------------------------

def cells(line: str) -> list[str]:
    """Split a GFM table row at unescaped pipes (a backslash escapes the next character)."""
    out, current, i = [], "", 0
    body = line.strip()
    assert body.startswith("|") and body.endswith("|") and not body.endswith("\\|"), line
    body = body[1:-1]
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            current += body[i:i + 2]
            i += 2
            continue
        if body[i] == "|":
            out.append(current)
            current = ""
        else:
            current += body[i]
        i += 1
    return [*out, current]


def tables(markdown: str) -> list[list[list[str]]]:
    found: list[list[list[str]]] = []
    previous_was_row = False
    for line in markdown.splitlines():
        if line.startswith("|"):
            if not previous_was_row:
                found.append([])
            found[-1].append(cells(line))
        previous_was_row = line.startswith("|")
    return found


def test_summary_for_a_rollback() -> None:
    report = RunReport("auto", ROLLBACK, (result(pruned=(1,)),), reason="payments failing\nsee INC-42",
                       release="1.1.0", last_successful_release="1.1.0", blocked_release="1.2.0")
    md = summary_markdown(report)
    assert md.startswith("## kube-release-rollback: Roll back to 1.1.0\n\n**✅ succeeded**")
    assert "**Mode:** rollback (requested: auto)" in md and "**version change:** minor" in md
    assert "release 1.1.0 is in revision 2 of deployment/web" in md
    assert "**Reason:**\n> payments failing<br>see INC-42" in md
    assert "- ⚠️ release 1.1.0 appears twice" in md
    assert "**Release ledger:**\n- Last successful release: 1.1.0\n- Blocked release: 1.2.0" in md
    assert "### History of deployment/web (namespace prod)" in md
    assert "Pruned revisions (no longer available): 1" in md
    workloads, history = tables(md)
    assert [c.strip() for c in workloads[0]] == ["WORKLOAD", "NAMESPACE", "ACTION", "RELEASE", "PREVIOUS",
                                                 "REVISION", "ROLLOUT", "MESSAGE"]
    assert [c.strip() for c in workloads[2]] == ["deployment/web", "prod", "rolled-back", "1.1.0", "1.2.0",
                                                 "3 → 4", "complete", "rolled back to revision 2"]
    assert [c.strip() for c in history[0]] == ["REVISION", "RELEASE", "IMAGES", "CREATED", "LIVE"]
    assert [c.strip() for c in history[2]] == ["1", "1.0.0", "web=nginx:1.0", "2024-01-01T00:00:00Z", ""]
    assert [c.strip() for c in history[3]][:3] == ["3", "1.2.0", "web=nginx:1.2<br>init=busybox"]
    assert [c.strip() for c in history[4]] == ["**4**", "1.1.0", "web=nginx:1.1", "2024-01-02T00:00:00Z",
                                               "**live**"]


@pytest.mark.parametrize(("report", "title", "status"), [
    (RunReport("calculate", Decision("deploy", "none", None, (), "new"), release="2.0"),
     "Calculated mode for 2.0: deploy", "✅ succeeded"),
    (RunReport("history"), "Revision history", "✅ succeeded"),
    (RunReport("rollback", dry_run=True), "Roll back to the previous revision", "🧪 dry run: nothing was changed"),
    (RunReport("deploy", release="1.3", rolled_back=True, failed_release="1.3", error="timed out"), "Deploy 1.3",
     "↩️ failed and rolled back"),
    (RunReport("auto", release="1.3", blocked=True, error="blocked"), "Auto 1.3",
     "⛔ refused: the release is blocked"),
    (RunReport("calculate", release="1.3", blocked=True, blocked_release="1.3"), "Calculated mode for 1.3: calculate",
     "⛔ blocked: deploying this release would be refused"),
    (RunReport("unblock", release="1.3"), "Unblock 1.3", "✅ succeeded"),
    (RunReport("deploy", release="1.3", error="boom"), "Deploy 1.3", "❌ failed"),
])
def test_summary_titles_and_status(report: RunReport, title: str, status: str) -> None:
    md = summary_markdown(report)
    assert md.splitlines()[0] == f"## kube-release-rollback: {title}"
    assert md.splitlines()[2].startswith(f"**{status}**")
    if report.error:
        assert f"**Error:** {report.error}" in md


def test_summary_neutralises_hostile_change_cause() -> None:
    evil = "1.0 | injected | <script>alert(1)</script>\n| fake | row |\n[x](javascript:alert(1)) `code` $x$"
    rows = [dict(ROWS[0], release=evil, images=["web=<img src=x onerror=alert(1)>"])]
    md = summary_markdown(RunReport("history", None, (result(history=tuple(rows), message=evil,
                                                                    release=evil),), reason=evil))
    assert "<script" not in md and "<img" not in md
    assert re.search(r"(?<!\\)\]\(", md) is None and "\\](javascript" in md  # no live link syntax
    assert "&lt;script&gt;" in md
    for table in tables(md):
        assert len({len(row) for row in table}) == 1  # every row has the header's number of cells
    assert all(not line.startswith("| fake") for line in md.splitlines())


@given(st.text())
def test_escaped_text_is_one_safe_table_cell(text: str) -> None:
    escaped = escape_markdown(text)
    assert "\n" not in escaped and "\r" not in escaped
    assert re.sub(r"<br>", "", escaped).count("<") == 0 and ">" not in escaped.replace("<br>", "")
    row = markdown_table(["A", "B"], [[escaped, "x"]]).splitlines()[2]
    assert cells(row) == [f" {escaped} ", " x "]
    unescaped_specials = re.sub(r"\\.", "", escaped)
    assert not re.search(r"[`*_\[\]|~$\\]", unescaped_specials)


@given(st.text(min_size=1))
def test_reason_cannot_start_a_block(reason: str) -> None:
    md = summary_markdown(RunReport("rollback", reason=reason))
    if reason.strip():
        quote = md.split("**Reason:**\n", 1)[1].split("\n", 1)[0]
        assert quote.startswith("> ")
        body = quote[2:]
        assert not re.match(r"[#+\-=>]|\d+[.)]|\s", body)


def test_history_table_marks_none_release() -> None:
    table = history_table([{"revision": 1, "release": None, "images": [], "created": "t", "current": True}])
    assert table.splitlines()[2] == "| **1** | *(none)* |  | t | **live** |"


def test_escape_markdown_examples() -> None:
    assert escape_markdown("a|b") == "a\\|b"
    assert escape_markdown("**bold** _x_") == "\\*\\*bold\\*\\* \\_x\\_"
    assert escape_markdown("<b>&amp;</b>") == "&lt;b&gt;&amp;amp;&lt;/b&gt;"
    assert escape_markdown("line1\r\nline2\nline3") == "line1<br>line2<br>line3"
    assert escape_markdown("bell\x07 tab\t") == "bell\ufffd tab "
    assert escape_markdown(None) == "" and escape_markdown(3) == "3"
