"""ProjectionStore: the read models in RocksDB (rocksdict), checkpointed with the data.

One writer (the pod) opens the store as primary; any number of readers in other processes
(the CLI) open it as RocksDB *secondaries*, which never take the writer's lock, and call
``refresh`` to see what the writer has committed since. Every ``apply`` is one WriteBatch
holding the view rows, the new per-partition offsets and the cumulative counters, so after a
crash the store resumes exactly where its rows end. Key layout: ``projections.keys``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Final

from rocksdict import AccessType, Options, Rdict, ReadOptions, WriteBatch

from projections import keys
from projections._tally import Tally
from projections.apply import DeleteJob, DeleteSchedule, PutJob, PutSchedule, Verdict, apply_record
from projections.model import (
    ApplyStats,
    ProjectionError,
    ScheduleState,
    StoreLocked,
    check_query,
)
from schedulerx.domain.job import Job, JobStatus
from schedulerx.ports.event_log import Record

log: Final = logging.getLogger("schedulerx.projections")


_WRITE_BUFFER = 8 * 2**20
"""Memtable size: RocksDB's 64 MiB default costs a 10,000-command pod more resident memory
than all its state; projection rows are small and written in batches, so 8 MiB flushes
seldom enough."""


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(_WRITE_BUFFER)
    return options


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ProjectionStore:
    """Jobs (by id, command, status, time) and schedules, persisted under ``path``."""

    FORMAT_VERSION: ClassVar[int] = 1
    """Bumped whenever the key layout or a stored value changes; a mismatch rebuilds."""

    def __init__(self, path: Path, partitions: int) -> None:
        """Open (creating it if needed) the store at ``path`` as its only writer.

        If the store holds another format version or another partition count, it is wiped
        and starts empty (every ``next_offset`` is 0: rebuild from the log). Raises
        StoreLocked if another process writes it, ProjectionError if it cannot be opened.
        """
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        self._path = Path(path)
        self._writer = True
        self._closed = False
        self._secondary_dir: Path | None = None
        try:
            self._path.mkdir(parents=True, exist_ok=True)
            self._db = Rdict(str(self._path), _options())
        except Exception as exc:
            message = _one_line(exc)
            if "lock" in message.lower():
                raise StoreLocked(
                    f"projection store {self._path} is in use by another process"
                ) from None
            raise ProjectionError(f"cannot open projection store {self._path}: {message}") from None
        self._partitions = partitions
        stored = (self._meta_int(keys.META_FORMAT), self._meta_int(keys.META_PARTITIONS))
        if stored != (self.FORMAT_VERSION, partitions):
            if stored != (None, None):
                log.warning(
                    "rebuilding projection store %s: format %s, %s partitions -> "
                    "format %d, %d partitions",
                    self._path,
                    stored[0],
                    stored[1],
                    self.FORMAT_VERSION,
                    partitions,
                )
            self.reset()

    @classmethod
    def open_reader(cls, path: Path) -> ProjectionStore:
        """A read-only view of the store at ``path``, safe while a writer (another process)
        has it open; call ``refresh`` to see newer writes.

        Raises ProjectionError (one line) if there is no store at ``path`` or it has another
        format version.
        """
        path = Path(path)
        if not (path / "CURRENT").is_file():
            raise ProjectionError(f"no projection store at {path}")
        store = cls.__new__(cls)
        store._path = path
        store._writer = False
        store._closed = False
        store._secondary_dir = Path(tempfile.mkdtemp(prefix="schedulerx-projection-reader-"))
        try:
            store._db = Rdict(
                str(path), _options(), access_type=AccessType.secondary(str(store._secondary_dir))
            )
        except Exception as exc:
            shutil.rmtree(store._secondary_dir, ignore_errors=True)
            raise ProjectionError(
                f"cannot read projection store {path}: {_one_line(exc)}"
            ) from None
        version = store._meta_int(keys.META_FORMAT)
        if version is not None and version != cls.FORMAT_VERSION:
            store.close()
            raise ProjectionError(
                f"projection store {path} has format {version}, this version reads "
                f"{cls.FORMAT_VERSION}: run a pod of this version to rebuild it"
            )
        store._partitions = store._meta_int(keys.META_PARTITIONS) or 0
        return store

    @property
    def partitions(self) -> int:
        """The partition count the store was built for (0 for a reader of an empty store)."""
        return self._partitions

    def refresh(self) -> None:
        """Reader: catch up with what the writer has committed. Writer: nothing to do."""
        if not self._writer:
            try:
                self._db.try_catch_up_with_primary()
            except Exception as exc:
                raise ProjectionError(
                    f"cannot refresh projection store {self._path}: {_one_line(exc)}"
                ) from None
            self._partitions = self._meta_int(keys.META_PARTITIONS) or 0

    def apply(self, records: Sequence[Record]) -> ApplyStats:
        """Apply ``records`` (offset order per partition) in one atomic WriteBatch, together
        with the new next offsets and cumulative counters; return this call's counts.

        A record below its partition's ``next_offset`` was applied already and is ignored.
        A poison record or illegal transition is skipped, counted and logged.
        """
        self._check_writer()
        batch = _Batch(self._db)
        tally = Tally()
        nexts: dict[int, int] = {}
        for record in records:
            partition = record.partition
            if partition not in nexts:
                if not 0 <= partition < self._partitions:
                    raise ValueError(f"partition {partition} is outside 0..{self._partitions - 1}")
                nexts[partition] = self.next_offset(partition)
            if record.offset < nexts[partition]:
                continue
            outcome = apply_record(batch, record)
            if outcome.verdict is Verdict.CHANGED:
                batch.take(outcome.change)
            tally.add(record, outcome)
            nexts[partition] = record.offset + 1
        stats = tally.stats()
        if stats.records == 0:
            return stats
        writes = WriteBatch(raw_mode=True)
        batch.write_rows(writes)
        for partition, offset in nexts.items():
            writes.put(keys.offset_key(partition), keys.pack_int(offset))
        writes.put(keys.META_STATS, keys.encode_value(self.stats + stats))
        self._db.write(writes)
        return stats

    def next_offset(self, partition: int) -> int:
        """The next offset of ``partition`` to apply: last applied + 1, or 0."""
        raw = self._db.get(keys.offset_key(partition))
        return 0 if raw is None else keys.unpack_int(raw)

    def reset(self) -> None:
        """Wipe every row (offsets to 0, counters cleared) in one batch: rebuild from 0."""
        self._check_writer()
        writes = WriteBatch(raw_mode=True)
        writes.delete_range(b"", keys.END)
        writes.put(keys.META_FORMAT, keys.pack_int(self.FORMAT_VERSION))
        writes.put(keys.META_PARTITIONS, keys.pack_int(self._partitions))
        self._db.write(writes)

    def job(self, job_id: str) -> Job | None:
        """Job ``job_id``'s latest state, None if unknown (or deleted)."""
        raw = self._db.get(keys.job_row(job_id))
        return None if raw is None else keys.decode_job(raw)

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

        ``since <= scheduled_at < until`` (aware datetimes); at most ``limit`` jobs. One
        range scan of the index that matches the filters.
        """
        check_query(since, until, limit)
        if limit == 0:
            return []
        lower, upper = keys.scan_range(keys.index_prefix(command_id, status), since, until)
        if lower >= upper:
            return []
        read = ReadOptions()
        read.set_iterate_upper_bound(upper)
        decode = keys.decode_job
        found: list[Job] = []
        for raw in self._db.values(from_key=lower, read_opt=read):
            found.append(decode(raw))
            if limit is not None and len(found) >= limit:
                break
        return found

    def schedules(self) -> list[ScheduleState]:
        """Every command's schedule state, ordered by command id."""
        read = ReadOptions()
        read.set_iterate_upper_bound(keys.successor(keys.SCHEDULE))
        return [
            keys.decode_schedule(raw)
            for raw in self._db.values(from_key=keys.SCHEDULE, read_opt=read)
        ]

    def schedule(self, command_id: str) -> ScheduleState | None:
        """``command_id``'s schedule state, None if the log says nothing about it."""
        raw = self._db.get(keys.schedule_row(command_id))
        return None if raw is None else keys.decode_schedule(raw)

    @property
    def stats(self) -> ApplyStats:
        """Counts since the store was created or last reset (persisted)."""
        raw = self._db.get(keys.META_STATS)
        return ApplyStats() if raw is None else keys.decode_stats(raw)

    def close(self) -> None:
        """Release the store; a reader also removes its private secondary directory.

        Closing twice is harmless.
        """
        if self._closed:
            return
        self._closed = True
        self._db.close()
        if self._secondary_dir is not None:
            shutil.rmtree(self._secondary_dir, ignore_errors=True)
            self._secondary_dir = None

    def __enter__(self) -> ProjectionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _meta_int(self, key: bytes) -> int | None:
        raw = self._db.get(key)
        return None if raw is None else keys.unpack_int(raw)

    def _check_writer(self) -> None:
        if not self._writer:
            raise ProjectionError(f"projection store {self._path} is open read-only")


class _Batch:
    """The view as one ``apply`` sees it: stored rows overlaid with this batch's changes.

    Remembers each touched row's stored value, so ``write_rows`` replaces exactly the index
    rows of the stored state with those of the final state.
    """

    def __init__(self, db: Rdict) -> None:
        self._db = db
        self._jobs: dict[str, Job | None] = {}
        self._stored_jobs: dict[str, Job | None] = {}
        self._schedules: dict[str, ScheduleState | None] = {}
        self._changed_schedules: set[str] = set()

    def job(self, job_id: str) -> Job | None:
        if job_id not in self._jobs:
            raw = self._db.get(keys.job_row(job_id))
            stored = None if raw is None else keys.decode_job(raw)
            self._jobs[job_id] = self._stored_jobs[job_id] = stored
        return self._jobs[job_id]

    def schedule(self, command_id: str) -> ScheduleState | None:
        if command_id not in self._schedules:
            raw = self._db.get(keys.schedule_row(command_id))
            self._schedules[command_id] = None if raw is None else keys.decode_schedule(raw)
        return self._schedules[command_id]

    def take(self, change: PutJob | DeleteJob | PutSchedule | DeleteSchedule | None) -> None:
        """Record one row change (the rules read the row first, so its stored value is known)."""
        if isinstance(change, PutJob):
            self.job(change.job.id)
            self._jobs[change.job.id] = change.job
        elif isinstance(change, DeleteJob):
            self.job(change.job_id)
            self._jobs[change.job_id] = None
        elif isinstance(change, PutSchedule):
            self._schedules[change.state.command_id] = change.state
            self._changed_schedules.add(change.state.command_id)
        elif isinstance(change, DeleteSchedule):
            self._schedules[change.command_id] = None
            self._changed_schedules.add(change.command_id)

    def write_rows(self, writes: WriteBatch) -> None:
        """Add the net row changes of this batch to ``writes``."""
        for job_id, final in self._jobs.items():
            stored = self._stored_jobs[job_id]
            if final == stored:
                continue
            new_rows = () if final is None else keys.index_rows(final)
            if stored is not None:
                for key in keys.index_rows(stored):
                    if key not in new_rows:  # a row that stays is overwritten below
                        writes.delete(key)
            if final is None:
                writes.delete(keys.job_row(job_id))
                continue
            value = keys.encode_value(final)
            writes.put(keys.job_row(job_id), value)
            for key in new_rows:
                writes.put(key, value)
        for command_id in self._changed_schedules:
            state = self._schedules[command_id]
            if state is None:
                writes.delete(keys.schedule_row(command_id))
            else:
                writes.put(keys.schedule_row(command_id), keys.encode_value(state))
