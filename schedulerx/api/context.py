"""``current_job()``: the job a command is executing, for idempotency keys and logging."""

from schedulerx.engine.context import current_job

__all__ = ["current_job"]
