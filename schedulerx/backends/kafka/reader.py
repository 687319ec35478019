"""Reading committed records of any partition (projections, replay, the CLI)."""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from schedulerx.backends.kafka.errors import describe
from schedulerx.backends.kafka.settings import KafkaSettings
from schedulerx.ports.event_log import LogError, Record

_STALL_S = 30.0
"""How long ``read`` waits for records it knows exist before it gives up."""


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
        self._ends: dict[int, int] = {}
        """Last stable offsets seen; ends only grow, so one below the real end is safe."""
        self._next: int | None = None
        """Where the consumer stands on the assigned partition after the last read."""

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
        except KafkaError as exc:
            raise LogError(
                f"cannot read offsets of {self._topic}[{partition}]: {describe(exc)}"
            ) from None
        return int(start), self._end(partition)

    def _end(self, partition: int) -> int:
        tp = self._tp(partition)
        try:
            end = int(self._consumer.end_offsets([tp])[tp])
        except KafkaError as exc:
            raise LogError(
                f"cannot read offsets of {self._topic}[{partition}]: {describe(exc)}"
            ) from None
        self._ends[partition] = end
        return end

    def read(self, partition: int, offset: int, max_records: int = 1000) -> list[Record]:
        """Committed records from ``offset`` on; empty at the end (last stable offset).

        LogError when the broker gives nothing for ``_STALL_S`` while records before the end
        are left (a stall is never reported as the end). Reading on from where the last read
        stopped costs no round trip for the end offset (asked again only once ``offset``
        reaches the last one seen) and keeps what the consumer fetched ahead (no seek)."""
        tp = self._tp(partition)
        if self._assigned != partition:
            self._consumer.assign([tp])
            self._assigned, self._next = partition, None
        end = self._ends.get(partition, -1)
        if offset >= end:
            end = self._end(partition)
            if offset >= end:
                return []
        if offset != self._next:
            self._consumer.seek(tp, offset)
        self._next = None
        out: list[Record] = []
        deadline = time.monotonic() + _STALL_S
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
        if out:
            self._next = out[-1].offset + 1
        elif self._consumer.position(tp) < end:
            raise LogError(
                f"cannot read {self._topic}[{partition}]: no record from offset "
                f"{self._consumer.position(tp)} (end {end}) within {_STALL_S:g}s"
            )
        return out

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()
