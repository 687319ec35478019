"""``schedulerx jobs``: the job list from the projection (or as it stood at a past time)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from projections import ApplyStats
from schedulerx.api.query import open_query
from schedulerx.cli.common import (
    HelpFormatter,
    UserError,
    add_connection_flags,
    add_progress_flag,
    backend_of,
    iso,
    job_json,
    parse_time,
    print_json,
    progress_of,
    table,
)
from schedulerx.domain.job import Job, JobStatus

EXAMPLES = """examples:
  schedulerx jobs
  schedulerx jobs --command backup --status failed
  schedulerx jobs --json --limit 50
  schedulerx jobs --as-of 2026-12-04T10:15:00Z"""


def add_parser(sub: Any) -> None:
    """Register the ``jobs`` subcommand."""
    p = sub.add_parser(
        "jobs",
        help="list jobs: completed runs and the next 2 per command",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    add_connection_flags(p)
    p.add_argument("--command", dest="command_id", metavar="ID", help="only this command")
    p.add_argument("--status", choices=[s.value for s in JobStatus], help="only this status")
    p.add_argument("--limit", type=int, help="at most N jobs (the newest)")
    p.add_argument("--as-of", metavar="TIME", help="the list as it stood at TIME (rebuilt)")
    p.add_argument("--json", action="store_true", help="a JSON array of job objects")
    add_progress_flag(p, "catching up with the log")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Print the job list."""
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be >= 1")
    status = JobStatus(args.status) if args.status else None
    backend = backend_of(args)
    at = parse_time(args.as_of) if args.as_of else None
    progress = progress_of(args, "catching up")
    try:
        if at is not None:
            from schedulerx.api.history import jobs_as_of

            found = jobs_as_of(
                backend, at, command_id=args.command_id, status=status, progress=progress
            )
        else:
            with open_query(backend, progress=progress) as view:
                found = view.jobs(command_id=args.command_id, status=status)
                _note_skipped(view.stats)
    finally:
        if progress is not None:
            progress.finish()
    if args.limit is not None:
        found = found[-args.limit :]
    render(found, args.json)
    return 0


def render(found: list[Job], as_json: bool) -> None:
    """Print jobs as a table or a JSON array."""
    if as_json:
        print_json([job_json(j) for j in found])
        return
    rows = [
        (
            j.id,
            j.status,
            iso(j.scheduled_at),
            j.owner,
            iso(j.started_at),
            iso(j.finished_at),
            j.error,
        )
        for j in found
    ]
    sys.stdout.write(
        table(["job", "status", "scheduled", "owner", "started", "finished", "error"], rows) + "\n"
    )
    sys.stdout.write(f"{len(found)} jobs\n")


def _note_skipped(stats: ApplyStats) -> None:
    """Tell (stderr) when the projection skipped records: the list may be missing facts."""
    if stats.poison_records or stats.illegal_transitions:
        sys.stderr.write(
            f"note: {stats.poison_records} undecodable record(s) and "
            f"{stats.illegal_transitions} illegal transition(s) were skipped; "
            "'schedulerx replay' shows them with their offsets\n"
        )
