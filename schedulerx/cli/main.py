"""``schedulerx``: entry point, subcommand dispatch, one-line errors with exit code 2."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from projections import ProjectionError
from schedulerx.cli import (
    compact,
    completion,
    dashboard,
    doctor,
    jobs,
    replay,
    run,
    schedule,
    topic,
)
from schedulerx.cli.common import ArgumentParser, HelpFormatter, UserError
from schedulerx.ports.event_log import LogError

_MODULES = (run, jobs, schedule, replay, topic, compact, dashboard, doctor, completion)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to generate the CLI reference).

    Every parser in it is a ``common.ArgumentParser`` (subparsers inherit the class): usage
    errors are one line with exit code 2, and long flags cannot be abbreviated.
    """
    parser = ArgumentParser(
        prog="schedulerx",
        description="Distributed cron: each job exactly once, every job on record.",
        epilog="examples:\n  schedulerx run examples/demo.py\n  schedulerx jobs --status failed",
        formatter_class=HelpFormatter,
    )
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    for module in _MODULES:
        module.add_parser(sub)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``argv`` parsed as ``main`` does: PARAMs may also follow a ``--`` placed after flags.

    Bad usage exits with code 2 and one line on stderr, through the ``error`` of the
    deepest subcommand parser ``argv`` reached (so its message names that subcommand's help).
    """
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "params") and extra[0] == "--":
        args.params = [*args.params, *extra[1:]]  # params after --, wherever flags stood
    elif extra:
        _chosen(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _chosen(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The subcommand parser ``args`` was parsed by (``parser`` itself without subcommands)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            child = action.choices.get(getattr(args, action.dest, None) or "")
            if child is not None:
                return _chosen(child, args)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 command failed, 2 user error)."""
    args = parse_args(build_parser(), argv)
    try:
        code: int = args.handler(args)
    except BrokenPipeError:
        # `schedulerx replay | head`: the reader left; not an error.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130
    except (UserError, LogError, ProjectionError, ValueError, OSError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sys.stderr.write(f"schedulerx: error: {message}\n")
        return 2
    return code


def setup_logging(level: str, fmt: str) -> None:
    """``text`` (key=value) or ``json`` lines on stderr."""
    from schedulerx.cli.logs import configure

    configure(level=getattr(logging, level.upper(), logging.INFO), fmt=fmt)


if __name__ == "__main__":
    raise SystemExit(main())
