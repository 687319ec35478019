"""The pod's session on the embedded log: it owns every partition until ``close``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from schedulerx.backends.embedded.inbox import InboxConsumer
from schedulerx.backends.embedded.lock import DirLock
from schedulerx.backends.embedded.writer import PartitionWriter
from schedulerx.ports.event_log import Item, LogError, NotOwner, Poll, Record, append_each

MAX_POLL_RECORDS: Final = 10_000
"""At most this many records per poll; the rest come with the next poll (without waiting)."""
MAX_POLL_REQUESTS: Final = 1000
_INBOX_CHECK_S: Final = 0.05


class EmbeddedSession:
    """The single writer of a data dir (it holds ``data_dir/LOCK``); implements LogSession.

    ``poll`` returns every record appended since ``join``, *including this session's own
    appends* (it is the only writer, so that is all of them), in offset order per partition.
    Records from before ``join`` are not returned: catch up through ``EventLog.reader()`` up
    to ``start_offsets`` first. The engine applies records idempotently, so seeing its own
    writes again is harmless. The first poll reports every partition as ``assigned``; the
    first poll after ``close`` reports them ``revoked``.
    """

    def __init__(
        self,
        pod_id: str,
        writers: list[PartitionWriter],
        lock: DirLock,
        inbox: InboxConsumer,
        on_close: Callable[[EmbeddedSession], None],
    ) -> None:
        self._pod_id = pod_id
        self._writers = writers
        self._all = frozenset(range(len(writers)))
        self._lock = lock
        self._inbox = inbox
        self._on_close = on_close
        self._cursors = [w.next_offset for w in writers]
        self.start_offsets: tuple[int, ...] = tuple(self._cursors)
        """The next offset of each partition at ``join``: ``poll`` returns records from here."""
        self._changed = threading.Condition()
        self._generation = 0
        self._state = threading.Lock()
        self._poll_lock = threading.Lock()
        self._closed = False
        self._assigned_sent = False
        self._revoked_sent = False
        self._next_partition = 0

    @property
    def pod_id(self) -> str:
        """This pod's id."""
        return self._pod_id

    @property
    def writers(self) -> list[PartitionWriter]:
        """The partition writers (for compaction by the same EmbeddedLog)."""
        return self._writers

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    @property
    def corrupt_records(self) -> int:
        """Corrupt records skipped when the partition files were opened or read."""
        return sum(w.corrupt_records for w in self._writers)

    def owned(self) -> frozenset[int]:
        """Every partition until ``close``, then none."""
        return frozenset() if self._closed else self._all

    def follow(self, positions: Mapping[int, int]) -> None:
        """Nothing to do: this session owns every partition and polls return all of them."""

    def append_many(self, batches: Mapping[int, Sequence[Item]]) -> dict[int, list[int] | LogError]:
        """Each batch with ``append``, one after another."""
        return append_each(self, batches)

    def append(self, partition: int, items: Sequence[Item]) -> list[int]:
        """Append ``items`` as one batch; durable (fsynced) and visible when this returns.

        Raises NotOwner after ``close`` or for a partition out of range, LogError if the disk
        cannot take it (nothing of the batch stays).
        """
        if not 0 <= partition < len(self._writers):
            raise NotOwner(
                f"partition {partition} does not exist (partitions 0..{len(self._writers) - 1})"
            )
        if self._closed:
            raise NotOwner(f"partition {partition} is not owned: the session is closed")
        offsets = self._writers[partition].append(items, time.time_ns() // 1_000_000)
        if offsets:
            with self._changed:
                self._generation += 1
                self._changed.notify_all()
        return offsets

    def poll(self, timeout_s: float) -> Poll:
        """New records, requests and ownership changes; waits up to ``timeout_s`` for them.

        Deletes the requests returned by the previous poll first (at-least-once delivery).
        Returns as soon as something is there; the inbox is checked every 50 ms meanwhile.
        """
        with self._poll_lock:
            if self._closed:
                return self._poll_closed()
            self._inbox.forget_delivered()
            assigned = frozenset() if self._assigned_sent else self._all
            self._assigned_sent = True
            deadline = time.monotonic() + max(0.0, timeout_s)
            while True:
                with self._changed:
                    generation = self._generation
                records = self._collect()
                remaining = deadline - time.monotonic()
                if records or assigned or self._closed or remaining <= 0:
                    break
                if self._inbox.has_pending():
                    break
                with self._changed:
                    if generation == self._generation:
                        self._changed.wait(min(_INBOX_CHECK_S, remaining))
            requests = [] if self._closed else self._inbox.take(MAX_POLL_REQUESTS)
            return Poll(records=records, assigned=assigned, requests=requests)

    def close(self) -> None:
        """Release the lock and close the files; ``owned()`` is empty afterwards."""
        with self._state:
            if self._closed:
                return
            self._closed = True
        for writer in self._writers:
            writer.close()
        self._lock.release()
        with self._changed:
            self._changed.notify_all()
        self._on_close(self)

    def _poll_closed(self) -> Poll:
        if self._revoked_sent or not self._assigned_sent:
            return Poll()
        self._revoked_sent = True
        return Poll(revoked=self._all)

    def _collect(self) -> list[Record]:
        """Records past the cursors, at most MAX_POLL_RECORDS, partitions taken in turn."""
        records: list[Record] = []
        n = len(self._writers)
        for i in range(n):
            p = (self._next_partition + i) % n
            budget = MAX_POLL_RECORDS - len(records)
            if budget <= 0:
                self._next_partition = p  # start here next time, so no partition starves
                break
            writer = self._writers[p]
            if writer.next_offset > self._cursors[p]:
                batch, self._cursors[p] = writer.read_batch(self._cursors[p], budget)
                records.extend(batch)
        return records
