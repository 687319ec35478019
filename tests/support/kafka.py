"""A fresh topic and group on the session broker, for tests that need a KafkaLog of their own."""

from __future__ import annotations

import uuid
from typing import Any

SESSION_TIMEOUT_MS = 6000
"""Short, so a test that waits for a group to notice a member leave stays quick."""


def fresh_kafka_log(bootstrap: str, prefix: str, partitions: int, **settings: Any) -> Any:
    """A KafkaLog on a new topic ``<prefix>-<tag>`` with a group of the same name."""
    from schedulerx.backends.kafka import KafkaLog

    tag = uuid.uuid4().hex[:10]
    settings.setdefault("session_timeout_ms", SESSION_TIMEOUT_MS)
    return KafkaLog(
        bootstrap,
        topic=f"{prefix}-{tag}",
        group=f"{prefix}-{tag}",
        partitions=partitions,
        **settings,
    )
