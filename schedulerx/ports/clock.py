"""The clock port. The engine asks it for time; tests give it a fake one."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """Wall and monotonic time."""

    def now(self) -> datetime:
        """The current time, aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for leases and timeouts)."""
        ...
