"""Simulated time: real elapsed time multiplied by a time-scale knob."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    """Monotonic simulated clock. ``scale`` 10 makes simulated time run ten times faster than real time."""

    def __init__(self, scale: float = 1.0):
        self._lock = threading.Lock()
        self._scale = scale
        self._real_anchor = time.monotonic()
        self._sim_anchor = time.time()

    @property
    def scale(self) -> float:
        return self._scale

    @scale.setter
    def scale(self, value: float) -> None:
        if value <= 0:
            raise ValueError("time scale must be > 0")
        with self._lock:
            now = self.now()
            self._real_anchor = time.monotonic()
            self._sim_anchor = now
            self._scale = value

    def now(self) -> float:
        """Simulated seconds since the epoch."""
        return self._sim_anchor + (time.monotonic() - self._real_anchor) * self._scale

    def real_seconds(self, sim_seconds: float) -> float:
        """How long ``sim_seconds`` of simulated time take in real time."""
        return sim_seconds / self._scale

    def timestamp(self, at: float | None = None) -> str:
        """RFC 3339 with second precision, as the API server writes metav1.Time."""
        moment = self.now() if at is None else at
        return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @staticmethod
    def parse(stamp: str) -> float:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
