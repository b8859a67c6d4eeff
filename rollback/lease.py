"""One run per workload at a time: a ``coordination.k8s.io/v1`` Lease per workload, held from just before the
run's first write to its end.

Why per workload and not per namespace: what must never overlap is two runs changing (and judging, and
recording) the *same* workload: a deploy and a rollback started at the same moment, or two rollbacks. Runs on
different workloads of one namespace (the services of a monorepo, each with its own pipeline) do not disturb
each other and must not queue behind each other mid-incident. A run of several workloads takes every one of
their leases, in name order, all or none. The ledger ConfigMap they share is written with optimistic
concurrency and needs no lease.

The Lease is named after the workload (``kube-release-rollback.deployment.web``), lives in its namespace, and
says who holds it: ``holderIdentity`` is the run identity (repository, run id, attempt, actor and a random
suffix, so two jobs of one run differ), and annotations say the same for people (run URL, what it is doing).
The holder renews it every ``duration / 3`` seconds from a background thread while the run goes on (waiting
included), and releases it at the end (holder cleared, as client-go's leader election does). A run that is
killed stops renewing: its lease expires ``duration`` seconds after the last renewal and the next run takes
it. A re-run of the same workflow run (a higher ``GITHUB_RUN_ATTEMPT``) takes it at once: GitHub never runs
two attempts of one run at the same time, so the earlier attempt has ended.

Expiry compares ``renewTime`` with this machine's clock, as every Lease client does; runner clocks are NTP
synchronised, and the duration is long compared with any skew that matters.

Deciding is pure (``decide``, ``lease_body``); ``Leases`` does the API calls.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from .cluster import AnswerLost, Api, ApiFailure

API_GROUP = "coordination.k8s.io"
NAME_PREFIX = "kube-release-rollback."
ANNOTATION_PREFIX = "kube-release-rollback.io/"
LEASE_DURATION = 30  # seconds a lease outlives its last renewal
RENEW_EVERY = LEASE_DURATION / 3
WAIT_POLL = 2.0  # seconds between attempts when wait-for-lease is true
MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # metav1.MicroTime as the API server writes it


@dataclass(frozen=True)
class RunIdentity:
    """Who is acting: a GitHub Actions run (or a local CLI run)."""

    repository: str | None
    run_id: str | None
    attempt: int
    actor: str | None
    run_url: str | None
    nonce: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RunIdentity:
        def get(name: str) -> str | None:
            return (environ.get(name) or "").strip() or None

        attempt = get("GITHUB_RUN_ATTEMPT") or "1"
        server, repository, run_id = get("GITHUB_SERVER_URL"), get("GITHUB_REPOSITORY"), get("GITHUB_RUN_ID")
        url = f"{server.rstrip('/')}/{repository}/actions/runs/{run_id}" if server and repository and run_id else None
        return cls(repository=repository, run_id=run_id, attempt=int(attempt) if attempt.isdigit() else 1,
                   actor=get("GITHUB_ACTOR"), run_url=url)

    @property
    def holder(self) -> str:
        """``holderIdentity``: unique per run (and per job of one run), readable in ``kubectl get leases``."""
        if self.repository and self.run_id:
            return f"{self.repository}/runs/{self.run_id}/attempt/{self.attempt}/{self.actor or '-'}/{self.nonce}"
        return f"local/{socket.gethostname()}/{os.getpid()}/{self.nonce}"

    def describe(self) -> str:
        if self.repository and self.run_id:
            by = f" by {self.actor}" if self.actor else ""
            url = f" ({self.run_url})" if self.run_url else ""
            return f"run {self.run_id} (attempt {self.attempt}) of {self.repository}{by}{url}"
        return f"a local run ({self.holder})"


def lease_name(workload: str) -> str:
    """``kube-release-rollback.deployment.web`` for ``deployment/web``; long names end in a hash (253 max)."""
    name = NAME_PREFIX + workload.replace("/", ".")
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(workload.encode()).hexdigest()[:10]
    return f"{name[:242].rstrip('.-')}.{digest}"


def format_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).strftime(MICRO_TIME)


def parse_time(text: object) -> float | None:
    """A MicroTime (or plain RFC 3339 Time) as seconds since the epoch; None when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    for shape in (MICRO_TIME, "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, shape).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a lease, from the Lease object."""

    identity: str
    description: str  # for people: the run, its URL, what it is doing
    renewed: float | None  # renewTime, seconds since the epoch
    duration: int

    @property
    def expires(self) -> float | None:
        return None if self.renewed is None else self.renewed + self.duration


def holder_of(lease: Mapping[str, Any]) -> Holder:
    spec = lease.get("spec") or {}
    notes = (lease.get("metadata") or {}).get("annotations") or {}
    identity = str(spec.get("holderIdentity") or "")
    run = notes.get(ANNOTATION_PREFIX + "run") or identity or "an unknown run"
    activity = notes.get(ANNOTATION_PREFIX + "activity")
    description = f"{run}, {activity}" if activity else run
    duration = spec.get("leaseDurationSeconds")
    return Holder(identity, description, parse_time(spec.get("renewTime")),
                  duration if isinstance(duration, int) and duration > 0 else LEASE_DURATION)


@dataclass(frozen=True)
class Decision:
    action: Literal["create", "take", "renew", "held"]
    why: str  # for a take: why the previous holder no longer counts
    previous: Holder | None = None


def _attempt_of(identity: str, me: RunIdentity) -> int | None:
    """The attempt number in another holder identity of the same repository and run, else None."""
    prefix = f"{me.repository}/runs/{me.run_id}/attempt/"
    if not (me.repository and me.run_id and identity.startswith(prefix)):
        return None
    number = identity[len(prefix):].split("/", 1)[0]
    return int(number) if number.isdigit() else None


def decide(lease: Mapping[str, Any] | None, me: RunIdentity, now: float) -> Decision:
    """May this run take the lease now?"""
    if lease is None:
        return Decision("create", "no lease yet")
    holder = holder_of(lease)
    if not holder.identity:
        return Decision("take", "released by its last holder", holder)
    if holder.identity == me.holder:
        return Decision("renew", "this run holds it", holder)
    attempt = _attempt_of(holder.identity, me)
    if attempt is not None and attempt < me.attempt:
        return Decision("take", f"held by attempt {attempt} of this same run, which has ended", holder)
    if holder.expires is None or holder.expires < now:
        return Decision("take", "expired: its holder stopped renewing it", holder)
    return Decision("held", "held by another run", holder)


def lease_body(workload: str, namespace: str, me: RunIdentity, activity: str, now: float, duration: int,
               current: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Lease this run writes to take or renew it (``current``: the object read, for its
    resourceVersion, acquireTime and transitions)."""
    spec_now = dict((current or {}).get("spec") or {})
    mine = spec_now.get("holderIdentity") == me.holder
    transitions = int(spec_now.get("leaseTransitions") or 0)
    if current is not None and not mine and spec_now.get("holderIdentity"):
        transitions += 1
    meta: dict[str, Any] = {
        "name": lease_name(workload), "namespace": namespace,
        "labels": {"app.kubernetes.io/managed-by": "kube-release-rollback"},
        "annotations": {ANNOTATION_PREFIX + "workload": workload, ANNOTATION_PREFIX + "run": me.describe(),
                        ANNOTATION_PREFIX + "activity": activity},
    }
    if current is not None:
        meta["resourceVersion"] = (current.get("metadata") or {}).get("resourceVersion")
    return {
        "apiVersion": f"{API_GROUP}/v1", "kind": "Lease", "metadata": meta,
        "spec": {"holderIdentity": me.holder, "leaseDurationSeconds": duration,
                 "acquireTime": spec_now.get("acquireTime") if mine else format_time(now),
                 "renewTime": format_time(now), "leaseTransitions": transitions},
    }


class LeaseHeld(Exception):
    """Another run holds a workload's lease."""

    def __init__(self, workload: str, holder: Holder):
        until = f"; its lease expires at {format_time(holder.expires)[:19]}Z unless renewed" if holder.expires else ""
        super().__init__(f"{workload} is being changed by another run: {holder.description}{until}. Nothing was "
                         f"changed. Let that run finish and run again, or set wait-for-lease: true to wait for it "
                         f"(within timeout)")
        self.workload = workload
        self.holder = holder


@dataclass
class Taken:
    workload: str
    name: str
    decision: Decision


class Leases:
    """The leases of one run in one namespace: take, keep renewed, release."""

    def __init__(self, api: Api, namespace: str, me: RunIdentity, *, duration: int = LEASE_DURATION,
                 wall: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.api = api
        self.namespace = namespace
        self.me = me
        self.duration = duration
        self._wall = wall
        self._sleep = sleep
        self.taken: list[Taken] = []
        self.lost: list[str] = []  # workloads whose lease another run took over while this one held it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._activity = ""

    def path(self, name: str | None = None) -> str:
        base = f"/apis/{API_GROUP}/v1/namespaces/{self.namespace}/leases"
        return f"{base}/{name}" if name else base

    def acquire(self, workloads: Sequence[str], activity: str, wait_until: float | None = None,
                clock: Callable[[], float] = time.monotonic) -> list[Taken]:
        """Take every workload's lease (sorted: all or none). ``LeaseHeld`` when one is held by another
        run: at once, or with ``wait_until`` (a ``clock`` time) once that passes."""
        self._activity = activity
        while True:
            try:
                for workload in sorted(workloads):
                    self.taken.append(self._take(workload, activity))
                return list(self.taken)
            except LeaseHeld:
                self.release()
                if wait_until is None or clock() + WAIT_POLL > wait_until:
                    raise
                self._sleep(WAIT_POLL)

    def _take(self, workload: str, activity: str) -> Taken:
        name = lease_name(workload)
        for _ in range(5):
            current = self._get(name)
            decision = decide(current, self.me, self._wall())
            if decision.action == "held":
                assert decision.previous is not None
                raise LeaseHeld(workload, decision.previous)
            body = lease_body(workload, self.namespace, self.me, activity, self._wall(), self.duration, current)
            try:
                if current is None:
                    self.api.create(self.path(), body)
                else:
                    self.api.replace(self.path(name), body)
            except AnswerLost:  # it may have landed: read again and decide again (ours now: "renew")
                continue
            except ApiFailure as err:
                if err.status == 409:  # another run got in between: read again and decide again
                    continue
                raise
            return Taken(workload, name, decision)
        raise ApiFailure(409, "Conflict", f"the lease {name} kept changing under us; run again")

    def _get(self, name: str) -> dict[str, Any] | None:
        try:
            return self.api.get(self.path(name))
        except ApiFailure as err:
            if err.status == 404:
                return None
            raise

    def keep_renewed(self, until: float, clock: Callable[[], float] = time.monotonic) -> None:
        """Renew every taken lease each ``duration / 3`` seconds from a daemon thread, never past ``until``
        (a ``clock`` time: the step's deadline), so a run that hangs cannot hold a workload for ever."""
        if not self.taken or self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.duration / 3):
                if clock() > until:
                    return
                self.renew()

        self._thread = threading.Thread(target=loop, name="lease-renewal", daemon=True)
        self._thread.start()

    def renew(self) -> None:
        for taken in list(self.taken):
            if taken.workload in self.lost:
                continue
            try:
                current = self._get(taken.name)
                if current is None or holder_of(current).identity != self.me.holder:
                    self.lost.append(taken.workload)
                    continue
                self.api.replace(self.path(taken.name), lease_body(taken.workload, self.namespace, self.me,
                                                                   self._activity, self._wall(), self.duration,
                                                                   current))
            except ApiFailure:
                continue  # a conflict or a blip: the next renewal tries again, well before expiry

    def release(self) -> None:
        """Stop renewing and give back every lease this run still holds (holder cleared)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)  # a renewal in flight is harmless: every write carries its resourceVersion
            self._thread = None
        for taken in self.taken:
            try:
                current = self._get(taken.name)
                if current is None or holder_of(current).identity != self.me.holder:
                    continue
                body = lease_body(taken.workload, self.namespace, self.me, self._activity, self._wall(), 1,
                                  current)
                body["spec"]["holderIdentity"] = ""
                self.api.replace(self.path(taken.name), body)
            except ApiFailure:
                continue  # it expires by itself in `duration` seconds
        self.taken = []
        self._stop = threading.Event()
