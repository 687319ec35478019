"""One timer structure for the whole pod: a heap served by a single thread.

No thread per job: ``arm`` pushes (due, key) on a heap; the thread sleeps until the earliest
due time (or until a new earlier entry arrives) and calls the callback with the key.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from datetime import datetime

log = logging.getLogger("schedulerx.engine")


class TimerHeap:
    """Calls ``callback(key)`` at (or just after) each armed wall-clock time."""

    def __init__(self, callback: Callable[[str], None], now: Callable[[], datetime]):
        self._callback = callback
        self._now = now
        self._heap: list[tuple[float, int, str]] = []
        self._live: dict[str, int] = {}
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="schedulerx-timers", daemon=True)

    def start(self) -> None:
        """Start the timer thread."""
        self._thread.start()

    def arm(self, key: str, at: datetime) -> None:
        """Fire ``key`` at ``at``; re-arming a key replaces its earlier time."""
        with self._cond:
            seq = next(self._seq)
            self._live[key] = seq
            heapq.heappush(self._heap, (at.timestamp(), seq, key))
            self._cond.notify()

    def cancel(self, key: str) -> bool:
        """Disarm ``key``; True if it was armed and had not fired."""
        with self._cond:
            return self._live.pop(key, None) is not None

    def pending(self) -> list[str]:
        """Keys armed and not yet fired."""
        with self._cond:
            return list(self._live)

    def stop(self) -> None:
        """Stop the thread; armed keys never fire."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                key = self._next_due()
                if key is None:
                    return
            try:
                self._callback(key)
            except Exception:
                log.exception("timer callback failed for %s", key)

    def _next_due(self) -> str | None:
        """Wait (holding the condition) until an entry is due; None when stopped."""
        while not self._stopped:
            while self._heap and self._live.get(self._heap[0][2]) != self._heap[0][1]:
                heapq.heappop(self._heap)  # canceled or re-armed
            if not self._heap:
                self._cond.wait()
                continue
            wait = self._heap[0][0] - self._now().timestamp()
            if wait > 0:
                # Sleep in slices of at most 1 s: a wall-clock step is noticed soon.
                self._cond.wait(timeout=min(wait, 1.0))
                continue
            _, _, key = heapq.heappop(self._heap)
            del self._live[key]
            return key
        return None
