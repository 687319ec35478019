"""What callers may rely on from either view (``MemoryView`` or ``ProjectionStore``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from projections.model import ApplyStats, ScheduleState
from schedulerx.domain.job import Job, JobStatus
from schedulerx.ports.event_log import Record


class JobsQuery(Protocol):
    """The read side: the job list and the schedules."""

    def job(self, job_id: str) -> Job | None:
        """Job ``job_id``'s latest state, None if unknown (or deleted)."""
        ...

    def jobs(
        self,
        *,
        command_id: str | None = None,
        status: JobStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs matching every given filter (``since <= scheduled_at < until``, aware
        datetimes), ordered by ``scheduled_at`` then id, at most ``limit``."""
        ...

    def schedules(self) -> list[ScheduleState]:
        """Every command's schedule state, ordered by command id."""
        ...

    def schedule(self, command_id: str) -> ScheduleState | None:
        """``command_id``'s schedule state, None if the log says nothing about it."""
        ...

    @property
    def stats(self) -> ApplyStats:
        """Cumulative counts of consumed records."""
        ...


class Projection(JobsQuery, Protocol):
    """A view that records can be applied to (what ``catch_up`` drives)."""

    def apply(self, records: Sequence[Record]) -> ApplyStats:
        """Apply ``records`` (offset order per partition); return this call's counts."""
        ...

    def next_offset(self, partition: int) -> int:
        """The next offset of ``partition`` to apply: last applied + 1, or 0."""
        ...

    def reset(self) -> None:
        """Forget everything: every ``next_offset`` becomes 0."""
        ...
