"""Fencing on a real broker: a writer that lost a partition to a newer one writes nothing.

Elsewhere the lease stops a paused pod before it even tries to write, so the transactional
fencing behind it is never reached. Here it is, on purpose: two sessions in two different
groups of one topic both believe they own every partition (each group has one member, so each
lease is fresh), and the partition's transactional id (``schedulerx.<topic>.<p>``, whatever
the group) makes the newer session fence the older one. What users rely on: the older
session's append fails with NotOwner, its records never become visible to a read_committed
reader, and the newer owner's records are there.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from schedulerx.backends.kafka import KafkaLog
from schedulerx.ports.event_log import LogReader, LogSession, NotOwner, Record

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
PARTITIONS = 2
ALL = frozenset(range(PARTITIONS))


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[tuple[KafkaLog, KafkaLog]]:
    """One fresh topic seen by two KafkaLogs whose pods join different groups."""
    tag = uuid.uuid4().hex[:10]
    logs = tuple(
        KafkaLog(
            kafka_bootstrap,
            topic=f"fence-{tag}",
            group=f"fence-{tag}-{group}",
            partitions=PARTITIONS,
            session_timeout_ms=6000,
        )
        for group in ("old", "new")
    )
    try:
        yield logs[0], logs[1]
    finally:
        for log in logs:
            log.close()


def _own_everything(session: LogSession) -> None:
    time.sleep(0.5)  # let the member see the new topic's partitions (test_kafka_membership)
    deadline = time.monotonic() + 20
    while session.owned() != ALL:
        assert time.monotonic() < deadline, f"{session.pod_id} owns {sorted(session.owned())}"
        session.poll(0.05)


def _committed(reader: LogReader, partition: int) -> list[Record]:
    out: list[Record] = []
    offset = 0
    while batch := reader.read(partition, offset):
        out.extend(batch)
        offset = batch[-1].offset + 1
    return out


def test_a_fenced_writer_gets_not_owner_and_none_of_its_records_is_visible(
    topic: tuple[KafkaLog, KafkaLog],
) -> None:
    old_log, new_log = topic
    old = old_log.join("old-owner")
    new = None
    try:
        _own_everything(old)
        assert old.append(0, [(b"job/before", b"old, before the new owner")])

        new = new_log.join("new-owner")
        _own_everything(new)  # init_transactions per partition: the old producers are fenced
        assert new.append(0, [(b"job/x", b"new owner's record")])

        assert 0 in old.owned(), "precondition: the old session's own group still says it owns 0"
        with pytest.raises(NotOwner):
            old.append(0, [(b"job/x", b"late write of the fenced owner")])
        results = old.append_many({1: [(b"job/y", b"late write, many-partition path")]})
        assert isinstance(results[1], NotOwner)
        assert 0 not in old.owned() and 1 not in old.owned(), "a fenced partition stays owned"
        with pytest.raises(NotOwner):
            old.append(0, [(b"job/z", b"and no retry sneaks through")])
    finally:
        old.close()
        if new is not None:
            new.close()

    reader = new_log.reader()
    try:
        values = {p: [r.value for r in _committed(reader, p)] for p in range(PARTITIONS)}
    finally:
        reader.close()
    assert values == {0: [b"old, before the new owner", b"new owner's record"], 1: []}
