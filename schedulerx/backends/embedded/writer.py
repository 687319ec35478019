"""The single writer of one partition file: recovery on open, durable appends, compaction.

Only the holder of the data-dir lock creates a ``PartitionWriter``. Its methods are
thread-safe (one lock per partition).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from schedulerx.backends.embedded.partition import (
    PartitionIndex,
    logger,
    read_indexed,
    warn_corrupt,
)
from schedulerx.backends.embedded.segment import (
    FILE_HEADER_SIZE,
    FLAG_BATCH_END,
    MAX_RECORD_BYTES,
    decode_file_header,
    encode_file_header,
    encode_record,
    scan,
)
from schedulerx.ports.event_log import Item, LogError, NotOwner, Record


def fsync_dir(path: Path) -> None:
    """Make a rename or file creation in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc).splitlines()[0]


@dataclass(frozen=True, slots=True)
class PartitionCompaction:
    """What compacting one partition did."""

    records_before: int
    records_after: int
    tombstones_removed: int
    bytes_before: int
    bytes_after: int


class PartitionWriter:
    """Appends to one partition file; durable (fsync) before ``append`` returns.

    On open, a torn tail (an unfinished last batch, or bytes that are not valid records and
    have no valid record after them) is truncated: an acknowledged append was fsynced whole,
    so only unacknowledged data goes. Corrupt records in the middle are skipped, counted and
    logged, and left in place (compaction drops them).
    """

    def __init__(self, path: Path, partition: int) -> None:
        self.path = path
        self.partition = partition
        self.lock = threading.Lock()
        self.corrupt_records = 0
        self._closed = False
        self._broken: str | None = None
        self._index = PartitionIndex()
        self._fd = self._open()
        self._end = self._index.scanned

    @property
    def next_offset(self) -> int:
        """The offset the next appended record gets."""
        with self.lock:
            return self._index.bounds()[1]

    def bounds(self) -> tuple[int, int]:
        """(first stored offset, next offset)."""
        with self.lock:
            return self._index.bounds()

    def read_batch(self, offset: int, max_records: int) -> tuple[list[Record], int]:
        """(committed records with offset >= ``offset``, at most ``max_records``; the offset
        to read next, past every record examined, corrupt ones included)."""
        with self.lock:
            if self._closed:
                return [], offset
            records, bad, resume = read_indexed(
                self._fd, self._index, self.partition, offset, max_records, self.path
            )
            self.corrupt_records += bad
            return records, resume

    def append(self, items: Sequence[Item], timestamp_ms: int) -> list[int]:
        """Write ``items`` as one batch and fsync; their offsets. All or nothing visible."""
        if not items:
            return []
        with self.lock:
            if self._closed:
                raise NotOwner(f"partition {self.partition} is not owned: the session is closed")
            if self._broken is not None:
                raise LogError(f"cannot append to partition {self.partition}: {self._broken}")
            first = self._index.bounds()[1]
            chunks = []
            for i, (key, value) in enumerate(items):
                size = len(key) + (0 if value is None else len(value))
                if size > MAX_RECORD_BYTES:
                    raise LogError(
                        f"cannot append to partition {self.partition}: a record of {size} bytes"
                        f" exceeds the {MAX_RECORD_BYTES} byte limit"
                    )
                flags = FLAG_BATCH_END if i == len(items) - 1 else 0
                chunks.append(encode_record(first + i, timestamp_ms, key, value, flags))
            start = self._end
            self._write(b"".join(chunks), start)
            pos = start
            for i, chunk in enumerate(chunks):
                self._index.offsets.append(first + i)
                self._index.positions.append(pos)
                pos += len(chunk)
                self._index.ends.append(pos)
            self._end = self._index.scanned = pos
            return list(range(first, first + len(items)))

    def compact(self, tombstone_retention_ms: int, now_ms: int) -> PartitionCompaction:
        """Keep the latest record per key (offsets kept); drop tombstones older than retention.

        The survivors go to a temp file that atomically replaces the partition file; the new
        file header keeps the next offset, so it never goes back.
        """
        with self.lock:
            if self._closed:
                raise NotOwner(f"partition {self.partition} is not owned: the session is closed")
            latest: dict[bytes, int] = {}
            for record in self._records():
                latest[record.key] = record.offset
            before = len(self._index.offsets)
            bytes_before = self._end
            horizon = now_ms - tombstone_retention_ms
            kept = removed_tombstones = 0
            tmp = self.path.with_name(f".{self.path.name}.compact")
            try:
                with open(tmp, "wb") as out:
                    out.write(encode_file_header(self._index.bounds()[1]))
                    for r in self._records():
                        if latest.get(r.key) != r.offset:
                            continue
                        if r.value is None and r.timestamp_ms < horizon:
                            removed_tombstones += 1
                            continue
                        out.write(
                            encode_record(r.offset, r.timestamp_ms, r.key, r.value, FLAG_BATCH_END)
                        )
                        kept += 1
                    out.flush()
                    os.fsync(out.fileno())
                    bytes_after = out.tell()
                if bytes_after == bytes_before and kept == before:
                    tmp.unlink()  # nothing to drop: keep the file (and readers' indexes)
                else:
                    os.replace(tmp, self.path)
                    fsync_dir(self.path.parent)
                    os.close(self._fd)
                    self._index = PartitionIndex()
                    self._fd = self._open()
                    self._end = self._index.scanned
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise LogError(
                    f"cannot compact partition {self.partition}: {_reason(exc)}"
                ) from None
            return PartitionCompaction(before, kept, removed_tombstones, bytes_before, bytes_after)

    def close(self) -> None:
        """Close the file; later appends raise NotOwner."""
        with self.lock:
            if not self._closed:
                self._closed = True
                os.close(self._fd)

    def _records(self) -> Iterator[Record]:
        offset = 0
        while offset <= self._index.last_offset:
            records, bad, offset = read_indexed(
                self._fd, self._index, self.partition, offset, 1000, self.path
            )
            self.corrupt_records += bad
            yield from records

    def _write(self, data: bytes, start: int) -> None:
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                n = os.pwrite(self._fd, view[written:], start + written)
                if n <= 0:
                    raise OSError(28, os.strerror(28))  # ENOSPC: no progress
                written += n
            os.fsync(self._fd)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, start)
                os.fsync(self._fd)
            except OSError as undo:
                self._broken = f"a failed append could not be undone ({_reason(undo)})"
            raise LogError(f"cannot append to partition {self.partition}: {_reason(exc)}") from None

    def _open(self) -> int:
        """Open (creating if needed) the file, index it and truncate a torn tail."""
        try:
            if not self.path.exists() or self.path.stat().st_size < FILE_HEADER_SIZE:
                self._create()
            fd = os.open(self.path, os.O_RDWR)
            floor = decode_file_header(os.pread(fd, FILE_HEADER_SIZE, 0))
            if floor is None:
                logger.warning("partition %d: bad file header in %s", self.partition, self.path)
            self._index.floor = floor or 0
            size = os.fstat(fd).st_size
            res = scan(fd, FILE_HEADER_SIZE, size, -1)
            for pos in res.corrupt:
                warn_corrupt(self.partition, pos, self.path)
            self.corrupt_records += len(res.corrupt)
            self._index.add(res)
            if res.torn and size > res.committed_end:
                logger.warning(
                    "partition %d: dropped %d bytes of an unfinished append at the end of %s",
                    self.partition,
                    size - res.committed_end,
                    self.path,
                )
                os.ftruncate(fd, res.committed_end)
                os.fsync(fd)
            return fd
        except OSError as exc:
            raise LogError(f"cannot open {self.path}: {_reason(exc)}") from None

    def _create(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.new")
        with open(tmp, "wb") as out:
            out.write(encode_file_header(0))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
