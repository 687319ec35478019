"""What other systems do to the topics, with clients that are not schedulerx's.

- :func:`java_console_produce`: Kafka's own console producer (a stock Java client) writing
  ``key|value`` lines, as the docs tell other systems to do.
- :func:`produce_raw`: a plain, non-transactional kafka-python producer writing whatever bytes
  to a chosen partition (poison, illegal transitions).
- :func:`create_compacting_topic`: a state topic whose cleaner compacts within seconds.
- :func:`read_committed`: every committed record of a topic from offset 0, as a consumer
  with ``isolation_level=read_committed`` sees it (what any reader of the state sees).
- :func:`count_records`: how many committed data records are readable from offset 0.
- :func:`partition_leader`: the broker leading a partition.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from schedulerx.testing.kafka_broker import DEFAULT_KAFKA_VERSION, ensure_jars

CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"

# The console producer's job, with nothing but the stock Java client (kafka-clients): used when
# the kafka-tools jar (which holds ConsoleProducer) is not in the broker's jar set.
_STOCK_PRODUCER = """
import java.io.*;
import java.util.Properties;
import org.apache.kafka.clients.producer.*;

public class StockProducer {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("acks", "all");
        props.put("key.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        props.put("value.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        try (Producer<String, String> producer = new KafkaProducer<>(props)) {
            String line;
            while ((line = in.readLine()) != null) {
                int cut = line.indexOf('|');
                producer.send(new ProducerRecord<>(args[1], line.substring(0, cut),
                                                   line.substring(cut + 1))).get();
            }
        }
    }
}
"""


def _tools_jar() -> Path | None:
    """kafka-tools (ConsoleProducer) from the jar cache or the local Maven repository."""
    jars = ensure_jars()
    local = sorted(jars.glob("kafka-tools-[0-9]*.jar"))
    if local:
        return local[0]
    v = DEFAULT_KAFKA_VERSION
    m2 = Path.home() / ".m2/repository/org/apache/kafka/kafka-tools" / v / f"kafka-tools-{v}.jar"
    return m2 if m2.is_file() else None


def java_console_produce(bootstrap: str, topic: str, lines: Sequence[str], workdir: Path) -> str:
    """Write ``key|value`` lines to ``topic`` with Kafka's console producer (default
    partitioner: ``murmur2(key) mod N``); returns which client did it."""
    java = shutil.which("java")
    assert java, "java is needed (it runs the broker too)"
    jars = ensure_jars()
    tools = _tools_jar()
    if tools is not None:
        cmd = [
            java,
            "-cp",
            f"{jars}/*:{tools}",
            CONSOLE_PRODUCER,
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=|",
        ]
        client = "ConsoleProducer"
    else:
        source = workdir / "StockProducer.java"
        source.write_text(_STOCK_PRODUCER)
        cmd = [java, "-cp", f"{jars}/*", str(source), bootstrap, topic]
        client = "stock Java KafkaProducer"
    proc = subprocess.run(
        cmd,
        input="".join(f"{line}\n" for line in lines),
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"{client} failed: {proc.stderr[-2000:]}"
    return client


def produce_raw(
    bootstrap: str, topic: str, partition: int, records: Sequence[tuple[bytes, bytes]]
) -> None:
    """Write (key, value) records to one partition, not in a transaction, acks=all."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_block_ms=20_000)
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value, partition=partition).get(timeout=20)
    finally:
        producer.close(timeout=5)


def create_compacting_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """A compacted topic whose segments roll every 100 ms and are cleaned at once."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        configs = {
            "cleanup.policy": "compact",
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": "100",
            "min.compaction.lag.ms": "0",
        }
        admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs)])
    finally:
        admin.close()


@dataclass(frozen=True)
class Committed:
    """One committed record of a topic, where it sits."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    """``None`` for a tombstone."""


def _read_from_start(bootstrap: str, topic: str, partitions: int) -> tuple[list[Committed], int]:
    """Every committed data record (read_committed, from each partition's start up to its end
    as of the call), in (partition, offset) order, and the offsets spanned."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        starts = consumer.beginning_offsets(tps)
        consumer.seek_to_beginning()
        out: list[Committed] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                out.extend(
                    Committed(m.partition, m.offset, m.timestamp, m.key, m.value)
                    for m in batch
                    if m.offset < ends[TopicPartition(topic, m.partition)]
                )
            if all(consumer.position(tp) >= ends[tp] for tp in tps):
                break
        else:
            raise AssertionError(f"could not read {topic} to its end within 30 s")
        out.sort(key=lambda c: (c.partition, c.offset))
        return out, sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        consumer.close()


def read_committed(bootstrap: str, topic: str, partitions: int) -> list[Committed]:
    """Every committed record of ``topic`` from offset 0 to the end as of the call, in
    (partition, offset) order: what a ``read_committed`` consumer sees (aborted and fenced
    transactions are not in it)."""
    return _read_from_start(bootstrap, topic, partitions)[0]


def count_records(bootstrap: str, topic: str, partitions: int) -> tuple[int, int]:
    """(committed data records readable from offset 0, offsets spanned) over all partitions."""
    records, spanned = _read_from_start(bootstrap, topic, partitions)
    return len(records), spanned


def partition_leader(bootstrap: str, topic: str, partition: int) -> int:
    """The node id of the leader of ``topic``'s ``partition``."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    return int(
        next(p["leader_id"] for p in described["partitions"] if p["partition_index"] == partition)
    )
