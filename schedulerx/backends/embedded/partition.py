"""One partition file seen by a reader (``PartitionView``) or by the single writer.

A view opens the file read-only, indexes offset -> file position of committed records, and
on each use picks up what was appended since (the file grew) or follows a compaction (the
path now names another inode). It never returns bytes whose CRC does not check out.
"""

from __future__ import annotations

import logging
import os
from array import array
from bisect import bisect_left
from pathlib import Path
from typing import Final

from schedulerx.backends.embedded.segment import (
    FILE_HEADER_SIZE,
    HEADER_SIZE,
    ScanResult,
    decode_file_header,
    decode_header,
    decode_payload,
    scan,
)
from schedulerx.ports.event_log import Record

logger: Final = logging.getLogger("schedulerx.log")

_MAX_READ_BYTES: Final = 16 * 1024 * 1024
"""A read stops early (returns fewer records) rather than buffer more than this at once."""


def partition_path(log_dir: Path, partition: int) -> Path:
    """The file of ``partition`` under ``log_dir``."""
    return log_dir / f"{partition:05d}.log"


class PartitionIndex:
    """Offsets of committed records in one file, with their positions; offsets increase."""

    def __init__(self, floor: int = 0) -> None:
        self.offsets: array[int] = array("q")
        self.positions: array[int] = array("q")
        self.ends: array[int] = array("q")
        self.floor = floor
        """Next offset recorded in the file header (survives compaction of the last record)."""
        self.scanned = FILE_HEADER_SIZE
        """File position up to which committed records are indexed."""

    @property
    def last_offset(self) -> int:
        """The highest indexed offset, or -1."""
        return self.offsets[-1] if self.offsets else -1

    def bounds(self) -> tuple[int, int]:
        """(first stored offset, next offset)."""
        nxt = max(self.floor, self.last_offset + 1)
        return (self.offsets[0] if self.offsets else nxt), nxt

    def add(self, res: ScanResult) -> None:
        """Take the committed records ``res`` found after ``scanned``."""
        self.offsets.extend(res.offsets)
        self.positions.extend(res.positions)
        self.ends.extend(res.ends)
        self.scanned = res.committed_end


def warn_corrupt(partition: int, position: int, path: Path) -> None:
    """Log that a corrupt record was skipped."""
    logger.warning(
        "partition %d: skipped corrupt record at file position %d of %s", partition, position, path
    )


def read_indexed(
    fd: int, index: PartitionIndex, partition: int, offset: int, max_records: int, path: Path
) -> tuple[list[Record], int, int]:
    """(records with offset >= ``offset``, how many turned out corrupt, offset to read next).

    Returns at most ``max_records`` records, fewer if they are large; ``offset to read next``
    is past every record examined (also past corrupt ones).
    """
    i = bisect_left(index.offsets, offset)
    j = min(len(index.offsets), i + max(0, max_records))
    if i >= j:
        return [], 0, offset
    start = index.positions[i]
    # Several records per pread, but bounded: the first record always fits.
    while j > i + 1 and index.ends[j - 1] - start > _MAX_READ_BYTES:
        j = i + max(1, (j - i) // 2)
    data = memoryview(os.pread(fd, index.ends[j - 1] - start, start))
    records: list[Record] = []
    bad = 0
    for k in range(i, j):
        at = index.positions[k] - start
        header = decode_header(data, at)
        record = None
        if header is not None and header.offset == index.offsets[k]:
            payload = data[at + HEADER_SIZE : at + header.size]
            record = decode_payload(partition, header, payload)
        if record is None:  # went bad on disk after it was indexed
            bad += 1
            warn_corrupt(partition, index.positions[k], path)
            continue
        records.append(record)
    return records, bad, index.offsets[j - 1] + 1


class PartitionView:
    """Read-only, self-refreshing view of one partition file (safe while a writer appends)."""

    def __init__(self, path: Path, partition: int) -> None:
        self.path = path
        self.partition = partition
        self.corrupt_records = 0
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None
        self._index = PartitionIndex()

    def refresh(self) -> None:
        """Index records committed since the last call; reopen if the file was replaced."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._reset(None)
            return
        if self._fd is None or (st.st_dev, st.st_ino) != self._ident:
            self._reset(os.open(self.path, os.O_RDONLY))
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        if size < self._index.scanned:  # truncated under us (should not happen): start over
            self._reset(self._fd)
        if size > self._index.scanned:
            res = scan(self._fd, self._index.scanned, size, self._index.last_offset)
            self._note_corrupt(res)
            self._index.add(res)

    def bounds(self) -> tuple[int, int]:
        """(first stored offset, next offset) of committed records."""
        self.refresh()
        return self._index.bounds()

    def read(self, offset: int, max_records: int) -> list[Record]:
        """Committed records with offset >= ``offset``, at most ``max_records``."""
        self.refresh()
        if self._fd is None:
            return []
        records, bad, _ = read_indexed(
            self._fd, self._index, self.partition, offset, max_records, self.path
        )
        self.corrupt_records += bad
        return records

    def close(self) -> None:
        """Close the file."""
        self._reset(None)

    def _reset(self, fd: int | None) -> None:
        if self._fd is not None and self._fd != fd:
            os.close(self._fd)
        self._fd = fd
        self._ident = None
        self._index = PartitionIndex()
        if fd is not None:
            st = os.fstat(fd)
            self._ident = (st.st_dev, st.st_ino)
            floor = decode_file_header(os.pread(fd, FILE_HEADER_SIZE, 0))
            if floor is None:
                logger.warning("partition %d: bad file header in %s", self.partition, self.path)
            self._index.floor = floor or 0

    def _note_corrupt(self, res: ScanResult) -> None:
        for pos in res.corrupt:
            warn_corrupt(self.partition, pos, self.path)
        self.corrupt_records += len(res.corrupt)
