"""``EmbeddedLog``: the EventLog port on local files, for one pod without Kafka.

Layout under the data dir::

    LOCK               flock'ed by the one writer (pod or compaction); says pid and pod id
    log/meta.json      {"format": 1, "partitions": N}, written once on create
    log/00000.log ...  one append-only file per partition (format: ``segment``)
    inbox/*.req        schedule-change requests waiting for the pod (``inbox``)
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from schedulerx.backends.embedded.inbox import InboxConsumer, submit
from schedulerx.backends.embedded.lock import DirLock
from schedulerx.backends.embedded.partition import PartitionView, partition_path
from schedulerx.backends.embedded.session import EmbeddedSession
from schedulerx.backends.embedded.writer import PartitionWriter, fsync_dir
from schedulerx.ports.event_log import LogError, Record

DEFAULT_PARTITIONS: Final = 12
_FORMAT: Final = 1
_DAY_MS: Final = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class CompactionStats:
    """What ``EmbeddedLog.compact`` did, summed over the partitions it compacted."""

    partitions: tuple[int, ...]
    records_before: int
    records_after: int
    tombstones_removed: int
    bytes_before: int
    bytes_after: int


class EmbeddedReader:
    """Implements LogReader on the partition files; usable from any process, never locks.

    Returns only whole, CRC-valid records of finished appends; picks up records appended
    since the previous call, and follows compaction (a replaced file is reopened; offsets
    are kept, so reading on from an offset just works). Thread-safe.
    """

    def __init__(self, log_dir: Path, partitions: int) -> None:
        self._views = [PartitionView(partition_path(log_dir, p), p) for p in range(partitions)]
        self._mutex = threading.Lock()

    @property
    def partitions(self) -> int:
        """How many partitions the log has."""
        return len(self._views)

    @property
    def corrupt_records(self) -> int:
        """Corrupt records skipped so far (each also logged on ``schedulerx.log``)."""
        return sum(v.corrupt_records for v in self._views)

    def bounds(self, partition: int) -> tuple[int, int]:
        """(first offset still stored, next offset to be written)."""
        with self._mutex:
            return self._view(partition).bounds()

    def read(self, partition: int, offset: int, max_records: int = 1000) -> list[Record]:
        """Committed records with offset >= ``offset``, in order, at most ``max_records``."""
        with self._mutex:
            return self._view(partition).read(offset, max_records)

    def close(self) -> None:
        """Close the files (a later call reopens them)."""
        with self._mutex:
            for view in self._views:
                view.close()

    def _view(self, partition: int) -> PartitionView:
        if not 0 <= partition < len(self._views):
            raise ValueError(f"partition {partition} out of range 0..{len(self._views) - 1}")
        return self._views[partition]


class EmbeddedLog:
    """The embedded EventLog: partitioned, offset-addressed, durable, compactable.

    ``partitions`` None adopts the stored count (12 when the log is created); a count that
    differs from the stored one raises LogError. ``create`` False raises LogError when the
    data dir holds no log (for read-only tools such as the CLI).
    """

    def __init__(
        self, data_dir: Path | str, partitions: int | None = None, *, create: bool = True
    ) -> None:
        self._data_dir = Path(data_dir)
        self._log_dir = self._data_dir / "log"
        self._partitions = _open_meta(self._data_dir, partitions, create)
        self._mutex = threading.Lock()
        self._session: EmbeddedSession | None = None

    @property
    def partitions(self) -> int:
        """How many partitions the log has."""
        return self._partitions

    @property
    def exclusive(self) -> bool:
        """Always True: the data-dir lock admits one pod."""
        return True

    @property
    def data_dir(self) -> Path:
        """The data dir."""
        return self._data_dir

    def reader(self) -> EmbeddedReader:
        """A reader of committed records; works in other processes too (e.g. the CLI)."""
        return EmbeddedReader(self._log_dir, self._partitions)

    def join(self, pod_id: str) -> EmbeddedSession:
        """Become the data dir's one writer, owning every partition.

        Raises LogLocked naming the holder if another session (in any process) has the dir.
        """
        with self._mutex:
            lock = DirLock.acquire(self._data_dir, pod_id)
            try:
                writers = self._open_writers(range(self._partitions))
                inbox_dir = self._data_dir / "inbox"
                inbox_dir.mkdir(exist_ok=True)
            except BaseException:
                lock.release()
                raise
            inbox = InboxConsumer(inbox_dir)
            inbox.remove_stale_temp_files(older_than_s=3600)
            self._session = EmbeddedSession(pod_id, writers, lock, inbox, self._session_closed)
            return self._session

    def submit(self, command_id: str, request: bytes) -> None:
        """Hand ``request`` to the pod through ``data_dir/inbox`` (any process, no lock).

        The file is complete when it appears (temp file, fsync, rename); the pod's session
        returns requests in submission order (by wall-clock time of submission).
        ``command_id`` is not needed here: the one pod owns every partition.
        """
        submit(self._data_dir / "inbox", request)

    def compact(
        self,
        partition: int | None = None,
        tombstone_retention_ms: int = _DAY_MS,
        now_ms: int | None = None,
    ) -> CompactionStats:
        """Compact one partition (None: all) the way Kafka does, keeping offsets.

        Keeps the latest record per key; a tombstone stays until it is older than
        ``tombstone_retention_ms`` (by its timestamp, against ``now_ms``, default now), then
        goes, and its key with it. Runs under the session of this object if one is open,
        else takes the data-dir lock for the duration: LogLocked if another process has it.
        """
        targets = range(self._partitions) if partition is None else [partition]
        if partition is not None and not 0 <= partition < self._partitions:
            raise ValueError(f"partition {partition} out of range 0..{self._partitions - 1}")
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        with self._mutex:
            session = self._session
            if session is not None and not session.closed:
                return _compact_all(
                    [session.writers[p] for p in targets], tombstone_retention_ms, now
                )
            lock = DirLock.acquire(self._data_dir, None)
            try:
                writers = self._open_writers(targets)
                try:
                    return _compact_all(writers, tombstone_retention_ms, now)
                finally:
                    for writer in writers:
                        writer.close()
            finally:
                lock.release()

    def close(self) -> None:
        """Close the open session, if any (releasing the data-dir lock)."""
        session = self._session
        if session is not None:
            session.close()

    def _open_writers(self, partitions: range | list[int]) -> list[PartitionWriter]:
        writers: list[PartitionWriter] = []
        try:
            for p in partitions:
                writers.append(PartitionWriter(partition_path(self._log_dir, p), p))
        except BaseException:
            for writer in writers:
                writer.close()
            raise
        return writers

    def _session_closed(self, session: EmbeddedSession) -> None:
        with self._mutex:
            if self._session is session:
                self._session = None


def _compact_all(writers: list[PartitionWriter], retention_ms: int, now_ms: int) -> CompactionStats:
    done = [w.compact(retention_ms, now_ms) for w in writers]
    return CompactionStats(
        partitions=tuple(w.partition for w in writers),
        records_before=sum(d.records_before for d in done),
        records_after=sum(d.records_after for d in done),
        tombstones_removed=sum(d.tombstones_removed for d in done),
        bytes_before=sum(d.bytes_before for d in done),
        bytes_after=sum(d.bytes_after for d in done),
    )


def _open_meta(data_dir: Path, partitions: int | None, create: bool) -> int:
    """The partition count stored under ``data_dir/log``, storing it first if it is new."""
    path = data_dir / "log" / "meta.json"
    if partitions is not None and partitions < 1:
        raise LogError(f"partitions must be at least 1, not {partitions}")
    stored = _read_meta(path)
    if stored is None:
        if not create:
            raise LogError(f"no embedded log in {data_dir} ({path} is missing); check --data-dir")
        stored = _write_meta(path, DEFAULT_PARTITIONS if partitions is None else partitions)
    if partitions is not None and partitions != stored:
        raise LogError(
            f"the log in {data_dir} has {stored} partitions, not {partitions};"
            " a log's partition count cannot change (use another --data-dir)"
        )
    return stored


def _read_meta(path: Path) -> int | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc.strerror}") from None
    try:
        meta = json.loads(raw)
        fmt, count = meta["format"], meta["partitions"]
    except (ValueError, TypeError, KeyError):
        raise LogError(f"{path} is not a schedulerx log metadata file") from None
    if fmt != _FORMAT or not isinstance(count, int) or count < 1:
        raise LogError(f"{path} has format {fmt!r}; this version reads format {_FORMAT}")
    return count


def _write_meta(path: Path, partitions: int) -> int:
    """Store ``partitions`` unless another process stored a count first; the stored count."""
    tmp = path.with_name(f".meta.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(json.dumps({"format": _FORMAT, "partitions": partitions}).encode())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # unlike rename, never replaces a count stored meanwhile
        fsync_dir(path.parent)
    except OSError as exc:
        raise LogError(f"cannot create the log in {path.parent}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    stored = _read_meta(path)
    assert stored is not None
    return stored
