"""Row 5: rebuilding the job projection from a topic of >= 1,000,000 events, beside the floor.

The topic (the state topic's config, 12 partitions) is filled fast with a plain
``KafkaProducer`` using real encoded events (``schedulerx.domain.events.encode``): per command
one ``schedule.set``, then per job the four ``job`` records of its life (scheduled, claimed,
running, succeeded), keyed and partitioned as schedulerx does. Then, in the same run and on the
same topic: the raw kafka-python consume rate (the floor), consume + decode, the rebuild of the
RocksDB ``ProjectionStore`` through ``projections.catch_up`` with the Kafka reader (what a pod
or ``schedulerx jobs`` does from an empty data dir) and the same into a ``MemoryView``
(``jobs --as-of``); the raw consume runs once before and once after the rebuilds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import Context, Row, ratio

NAME = "replay"
TITLE = "5. Replay: rebuilding the job projection from the topic"
PARTITIONS = 12


def sizes(quick: bool) -> tuple[int, int]:
    """(commands, jobs per command); events = commands * (1 + 4 * jobs)."""
    return (50, 100) if quick else (2500, 100)


def events(commands: int, jobs: int) -> Iterator[tuple[int, bytes, bytes]]:
    """(partition, key, value) of every record, in log order per partition."""
    from schedulerx.domain.events import JobChanged, ScheduleSet, encode, key_of, new_event_id
    from schedulerx.domain.job import Job, JobStatus, job_id
    from schedulerx.domain.partitioning import partition_for

    base = datetime(2026, 1, 1, tzinfo=UTC)
    for c in range(commands):
        cid = f"replay-{c}"
        p = partition_for(cid, PARTITIONS)
        s = ScheduleSet(
            event_id=new_event_id(), pod="bench", ts=base, command_id=cid, cron="*/1 * * * * *"
        )
        yield p, key_of(s), encode(s)
        for j in range(jobs):
            t = base + timedelta(seconds=j)
            job = Job(id=job_id(cid, t), command_id=cid, scheduled_at=t, status=JobStatus.SCHEDULED)
            claimed = job.to(JobStatus.CLAIMED, owner="pod-bench")
            running = claimed.to(JobStatus.RUNNING, started_at=t + timedelta(milliseconds=3))
            done = running.to(JobStatus.SUCCEEDED, finished_at=t + timedelta(milliseconds=9))
            for state in (job, claimed, running, done):
                e = JobChanged(event_id=new_event_id(), pod="pod-bench", ts=t, job=state)
                yield p, key_of(e), encode(e)


def _produce(bootstrap: str, topic: str, commands: int, jobs: int) -> tuple[int, float]:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks=1,
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=8 * 2**20,
    )
    n = 0
    t0 = time.perf_counter()
    for p, key, value in events(commands, jobs):
        producer.send(topic, key=key, value=value, partition=p)
        n += 1
    producer.flush()
    elapsed = time.perf_counter() - t0
    producer.close()
    return n, elapsed


def _consume(bootstrap: str, topic: str, decode: bool) -> tuple[int, float]:
    """Read every record of the topic with a plain consumer (read_committed, like ours)."""
    from kafka import KafkaConsumer, TopicPartition

    from schedulerx.domain.events import decode as decode_event

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 2**20,
    )
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    end = consumer.end_offsets(tps)
    n = 0
    t0 = time.perf_counter()
    give_up = time.monotonic() + 300
    while any(consumer.position(tp) < end[tp] for tp in tps):
        if time.monotonic() > give_up:
            raise TimeoutError(f"raw consume: {n} records in 300 s, end offsets not reached")
        for records in consumer.poll(timeout_ms=500, max_records=5000).values():
            n += len(records)
            if decode:
                for r in records:
                    decode_event(r.value)
    elapsed = time.perf_counter() - t0
    consumer.close()
    return n, elapsed


def _rebuild(ctx: Context, bootstrap: str, topic: str, memory: bool) -> tuple[int, float]:
    from projections import MemoryView, ProjectionStore, catch_up
    from schedulerx.backends.kafka import KafkaLog

    log = KafkaLog(bootstrap, topic=topic, create_topic=False)
    reader = log.reader()
    store: Any = (
        MemoryView()
        if memory
        else ProjectionStore(ctx.dir(f"{NAME}/store-{time.time_ns()}"), PARTITIONS)
    )
    try:
        t0 = time.perf_counter()
        n = catch_up(store, reader)
        elapsed = time.perf_counter() - t0
    finally:
        store.close()
        reader.close()
        log.close()
    return n, elapsed


def run(ctx: Context) -> Row:
    """Fill the topic, then the floor and the rebuilds on it."""
    commands, jobs = sizes(ctx.quick)
    kafka = ctx.kafka(partitions=PARTITIONS)
    kafka.create()
    produced, produce_s = _produce(kafka.bootstrap, kafka.topic, commands, jobs)
    steps: list[tuple[str, Callable[[], tuple[int, float]]]] = [
        (
            "raw consume (kafka-python), before",
            lambda: _consume(kafka.bootstrap, kafka.topic, False),
        ),
        ("consume + decode events", lambda: _consume(kafka.bootstrap, kafka.topic, True)),
        (
            "rebuild ProjectionStore (RocksDB) via catch_up",
            lambda: _rebuild(ctx, kafka.bootstrap, kafka.topic, False),
        ),
        (
            "rebuild MemoryView via catch_up",
            lambda: _rebuild(ctx, kafka.bootstrap, kafka.topic, True),
        ),
        (
            "raw consume (kafka-python), after",
            lambda: _consume(kafka.bootstrap, kafka.topic, False),
        ),
    ]
    rows: list[dict[str, Any]] = [
        {
            "step": "produce (plain KafkaProducer, acks=1)",
            "records": produced,
            "seconds": produce_s,
            "events/s": produced / produce_s,
        }
    ]
    for label, step in steps:
        n, s = step()
        rows.append({"step": label, "records": n, "seconds": s, "events/s": n / s})
    raw = [r["events/s"] for r in rows if r["step"].startswith("raw consume")]
    floor = sum(raw) / len(raw)
    for r in rows[1:]:
        r["vs raw consume"] = ratio(r["events/s"], floor)
    store = next(r for r in rows if "ProjectionStore" in r["step"])
    return {
        "title": TITLE,
        "tables": {"replay": rows},
        "targets": [
            {
                "target": "replay (ProjectionStore rebuild) >= 50% of raw consume",
                "value": f"{store['events/s']:,.0f} events/s = "
                f"{store['vs raw consume'] * 100:.0f}% of {floor:,.0f}/s",
                "met": store["vs raw consume"] >= 0.5,
            }
        ],
        "notes": [
            f"{produced:,} records: {commands:,} commands x (1 schedule.set + {jobs} jobs x 4 "
            f"job records), {PARTITIONS} partitions, one broker on this machine.",
            "The floor is the mean of the two raw consume runs (before and after the "
            "rebuilds, so cache warmth does not favour either side).",
        ],
        "raw": {"rows": rows, "floor_events_per_s": floor},
    }
