"""``schedulerx topic create``: the Kafka topic with the right config."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from schedulerx.cli.common import UserError, add_connection_flags, backend_of

EXAMPLES = """examples:
  schedulerx topic create --kafka 127.0.0.1:9092 --partitions 12 --replication-factor 3"""


def add_parser(sub: Any) -> None:
    """Register ``topic create``."""
    p = sub.add_parser(
        "topic",
        help="manage the Kafka topic",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = actions.add_parser(
        "create",
        help="create the compacted state topic",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_flags(c)
    c.add_argument("--partitions", type=int, default=12)
    c.add_argument("--replication-factor", type=int, default=1)
    c.set_defaults(handler=handle_create)


def handle_create(args: argparse.Namespace) -> int:
    """Create the topic (Kafka only)."""
    backend = backend_of(args)
    if backend.kafka is None:
        raise UserError("topic create needs --kafka BOOTSTRAP (the embedded log needs no topic)")
    from schedulerx.backends.kafka import admin  # type: ignore[attr-defined,unused-ignore]

    created = admin.create_topics(
        backend.kafka, backend.topic, args.partitions, args.replication_factor
    )
    sys.stdout.write(f"{created}\n")
    return 0
