"""Counters a pod keeps (exported as metrics by the operations layer, ``schedulerx.ops``)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

MISS_CLASSES = ("late", "coalesced", "overlap", "unregistered", "other")
"""Why a job ended ``missed``, as a small fixed set (a metric label; ``miss_class``)."""


def miss_class(reason: str | None) -> str:
    """The class of a ``missed`` job's reason: one of ``MISS_CLASSES``.

    Reads the reasons the planner and the engine write: ``late by ...``, ``coalesced into
    ...``, ``overlap: ...``, ``command 'x' is not registered on the owning pod; ...``.
    """
    text = reason or ""
    if "is not registered" in text:
        return "unregistered"
    if text.startswith("coalesced"):
        return "coalesced"
    if text.startswith("overlap"):
        return "overlap"
    if text.startswith("late"):
        return "late"
    return "other"


@dataclass
class PodStats:
    """Thread-safe named counters and the fire-lag samples of recent starts."""

    counts: Counter[str] = field(default_factory=Counter)
    fire_lag_s: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _lag_observers: list[Callable[[float], None]] = field(default_factory=list, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        """Increase counter ``name`` by ``n``."""
        with self._lock:
            self.counts[name] += n

    def job(self, status: str, reason: str | None = None) -> None:
        """Count one job reaching ``status`` (``jobs_<status>``); a ``missed`` one is also
        counted by the class of its ``reason`` (``missed_<class>``, see ``miss_class``)."""
        with self._lock:
            self.counts[f"jobs_{status}"] += 1
            if status == "missed":
                self.counts[f"missed_{miss_class(reason)}"] += 1

    def lag(self, seconds: float) -> None:
        """Record one start's fire lag (kept for the last 10,000 starts) and hand it to
        every observer (``observe_lag``), outside the lock."""
        with self._lock:
            self.fire_lag_s.append(seconds)
            if len(self.fire_lag_s) > 10_000:
                del self.fire_lag_s[:1000]
            observers = list(self._lag_observers)
        for observe in observers:
            observe(seconds)

    def observe_lag(self, observer: Callable[[float], None]) -> None:
        """Call ``observer(seconds)`` on every later ``lag`` (e.g. a histogram's observe).

        The observer runs on the pod's loop thread: it must be quick and must not raise.
        """
        with self._lock:
            self._lag_observers.append(observer)

    def snapshot(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return dict(self.counts)
