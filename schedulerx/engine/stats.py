"""Counters a pod keeps (exported as metrics by the operations layer)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class PodStats:
    """Thread-safe named counters and the fire-lag samples of recent starts."""

    counts: Counter[str] = field(default_factory=Counter)
    fire_lag_s: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        """Increase counter ``name`` by ``n``."""
        with self._lock:
            self.counts[name] += n

    def lag(self, seconds: float) -> None:
        """Record one start's fire lag (kept for the last 10,000 starts)."""
        with self._lock:
            self.fire_lag_s.append(seconds)
            if len(self.fire_lag_s) > 10_000:
                del self.fire_lag_s[:1000]

    def snapshot(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return dict(self.counts)
