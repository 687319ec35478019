"""What every subcommand shares: connection flags, errors, output, help layout, progress."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

import msgspec

from schedulerx.api.jsonform import iso, job_json
from schedulerx.api.wiring import BackendConfig

__all__ = [
    "ArgumentParser",
    "HelpFormatter",
    "ProgressLine",
    "UserError",
    "add_connection_flags",
    "add_progress_flag",
    "backend_of",
    "iso",
    "job_json",
    "parse_time",
    "print_json",
    "progress_of",
    "table",
]


class UserError(Exception):
    """A problem the user can fix: printed as one line, exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """The parser of ``schedulerx`` and, through ``add_subparsers``, of every subcommand.

    - A usage error (unknown flag, bad choice or value, missing argument or subcommand) is
      one line on stderr, ``schedulerx: error: <argparse's message> (see <prog> --help)``,
      and exit code 2 (``SystemExit(2)``), with nothing on stdout and no usage text.
    - Long flags must be spelled out (``allow_abbrev=False`` unless a caller says otherwise):
      ``--stat`` is an unknown flag, not ``--status``, so scripts cannot come to depend on an
      abbreviation that a new flag would make ambiguous.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Exit 2 after writing ``message`` as one line (newlines in it become spaces)."""
        text = " ".join(message.split())
        self.exit(2, f"schedulerx: error: {text} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs as written; subcommand names measured as Python 3.13+ measures them.

    Python 3.11 and 3.12 measure them 2 columns short and wrap every name longer than 8
    characters onto a line of its own; with this, ``--help`` reads the same on 3.11-3.13
    (docs/cli.md shows it, and a test compares).
    """

    def add_argument(self, action: argparse.Action) -> None:
        """Count each subaction's indented invocation in the help column's width."""
        if action.help is not argparse.SUPPRESS:
            lengths = [len(self._format_action_invocation(action)) + self._current_indent]
            for sub in self._iter_indented_subactions(action):
                lengths.append(len(self._format_action_invocation(sub)) + self._current_indent)
            self._action_max_length = max(self._action_max_length, *lengths)
        super().add_argument(action)


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


def add_progress_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """``--progress`` / ``--no-progress`` (default: on when stderr is a terminal)."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"show progress on stderr while {what} (default: when stderr is a terminal)",
    )


def progress_of(args: argparse.Namespace, label: str) -> ProgressLine | None:
    """The progress line ``--progress`` / ``--no-progress`` (else: stderr is a TTY) asks for."""
    wanted: bool | None = args.progress
    if wanted is None:
        wanted = sys.stderr.isatty()
    return ProgressLine(label) if wanted else None


class ProgressLine:
    """A ``progress(done, total)`` callback drawing ``\r<label>: 12,345/50,000 records``.

    Always on stderr, never on stdout (which carries the command's output). Redrawn at most
    once per ``interval_s``; the final count (``done >= total``) is always drawn and ends the
    line with a newline, after which later calls draw nothing. Nothing is drawn for
    ``total == 0``: there is nothing to wait for.
    """

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        interval_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._stream = stream if stream is not None else sys.stderr
        self._interval_s = interval_s
        self._clock = clock
        self._last_draw: float | None = None
        self._width = 0
        self._visible = False
        self._finished = False

    def __call__(self, done: int, total: int) -> None:
        """Report ``done`` of ``total`` records."""
        if self._finished or total <= 0:
            return
        final = done >= total
        now = self._clock()
        if not final and self._last_draw is not None and now - self._last_draw < self._interval_s:
            return
        self._last_draw = now
        text = f"{self._label}: {min(done, total):,}/{total:,} records"
        self._stream.write("\r" + text.ljust(self._width))
        self._width = len(text)
        self._visible = True
        if final:
            self.finish()
        else:
            self._stream.flush()

    def clear(self) -> None:
        """Erase the line (before other output to the same terminal); it is drawn again at the
        next report due (still at most once per ``interval_s``)."""
        if self._visible and not self._finished:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._visible = False

    def finish(self) -> None:
        """End the line with a newline if one is drawn (also on interruption); idempotent."""
        if self._finished:
            return
        self._finished = True
        if self._visible:
            self._stream.write("\n")
            self._stream.flush()


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
