"""Cancellation: what the run does when the runner cancels the step.

When a job is cancelled (or times out) the runner sends SIGINT to the step, then SIGTERM 7.5 s later, then
kills it. In the action's container the entrypoint is PID 1, and the kernel ignores every signal PID 1 has no
handler for: without handlers SIGTERM would do nothing and SIGINT would raise ``KeyboardInterrupt`` anywhere,
a traceback with no outputs, no summary, no ledger entry and half a release live. So the run installs its own
handlers for both (no init process such as tini is needed: the action starts no child processes).

A signal never interrupts a write. It is recorded, and:

- while the run *waits* (for a rollout or for another run's lease), it stops the wait at once (``Cancelled``
  is raised from the handler; it is a ``BaseException`` so that no ``except Exception`` retry loop swallows it);
- otherwise the run stops at the next ``check()`` (between two writes, before the wait).

The run then puts back what the compensation plan says (writes only, preconditioned, bounded by
``CANCEL_BUDGET`` so it is done before the runner's SIGTERM), writes every output, the summary and a ledger
entry with result ``cancelled``, releases its leases and exits non-zero. Further signals during that are only
counted: being killed halfway through putting things back would be worse.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

CANCEL_BUDGET = 5.0  # seconds for putting back after a signal (the runner's SIGTERM follows 7.5 s after SIGINT)
CANCEL_FINISH = 1.0  # and then for reading back and recording: every request ends within 6 s of the signal
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Cancelled(BaseException):
    """The step was cancelled by a signal."""

    def __init__(self, signal_name: str):
        super().__init__(f"the step was cancelled ({signal_name})")
        self.signal_name = signal_name


class Cancellation:
    """Signals received by this run, and where they may interrupt it."""

    def __init__(self) -> None:
        self.signal_name: str | None = None  # the first signal received
        self.received = 0
        self._interruptible = 0

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        """The signal handler (also callable directly, as a test would)."""
        self.received += 1
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
            if self._interruptible:
                raise Cancelled(self.signal_name)

    def check(self) -> None:
        """Raise ``Cancelled`` if a signal came in since the run started."""
        if self.signal_name is not None:
            raise Cancelled(self.signal_name)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A wait: a signal (or one received before) raises ``Cancelled`` at once."""
        self.check()
        self._interruptible += 1
        try:
            yield
        finally:
            self._interruptible -= 1

    @contextlib.contextmanager
    def installed(self) -> Iterator[Cancellation]:
        """Handle SIGINT and SIGTERM for the duration (main thread only; elsewhere nothing is installed), and
        put the previous handlers back afterwards."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous: dict[signal.Signals, Any] = {}
        for number in SIGNALS:
            previous[number] = signal.signal(number, self.handle)
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


NEVER = Cancellation()  # for runs without signal handling (the engine used as a library)
