"""Bringing a newly owned partition up to date before acting on it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from schedulerx.domain.events import ScheduleSet
from schedulerx.domain.job import JobStatus
from schedulerx.domain.partitioning import partition_for
from schedulerx.engine.book import Book
from schedulerx.ports.event_log import LogReader
from schedulerx.ports.store import JobStore

_CHUNK = 5000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OPEN = (JobStatus.SCHEDULED, JobStatus.CLAIMED, JobStatus.RUNNING)


def catch_up(store: JobStore, reader: LogReader, partitions: Iterable[int]) -> int:
    """Apply every committed record of ``partitions`` the store has not seen; returns how many.

    A store whose checkpoint lies inside the part of the log that is gone (``0 < next <
    first stored offset``) is rebuilt from the start of every partition.
    """
    wanted = sorted(partitions)
    if any(0 < store.next_offset(p) < reader.bounds(p)[0] for p in wanted):
        store.reset()
        wanted = list(range(reader.partitions))
    applied = 0
    for p in wanted:
        start, end = reader.bounds(p)
        offset = max(store.next_offset(p), start)
        while offset < end:
            batch = reader.read(p, offset, _CHUNK)
            if not batch:
                break
            store.apply(batch)
            applied += len(batch)
            offset = batch[-1].offset + 1
    return applied


def seed_book(book: Book, store: JobStore, partitions: frozenset[int], total: int) -> None:
    """Load schedules and open jobs of ``partitions`` from the (caught-up) store."""
    for row in store.schedules():
        p = partition_for(row.command_id, total)
        if p not in partitions or row.removed or row.cron is None:
            continue
        entry = book.entry(row.command_id, p)
        entry.schedule = ScheduleSet(
            event_id="seeded",
            pod="",
            ts=row.since or _EPOCH,
            command_id=row.command_id,
            cron=row.cron,
            params=row.params,
            timezone=row.timezone,
            paused=row.paused,
            source=row.source,
        )
    for entry in book.commands.values():
        if entry.partition in partitions:
            planned = [
                j for j in store.jobs(command_id=entry.command_id) if j.trigger == "schedule"
            ]
            if planned:
                entry.horizon = planned[-1].scheduled_at
    for status in _OPEN:
        for job in store.jobs(status=status):
            p = partition_for(job.command_id, total)
            if p in partitions:
                book.apply_job(job, p)
