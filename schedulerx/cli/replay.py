"""``schedulerx replay``: the event history, readable or as JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec

from schedulerx.api.history import Entry, replay
from schedulerx.cli.common import (
    HelpFormatter,
    add_connection_flags,
    add_progress_flag,
    backend_of,
    iso,
    progress_of,
)
from schedulerx.domain.events import (
    JobChanged,
    JobTriggered,
    ScheduleRejected,
    ScheduleRemoved,
    ScheduleSet,
)

EXAMPLES = """examples:
  schedulerx replay
  schedulerx replay --command backup
  schedulerx replay --job 'backup@2026-12-04T03:00:00Z' --json
  schedulerx replay --follow
  schedulerx replay --json --progress > history.jsonl   # progress on stderr"""


def add_parser(sub: Any) -> None:
    """Register the ``replay`` subcommand."""
    p = sub.add_parser(
        "replay",
        help="the event history from the log",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    add_connection_flags(p)
    p.add_argument("--command", dest="command_id", metavar="ID", help="only this command")
    p.add_argument("--job", dest="job_id", metavar="JOB_ID", help="only this job")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--follow", action="store_true", help="keep printing new events")
    add_progress_flag(p, "reading the existing history")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Print the history on stdout; progress (if asked for) goes to stderr only.

    With ``--follow`` the progress line ends once the history that existed at the start is
    read. When stdout is a terminal too, the progress line is erased before each event line
    so the two never mix on one line.
    """
    progress = progress_of(args, "replaying")
    shared_terminal = progress is not None and sys.stdout.isatty()
    try:
        for entry in replay(
            backend_of(args),
            command_id=args.command_id,
            job_id=args.job_id,
            follow=args.follow,
            progress=progress,
        ):
            line = as_json(entry) if args.json else describe(entry)
            if shared_terminal and progress is not None:
                progress.clear()
            sys.stdout.write(line + "\n")
            if args.follow:
                sys.stdout.flush()
    finally:
        if progress is not None:
            progress.finish()
    return 0


def as_json(entry: Entry) -> str:
    """One JSON line: position, key and the event (or the problem)."""
    r = entry.record
    out: dict[str, object] = {
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": iso(datetime.fromtimestamp(r.timestamp_ms / 1000, UTC)),
        "key": r.key.decode(errors="replace"),
        "event": msgspec.to_builtins(entry.event) if entry.event is not None else None,
    }
    if entry.problem:
        out["problem"] = entry.problem
    return json.dumps(out)


def describe(entry: Entry) -> str:
    """One readable line."""
    r = entry.record
    head = f"{iso(datetime.fromtimestamp(r.timestamp_ms / 1000, UTC))}  p{r.partition}@{r.offset}"
    e = entry.event
    if e is None:
        return f"{head}  {r.key.decode(errors='replace')}  ({entry.problem})"
    if isinstance(e, JobChanged):
        j = e.job
        extra = f" owner={j.owner}" if j.owner else ""
        extra += f" error={j.error!r}" if j.error else ""
        return f"{head}  job {j.id} -> {j.status}{extra} (by {e.pod})"
    if isinstance(e, ScheduleSet):
        state = " paused" if e.paused else ""
        params = " " + " ".join(e.params) if e.params else ""
        return (
            f"{head}  schedule {e.command_id} = {e.cron!r} {e.timezone}{params}{state} "
            f"(from {e.source}, by {e.pod})"
        )
    if isinstance(e, ScheduleRemoved):
        return f"{head}  schedule {e.command_id} removed (from {e.source}, by {e.pod})"
    if isinstance(e, ScheduleRejected):
        return f"{head}  schedule {e.command_id} change rejected: {e.reason}"
    if isinstance(e, JobTriggered):
        return f"{head}  trigger {e.command_id}"
    return f"{head}  {type(e).__name__}"
