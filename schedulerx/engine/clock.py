"""The real clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class SystemClock:
    """Wall time from the OS (aware UTC) and ``time.monotonic``."""

    def now(self) -> datetime:
        """The current time, aware UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()
