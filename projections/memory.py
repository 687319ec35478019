"""MemoryView: the read models in plain dicts, with the same rules as the RocksDB store.

Used for ``schedulerx jobs --as-of`` (a view rebuilt from the log up to a time) and as the
reference model in property tests. Nothing is persisted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from projections._tally import Tally
from projections.apply import DeleteJob, DeleteSchedule, PutJob, PutSchedule, Verdict, apply_record
from projections.model import ApplyStats, ScheduleState, check_query
from schedulerx.domain.job import Job, JobStatus
from schedulerx.ports.event_log import Record


class MemoryView:
    """Jobs and schedules of every command, built by applying records in offset order."""

    _jobs: dict[str, Job]
    _by_command: dict[str, set[str]]
    _schedules: dict[str, ScheduleState]
    _next: dict[int, int]
    _stats: ApplyStats

    def __init__(self) -> None:
        self.reset()

    def apply(self, records: Sequence[Record]) -> ApplyStats:
        """Apply ``records`` (offset order per partition) and return this call's counts.

        A record below the partition's ``next_offset`` was applied already and is ignored
        (not counted). A poison record or an illegal transition is skipped, counted and logged;
        the rest still applies.
        """
        tally = Tally()
        for record in records:
            if record.offset < self._next.get(record.partition, 0):
                continue
            outcome = apply_record(self, record)
            if outcome.verdict is Verdict.CHANGED:
                self._take(outcome.change)
            tally.add(record, outcome)
            self._next[record.partition] = record.offset + 1
        stats = tally.stats()
        self._stats = self._stats + stats
        return stats

    def next_offset(self, partition: int) -> int:
        """The next offset of ``partition`` to apply: the last applied + 1, or 0."""
        return self._next.get(partition, 0)

    def reset(self) -> None:
        """Forget everything (offsets back to 0, counters cleared)."""
        self._jobs = {}
        self._by_command = {}
        self._schedules = {}
        self._next = {}
        self._stats = ApplyStats()

    def job(self, job_id: str) -> Job | None:
        """Job ``job_id``'s latest state, None if unknown (or deleted)."""
        return self._jobs.get(job_id)

    def jobs(
        self,
        *,
        command_id: str | None = None,
        status: JobStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs matching every given filter, ordered by ``scheduled_at`` then id.

        ``since <= scheduled_at < until`` (aware datetimes); at most ``limit`` jobs.
        """
        check_query(since, until, limit)
        if command_id is None:
            pool: list[Job] = list(self._jobs.values())
        else:
            pool = [self._jobs[i] for i in self._by_command.get(command_id, ())]
        found = [
            j
            for j in pool
            if (status is None or j.status == status)
            and (since is None or j.scheduled_at >= since)
            and (until is None or j.scheduled_at < until)
        ]
        found.sort(key=lambda j: (j.scheduled_at, j.id))
        return found if limit is None else found[:limit]

    def schedules(self) -> list[ScheduleState]:
        """Every command's schedule state, ordered by command id."""
        return [self._schedules[c] for c in sorted(self._schedules)]

    def schedule(self, command_id: str) -> ScheduleState | None:
        """``command_id``'s schedule state, None if the log says nothing about it."""
        return self._schedules.get(command_id)

    @property
    def stats(self) -> ApplyStats:
        """Counts since creation (or the last reset)."""
        return self._stats

    def close(self) -> None:
        """Nothing to release (present so a MemoryView can stand in for a store)."""

    def _take(self, change: PutJob | DeleteJob | PutSchedule | DeleteSchedule | None) -> None:
        if isinstance(change, PutJob):
            job = change.job
            old = self._jobs.get(job.id)
            if old is not None and old.command_id != job.command_id:
                self._by_command[old.command_id].discard(job.id)
            self._jobs[job.id] = job
            self._by_command.setdefault(job.command_id, set()).add(job.id)
        elif isinstance(change, DeleteJob):
            gone = self._jobs.pop(change.job_id, None)
            if gone is not None:
                self._by_command[gone.command_id].discard(gone.id)
        elif isinstance(change, PutSchedule):
            self._schedules[change.state.command_id] = change.state
        elif isinstance(change, DeleteSchedule):
            self._schedules.pop(change.command_id, None)
