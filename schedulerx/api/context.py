"""``current_job()``: the job a command is executing, for idempotency keys and logging."""

from __future__ import annotations

from contextvars import ContextVar

from schedulerx.domain.job import Job

_current: ContextVar[Job | None] = ContextVar("schedulerx_current_job", default=None)


def current_job() -> Job:
    """The Job being executed by the calling command. Raises RuntimeError outside a run."""
    job = _current.get()
    if job is None:
        raise RuntimeError("current_job() is only available inside Command.execute()")
    return job


def set_current_job(job: Job | None) -> object:
    """Set the current job (engine use); returns a token for ``reset_current_job``."""
    return _current.set(job)


def reset_current_job(token: object) -> None:
    """Undo ``set_current_job``."""
    _current.reset(token)  # type: ignore[arg-type]
