"""GitHub Actions runner I/O, standard library only.

Inputs come from ``INPUT_<NAME>`` environment variables; outputs and the job summary are appended to the files
named by ``GITHUB_OUTPUT`` and ``GITHUB_STEP_SUMMARY``; everything else is a workflow command on stdout.

Outside GitHub Actions the same functions work: commands are plain text on a terminal, and outputs and the
summary are skipped when their variables are unset.

Cluster-controlled text (change-cause annotations, names, API messages) must go through :func:`escape_log` (or
:func:`info`, which calls it) before it is printed, or the runner may read it as a workflow command.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO

OUTPUT_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class MissingInputError(ValueError):
    """A required input is empty or absent."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"input '{name}' is required but was not supplied: set it under 'with:' in the workflow step"
        )
        self.name = name


def is_actions(environ: Mapping[str, str] | None = None) -> bool:
    """True when running inside a GitHub Actions job (the runner sets ``GITHUB_ACTIONS=true``)."""
    env = os.environ if environ is None else environ
    return env.get("GITHUB_ACTIONS") == "true"


def input_variable(name: str) -> str:
    """The environment variable the runner uses for input ``name``: spaces become ``_``, hyphens are kept."""
    return "INPUT_" + name.replace(" ", "_").upper()


def get_input(
    name: str, environ: Mapping[str, str] | None = None, required: bool = False, trim: bool = True
) -> str:
    """Read input ``name`` like ``@actions/core`` ``getInput``; absent inputs read as ``""``.

    One deliberate difference: with ``trim`` a whitespace-only value counts as missing for ``required``.
    """
    env = os.environ if environ is None else environ
    value = env.get(input_variable(name), "")
    if trim:
        value = value.strip()
    if required and not value:
        raise MissingInputError(name)
    return value


def _out(stream: TextIO | None) -> TextIO:
    return sys.stdout if stream is None else stream


def _write_line(line: str, stream: TextIO | None) -> None:
    out = _out(stream)
    out.write(line + "\n")
    out.flush()


def escape_data(text: str) -> str:
    """Escape a workflow command's message the way the runner unescapes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command property value (also ``:`` and ``,``, which delimit properties)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", properties: Mapping[str, object | None] | None = None) -> str:
    """Format ``::name key=value,...::message``; properties that are None or empty are left out."""
    props = ",".join(
        f"{key}={escape_property(str(value))}"
        for key, value in (properties or {}).items()
        if value is not None and value != ""
    )
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def issue(name: str, message: str = "", properties: Mapping[str, object | None] | None = None,
          stream: TextIO | None = None) -> None:
    """Print one workflow command."""
    _write_line(command(name, message, properties), stream)


def debug(message: str, stream: TextIO | None = None) -> None:
    """A debug line, shown only when the repository sets the ``ACTIONS_STEP_DEBUG`` secret."""
    issue("debug", message, stream=stream)


def _annotation(kind: str, message: str, title: str | None, file: str | None, line: int | None,
                stream: TextIO | None) -> None:
    issue(kind, message, {"title": title, "file": file, "line": line}, stream)


def error(message: str, title: str | None = None, file: str | None = None, line: int | None = None,
          stream: TextIO | None = None) -> None:
    """An error annotation (does not fail the step: the exit code does)."""
    _annotation("error", message, title, file, line, stream)


def warning(message: str, title: str | None = None, file: str | None = None, line: int | None = None,
            stream: TextIO | None = None) -> None:
    """A warning annotation."""
    _annotation("warning", message, title, file, line, stream)


def notice(message: str, title: str | None = None, file: str | None = None, line: int | None = None,
           stream: TextIO | None = None) -> None:
    """A notice annotation."""
    _annotation("notice", message, title, file, line, stream)


def add_mask(value: str, stream: TextIO | None = None) -> None:
    """Mask a secret in the log; each line of a multi-line secret is masked on its own, blank lines skipped.

    Mask before the value can reach the log (and before it is used in an error message).
    """
    for part in re.split(r"\r\n|\r|\n", value):
        if part.strip():
            issue("add-mask", part, stream=stream)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape_log(text: str) -> str:
    """Make untrusted text (e.g. a change-cause read from the cluster) safe to print as log lines.

    The runner treats a stdout line as a command when, after leading whitespace, it starts with ``::``, or
    when it contains ``##[`` (the legacy syntax, matched anywhere in the line). Lines are split at ``\\n``,
    ``\\r`` and ``\\r\\n``. So this function:

    - turns ``\\r\\n`` into ``\\n`` and shows any other control character (except tab and newline) as
      ``\\xNN``, so no hidden line break or terminal escape sequence survives;
    - prefixes every line that would start with ``::`` with a backslash (``\\::error::x``);
    - writes ``##[`` as ``##\\[``.

    The text stays readable and the change is visible; it is not meant to be reversed. Escaping twice
    gives the same result as once. Annotation and group messages need no call: their data is escaped.
    """
    text = text.replace("\r\n", "\n")
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    text = text.replace("##[", "##\\[")
    return "\n".join("\\" + line if line.lstrip().startswith("::") else line for line in text.split("\n"))


def info(message: str, stream: TextIO | None = None) -> None:
    """Print a plain log line through :func:`escape_log`, so it never acts as a workflow command."""
    _write_line(escape_log(message), stream)


@contextmanager
def group(title: str, stream: TextIO | None = None) -> Iterator[None]:
    """A collapsible log section: ``::group::title`` … ``::endgroup::`` (closed even when the body raises)."""
    issue("group", title, stream=stream)
    try:
        yield
    finally:
        issue("endgroup", stream=stream)


@contextmanager
def no_commands(stream: TextIO | None = None) -> Iterator[str]:
    """Stop the runner from processing workflow commands until the block ends.

    Uses ``::stop-commands::TOKEN`` with a random token and resumes with ``::TOKEN::``. Useful around large
    blocks of untrusted output (e.g. a whole manifest). Yields the token.
    """
    token = secrets.token_hex(16)
    issue("stop-commands", token, stream=stream)
    try:
        yield token
    finally:
        _write_line(f"::{token}::", stream)


def format_output(name: str, value: str, delimiter: str | None = None) -> str:
    """One ``name<<DELIM`` heredoc entry for ``GITHUB_OUTPUT`` (or ``GITHUB_STATE``/``GITHUB_ENV``).

    The runner keeps every character of ``value`` (line breaks included) on Linux runners.
    """
    if not OUTPUT_NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid output name {name!r}: use letters, digits, '-' and '_', starting with a letter"
        )
    delimiter = delimiter or f"ghadelimiter_{uuid.uuid4()}"
    if delimiter in name or delimiter in value:
        raise ValueError(f"output {name!r}: the value contains the delimiter {delimiter!r}; not writing it")
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


def _append(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8", newline="") as handle:
        handle.write(text)


def set_output(name: str, value: str, environ: Mapping[str, str] | None = None,
               stream: TextIO | None = None) -> None:
    """Append output ``name`` to ``$GITHUB_OUTPUT``; without that variable only a debug line is printed."""
    env = os.environ if environ is None else environ
    path = env.get("GITHUB_OUTPUT")
    entry = format_output(name, value)  # validate even when there is nowhere to write
    if not path:
        debug(f"GITHUB_OUTPUT is not set: output '{name}' not written", stream)
        return
    _append(path, entry)


def append_summary(markdown: str, environ: Mapping[str, str] | None = None) -> None:
    """Append Markdown to ``$GITHUB_STEP_SUMMARY``; a no-op when that variable is unset."""
    env = os.environ if environ is None else environ
    path = env.get("GITHUB_STEP_SUMMARY")
    if path:
        _append(path, markdown if markdown.endswith("\n") else markdown + "\n")
