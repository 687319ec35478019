"""One contract, both backends: what the engine and the projections need from an EventLog.

Every test runs on the embedded log (files in tmp_path) and on Kafka (a topic and group of its
own on the session broker). Ownership is asynchronous on Kafka (a group has to form), so tests
poll until it settles, within a bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from schedulerx.backends.embedded import EmbeddedLog
from schedulerx.ports.event_log import (
    EventLog,
    LogLocked,
    LogReader,
    LogSession,
    NotOwner,
    Record,
)
from tests.support.kafka import fresh_kafka_log

PARTITIONS = 4
ALL = frozenset(range(PARTITIONS))
SETTLE_S = 15.0
"""How long a group may take to form or rebalance before a test fails."""


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def event_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    """A fresh log with PARTITIONS partitions on the backend named by the param."""
    log: EventLog
    if request.param == "embedded":
        log = EmbeddedLog(tmp_path / "data", PARTITIONS)
    else:
        log = fresh_kafka_log(request.getfixturevalue("kafka_bootstrap"), "contract", PARTITIONS)
    try:
        yield log
    finally:
        log.close()


@pytest.fixture
def sessions() -> Iterator[list[LogSession]]:
    """Sessions a test opened; closed at the end whatever happened."""
    opened: list[LogSession] = []
    yield opened
    for s in opened:
        s.close()


def _poll_until(members: list[LogSession], done: Callable[[], bool], what: str) -> None:
    """Poll every member back to back, each in a thread of its own (as each pod's loop does),
    until ``done()``; AssertionError after SETTLE_S."""
    stop = threading.Event()

    def drive(session: LogSession) -> None:
        while not stop.is_set():
            session.poll(0.05)

    threads = [threading.Thread(target=drive, args=(s,), daemon=True) for s in members]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + SETTLE_S
        while not done():
            if time.monotonic() > deadline:
                owned = {s.pod_id: sorted(s.owned()) for s in members}
                raise AssertionError(f"not settled after {SETTLE_S:g}s: {what}; owned: {owned}")
            time.sleep(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)


def _join(log: EventLog, sessions: list[LogSession], pod_id: str) -> LogSession:
    session = log.join(pod_id)
    sessions.append(session)
    # Let a Kafka member learn the new topic's partitions before its first poll joins the
    # group: kafka-python 3.0.12 can otherwise leave a member that joined without them stuck
    # forever (tests/kafka/test_kafka_membership.py). No effect on the embedded log.
    time.sleep(0.5)
    return session


def _join_owning_all(log: EventLog, sessions: list[LogSession], pod_id: str) -> LogSession:
    session = _join(log, sessions, pod_id)
    _poll_until([session], lambda: session.owned() == ALL, f"{pod_id} owns every partition")
    return session


def _read_all(reader: LogReader, partition: int, offset: int = 0) -> list[Record]:
    """Every committed record from ``offset`` on (offsets may have gaps)."""
    out: list[Record] = []
    while batch := reader.read(partition, offset):
        out.extend(batch)
        offset = batch[-1].offset + 1
    return out


def _read_until(
    reader: LogReader, partition: int, done: Callable[[list[Record]], bool], timeout: float = 2
) -> list[Record]:
    """``_read_all`` again until ``done(records)`` or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while not done(records := _read_all(reader, partition)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return records


def test_append_returns_increasing_offsets_and_the_reader_reads_them_back(
    event_log: EventLog, sessions: list[LogSession]
) -> None:
    session = _join_owning_all(event_log, sessions, "pod-a")
    first = session.append(1, [(b"job/a", b"1"), (b"job/b", b"2")])
    second = session.append(1, [(b"job/a", None)])  # a tombstone
    assert len(first) == 2 and len(second) == 1
    assert first[0] < first[1] < second[0]

    reader = event_log.reader()
    try:
        records = _read_until(reader, 1, lambda rs: len(rs) >= 3)  # see the reader test
        start, end = reader.bounds(1)
        assert start <= first[0] and second[0] < end
        got = [(r.offset, r.key, r.value) for r in records]
        assert got == [
            (first[0], b"job/a", b"1"),
            (first[1], b"job/b", b"2"),
            (second[0], b"job/a", None),
        ]
        assert all(r.partition == 1 and r.timestamp_ms > 0 for r in records)
        assert [r.offset for r in reader.read(1, first[1])] == [first[1], second[0]]
        assert reader.read(1, end) == []
        untouched_start, untouched_end = reader.bounds(2)
        assert untouched_start == untouched_end
        assert reader.read(2, 0) == []
        assert reader.partitions == event_log.partitions == PARTITIONS
    finally:
        reader.close()


def test_append_many_writes_each_partition_atomically_and_reports_each_on_its_own(
    event_log: EventLog, sessions: list[LogSession]
) -> None:
    session = _join_owning_all(event_log, sessions, "pod-a")
    results = session.append_many(
        {
            0: [(b"job/a", b"1"), (b"job/b", b"2")],
            3: [(b"job/c", b"3")],
            PARTITIONS: [(b"job/x", b"nowhere")],  # no such partition: not owned
        }
    )
    assert set(results) == {0, 3, PARTITIONS}
    assert isinstance(results[PARTITIONS], NotOwner)
    on_0, on_3 = results[0], results[3]
    assert isinstance(on_0, list) and isinstance(on_3, list)
    assert len(on_0) == 2 and on_0[0] < on_0[1] and len(on_3) == 1
    reader = event_log.reader()
    try:
        got_0 = _read_until(reader, 0, lambda rs: len(rs) >= 2)
        got_3 = _read_until(reader, 3, lambda rs: len(rs) >= 1)
        assert [(r.offset, r.key, r.value) for r in got_0] == [
            (on_0[0], b"job/a", b"1"),
            (on_0[1], b"job/b", b"2"),
        ]
        assert [(r.offset, r.key, r.value) for r in got_3] == [(on_3[0], b"job/c", b"3")]
    finally:
        reader.close()


def test_a_reader_sees_what_was_committed_after_it_was_opened(
    event_log: EventLog, sessions: list[LogSession]
) -> None:
    session = _join_owning_all(event_log, sessions, "pod-a")
    early = event_log.reader()
    try:
        assert _read_all(early, 3) == []
        (offset,) = session.append(3, [(b"cmd/x", b"schedule")])
        # Kafka: commit_transaction() returns once the commit is decided; read_committed
        # readers see the records when the partition's commit marker is written, a moment
        # later (seen once under load). The port promises "visible when append returns", so
        # the wait is bounded and short.
        got = _read_until(early, 3, lambda rs: bool(rs))
        assert [(r.offset, r.value) for r in got] == [(offset, b"schedule")]
    finally:
        early.close()
    late = event_log.reader()
    try:
        assert [r.value for r in _read_all(late, 3)] == [b"schedule"]
    finally:
        late.close()


def test_joining_gets_every_partition_assigned_within_a_few_polls(
    event_log: EventLog, sessions: list[LogSession]
) -> None:
    session = _join(event_log, sessions, "pod-a")
    assert session.pod_id == "pod-a"
    assigned: set[int] = set()

    def all_assigned() -> bool:
        assigned.update(session.poll(0.05).assigned)
        return assigned == ALL

    deadline = time.monotonic() + SETTLE_S
    while not all_assigned():
        assert time.monotonic() < deadline, f"only {sorted(assigned)} assigned"
    assert session.owned() == ALL


def test_append_to_a_partition_not_owned_raises_not_owner(
    event_log: EventLog, sessions: list[LogSession]
) -> None:
    session = _join_owning_all(event_log, sessions, "pod-a")
    with pytest.raises(NotOwner):
        session.append(PARTITIONS, [(b"job/x", b"nowhere")])  # no such partition: not owned


def test_a_partition_is_owned_by_one_member_only(
    event_log: EventLog, sessions: list[LogSession]
) -> None:
    a = _join_owning_all(event_log, sessions, "pod-a")
    try:
        b = _join(event_log, sessions, "pod-b")
    except LogLocked:
        return  # this backend admits a single member: it owns everything, nobody else can
    members = [a, b]
    _poll_until(
        members,
        lambda: bool(b.owned()) and a.owned() | b.owned() == ALL and not a.owned() & b.owned(),
        "two members split the partitions",
    )
    theirs = min(b.owned())
    reader = event_log.reader()
    try:
        before = reader.bounds(theirs)
        with pytest.raises(NotOwner):
            a.append(theirs, [(b"job/x", b"not mine")])
        assert reader.bounds(theirs) == before, "a refused append became visible"
    finally:
        reader.close()
    (offset,) = b.append(theirs, [(b"job/x", b"mine")])
    assert offset >= before[1]


def test_a_submitted_request_reaches_the_owner_in_a_later_poll(
    event_log: EventLog, sessions: list[LogSession]
) -> None:
    session = _join_owning_all(event_log, sessions, "pod-a")
    request = b'{"command_id": "cmd-7", "cron": "*/5 * * * *"}'
    event_log.submit("cmd-7", request)
    received: list[bytes] = []

    def arrived() -> bool:
        received.extend(session.poll(0.05).requests)
        return request in received

    deadline = time.monotonic() + SETTLE_S
    while not arrived():
        assert time.monotonic() < deadline, f"request never arrived; got {received}"
    assert received.count(request) == 1


def test_after_close_nothing_is_owned_and_appends_are_refused(
    event_log: EventLog, sessions: list[LogSession]
) -> None:
    session = _join_owning_all(event_log, sessions, "pod-a")
    session.close()
    assert session.owned() == frozenset()
    with pytest.raises(NotOwner):
        session.append(0, [(b"job/x", b"too late")])
