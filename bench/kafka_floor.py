"""Row 8: the Kafka round-trip floor on this machine, with kafka-python.

- produce -> consume: one small record sent (acks=all, linger 0, flushed) until a consumer
  already assigned to the partition (read_committed, polling) returns it;
- produce ack: ``send(...).get()`` of one record (acks=all);
- transaction: ``begin_transaction`` + send of one record + ``commit_transaction``, the unit
  of a claim (schedulerx commits each partition's batch as one transaction).
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import Context, Row, summary_ms

NAME = "kafka_floor"
TITLE = "8. Kafka round-trip floor (kafka-python, broker on this machine)"


def sizes(quick: bool) -> int:
    """Samples per measurement."""
    return 20 if quick else 500


def run(ctx: Context) -> Row:
    """The three floors."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    n = sizes(ctx.quick)
    kafka = ctx.kafka(partitions=1)
    kafka.create()
    boot = kafka.bootstrap.split(",")
    tp = TopicPartition(kafka.topic, 0)
    producer: Any = KafkaProducer(bootstrap_servers=boot, acks="all", linger_ms=0)
    consumer: Any = KafkaConsumer(
        bootstrap_servers=boot,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_wait_ms=500,
    )
    consumer.assign([tp])
    consumer.seek_to_end(tp)
    consumer.poll(timeout_ms=100)
    txn: Any = KafkaProducer(
        bootstrap_servers=boot,
        acks="all",
        linger_ms=0,
        enable_idempotence=True,
        transactional_id=f"{kafka.topic}-floor",
        retry_backoff_ms=10,  # as the pods' producers: CONCURRENT_TRANSACTIONS retries soon
    )
    txn.init_transactions()
    trips, acks, commits = [], [], []
    try:
        for i in range(n + 5):
            t0 = time.perf_counter()
            producer.send(kafka.topic, key=b"k", value=b"v%d" % i, partition=0)
            producer.flush()
            give_up = time.monotonic() + 30
            while not consumer.poll(timeout_ms=1000, max_records=1).get(tp):
                if time.monotonic() > give_up:
                    raise TimeoutError(f"record {i} not consumed 30 s after its ack")
            if i >= 5:
                trips.append(time.perf_counter() - t0)
        for i in range(n + 5):
            t0 = time.perf_counter()
            producer.send(kafka.topic, key=b"k", value=b"a%d" % i, partition=0).get(timeout=10)
            if i >= 5:
                acks.append(time.perf_counter() - t0)
        for i in range(n + 5):
            t0 = time.perf_counter()
            txn.begin_transaction()
            txn.send(kafka.topic, key=b"k", value=b"t%d" % i, partition=0)
            txn.commit_transaction()
            if i >= 5:
                commits.append(time.perf_counter() - t0)
    finally:
        txn.close(timeout=5)
        producer.close(timeout=5)
        consumer.close()
    rows = [
        {"measure": "produce -> consume (1 record)", **summary_ms(trips)},
        {"measure": "produce ack (acks=all)", **summary_ms(acks)},
        {"measure": "transaction: begin + send 1 + commit", **summary_ms(commits)},
    ]
    return {
        "title": TITLE,
        "tables": {"round trips": rows},
        "targets": [],
        "notes": [
            f"{n} samples each after 5 warm-up rounds; 1-partition topic.",
            "Transactions back to back on one transactional id, with retry_backoff_ms=10 as "
            "the pods' producers (the broker answers CONCURRENT_TRANSACTIONS while the last "
            "markers are written; at kafka-python's default 100 ms, p50 is ~105 ms).",
        ],
        "raw": {"rows": rows},
    }
