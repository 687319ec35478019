"""A pod acts on a newly owned partition only after catching up on it, even when reads fail.

The log is the in-memory fake with readers that fail on demand (as a Kafka reader does when
the broker goes away mid catch-up); the pod is real (loop, timers, executor, real clock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from projections import MemoryView
from schedulerx import JobStatus, Policy, StaticScheduleFetcher, current_job
from schedulerx.api.command import FunctionCommand, Registration
from schedulerx.domain.events import decode
from schedulerx.domain.requests import Request, encode_request
from schedulerx.engine.config import PodConfig
from schedulerx.engine.pod import Pod
from schedulerx.ports.event_log import LogError, Record
from schedulerx.testing.memory_log import MemoryLog, MemoryReader

pytestmark = pytest.mark.slow
EVERY_SECOND = "*/1 * * * * *"


class StallingReader(MemoryReader):
    """A MemoryReader whose reads raise while its log says so."""

    def __init__(self, log: StallingLog, number: int):
        super().__init__(log)
        self._stalling = log
        self._number = number

    def bounds(self, partition: int) -> tuple[int, int]:
        """(0, next offset), or LogError while the log stalls (as a broker away)."""
        self._stalling.check(self._number)
        return super().bounds(partition)

    def read(self, partition: int, offset: int, max_records: int = 1000) -> list[Record]:
        """Records from ``offset`` on, or LogError while the log stalls."""
        self._stalling.check(self._number)
        return super().read(partition, offset, max_records)


class StallingLog(MemoryLog):
    """A MemoryLog whose readers from the ``spare + 1``-th on fail their first ``reads``
    calls (bounds or read), all together (``stall``)."""

    def __init__(self, partitions: int):
        super().__init__(partitions)
        self._left = 0
        self._spare = 0
        self._readers = 0
        self._mutex = threading.Lock()
        self.last_failure = 0.0

    def stall(self, reads: int, spare: int) -> None:
        """Fail ``reads`` reads of the readers made after the next ``spare`` ones."""
        with self._mutex:
            self._left, self._spare = reads, self._readers + spare

    def check(self, number: int) -> None:
        """Raise LogError (and count it down) if reader ``number`` is to fail."""
        with self._mutex:
            if self._left > 0 and number > self._spare:
                self._left -= 1
                self.last_failure = time.time()
                raise LogError("fetch from the broker stalled")

    def reader(self) -> StallingReader:
        """A reader that fails while the log stalls."""
        with self._mutex:
            self._readers += 1
            return StallingReader(self, self._readers)


def _pod(log: MemoryLog, pod_id: str, runs: list[tuple[str, str]]) -> Pod:
    def record(_params: Sequence[str]) -> None:
        runs.append((pod_id, current_job().id))

    regs = {"a": Registration(FunctionCommand("a", record), Policy())}
    cfg = PodConfig(pod_id=pod_id, refresh_interval=timedelta(seconds=0.5))
    return Pod(log, MemoryView, regs, StaticScheduleFetcher({"a": (EVERY_SECOND, [])}), cfg)


def test_a_failed_catch_up_is_retried_and_nothing_is_done_before_it_succeeds() -> None:
    log = StallingLog(2)
    runs: list[tuple[str, str]] = []
    first = _pod(log, "p1", runs)
    first.start()
    time.sleep(2.5)
    first.stop()
    assert first.join(30)
    assert runs, "the first pod ran nothing"

    second = _pod(log, "p2", runs)
    # The start-up catch-up (the next reader) passes; the catch-up on assignment fails 3 times.
    log.stall(3, spare=1)
    asked = datetime.now(UTC).replace(microsecond=0)
    trigger = Request(
        command_id="a", trigger=True, request_id="during-stall", requested_at=asked, source="cli"
    )
    log.submit("a", encode_request(trigger))
    second.start()
    deadline = time.monotonic() + 15
    while second.owned() != frozenset({0, 1}):
        assert time.monotonic() < deadline, "the pod never caught up after the reads recovered"
        time.sleep(0.05)
    caught_up = time.time()
    time.sleep(3.5)
    second.stop()
    assert second.join(30)

    assert second.stats.snapshot()["catch_up_failures"] == 3
    writes = [
        (r.timestamp_ms, decode(r.value))
        for p in range(log.partitions)
        for r in log.records(p)
        if r.value is not None
    ]
    by_second = [(ts, e) for ts, e in writes if e.pod == "p2"]
    assert by_second, "the second pod wrote nothing after catching up"
    # Nothing written for the partitions before the last failed read (plus the retry delay).
    assert min(ts for ts, _ in by_second) / 1000 > log.last_failure
    assert min(ts for ts, _ in by_second) / 1000 <= caught_up + 1
    assert [jid for pod, jid in runs if pod == "p2"], "the second pod ran nothing"
    assert len({jid for _, jid in runs}) == len(runs), "a job ran twice"
    # The trigger that came during the stall was kept and run once afterwards.
    manual = [j for j in second.store.jobs(command_id="a") if j.trigger == "manual"]
    assert [j.status for j in manual] == [JobStatus.SUCCEEDED]
    assert [pod for pod, jid in runs if jid == manual[0].id] == ["p2"]
