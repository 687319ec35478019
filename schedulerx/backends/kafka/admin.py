"""Topic creation and inspection."""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from schedulerx.backends.kafka.errors import describe, unreachable
from schedulerx.backends.kafka.settings import KafkaSettings
from schedulerx.ports.event_log import LogError

log = logging.getLogger("schedulerx.kafka")

STATE_CONFIG = {
    "cleanup.policy": "compact",
    # Full transition history stays readable for replay at least this long (then compacted).
    "min.compaction.lag.ms": str(24 * 3600 * 1000),
    "min.insync.replicas": "1",
}
REQUESTS_CONFIG = {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)}


def connect_admin(settings: KafkaSettings) -> Any:
    """An admin client, or LogError if the broker cannot be reached in time."""
    try:
        return KafkaAdminClient(
            **settings.client_kwargs(),
            client_id="schedulerx-admin",
            request_timeout_ms=int(settings.connect_timeout_s * 1000),
            bootstrap_timeout_ms=int(settings.connect_timeout_s * 1000),
        )
    except (KafkaError, OSError) as exc:
        raise unreachable(settings.bootstrap, exc) from None


def topic_partitions(admin: Any, topic: str) -> int | None:
    """How many partitions ``topic`` has (None when it does not exist)."""
    for t in admin.describe_topics([topic]):
        if t.get("error_code", 0) == 0 and t.get("partitions"):
            return len(t["partitions"])
    return None


def ensure_topics(
    settings: KafkaSettings,
    partitions: int | None = None,
    replication_factor: int | None = None,
    *,
    create: bool = True,
) -> int:
    """The state topic's partition count, creating both topics first if allowed and missing.

    Raises LogError when the topic is missing and ``create`` is False, or when the state and
    requests topics disagree on the partition count.
    """
    admin = connect_admin(settings)
    try:
        n = topic_partitions(admin, settings.topic)
        if n is None:
            if not create:
                raise LogError(
                    f"topic {settings.topic!r} does not exist; run "
                    f"'schedulerx topic create --kafka {settings.bootstrap}'"
                )
            n = partitions or settings.partitions
            brokers = len(admin.describe_cluster().get("brokers", [])) or 1
            rf = replication_factor or min(3, brokers)
            _create(
                admin,
                settings.topic,
                n,
                rf,
                {**STATE_CONFIG, "min.insync.replicas": str(min(2, rf))},
            )
        r = topic_partitions(admin, settings.requests_topic)
        if r is None:
            brokers = len(admin.describe_cluster().get("brokers", [])) or 1
            rf = replication_factor or min(3, brokers)
            _create(admin, settings.requests_topic, n, rf, REQUESTS_CONFIG)
            r = n
        if r != n:
            raise LogError(
                f"topic {settings.requests_topic!r} has {r} partitions but "
                f"{settings.topic!r} has {n}; they must match"
            )
        return n
    except KafkaError as exc:
        raise LogError(f"Kafka admin request failed: {describe(exc)}") from None
    finally:
        admin.close()


def _create(admin: Any, name: str, partitions: int, rf: int, config: dict[str, str]) -> None:
    try:
        admin.create_topics([NewTopic(name, partitions, rf, topic_configs=config)])
        log.info("created topic %s (%d partitions, replication %d)", name, partitions, rf)
    except TopicAlreadyExistsError:
        pass


def create_topics(bootstrap: str, topic: str, partitions: int, replication_factor: int) -> str:
    """``schedulerx topic create``: create the topics; returns a one-line summary."""
    settings = KafkaSettings.from_env(bootstrap, topic=topic)
    n = ensure_topics(settings, partitions, replication_factor)
    return (
        f"topic {topic!r}: {n} partitions, cleanup.policy=compact; "
        f"requests topic {settings.requests_topic!r}"
    )
