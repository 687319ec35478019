"""A clock the test sets: wall time moves only when told (for pure planning code)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class FakeClock:
    """``now()`` returns the time set by the test; ``advance`` moves it forward."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The fake wall time (aware UTC)."""
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """Seconds advanced so far."""
        with self._lock:
            return self._mono

    def advance(self, delta: timedelta) -> None:
        """Move both clocks forward by ``delta``."""
        if delta < timedelta(0):
            raise ValueError("a clock never goes back; use set() to model a wall-clock step")
        with self._lock:
            self._now += delta
            self._mono += delta.total_seconds()

    def set(self, when: datetime) -> None:
        """Step the wall clock to ``when`` (may go back, like an NTP step); monotonic stays."""
        with self._lock:
            self._now = when
