"""The schedule-fetcher port: where each command's schedule comes from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from schedulerx.domain.schedule import Schedule

FetchResult = Schedule | tuple[str, Sequence[str]] | None


@runtime_checkable
class ScheduleFetcher(Protocol):
    """Supplies the schedule of each command.

    A fetcher with a true ``reads_log`` attribute is never called: the schedules are what the
    log says (set by the CLI or other systems' requests).
    """

    def fetch_schedule(self, command_id: str) -> FetchResult:
        """The current schedule of ``command_id`` (None: it has none). Raise on error."""
        ...
