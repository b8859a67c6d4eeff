"""What to do after one API request went wrong: retry it, give up, or tell the caller its outcome is unknown.

A pure decision (``next_step``) with the policy in one place, so ``cluster.Api`` only does the I/O:

* An answer of 429, or of 503 (and for reads any 5xx), with a ``Retry-After`` header means the API server
  did not process the request (max-in-flight, priority and fairness, a shutting-down server): every method
  is sent again after the wait it asks for, capped, as client-go's ``rest`` client does (``checkWait``: 429 or
  5xx with an integer Retry-After, up to 10 retries).
* A connection that could not be made (refused, connect timeout) sent nothing: retried a few times with
  exponential back-off, for every method.
* A read (GET) whose answer was lost (connection reset, read timeout) or that got 500/502/503/504 is
  retried a few times with exponential back-off: reading twice changes nothing.
* A write whose answer was lost, or that got another 5xx, may or may not have been applied. It is never sent
  again blindly: the caller is told the outcome is unknown (``lost``) and re-reads the object to decide.
* Nothing waits past the deadline: a wait that does not fit in what is left of ``timeout`` gives up at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SAFE_METHODS = frozenset({"GET", "HEAD"})
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
RETRY_AFTER_CAP = 10.0  # seconds: the longest Retry-After honoured
RETRY_AFTER_ATTEMPTS = 10  # client-go's default maxRetries
TRANSIENT_RETRIES = 3  # retries after a dropped connection or a 5xx without Retry-After
BACKOFF = 0.25  # seconds before the first such retry, doubled each time
MAX_BACKOFF = 2.0
MIN_WAIT = 0.05  # a Retry-After of 0 still yields the CPU to the server

Action = Literal["retry", "fail", "lost"]


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended when it did not succeed."""

    status: int  # HTTP status of the answer; 0 = no answer at all
    retry_after: float | None = None  # seconds, from the Retry-After header
    sent: bool = True  # False: the connection was never made, so the request never left


@dataclass(frozen=True)
class Next:
    action: Action
    wait: float = 0.0  # seconds to wait before the retry
    why: str = ""  # for "fail" after a retryable outcome: why it was not retried


def is_write(method: str) -> bool:
    return method.upper() not in SAFE_METHODS


def backoff(retries: int) -> float:
    """Seconds before retry number ``retries + 1`` after a transient failure: 0.25, 0.5, 1, 2, 2, ..."""
    return float(min(MAX_BACKOFF, BACKOFF * 2 ** retries))


def parse_retry_after(value: str | None) -> float | None:
    """The Retry-After header as seconds. Like client-go, only the integer form counts (the API server
    sends seconds); an HTTP date or garbage is ignored."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit():
        return None
    return float(int(text))


def next_step(method: str, outcome: Outcome, retries: int, remaining: float | None) -> Next:
    """What to do after ``outcome``, when ``retries`` retries of this request were already made and
    ``remaining`` seconds are left before the deadline (None: no deadline)."""
    write = is_write(method)
    status = outcome.status
    left = float("inf") if remaining is None else remaining
    honours_retry_after = status == 429 or status == 503 or (status >= 500 and not write)
    if outcome.retry_after is not None and honours_retry_after:
        wait = min(max(outcome.retry_after, MIN_WAIT), RETRY_AFTER_CAP)
        if retries >= RETRY_AFTER_ATTEMPTS:
            return Next("fail", why=f"still {status} after {retries} retries")
        if wait >= left:
            return Next("fail", why=f"the server asked to retry after {outcome.retry_after:g}s, more than the "
                                    f"{max(left, 0):.1f}s left of the timeout")
        return Next("retry", wait)
    retryable = (status == 0 and (not outcome.sent or not write)) or (status in TRANSIENT_STATUSES and not write)
    if retryable:
        if retries >= TRANSIENT_RETRIES:
            return Next("fail", why=f"still failing after {retries} retries")
        wait = backoff(retries)
        if wait >= left:
            return Next("fail", why=f"no time left of the timeout to retry ({max(left, 0):.1f}s)")
        return Next("retry", wait)
    if write and (status == 0 or status >= 500):
        return Next("lost")
    return Next("fail")
