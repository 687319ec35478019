"""Reading committed records of any partition (projections, replay, the CLI)."""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from schedulerx.backends.kafka.errors import describe
from schedulerx.backends.kafka.settings import KafkaSettings
from schedulerx.ports.event_log import LogError, Record


class KafkaReader:
    """A ``read_committed`` consumer with manual assignment; no group, never commits."""

    def __init__(self, settings: KafkaSettings, partitions: int):
        self._topic = settings.topic
        self._partitions = partitions
        self._consumer: Any = KafkaConsumer(
            **settings.client_kwargs(),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            client_id="schedulerx-reader",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        self._assigned: int | None = None

    @property
    def partitions(self) -> int:
        """Partition count of the state topic."""
        return self._partitions

    def _tp(self, partition: int) -> Any:
        return TopicPartition(self._topic, partition)

    def bounds(self, partition: int) -> tuple[int, int]:
        """(first offset, last stable offset) of ``partition``."""
        tp = self._tp(partition)
        try:
            start = self._consumer.beginning_offsets([tp])[tp]
            end = self._consumer.end_offsets([tp])[tp]
        except KafkaError as exc:
            raise LogError(
                f"cannot read offsets of {self._topic}[{partition}]: {describe(exc)}"
            ) from None
        return int(start), int(end)

    def read(self, partition: int, offset: int, max_records: int = 1000) -> list[Record]:
        """Committed records from ``offset`` on; empty at the end (last stable offset)."""
        tp = self._tp(partition)
        if self._assigned != partition:
            self._consumer.assign([tp])
            self._assigned = partition
        _, end = self.bounds(partition)
        if offset >= end:
            return []
        self._consumer.seek(tp, offset)
        out: list[Record] = []
        deadline = time.monotonic() + 30
        while not out and time.monotonic() < deadline:
            if self._consumer.position(tp) >= end:
                break  # only transaction markers / aborted records were left
            try:
                batch = self._consumer.poll(timeout_ms=50, max_records=max_records)
            except KafkaError as exc:
                raise LogError(f"cannot read {self._topic}[{partition}]: {describe(exc)}") from None
            for r in batch.get(tp, []):
                out.append(Record(partition, r.offset, r.key or b"", r.value, r.timestamp))
            if not out and self._consumer.position(tp) >= end:
                break  # only transaction markers / aborted records were left
        return out

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()
