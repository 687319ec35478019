"""Commands: a unique id and ``execute(params)``. Failure is an exception."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from schedulerx.domain.schedule import Policy


@runtime_checkable
class Command(Protocol):
    """Something the scheduler runs. ``id`` is unique across the whole deployment."""

    @property
    def id(self) -> str:
        """The command's unique id (also the partition key of all its records)."""
        ...

    def execute(self, params: Sequence[str]) -> None:
        """Run once with the schedule's params. Raise to fail the job.

        ``schedulerx.current_job()`` returns the job being run; its ``id`` is the idempotency
        key for the command's side effects.
        """
        ...


@dataclass(frozen=True, slots=True)
class FunctionCommand:
    """A plain function registered as a command."""

    id: str
    fn: Callable[[Sequence[str]], object]

    def execute(self, params: Sequence[str]) -> None:
        """Call the function with the params."""
        self.fn(params)


@dataclass(frozen=True, slots=True)
class Registration:
    """A registered command with its policy."""

    command: Command
    policy: Policy

    @property
    def id(self) -> str:
        """The command's id."""
        return self.command.id


def validate_command_id(command_id: object) -> str:
    """``command_id`` if it is a usable id; raises ValueError with a one-line reason."""
    if not isinstance(command_id, str) or not command_id.strip():
        raise ValueError(f"command id must be a non-empty string, got {command_id!r}")
    if any(c.isspace() or c == "/" for c in command_id):
        raise ValueError(f"command id {command_id!r} must not contain whitespace or '/'")
    if len(command_id.encode()) > 200:
        raise ValueError(f"command id {command_id[:40]!r}... is longer than 200 bytes")
    return command_id
