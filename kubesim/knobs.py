"""Test knobs: the things a test may turn to make the simulated cluster misbehave."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .auth import Authenticators


@dataclass
class FailureRule:
    """Fail the next ``remaining`` requests whose method and path match.

    ``status`` is the HTTP code to answer with (a ``Status`` body), with a ``Retry-After`` header when
    ``retry_after`` is set; None answers normally (a rule that only delays). ``drop`` closes the connection
    instead of answering (for a watch: after the stream started, once ``after_events`` events were sent);
    with ``after_apply`` the request is carried out first, so a write lands and its answer is lost.
    ``delay`` waits that many real seconds first; ``hang`` holds the request that long (or until the server
    stops) and then drops the connection. ``kubesim.faults`` parses and serves these rules.
    """

    method: str  # "GET", "PATCH", ... or "*"
    path: re.Pattern[str]
    remaining: int
    status: int | None = 500
    drop: bool = False
    after_events: int = 0
    retry_after: int | None = None
    after_apply: bool = False
    delay: float = 0.0
    hang: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and self.method in ("*", method) and bool(self.path.search(path))


@dataclass(frozen=True)
class Grant:
    """What a bearer token may do. Empty tuples mean "any"."""

    user: str
    verbs: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()  # plural names, "deployments", "pods", "deployments/status"
    namespaces: tuple[str, ...] = ()

    def allows(self, verb: str, resource: str, namespace: str | None) -> bool:
        if self.verbs and verb not in self.verbs:
            return False
        if self.resources and resource not in self.resources:
            return False
        if self.namespaces and namespace not in self.namespaces:
            return False
        return True


DEFAULT_BAD_MARKERS = ("broken", "does-not-exist")
DEFAULT_CRASH_MARKERS = ("crash",)


@dataclass
class Knobs:
    ready_delay: float = 0.3  # simulated seconds from pod creation to Ready
    bad_markers: tuple[str, ...] = DEFAULT_BAD_MARKERS  # image references containing these never become Ready
    bad_images: set[str] = field(default_factory=set)  # exact image references that never become Ready
    # image references containing these (or listed exactly) start, exit with code 1 and crash-loop
    crash_markers: tuple[str, ...] = DEFAULT_CRASH_MARKERS
    crash_images: set[str] = field(default_factory=set)
    crash_limit: int | None = None  # crashing containers crash this many times, then run (None: forever)
    latency: float = 0.0  # real seconds added before answering each request
    daemonset_nodes: int = 2  # simulated nodes a DaemonSet schedules onto
    controller_sync: bool = True  # reconcile controllers before answering a write (deterministic tests)
    rbac: dict[str, Grant] | None = None  # token -> grant; None = authentication off, everything allowed
    # EKS/JWT token authentication (kubesim/auth.py); when set, only authenticated requests are served
    authn: Authenticators | None = None
    failures: list[FailureRule] = field(default_factory=list)
    # on_request(method, path) runs on the server thread as soon as a request's headers are read, before
    # latency, failures and routing: a request log for tests and benchmarks (bench/cold_start.py timestamps
    # the first request). Keep it fast and let nothing escape: it runs outside the error handling, so an
    # exception drops the connection.
    on_request: Callable[[str, str], None] | None = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def image_is_bad(self, image: str) -> bool:
        return image in self.bad_images or any(marker in image for marker in self.bad_markers)

    def image_crashes(self, image: str) -> bool:
        """Does a container of this image exit with code 1 each time it starts (and it can be pulled)?"""
        if self.image_is_bad(image):
            return False
        return image in self.crash_images or any(marker in image for marker in self.crash_markers)

    def fail_next(self, count: int = 1, method: str = "*", path: str = ".*", status: int | None = 500,
                  drop: bool = False, after_events: int = 0, retry_after: int | None = None,
                  after_apply: bool = False, delay: float = 0.0, hang: float = 0.0) -> FailureRule:
        rule = FailureRule(method.upper(), re.compile(path), count, status, drop, after_events, retry_after,
                           after_apply, delay, hang)
        with self.lock:
            self.failures.append(rule)
        return rule

    def take_failure(self, method: str, path: str) -> FailureRule | None:
        """Consume one matching failure, if any."""
        with self.lock:
            for rule in self.failures:
                if rule.matches(method, path):
                    rule.remaining -= 1
                    return rule
        return None

    def grant(self, token: str, user: str, verbs: tuple[str, ...] = (), resources: tuple[str, ...] = (),
              namespaces: tuple[str, ...] = ()) -> None:
        with self.lock:
            if self.rbac is None:
                self.rbac = {}
            self.rbac[token] = Grant(user, verbs, resources, namespaces)
