"""Kafka errors as one-line LogErrors."""

from __future__ import annotations

from schedulerx.ports.event_log import LogError


def describe(exc: BaseException) -> str:
    """``KafkaTimeoutError: ...`` on one line."""
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text.removeprefix(f"{name}: ").removeprefix(name).strip(" :")
    return f"{name}: {text}" if text else name


def unreachable(bootstrap: str, exc: BaseException | None = None) -> LogError:
    """The error for a broker that cannot be reached."""
    why = f" ({describe(exc)})" if exc else ""
    return LogError(f"cannot reach Kafka at {bootstrap}{why}; is the broker running?")
