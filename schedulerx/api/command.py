"""Commands: a unique id and ``execute(params)``. Failure is an exception."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from schedulerx.ports.command import Command, Registration

__all__ = ["Command", "FunctionCommand", "Registration", "validate_command_id"]


@dataclass(frozen=True, slots=True)
class FunctionCommand:
    """A plain function registered as a command."""

    id: str
    fn: Callable[[Sequence[str]], object]

    def execute(self, params: Sequence[str]) -> None:
        """Call the function with the params."""
        self.fn(params)


def validate_command_id(command_id: object) -> str:
    """``command_id`` if it is a usable id; raises ValueError with a one-line reason."""
    if not isinstance(command_id, str) or not command_id.strip():
        raise ValueError(f"command id must be a non-empty string, got {command_id!r}")
    if any(c.isspace() or c == "/" for c in command_id):
        raise ValueError(f"command id {command_id!r} must not contain whitespace or '/'")
    if len(command_id.encode()) > 200:
        raise ValueError(f"command id {command_id[:40]!r}... is longer than 200 bytes")
    return command_id
