"""History from the log itself: the event stream (replay) and the job list at a past time."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from schedulerx.api.wiring import BackendConfig, open_log
from schedulerx.domain.events import AnyEvent, JobChanged, PoisonRecord, decode
from schedulerx.domain.job import Job, JobStatus, command_of
from schedulerx.ports.event_log import LogReader, Record

Progress = Callable[[int, int], None]
"""``progress(done, total)``: records read so far of those to read (see ``replay``)."""

PROGRESS_EVERY: Final = 1000
"""``replay`` reports progress after every this many records read."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One record of the history: the event, or None for a tombstone or a poison record."""

    record: Record
    event: AnyEvent | None
    problem: str | None = None


def jobs_as_of(
    backend: BackendConfig,
    at: datetime,
    *,
    command_id: str | None = None,
    status: JobStatus | None = None,
    progress: Progress | None = None,
) -> list[Job]:
    """The job list as it stood at ``at``, rebuilt from the records written up to then.

    ``progress(done, total)`` is called while reading, as ``projections.sync.catch_up`` does.
    """
    from projections import MemoryView
    from projections.sync import catch_up

    log_ = open_log(backend, create=False)
    try:
        reader = log_.reader()
        try:
            view = MemoryView()
            catch_up(view, reader, until_ms=int(at.timestamp() * 1000), progress=progress)
        finally:
            reader.close()
    finally:
        log_.close()
    return view.jobs(command_id=command_id, status=status)


def _matches(entry: Entry, command_id: str | None, job_id: str | None) -> bool:
    key = entry.record.key.decode(errors="replace")
    if job_id is not None:
        return key == f"job/{job_id}"
    if command_id is None:
        return True
    if key.startswith("job/"):
        return command_of(key[4:]) == command_id
    if entry.event is not None and not isinstance(entry.event, JobChanged):
        return entry.event.command_id == command_id
    return key in (f"cmd/{command_id}",) or key.startswith(f"trigger/{command_id}/")


def _partition_iter(reader: LogReader, p: int, start: int) -> Iterator[Record]:
    offset = start
    while True:
        batch = reader.read(p, offset, 5000)
        if not batch:
            return
        yield from batch
        offset = batch[-1].offset + 1


def replay(
    backend: BackendConfig,
    *,
    command_id: str | None = None,
    job_id: str | None = None,
    follow: bool = False,
    poll_s: float = 0.5,
    progress: Progress | None = None,
) -> Iterator[Entry]:
    """Every record in time order (merged across partitions), filtered; ``follow`` waits
    for new records after the end, until interrupted.

    ``progress(done, total)`` reports the reading of the history that existed when replay
    started: ``total`` is the sum over partitions of (end offset - start offset) at that
    moment, ``done`` the part of it read so far (filtered-out records count: they were read).
    It is called after every ``PROGRESS_EVERY`` records read, and once with ``done == total``
    when that history is read (with ``follow``: before waiting for new records); never after.
    """
    log_ = open_log(backend, create=False)
    reader = log_.reader()
    try:
        bounds = {p: reader.bounds(p) for p in range(reader.partitions)}
        next_off = {p: start for p, (start, _) in bounds.items()}
        ends = {p: end for p, (_, end) in bounds.items()}
        total = sum(max(0, end - start) for start, end in bounds.values())
        done = 0
        since_report = 0
        while True:
            streams = [_partition_iter(reader, p, next_off[p]) for p in range(reader.partitions)]
            merged = heapq.merge(*streams, key=lambda r: (r.timestamp_ms, r.partition, r.offset))
            for record in merged:
                p = record.partition
                done += min(record.offset + 1, ends[p]) - min(next_off[p], ends[p])
                next_off[p] = record.offset + 1
                entry = _entry(record)
                if _matches(entry, command_id, job_id):
                    yield entry
                since_report += 1
                if progress is not None and since_report >= PROGRESS_EVERY:
                    since_report = 0
                    progress(done, total)
            if progress is not None:
                progress(total, total)  # gaps (compaction, Kafka markers) end below ``total``
                progress = None
            if not follow:
                return
            time.sleep(poll_s)
    finally:
        reader.close()
        log_.close()


def _entry(record: Record) -> Entry:
    if record.value is None:
        return Entry(record, None, "tombstone")
    try:
        return Entry(record, decode(record.value))
    except PoisonRecord as exc:
        return Entry(record, None, f"poison record: {exc}")
