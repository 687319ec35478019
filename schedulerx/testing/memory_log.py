"""An in-memory event log for tests of code that uses schedulerx (one pod, no disk).

It implements the EventLog port exactly as the contract suite expects: offsets from 0,
one session owning every partition, requests delivered through ``poll``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from schedulerx.ports.event_log import (
    Item,
    LogError,
    LogLocked,
    NotOwner,
    Poll,
    Record,
    append_each,
)


class MemoryLog:
    """A partitioned log held in lists. Thread-safe; at most one session at a time.

    ``exclusive=False`` makes it pretend to be shared by a group (as Kafka), and ``revoke`` /
    ``give_back`` move partitions away from the session and back as a rebalance would.
    ``submitted`` keeps every request ever submitted, in order.
    """

    def __init__(self, partitions: int = 12, *, exclusive: bool = True):
        self._parts: list[list[Record]] = [[] for _ in range(partitions)]
        self._requests: list[bytes] = []
        self._cond = threading.Condition()
        self._session: MemorySession | None = None
        self._exclusive = exclusive
        self.submitted: list[bytes] = []
        self._taken: set[int] = set()
        self._to_revoke: set[int] = set()
        self._to_assign: set[int] = set()

    @property
    def partitions(self) -> int:
        """How many partitions."""
        return len(self._parts)

    @property
    def exclusive(self) -> bool:
        """As constructed (default True: one session at a time)."""
        return self._exclusive

    def revoke(self, partitions: set[int]) -> None:
        """Take ``partitions`` from the session (its next poll reports them revoked)."""
        with self._cond:
            self._taken |= partitions
            self._to_revoke |= partitions
            self._to_assign -= partitions
            self._cond.notify_all()

    def give_back(self, partitions: set[int]) -> None:
        """Assign ``partitions`` to the session again (its next poll reports them)."""
        with self._cond:
            self._taken -= partitions
            self._to_assign |= partitions  # after a pending revoke, in a later poll
            self._cond.notify_all()

    def reader(self) -> MemoryReader:
        """A reader of everything appended so far (and later)."""
        return MemoryReader(self)

    def join(self, pod_id: str) -> MemorySession:
        """The one session; LogLocked if another is open."""
        with self._cond:
            if self._session is not None and not self._session.closed:
                raise LogLocked(f"memory log is in use by pod {self._session.pod_id!r}")
            self._session = MemorySession(self, pod_id)
            return self._session

    def submit(self, command_id: str, request: bytes) -> None:
        """Queue a request for the session's next poll."""
        with self._cond:
            self._requests.append(request)
            self.submitted.append(request)
            self._cond.notify_all()

    def close(self) -> None:
        """Nothing to release."""

    def append(self, partition: int, items: Sequence[Item]) -> list[int]:
        """Append directly (tests that inject records, e.g. poison)."""
        with self._cond:
            part = self._parts[partition]
            start = len(part)
            now = int(time.time() * 1000)
            part.extend(Record(partition, start + i, k, v, now) for i, (k, v) in enumerate(items))
            self._cond.notify_all()
            return list(range(start, start + len(items)))

    def records(self, partition: int) -> list[Record]:
        """A copy of one partition's records."""
        with self._cond:
            return list(self._parts[partition])


class MemoryReader:
    """Reads a MemoryLog."""

    def __init__(self, log: MemoryLog):
        self._log = log

    @property
    def partitions(self) -> int:
        """How many partitions."""
        return self._log.partitions

    def bounds(self, partition: int) -> tuple[int, int]:
        """(0, next offset)."""
        return 0, len(self._log.records(partition))

    def read(self, partition: int, offset: int, max_records: int = 1000) -> list[Record]:
        """Records from ``offset`` on."""
        return self._log.records(partition)[offset : offset + max_records]

    def close(self) -> None:
        """Nothing to release."""


class MemorySession:
    """Owns every partition of its MemoryLog until closed."""

    def __init__(self, log: MemoryLog, pod_id: str):
        self._log = log
        self.pod_id = pod_id
        self.closed = False
        self._first = True
        self._seen = [len(log.records(p)) for p in range(log.partitions)]

    def poll(self, timeout_s: float) -> Poll:
        """New records (own appends included), requests, and the first assignment."""
        log = self._log
        with log._cond:
            moved = log._to_revoke or log._to_assign
            if not self._first and not log._requests and not self._fresh() and not moved:
                log._cond.wait(timeout_s)
            records = []
            for p in range(log.partitions):
                part = log._parts[p]
                records.extend(part[self._seen[p] :])
                self._seen[p] = len(part)
            requests, log._requests = log._requests, []
            revoked, log._to_revoke = frozenset(log._to_revoke), set()
            # A partition revoked and given back since the last poll: revoked now, assigned
            # in the next one (as a group would: a rebalance never does both at once).
            assigned = frozenset(log._to_assign - revoked)
            log._to_assign &= set(revoked)
            if self._first:
                assigned = frozenset(range(log.partitions)) - log._taken
        self._first = False
        return Poll(records=records, assigned=assigned, revoked=revoked, requests=requests)

    def _fresh(self) -> bool:
        return any(len(self._log._parts[p]) > self._seen[p] for p in range(self._log.partitions))

    def owned(self) -> frozenset[int]:
        """Every partition not taken away, while open."""
        if self.closed:
            return frozenset()
        with self._log._cond:
            return frozenset(range(self._log.partitions)) - self._log._taken

    def follow(self, positions: Mapping[int, int]) -> None:
        """Nothing to do: polls return every partition already."""

    def append_many(self, batches: Mapping[int, Sequence[Item]]) -> dict[int, list[int] | LogError]:
        """Each batch with ``append``, one after another."""
        return append_each(self, batches)

    def append(self, partition: int, items: Sequence[Item]) -> list[int]:
        """Append; NotOwner once closed."""
        if self.closed:
            raise NotOwner(f"session of {self.pod_id} is closed")
        if partition not in self.owned():
            raise NotOwner(f"partition {partition} was taken from {self.pod_id}")
        return self._log.append(partition, items)

    def close(self) -> None:
        """Give up every partition."""
        self.closed = True
