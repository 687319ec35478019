"""Choosing and opening the backend: the embedded log by default, Kafka when asked.

``log=None`` means: the ``schedulerx run`` flags, else the ``SCHEDULERX_KAFKA`` environment
variable, else the embedded log in ``./.schedulerx``. Kafka is imported only when selected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from schedulerx.ports.event_log import EventLog

DEFAULT_DATA_DIR = Path(".schedulerx")
DEFAULT_TOPIC = "schedulerx"


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """Where the log lives. ``kafka`` None selects the embedded log in ``data_dir``."""

    data_dir: Path = DEFAULT_DATA_DIR
    kafka: str | None = None
    topic: str = DEFAULT_TOPIC
    group: str | None = None
    """Kafka consumer group; None means ``<topic>-pods`` (one group per topic: members of one
    group subscribed to different topics would starve each other of assignments)."""
    partitions: int | None = None
    static_membership: bool = False
    """Kafka: join with the pod id as ``group_instance_id`` (set by ``run --pod-id``)."""
    create_topic: bool = True
    """Kafka: a pod creates missing topics on start (``run --no-create-topic`` or
    ``SCHEDULERX_CREATE_TOPIC=0``: a missing topic is an error instead)."""

    @classmethod
    def from_env(cls, **overrides: object) -> BackendConfig:
        """Defaults, then ``SCHEDULERX_*`` environment variables, then non-None overrides."""
        env = os.environ
        values: dict[str, object] = {
            "data_dir": Path(env.get("SCHEDULERX_DATA_DIR", str(DEFAULT_DATA_DIR))),
            "kafka": env.get("SCHEDULERX_KAFKA") or None,
            "topic": env.get("SCHEDULERX_TOPIC", DEFAULT_TOPIC),
            "group": env.get("SCHEDULERX_GROUP") or None,
        }
        if env.get("SCHEDULERX_CREATE_TOPIC", "").lower() in ("0", "false", "no"):
            values["create_topic"] = False
        if env.get("SCHEDULERX_PARTITIONS"):
            values["partitions"] = int(env["SCHEDULERX_PARTITIONS"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not isinstance(values["data_dir"], Path):
            values["data_dir"] = Path(str(values["data_dir"]))
        return cls(**values)  # type: ignore[arg-type]

    @property
    def kafka_group(self) -> str:
        """The consumer group pods of this topic join."""
        return self.group or f"{self.topic}-pods"

    def projection_dir(self, owner: str = "pod") -> Path:
        """Where a local projection of this log is kept (``owner``: pod or a reader's name)."""
        if self.kafka is None:
            return self.data_dir / ("projection" if owner == "pod" else f"projection-{owner}")
        safe = "".join(c if c.isalnum() else "_" for c in f"{self.kafka}_{self.topic}")
        return self.data_dir / "kafka" / safe / owner


def open_log(config: BackendConfig, *, create: bool = True) -> EventLog:
    """The event log ``config`` names (Kafka imported only when selected).

    ``create=False`` (readers: jobs, replay) raises LogError instead of creating an empty
    data dir or topic; so does a missing topic when ``config.create_topic`` is False.
    """
    if config.kafka is None:
        from schedulerx.backends.embedded import EmbeddedLog

        return EmbeddedLog(config.data_dir, config.partitions, create=create)
    from schedulerx.backends.kafka import KafkaLog

    log: EventLog = KafkaLog(
        config.kafka,
        topic=config.topic,
        group=config.kafka_group,
        static_membership=config.static_membership,
        partitions=config.partitions,
        create_topic=create and config.create_topic,
    )
    return log
