"""``schedulerx topic create``: the Kafka topic with the right config."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from schedulerx.cli.common import (
    HelpFormatter,
    UserError,
    add_connection_flags,
    backend_of,
    print_json,
)
from schedulerx.ports.event_log import LogError

EXAMPLES = """examples:
  schedulerx topic create --kafka 127.0.0.1:9092 --partitions 12 --replication-factor 3
  schedulerx topic create --kafka 127.0.0.1:9092 --json   # what was created, what existed"""


def add_parser(sub: Any) -> None:
    """Register ``topic create``."""
    p = sub.add_parser(
        "topic",
        help="manage the Kafka topic",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = actions.add_parser(
        "create",
        help="create the compacted state topic",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    add_connection_flags(c)
    c.add_argument("--partitions", type=int, default=12, metavar="N", help="for a new topic (12)")
    c.add_argument(
        "--replication-factor", type=int, default=1, metavar="N", help="for a new topic (1)"
    )
    c.add_argument(
        "--json",
        action="store_true",
        help="one JSON object: each topic's partitions, replication factor, created or not",
    )
    c.set_defaults(handler=handle_create)


def handle_create(args: argparse.Namespace) -> int:
    """Create the state and requests topics (Kafka only); existing ones are kept as they are.

    ``--json`` reports each topic as it stands afterwards and whether this call created it
    (a topic that existed keeps its own partition count and replication factor).
    """
    if args.partitions < 1:
        raise UserError("--partitions must be >= 1")
    if args.replication_factor < 1:
        raise UserError("--replication-factor must be >= 1")
    backend = backend_of(args)
    if backend.kafka is None:
        raise UserError("topic create needs --kafka BOOTSTRAP (the embedded log needs no topic)")
    from schedulerx.backends.kafka import admin  # type: ignore[attr-defined,unused-ignore]

    if not args.json:
        created = admin.create_topics(
            backend.kafka, backend.topic, args.partitions, args.replication_factor
        )
        sys.stdout.write(f"{created}\n")
        return 0
    from schedulerx.backends.kafka.settings import KafkaSettings

    settings = KafkaSettings.from_env(backend.kafka, topic=backend.topic)
    names = {"state": settings.topic, "requests": settings.requests_topic}
    before = _existing(admin, settings, list(names.values()))
    n = admin.ensure_topics(settings, args.partitions, args.replication_factor)
    topics = []
    for role, name in names.items():
        found = before.get(name)
        partitions, rf = found if found is not None else (n, args.replication_factor)
        topics.append(
            {
                "name": name,
                "role": role,
                "partitions": partitions,
                "replication_factor": rf,
                "created": found is None,
            }
        )
    print_json({"bootstrap": backend.kafka, "topics": topics})
    return 0


def _existing(admin: Any, settings: Any, names: list[str]) -> dict[str, tuple[int, int]]:
    """(partitions, replication factor) of each of ``names`` that exists."""
    client = admin.connect_admin(settings)
    try:
        described = client.describe_topics(names)
    except RuntimeError as exc:  # kafka.errors.KafkaError; the cli may not import kafka
        raise LogError(f"Kafka admin request failed: {type(exc).__name__}: {exc}") from None
    finally:
        client.close()
    out: dict[str, tuple[int, int]] = {}
    for t in described:
        name, parts = t.get("name", t.get("topic")), t.get("partitions")
        if t.get("error_code", 0) == 0 and name in names and parts:
            out[name] = (len(parts), min(len(p.get("replica_nodes", [])) for p in parts))
    return out
