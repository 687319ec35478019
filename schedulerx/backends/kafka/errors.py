"""Kafka errors as one-line LogErrors."""

from __future__ import annotations

from schedulerx.ports.event_log import LogError


def describe(exc: BaseException) -> str:
    """``KafkaTimeoutError: ...`` on one line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def unreachable(bootstrap: str, exc: BaseException | None = None) -> LogError:
    """The error for a broker that cannot be reached."""
    why = f" ({describe(exc)})" if exc else ""
    return LogError(f"cannot reach Kafka at {bootstrap}{why}; is the broker running?")
