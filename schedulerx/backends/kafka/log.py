"""``KafkaLog``: the EventLog port over a compacted Kafka topic."""

from __future__ import annotations

import threading
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from schedulerx.backends.kafka.admin import ensure_topics
from schedulerx.backends.kafka.errors import describe, unreachable
from schedulerx.backends.kafka.reader import KafkaReader
from schedulerx.backends.kafka.session import KafkaSession
from schedulerx.backends.kafka.settings import KafkaSettings
from schedulerx.ports.event_log import LogError


class KafkaLog:
    """The state topic and its requests inbox on a Kafka cluster."""

    def __init__(
        self,
        bootstrap: str,
        *,
        topic: str = "schedulerx",
        group: str | None = None,
        partitions: int | None = None,
        **settings: Any,
    ):
        group = group or f"{topic}-pods"
        self.settings = KafkaSettings.from_env(
            bootstrap, topic=topic, group=group, partitions=partitions, **settings
        )
        self._partitions = ensure_topics(
            self.settings, partitions, create=self.settings.create_topic
        )
        self._producer: Any = None
        self._lock = threading.Lock()

    @property
    def partitions(self) -> int:
        """Partition count of the state topic."""
        return self._partitions

    @property
    def exclusive(self) -> bool:
        """Always False: a group of pods shares the topic."""
        return False

    def reader(self) -> KafkaReader:
        """A read_committed reader of the state topic."""
        return KafkaReader(self.settings, self._partitions)

    def join(self, pod_id: str) -> KafkaSession:
        """Join the consumer group as ``pod_id``."""
        return KafkaSession(self.settings, self._partitions, pod_id)

    def submit(self, command_id: str, request: bytes) -> None:
        """Put a request on the inbox topic, keyed by the bare command id (as any client)."""
        with self._lock:
            if self._producer is None:
                try:
                    self._producer = KafkaProducer(
                        **self.settings.client_kwargs(),
                        acks="all",
                        client_id="schedulerx-submit",
                        max_block_ms=10_000,
                    )
                except KafkaError as exc:
                    raise unreachable(self.settings.bootstrap, exc) from None
            try:
                self._producer.send(
                    self.settings.requests_topic, key=command_id.encode(), value=request
                ).get(timeout=10)
            except KafkaError as exc:
                raise LogError(f"cannot submit the request: {describe(exc)}") from None

    def close(self) -> None:
        """Close the submit producer."""
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None
