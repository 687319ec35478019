"""Kafka connection and group settings (frozen; parsed from flags/env at the edge)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

_SECURITY_ENV = {
    "security_protocol": "SCHEDULERX_KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "SCHEDULERX_KAFKA_SASL_MECHANISM",
    "sasl_plain_username": "SCHEDULERX_KAFKA_SASL_USERNAME",
    "sasl_plain_password": "SCHEDULERX_KAFKA_SASL_PASSWORD",
    "ssl_cafile": "SCHEDULERX_KAFKA_SSL_CAFILE",
    "ssl_certfile": "SCHEDULERX_KAFKA_SSL_CERTFILE",
    "ssl_keyfile": "SCHEDULERX_KAFKA_SSL_KEYFILE",
}


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Where the topic is and how a pod joins the group."""

    bootstrap: str
    topic: str = "schedulerx"
    group: str = "schedulerx-pods"
    session_timeout_ms: int = 10_000
    """Failover time after a pod dies (kill -9) is about this plus a rebalance."""
    static_membership: bool = False
    """Use the pod id as ``group_instance_id`` (rolling restarts keep assignments)."""
    create_topic: bool = True
    """Create the topics on first start if missing (partitions below, RF min(3, brokers))."""
    partitions: int = 12
    connect_timeout_s: float = 15.0
    """How long to try to reach the broker before a clear error."""
    security: dict[str, str] = field(default_factory=dict, repr=False)
    """TLS/SASL settings passed through to kafka-python (never logged: ``repr=False``)."""

    @property
    def requests_topic(self) -> str:
        """The inbox topic of schedule-change requests."""
        return f"{self.topic}-requests"

    def client_kwargs(self) -> dict[str, object]:
        """Keyword arguments every kafka-python client of ours gets."""
        return {"bootstrap_servers": self.bootstrap.split(","), **self.security}

    @classmethod
    def from_env(cls, bootstrap: str, **values: object) -> KafkaSettings:
        """Settings with TLS/SASL from ``SCHEDULERX_KAFKA_*`` and session timeout from
        ``SCHEDULERX_SESSION_TIMEOUT_MS``."""
        security = {k: os.environ[v] for k, v in _SECURITY_ENV.items() if os.environ.get(v)}
        env_timeout = os.environ.get("SCHEDULERX_SESSION_TIMEOUT_MS")
        if env_timeout and "session_timeout_ms" not in values:
            values["session_timeout_ms"] = int(env_timeout)
        clean = {k: v for k, v in values.items() if v is not None}
        return cls(bootstrap=bootstrap, security=security, **clean)  # type: ignore[arg-type]
