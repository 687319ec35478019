"""What every subcommand shares: connection flags, errors, output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from schedulerx.api.jsonform import iso, job_json
from schedulerx.api.wiring import BackendConfig

__all__ = [
    "UserError",
    "add_connection_flags",
    "backend_of",
    "iso",
    "job_json",
    "parse_time",
    "print_json",
    "table",
]


class UserError(Exception):
    """A problem the user can fix: printed as one line, exit code 2."""


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """``--data-dir``, ``--kafka``, ``--topic``, ``--group`` (each also ``SCHEDULERX_<FLAG>``)."""
    g = parser.add_argument_group("connection (each also read from SCHEDULERX_<FLAG>)")
    g.add_argument("--data-dir", type=Path, help="embedded log and projections (./.schedulerx)")
    g.add_argument("--kafka", metavar="BOOTSTRAP", help="use Kafka at host:port[,host:port]")
    g.add_argument("--topic", help="Kafka state topic (schedulerx)")
    g.add_argument("--group", help="Kafka consumer group (<topic>-pods)")


def backend_of(args: argparse.Namespace) -> BackendConfig:
    """The backend the flags (then the environment) name."""
    return BackendConfig.from_env(
        data_dir=args.data_dir, kafka=args.kafka, topic=args.topic, group=args.group
    )


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (naive means UTC) or ``now``; UserError otherwise."""
    if text == "now":
        return datetime.now(UTC)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"not an ISO 8601 time: {text!r} (e.g. 2026-12-04T10:15:00Z)") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def print_json(value: object) -> None:
    """Pretty JSON on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, default=_default) + "\n")


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return iso(value)
    return msgspec.to_builtins(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A left-aligned text table with a header line; long cells are cut at 60 characters."""
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."
