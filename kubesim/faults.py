"""Fault injection from outside the process: the ``--fault`` CLI flag and the control endpoint.

A fault is a ``knobs.FailureRule``: the next COUNT requests whose method and path match are answered with a
status (optionally with ``Retry-After``), dropped before or after being carried out, delayed, or held
(hung). Shell tests and users reach them without Python:

* ``python -m kubesim --fault method=PATCH,path=/deployments/web,status=503,retry-after=1``
  (repeatable; the value may also be a JSON object like the endpoint's);
* ``POST /_kubesim/faults`` with a JSON object (or a list of them) on the running server, ``GET`` lists
  the rules with what is left of their count, ``DELETE`` removes them all; ``PUT /_kubesim/latency`` with
  ``{"seconds": S}`` sets the latency of every request; ``GET /_kubesim/requests`` lists the API requests
  received (method, path with query, seconds since the server started; the newest 10000), ``DELETE``
  empties that log, so a shell test can check that nothing was written.

Fields: ``method`` (default ``*``), ``path`` (a regular expression searched in the path and query, so a
plain prefix such as ``/apis/apps`` works; default: everything), ``count`` (default 1; -1: every matching
request), ``status`` (HTTP code; default 500 unless the rule only drops, delays or hangs),
``retryAfter`` (seconds), ``drop`` (``before``: close the connection without carrying the request out;
``after``: carry it out, so a write lands, then close the connection without answering), ``delay``
(seconds before the request is handled), ``hang`` (seconds to hold the request, then drop it; ``true``: an
hour), ``afterEvents`` (a dropped watch: events sent first).

The control paths are not part of the Kubernetes API (kubectl never asks for them), are not subject to the
faults, latency or RBAC knobs, and are not reported to ``Knobs.on_request``. The server binds 127.0.0.1 only.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from .knobs import FailureRule, Knobs

CONTROL_PREFIX = "/_kubesim/"
FAULTS_PATH = "/_kubesim/faults"
LATENCY_PATH = "/_kubesim/latency"
REQUESTS_PATH = "/_kubesim/requests"
MAX_ARRIVALS = 10000
EVERY = 1 << 62  # count -1: a rule that never runs out
HANG_FOREVER = 3600.0

_KEYS = {  # spelling accepted -> field
    "method": "method", "path": "path", "count": "count", "status": "status",
    "retryafter": "retry_after", "retry-after": "retry_after", "retry_after": "retry_after",
    "drop": "drop", "delay": "delay", "latency": "delay", "hang": "hang",
    "afterevents": "after_events", "after-events": "after_events", "after_events": "after_events",
}
HELP = ("inject a fault: comma-separated key=value pairs method=M, path=REGEX, count=N (-1: always), status=CODE, "
        "retry-after=S, drop=before|after, delay=S, hang=S|true, after-events=N (or a JSON object with the "
        "same keys); e.g. method=PATCH,path=/deployments/web,status=503,retry-after=1. Repeatable. At run "
        "time: POST a JSON object to /_kubesim/faults")


class Arrivals:
    """The API requests the server received, as they arrived (before latency and faults)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.entries: deque[tuple[float, str, str]] = deque(maxlen=MAX_ARRIVALS)
        self.lock = threading.Lock()

    def add(self, method: str, path: str) -> None:
        with self.lock:
            self.entries.append((time.monotonic() - self.started, method, path))

    def to_json(self) -> list[dict[str, Any]]:
        with self.lock:
            return [{"method": m, "path": p, "at": round(at, 3)} for at, m, p in self.entries]

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


class FaultError(ValueError):
    """A fault description that cannot be used; the message says what is allowed."""


def parse_spec(text: str) -> dict[str, Any]:
    """``fail_next`` keyword arguments from a ``--fault`` value: ``k=v,k=v`` or a JSON object."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            loaded = json.loads(stripped)
        except ValueError as err:
            raise FaultError(f"fault {text!r} is not valid JSON: {err}") from None
        return from_json(loaded)
    fields: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in stripped.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise FaultError(f"fault {text!r}: {part!r} is not key=value ({HELP})")
        fields[key.strip()] = value.strip()
    return from_json(fields)


def from_json(given: Any) -> dict[str, Any]:
    """``fail_next`` keyword arguments from a JSON object (values may be strings, as from the CLI)."""
    if not isinstance(given, Mapping):
        raise FaultError("a fault must be a JSON object such as {\"method\": \"PATCH\", \"status\": 503}")
    fields: dict[str, Any] = {}
    for key, value in given.items():
        name = _KEYS.get(str(key).lower())
        if name is None:
            raise FaultError(f"unknown fault field {key!r}; allowed: method, path, count, status, retryAfter, "
                             f"drop, delay, hang, afterEvents")
        fields[name] = value
    kwargs: dict[str, Any] = {"method": str(fields.get("method") or "*").upper(),
                              "path": str(fields.get("path") or ".*")}
    try:
        re.compile(kwargs["path"])
    except re.error as err:
        raise FaultError(f"fault path {kwargs['path']!r} is not a regular expression: {err}") from None
    count = _number(fields, "count", int, 1)
    if count == 0 or count < -1:
        raise FaultError("fault count must be a positive number, or -1 for every matching request")
    kwargs["count"] = EVERY if count == -1 else count
    drop = fields.get("drop")
    kwargs["after_apply"] = False
    if drop in (None, False, "", "false"):
        kwargs["drop"] = False
    elif drop in (True, "true", "before"):
        kwargs["drop"] = True
    elif drop == "after":
        kwargs["drop"], kwargs["after_apply"] = True, True
    else:
        raise FaultError(f"fault drop must be 'before' or 'after', not {drop!r}")
    hang = fields.get("hang")
    kwargs["hang"] = HANG_FOREVER if hang in (True, "true") else _number(fields, "hang", float, 0.0)
    kwargs["delay"] = _number(fields, "delay", float, 0.0)
    kwargs["after_events"] = _number(fields, "after_events", int, 0)
    retry_after = fields.get("retry_after")
    kwargs["retry_after"] = None if retry_after in (None, "") else _number(fields, "retry_after", int, 0)
    if "status" in fields and fields["status"] not in (None, ""):
        status = _number(fields, "status", int, 500)
        if not 400 <= status <= 599:
            raise FaultError(f"fault status must be an HTTP error code (400-599), not {status}")
        kwargs["status"] = status
    else:  # a rule that drops, delays or hangs answers normally otherwise
        only_slows = kwargs["drop"] or kwargs["hang"] or kwargs["delay"]
        kwargs["status"] = None if only_slows else 500
    if min(kwargs["hang"], kwargs["delay"], kwargs["after_events"], kwargs["retry_after"] or 0) < 0:
        raise FaultError("fault delay, hang, afterEvents and retryAfter cannot be negative")
    return kwargs


def _number(fields: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    value = fields.get(name)
    if value is None or value == "":
        return default
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise FaultError(f"fault {name} must be a {'whole ' if kind is int else ''}number, not "
                         f"{value!r}") from None


def add(knobs: Knobs, kwargs: Mapping[str, Any]) -> FailureRule:
    return knobs.fail_next(**kwargs)


def to_json(rule: FailureRule) -> dict[str, Any]:
    drop = ("after" if rule.after_apply else "before") if rule.drop else None
    return {"method": rule.method, "path": rule.path.pattern,
            "remaining": -1 if rule.remaining > EVERY // 2 else rule.remaining,
            "status": rule.status, "retryAfter": rule.retry_after, "drop": drop, "delay": rule.delay,
            "hang": rule.hang, "afterEvents": rule.after_events}


def is_control(path: str) -> bool:
    return path.startswith(CONTROL_PREFIX)


def control(knobs: Knobs, method: str, path: str, body: bytes, arrivals: Arrivals | None = None
            ) -> tuple[int, dict[str, Any]]:
    """Answer a control request: (HTTP status, JSON body)."""
    path = path.split("?", 1)[0].rstrip("/")
    if path == REQUESTS_PATH and arrivals is not None:
        if method == "GET":
            return 200, {"requests": arrivals.to_json()}
        if method == "DELETE":
            arrivals.clear()
            return 200, {"requests": []}
        return 405, {"error": "use GET or DELETE on /_kubesim/requests"}
    if path == FAULTS_PATH:
        if method == "GET":
            with knobs.lock:
                listed = [to_json(r) for r in knobs.failures if r.remaining > 0]
            return 200, {"faults": listed}
        if method == "DELETE":
            with knobs.lock:
                knobs.failures.clear()
            return 200, {"faults": []}
        if method == "POST":
            try:
                loaded = json.loads(body or b"null")
                items = loaded if isinstance(loaded, list) else [loaded]
                parsed = [from_json(item) for item in items]
            except (ValueError, FaultError) as err:
                return 400, {"error": str(err)}
            return 201, {"faults": [to_json(add(knobs, kwargs)) for kwargs in parsed]}
        return 405, {"error": "use GET, POST or DELETE on /_kubesim/faults"}
    if path == LATENCY_PATH:
        if method == "GET":
            return 200, {"seconds": knobs.latency}
        if method in ("PUT", "POST"):
            try:
                seconds = float(json.loads(body or b"null")["seconds"])
            except (ValueError, TypeError, KeyError):
                return 400, {"error": 'send {"seconds": S} with S >= 0'}
            if seconds < 0:
                return 400, {"error": 'send {"seconds": S} with S >= 0'}
            knobs.latency = seconds
            return 200, {"seconds": seconds}
        return 405, {"error": "use GET or PUT on /_kubesim/latency"}
    return 404, {"error": f"no control endpoint {path}; there are {FAULTS_PATH}, {LATENCY_PATH} and "
                          f"{REQUESTS_PATH}"}


def hold(rule: FailureRule, stopping: threading.Event) -> None:
    """Wait as the rule says before going on: its delay, then its hang (cut short when the server stops)."""
    if rule.delay > 0:
        stopping.wait(rule.delay)
    if rule.hang > 0:
        stopping.wait(rule.hang)
