"""Tests for rollback.gha against small re-implementations of the runner's parsing rules."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollback import gha

# --- the runner's rules, re-implemented from actions/runner (FileCommandManager.cs, ActionCommand.cs) ---

REGISTERED = {"add-mask", "debug", "error", "warning", "notice", "group", "endgroup", "stop-commands",
              "set-output", "save-state", "echo", "add-path", "set-env", "add-matcher", "remove-matcher"}


def runner_lines(text: str) -> list[str]:
    """Process output lines as .NET StreamReader.ReadLine splits them: at \\r\\n, \\n and \\r."""
    lines = re.split(r"\r\n|\n|\r", text)
    return lines[:-1] if lines and lines[-1] == "" else lines


def parse_command(line: str) -> tuple[str, dict[str, str], str] | None:
    """TryParseV2 then the legacy TryParse: the command a line would run, or None."""
    trimmed = line.lstrip()
    if trimmed.startswith("::"):
        end = trimmed.find("::", 2)
        if end >= 0:
            info = trimmed[2:end]
            name, _, props = info.partition(" ")
            if name in REGISTERED:
                properties = {}
                for prop in filter(None, props.strip().split(",")):
                    pair = [p for p in prop.split("=", 1) if p]
                    if len(pair) == 2:
                        properties[pair[0]] = unescape(pair[1], prop=True)
                return name, properties, unescape(trimmed[end + 2:])
    index = line.find("##[")
    if index >= 0:
        close = line.find("]", index)
        if close >= 0:
            name = line[index + 3:close].split(" ", 1)[0]
            if name in REGISTERED:
                return name, {}, line[close + 1:]
    return None


def unescape(text: str, prop: bool = False) -> str:
    pairs = [("%0D", "\r"), ("%0A", "\n")] + ([("%3A", ":"), ("%2C", ",")] if prop else []) + [("%25", "%")]
    for escaped, token in pairs:
        text = text.replace(escaped, token)
    return text


def parse_output_file(text: str) -> dict[str, str]:
    """The runner's key/value file parser on Linux (NAME=VALUE and NAME<<DELIM heredocs)."""
    result: dict[str, str] = {}
    index = 0

    def read_line() -> tuple[str | None, int]:
        nonlocal index
        if index >= len(text):
            return None, 0
        lf = text.find("\n", index)
        if lf < 0:
            line, index = text[index:], len(text)
            return line, 0
        line, index = text[index:lf], lf + 1
        return line, 1

    line, _ = read_line()
    while line is not None:
        if line:
            eq, heredoc = line.find("="), line.find("<<")
            if eq >= 0 and (heredoc < 0 or eq < heredoc):
                key, value = line.split("=", 1)
                result[key] = value
            elif heredoc >= 0:
                key, delimiter = line.split("<<", 1)
                assert key and delimiter
                start = end = index
                temp, newline = read_line()
                while temp != delimiter:
                    if temp is None:
                        raise ValueError(f"Matching delimiter not found '{delimiter}'")
                    if newline == 0:
                        raise ValueError("EOF marker missing new line")
                    end = index - newline
                    temp, newline = read_line()
                if newline == 0:
                    raise ValueError("EOF marker missing new line")
                result[key] = text[start:end] if end > start else ""
            else:
                raise ValueError(f"Invalid format '{line}'")
        line, _ = read_line()
    return result


def run(fn: Callable[..., None], *args: object, **kwargs: object) -> str:
    stream = io.StringIO()
    fn(*args, stream=stream, **kwargs)
    return stream.getvalue()


# --- inputs ----------------------------------------------------------------------------------------

def test_input_variable_keeps_hyphens_and_maps_spaces() -> None:
    assert gha.input_variable("dry-run") == "INPUT_DRY-RUN"
    assert gha.input_variable("my input") == "INPUT_MY_INPUT"


def test_get_input_trims_and_defaults_to_empty() -> None:
    env = {"INPUT_DRY-RUN": "  true \n", "INPUT_RELEASE": " v1 "}
    assert gha.get_input("dry-run", env) == "true"
    assert gha.get_input("release", env, trim=False) == " v1 "
    assert gha.get_input("missing", env) == ""


def test_get_input_required_names_the_input() -> None:
    with pytest.raises(gha.MissingInputError, match="input 'release' is required"):
        gha.get_input("release", {"INPUT_RELEASE": "   "}, required=True)
    assert gha.get_input("release", {"INPUT_RELEASE": "x"}, required=True) == "x"


def test_get_input_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPUT_NAMESPACE", "prod")
    assert gha.get_input("namespace") == "prod"


def test_is_actions() -> None:
    assert gha.is_actions({"GITHUB_ACTIONS": "true"})
    assert not gha.is_actions({})
    assert not gha.is_actions({"GITHUB_ACTIONS": "false"})


# --- outputs ---------------------------------------------------------------------------------------

def test_set_output_appends_heredoc_with_random_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_text("existing=1\n")
    env = {"GITHUB_OUTPUT": str(path)}
    gha.set_output("mode", "rollback", env)
    gha.set_output("history", "line1\nline2 100%\n::error::injected", env)
    text = path.read_text()
    delimiters = re.findall(r"<<(ghadelimiter_[0-9a-f-]{36})\n", text)
    assert len(delimiters) == 2 and delimiters[0] != delimiters[1]
    assert parse_output_file(text) == {
        "existing": "1", "mode": "rollback", "history": "line1\nline2 100%\n::error::injected"}


@given(st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,20}", fullmatch=True), st.text(), max_size=5))
def test_output_file_round_trips_through_the_runner_parser(values: dict[str, str]) -> None:
    text = "".join(gha.format_output(name, value) for name, value in values.items())
    assert parse_output_file(text) == values


def test_format_output_refuses_delimiter_in_value_or_bad_name() -> None:
    with pytest.raises(ValueError, match="contains the delimiter"):
        gha.format_output("x", "a\nDELIM\nb", delimiter="DELIM")
    for bad in ["", "a=b", "a<<b", "1abc", "a b", "a\nb"]:
        with pytest.raises(ValueError, match="invalid output name"):
            gha.format_output(bad, "v")


def test_set_output_without_github_output_only_logs_debug() -> None:
    out = run(gha.set_output, "mode", "deploy", {})
    assert out == "::debug::GITHUB_OUTPUT is not set: output 'mode' not written\n"
    assert "set-output" not in out


def test_append_summary(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    gha.append_summary("# one", {"GITHUB_STEP_SUMMARY": str(path)})
    gha.append_summary("two\n", {"GITHUB_STEP_SUMMARY": str(path)})
    assert path.read_text() == "# one\ntwo\n"
    gha.append_summary("ignored", {})  # no variable: nothing happens, no error


# --- commands --------------------------------------------------------------------------------------

def test_annotations_skip_none_properties_and_escape() -> None:
    assert run(gha.error, "bad\nthing 100%") == "::error::bad%0Athing 100%25\n"
    assert run(gha.warning, "w", title="a:b,c", line=3) == "::warning title=a%3Ab%2Cc,line=3::w\n"
    assert run(gha.notice, "n", file="deploy.yml") == "::notice file=deploy.yml::n\n"


# The runner trims the property list, so property values are generated without edge whitespace.
@given(message=st.text(), title=st.none() | st.text().map(str.strip),
       file=st.none() | st.text().map(str.strip), line=st.none() | st.integers(min_value=1))
def test_annotations_round_trip_through_the_runner(message: str, title: str | None, file: str | None,
                                                   line: int | None) -> None:
    out = run(gha.error, message, title=title, file=file, line=line)
    lines = runner_lines(out)
    assert len(lines) == 1
    parsed = parse_command(lines[0])
    assert parsed is not None
    name, props, data = parsed
    assert name == "error" and data == message
    given_props = {"title": title, "file": file, "line": line}
    expected = {k: str(v) for k, v in given_props.items() if v not in (None, "")}
    assert props == expected


def test_debug_and_group() -> None:
    stream = io.StringIO()
    with gha.group("Roll back deployment/web", stream=stream):
        gha.debug("inside", stream=stream)
    assert stream.getvalue() == "::group::Roll back deployment/web\n::debug::inside\n::endgroup::\n"


def test_group_closes_on_exception() -> None:
    stream = io.StringIO()
    with pytest.raises(RuntimeError), gha.group("g", stream=stream):
        raise RuntimeError("boom")
    assert stream.getvalue().endswith("::endgroup::\n")


def test_add_mask_masks_each_line_and_skips_blank_ones() -> None:
    out = run(gha.add_mask, "line-one\n\n  \r\nline%two\rthree")
    assert out == "::add-mask::line-one\n::add-mask::line%25two\n::add-mask::three\n"
    assert run(gha.add_mask, "") == ""


def test_no_commands_uses_a_random_token() -> None:
    stream = io.StringIO()
    with gha.no_commands(stream=stream) as token:
        stream.write("::error::not a command\n")
    lines = stream.getvalue().splitlines()
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert lines == [f"::stop-commands::{token}", "::error::not a command", f"::{token}::"]
    with gha.no_commands(stream=io.StringIO()) as other:
        assert other != token


# --- escaping untrusted text -----------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "::error::pwned",
    "   ::add-mask::x",
    "\t::set-output name=mode::deploy",
    "ok\n::warning::second line",
    "ok\r::warning::after a bare CR",
    "ok\r\n::notice::after CRLF",
    "prefix ##[set-output name=x;]y",
    "::stop-commands::abc",
])
def test_escape_log_neutralises_commands(text: str) -> None:
    escaped = gha.escape_log(text)
    assert all(parse_command(line) is None for line in runner_lines(escaped + "\n"))
    assert all(parse_command(line) is None for line in runner_lines(run(gha.info, text)))


def test_escape_log_is_visible_and_keeps_plain_text() -> None:
    assert gha.escape_log("release 1.2.3 (web)") == "release 1.2.3 (web)"
    assert gha.escape_log("::error::x") == "\\::error::x"
    assert gha.escape_log("a\r\nb") == "a\nb"
    assert gha.escape_log("a\rb\x1b[2Kc") == "a\\x0db\\x1b[2Kc"
    assert gha.escape_log("tab\there") == "tab\there"
    assert gha.escape_log("x ##[error]y") == "x ##\\[error]y"


@given(st.text())
def test_escape_log_never_yields_a_command(text: str) -> None:
    escaped = gha.escape_log(text)
    for line in runner_lines(escaped + "\n"):
        assert parse_command(line) is None
        assert not line.lstrip().startswith("::")
        assert "##[" not in line


@given(st.text())
def test_escape_log_is_idempotent(text: str) -> None:
    once = gha.escape_log(text)
    assert gha.escape_log(once) == once


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1))
def test_escape_log_leaves_single_lines_without_markers_alone(text: str) -> None:
    if not text.lstrip().startswith("::") and "##[" not in text:
        assert gha.escape_log(text) == text
