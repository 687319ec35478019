"""Bringing a view up to date with the log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Final

from projections.protocols import Projection
from schedulerx.ports.event_log import LogReader, Record

log: Final = logging.getLogger("schedulerx.projections")

CHUNK: Final = 5000
"""Records read and applied per batch (one WriteBatch each in the RocksDB store)."""


def catch_up(
    store: Projection,
    reader: LogReader,
    partitions: Iterable[int] | None = None,
    *,
    until_ms: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = CHUNK,
) -> int:
    """Apply every committed record of ``partitions`` (default: all) that ``store`` lacks,
    up to each partition's end as of the call; return how many records were applied
    (poison and illegal ones included: the store moved past them).

    A store that no longer fits the log is reset and rebuilt from each partition's start,
    for *all* partitions: one whose ``next_offset`` is below the log start (records it
    never saw were deleted, so tombstones may be lost) or above the log end (another log).

    ``until_ms``: stop each partition at its first record with ``timestamp_ms > until_ms``
    (for ``jobs --as-of``; use a fresh MemoryView). ``progress(done, total)`` is called
    after each chunk, in offsets covered so far out of offsets to cover, and once at the end
    with ``done == total``.
    """
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    parts = list(range(reader.partitions)) if partitions is None else sorted(set(partitions))
    bounds = {p: reader.bounds(p) for p in parts}
    stale = [p for p in parts if _stale(store.next_offset(p), *bounds[p])]
    if stale:
        log.warning(
            "projection does not fit the log (partitions %s): rebuilding from the start",
            stale,
        )
        store.reset()
        parts = list(range(reader.partitions))
        bounds = {p: reader.bounds(p) for p in parts}
    starts = {p: max(store.next_offset(p), bounds[p][0]) for p in parts}
    total = sum(max(0, bounds[p][1] - starts[p]) for p in parts)
    done = applied = 0
    for p in parts:
        offset, end = starts[p], bounds[p][1]
        while offset < end:
            records = [r for r in reader.read(p, offset, max_records=chunk) if r.offset < end]
            cut = _cut(records, until_ms)
            if cut:
                store.apply(cut)
                applied += len(cut)
                done += cut[-1].offset + 1 - offset
                offset = cut[-1].offset + 1
                if progress is not None:
                    progress(done, total)
            if not records or len(cut) < len(records):
                break
        done += max(0, end - offset)
    if progress is not None:
        progress(total, total)
    return applied


def _stale(next_offset: int, start: int, end: int) -> bool:
    return next_offset > end or 0 < next_offset < start


def _cut(records: list[Record], until_ms: int | None) -> list[Record]:
    if until_ms is None:
        return records
    for i, record in enumerate(records):
        if record.timestamp_ms > until_ms:
            return records[:i]
    return records
