"""Group membership as a pod drives it: ``join``, then ``poll(0.05)`` back to back.

The first pod of a freshly created topic must get its partitions. With kafka-python 3.0.12 a
member can instead stay in the group's rebalance forever (heartbeats off, owning nothing), so
``schedulerx run`` on a new topic sometimes never schedules anything. One join hits it about
one time in seven here, so the test tries up to 30 fresh topics.
"""

from __future__ import annotations

import time

import pytest

from tests.support.kafka import fresh_kafka_log

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
PARTITIONS = 4


def test_the_first_member_of_a_new_topic_always_gets_every_partition(
    kafka_bootstrap: str,
) -> None:
    for attempt in range(30):
        log = fresh_kafka_log(kafka_bootstrap, "join", PARTITIONS)
        session = log.join("pod-a")
        try:
            deadline = time.monotonic() + 10
            while session.owned() != frozenset(range(PARTITIONS)):
                assert time.monotonic() < deadline, (
                    f"attempt {attempt + 1}: the only member of the group never got its "
                    f"partitions (owns {sorted(session.owned())})"
                )
                session.poll(0.05)
        finally:
            session.close()
            log.close()
