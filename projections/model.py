"""Values the read models return: a command's schedule state and the apply counters."""

from __future__ import annotations

from datetime import datetime

import msgspec


class ScheduleState(msgspec.Struct, frozen=True, kw_only=True):
    """What the log says about one command's schedule.

    Built from two facts: the latest schedule record (``schedule.set`` or ``schedule.removed``)
    and the latest ``schedule.rejected``. Either may be missing: a command that only ever had
    rejected requests has ``cron`` None and ``removed`` False.

    After ``schedule.removed`` the command stays listed with ``removed`` True and ``cron`` None:
    the removal event does not carry the old schedule, and keeping the old cron would make the
    view depend on records that compaction deletes (the compaction-invariance rule).
    """

    command_id: str
    cron: str | None = None
    """The cron expression in force; None when removed or never set."""
    params: tuple[str, ...] = ()
    timezone: str = "UTC"
    paused: bool = False
    removed: bool = False
    """True after ``schedule.removed`` (until a later ``schedule.set``)."""
    last_rejection: str | None = None
    """The reason of the latest refused change request, if any."""
    source: str = "fetcher"
    """Who set the schedule in force: ``fetcher``, ``cli`` or ``external``."""
    since: datetime | None = None
    """When the schedule in force was set (the planner backfills missed times from here)."""

    @property
    def active(self) -> bool:
        """True when the command has a schedule that is neither paused nor removed."""
        return self.cron is not None and not self.paused and not self.removed


class ApplyStats(msgspec.Struct, frozen=True, kw_only=True):
    """How many records a projection consumed, by outcome.

    Every consumed record counts exactly once: ``applied`` (it was valid; it may still have
    changed nothing, e.g. a repeated job state or a ``job.triggered``), ``poison_records``
    (undecodable, skipped) or ``illegal_transitions`` (a job change the state machine forbids,
    skipped: the view keeps the previous state).
    """

    applied: int = 0
    poison_records: int = 0
    illegal_transitions: int = 0

    @property
    def records(self) -> int:
        """All records consumed."""
        return self.applied + self.poison_records + self.illegal_transitions

    def __add__(self, other: ApplyStats) -> ApplyStats:
        return ApplyStats(
            applied=self.applied + other.applied,
            poison_records=self.poison_records + other.poison_records,
            illegal_transitions=self.illegal_transitions + other.illegal_transitions,
        )


class ProjectionError(RuntimeError):
    """The projection store cannot be used (missing, wrong version, read-only); one line."""


class StoreLocked(ProjectionError):
    """Another process already writes this projection store (the data dir is in use)."""


def check_query(since: datetime | None, until: datetime | None, limit: int | None) -> None:
    """Raise ValueError (one line) for a naive time bound or a negative limit."""
    for name, bound in (("since", since), ("until", until)):
        if bound is not None and bound.tzinfo is None:
            raise ValueError(f"{name} must be a timezone-aware datetime")
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
