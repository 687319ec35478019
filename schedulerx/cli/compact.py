"""``schedulerx compact``: compact the embedded log (latest record per key)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING, Any

from schedulerx.cli.common import (
    HelpFormatter,
    UserError,
    add_connection_flags,
    backend_of,
    print_json,
)

if TYPE_CHECKING:
    from schedulerx.backends.embedded import CompactionStats

EXAMPLES = """examples:
  schedulerx compact --data-dir ./.schedulerx
  schedulerx compact --json   # {"partitions": [...], "records_before": ..., ...}"""


def add_parser(sub: Any) -> None:
    """Register ``compact``."""
    p = sub.add_parser(
        "compact",
        help="compact the embedded log (no pod may run)",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    add_connection_flags(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object: partitions, records/bytes before and after, tombstones removed",
    )
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Compact every partition; Kafka topics are compacted by the broker.

    Never creates a data dir: compacting a log that is not there is an error. The counts are
    summed over the partitions compacted (``EmbeddedLog.compact``'s ``CompactionStats``).
    """
    backend = backend_of(args)
    if backend.kafka is not None:
        raise UserError("Kafka compacts the topic itself (cleanup.policy=compact)")
    from schedulerx.backends.embedded import EmbeddedLog

    log_ = EmbeddedLog(backend.data_dir, create=False)
    try:
        stats = log_.compact()
    finally:
        log_.close()
    if args.json:
        print_json(dataclasses.asdict(stats))
    else:
        sys.stdout.write(_summary(stats) + "\n")
    return 0


def _summary(stats: CompactionStats) -> str:
    """One human line, e.g. ``compacted 12 partitions: 9,204 -> 412 records ...``."""
    return (
        f"compacted {len(stats.partitions)} partitions: "
        f"{stats.records_before:,} -> {stats.records_after:,} records, "
        f"{stats.bytes_before:,} -> {stats.bytes_after:,} bytes, "
        f"{stats.tombstones_removed:,} tombstones removed"
    )
