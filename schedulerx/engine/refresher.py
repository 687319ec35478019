"""Fetches schedules in a background thread so a slow fetcher never stalls the loop."""

from __future__ import annotations

import logging
import queue
import threading
from datetime import timedelta

from schedulerx.domain.schedule import Schedule
from schedulerx.ports.fetcher import ScheduleFetcher

log = logging.getLogger("schedulerx.engine")

Result = Schedule | None | BaseException


class Refresher:
    """Calls ``fetch_schedule`` for each command every ``interval``; results via ``drain``."""

    def __init__(self, fetcher: ScheduleFetcher, command_ids: list[str], interval: timedelta):
        self._fetcher = fetcher
        self._ids = command_ids
        self._interval = interval.total_seconds()
        self._results: queue.SimpleQueue[tuple[str, Result]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="schedulerx-fetch", daemon=True)

    def start(self) -> None:
        """Start fetching (the first round at once)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current fetch."""
        self._stop.set()

    def drain(self) -> list[tuple[str, Result]]:
        """Results fetched since the last call, in order."""
        out: list[tuple[str, Result]] = []
        while not self._results.empty():
            out.append(self._results.get_nowait())
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            for cid in self._ids:
                if self._stop.is_set():
                    return
                result: Result
                try:
                    raw = self._fetcher.fetch_schedule(cid)
                    result = None if raw is None else Schedule.coerce(raw)
                except Exception as exc:
                    result = exc
                self._results.put((cid, result))
            self._stop.wait(self._interval)
