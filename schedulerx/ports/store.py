"""The projection-store port: what the engine needs from a read model (projections/)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from schedulerx.domain.job import Job, JobStatus
from schedulerx.ports.event_log import Record


class ScheduleRow(Protocol):
    """A command's current schedule as projected."""

    @property
    def command_id(self) -> str: ...
    @property
    def cron(self) -> str | None: ...
    @property
    def params(self) -> tuple[str, ...]: ...
    @property
    def timezone(self) -> str: ...
    @property
    def paused(self) -> bool: ...
    @property
    def removed(self) -> bool: ...
    @property
    def source(self) -> str: ...
    @property
    def since(self) -> datetime | None: ...


class JobStore(Protocol):
    """A projection of the log: jobs and schedules, with per-partition checkpoints."""

    def apply(self, records: Sequence[Record]) -> object:
        """Apply records (offset order per partition) with their checkpoints atomically."""
        ...

    def next_offset(self, partition: int) -> int:
        """The next offset to apply for ``partition`` (0 when none applied)."""
        ...

    def reset(self) -> None:
        """Forget everything (the next catch-up rebuilds from offset 0)."""
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
        """Jobs ordered by scheduled time then id, filtered as given."""
        ...

    def job(self, job_id: str) -> Job | None:
        """One job by id."""
        ...

    def schedules(self) -> Sequence[ScheduleRow]:
        """Every command's current schedule."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...
