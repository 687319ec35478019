"""The documented JSON form of jobs and times (CLI ``--json``, the HTTP API)."""

from __future__ import annotations

from datetime import UTC, datetime

from schedulerx.domain.job import Job


def iso(t: datetime | None) -> str:
    """``2026-12-04T10:15:00.123Z`` (milliseconds when not whole seconds), '' for None."""
    if t is None:
        return ""
    t = t.astimezone(UTC)
    spec = "seconds" if t.microsecond == 0 else "milliseconds"
    return t.isoformat(timespec=spec).replace("+00:00", "Z")


def job_json(job: Job) -> dict[str, object]:
    """The documented JSON form of a job (all ``Job`` fields, ISO 8601 UTC times)."""
    return {
        "id": job.id,
        "command_id": job.command_id,
        "scheduled_at": iso(job.scheduled_at),
        "status": str(job.status),
        "params": list(job.params),
        "owner": job.owner,
        "started_at": iso(job.started_at) or None,
        "finished_at": iso(job.finished_at) or None,
        "error": job.error,
        "attempt": job.attempt,
        "trigger": job.trigger,
    }
