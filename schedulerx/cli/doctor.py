"""``schedulerx doctor``: check a deployment; exit 0 without problems, 1 with, 2 bad usage."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from schedulerx.cli.common import HelpFormatter, add_connection_flags, backend_of

EXAMPLES = """examples:
  schedulerx doctor                       # the embedded log in ./.schedulerx
  schedulerx doctor --data-dir /var/lib/schedulerx --json
  schedulerx doctor --kafka broker:9092 --topic schedulerx --group schedulerx"""


def add_parser(sub: Any) -> None:
    """Register the ``doctor`` subcommand."""
    p = sub.add_parser(
        "doctor",
        help="check the log, topic, group and clocks; print what to fix",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    add_connection_flags(p)
    p.add_argument("--json", action="store_true", help='{"ok": ..., "checks": [...]}')
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the checks of the selected backend and print them."""
    from schedulerx.ops.doctor import (
        FindingLike,
        embedded_checks,
        exit_code,
        render_json,
        render_text,
    )

    backend = backend_of(args)
    findings: Sequence[FindingLike]
    if backend.kafka is not None:
        from schedulerx.backends.kafka.doctor import kafka_checks

        findings = kafka_checks(backend.kafka, backend.topic, backend.kafka_group)
    else:
        findings = embedded_checks(backend.data_dir)
    sys.stdout.write(render_json(findings) + "\n" if args.json else render_text(findings))
    return exit_code(findings)
