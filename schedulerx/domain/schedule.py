"""A command's schedule (cron + params) and the policies that decide what happens when it is late.

Policies are properties of the registered command (code), the schedule comes from a fetcher or
from the log (data). Both are plain frozen values.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import timedelta

import msgspec


class Overlap(enum.StrEnum):
    """What to do when a start is due while the previous run of the same command still runs."""

    SKIP = "skip"
    """Do not start; the job ends ``missed`` with reason ``overlap: previous run still running``."""
    ALLOW = "allow"
    """Start anyway; runs of the command may overlap."""


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    """When a command runs and with what params. ``timezone`` is an IANA name; UTC by default."""

    cron: str
    params: tuple[str, ...] = ()
    timezone: str = "UTC"

    @classmethod
    def coerce(cls, value: Schedule | tuple[str, Sequence[str]] | Sequence[object]) -> Schedule:
        """A Schedule from a Schedule or a ``(cron, params)`` tuple (the seed's form)."""
        if isinstance(value, Schedule):
            return value
        if isinstance(value, str):
            return cls(cron=value)
        items = list(value)
        if len(items) != 2 or not isinstance(items[0], str):
            raise TypeError(f"a schedule is Schedule(...) or (cron, params), got {value!r}")
        params = items[1]
        if isinstance(params, str) or not isinstance(params, Sequence):
            raise TypeError(f"params must be a sequence of strings, got {params!r}")
        return cls(cron=items[0], params=tuple(str(p) for p in params))


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    """How one command is run. Defaults are what most cron users expect."""

    misfire_grace: timedelta = timedelta(seconds=30)
    """A job found due later than this (pod down, failover) is ``missed``, not run."""
    coalesce: bool = True
    """Of several late jobs within the grace, run only the newest; the rest are ``missed``."""
    overlap: Overlap = Overlap.SKIP
    timeout: timedelta | None = None
    """A run longer than this ends ``failed`` with reason ``timeout`` (None: no limit)."""
    retries: int = 0
    """Extra attempts after a failure (opting into at-least-once); 0 is at-most-once."""
    retry_backoff: timedelta = timedelta(seconds=1)
    """Delay before attempt n+1 is ``retry_backoff * 2**(n-1)``."""
    history_limit: int = 1000
    """Finished jobs kept per command; older ones get tombstones (compaction drops them)."""

    def __post_init__(self) -> None:
        if self.misfire_grace < timedelta(0):
            raise ValueError("misfire_grace must be >= 0")
        if self.retry_backoff < timedelta(0):
            raise ValueError("retry_backoff must be >= 0")
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        if self.history_limit < 1:
            raise ValueError("history_limit must be >= 1")
        if self.timeout is not None and self.timeout <= timedelta(0):
            raise ValueError("timeout must be > 0")
