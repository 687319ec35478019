"""The job a command is executing (``schedulerx.current_job()``), set by the runner."""

from __future__ import annotations

from contextvars import ContextVar, Token

from schedulerx.domain.job import Job

_current: ContextVar[Job | None] = ContextVar("schedulerx_current_job", default=None)


def current_job() -> Job:
    """The Job being executed by the calling command. Raises RuntimeError outside a run."""
    job = _current.get()
    if job is None:
        raise RuntimeError("current_job() is only available inside Command.execute()")
    return job


def set_current_job(job: Job | None) -> Token[Job | None]:
    """Set the current job (runner use); returns the token for ``reset_current_job``."""
    return _current.set(job)


def reset_current_job(token: Token[Job | None]) -> None:
    """Undo ``set_current_job``."""
    _current.reset(token)
