"""``schedulerx compact``: compact the embedded log (latest record per key)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from schedulerx.cli.common import UserError, add_connection_flags, backend_of

EXAMPLES = """examples:
  schedulerx compact --data-dir ./.schedulerx"""


def add_parser(sub: Any) -> None:
    """Register ``compact``."""
    p = sub.add_parser(
        "compact",
        help="compact the embedded log (no pod may run)",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_flags(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Compact every partition; Kafka topics are compacted by the broker."""
    backend = backend_of(args)
    if backend.kafka is not None:
        raise UserError("Kafka compacts the topic itself (cleanup.policy=compact)")
    from schedulerx.backends.embedded import EmbeddedLog

    log_ = EmbeddedLog(backend.data_dir)
    try:
        stats = log_.compact()
    finally:
        log_.close()
    sys.stdout.write(f"{stats}\n")
    return 0
