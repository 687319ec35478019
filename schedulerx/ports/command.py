"""The command port: what the engine runs, and a command registered with its policy."""

from __future__ import annotations

from collections.abc import Sequence
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
class Registration:
    """A registered command with its policy."""

    command: Command
    policy: Policy

    @property
    def id(self) -> str:
        """The command's id."""
        return self.command.id
