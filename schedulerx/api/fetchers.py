"""Schedule fetchers: where a command's cron schedule and params come from.

A fetcher returns a ``Schedule`` (or a ``(cron, params)`` tuple), ``None`` when the command
has no schedule, or raises. The pod calls it every ``refresh_interval`` for each registered
command; an exception keeps the last good schedule and is logged and counted.
"""

from __future__ import annotations

import json
import os
import threading
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from schedulerx.domain.schedule import Schedule
from schedulerx.ports.fetcher import FetchResult, ScheduleFetcher

__all__ = [
    "FetchResult",
    "FileScheduleFetcher",
    "LogScheduleFetcher",
    "ScheduleFetcher",
    "StaticScheduleFetcher",
]


class StaticScheduleFetcher:
    """Schedules fixed in code: ``{"backup": ("0 3 * * *", ["--full"]), ...}``."""

    def __init__(self, schedules: Mapping[str, Schedule | tuple[str, Sequence[str]] | str]):
        self._schedules = {k: Schedule.coerce(v) for k, v in schedules.items()}

    def fetch_schedule(self, command_id: str) -> FetchResult:
        """The schedule given for ``command_id``, or None."""
        return self._schedules.get(command_id)


class FileScheduleFetcher:
    """Schedules in a TOML or JSON file, re-read when it changes (by mtime and size).

    TOML::

        [backup]
        cron = "0 3 * * *"
        params = ["--full"]
        timezone = "Europe/Berlin"   # optional

    JSON: the same as an object of objects. A file that cannot be read or parsed raises, so
    the pod keeps the last good schedules.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self._path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._schedules: dict[str, Schedule] = {}
        self._lock = threading.Lock()

    def fetch_schedule(self, command_id: str) -> FetchResult:
        """The file's schedule for ``command_id`` (None if the file has none)."""
        with self._lock:
            self._reload()
            return self._schedules.get(command_id)

    def _reload(self) -> None:
        st = self._path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        raw = self._path.read_bytes()
        if self._path.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode())
        if not isinstance(data, dict):
            raise ValueError(f"{self._path}: expected a table of commands")
        parsed: dict[str, Schedule] = {}
        for cid, entry in data.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("cron"), str):
                raise ValueError(f"{self._path}: [{cid}] needs a string 'cron'")
            params = entry.get("params", [])
            if not isinstance(params, list):
                raise ValueError(f"{self._path}: [{cid}] params must be a list")
            parsed[cid] = Schedule(
                cron=entry["cron"],
                params=tuple(str(p) for p in params),
                timezone=str(entry.get("timezone", "UTC")),
            )
        self._schedules = parsed
        self._stamp = stamp


class LogScheduleFetcher:
    """Schedules are whatever is on the log: set by ``schedulerx schedule set`` or by the
    schedule-change requests other systems send. The pod never overwrites them."""

    reads_log = True

    def fetch_schedule(self, command_id: str) -> FetchResult:
        """Never called by the pod (it recognises this fetcher); returns None."""
        return None
