"""``schedulerx dashboard``: the dashboard page, read-only, from the log (no pod needed)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from schedulerx.cli.common import HelpFormatter, UserError, add_connection_flags, backend_of

EXAMPLES = """examples:
  schedulerx dashboard                                  # ./.schedulerx on 127.0.0.1:8080
  schedulerx dashboard --http 9200 --data-dir /var/lib/schedulerx
  schedulerx dashboard --kafka broker:9092 --http 0.0.0.0:8080"""


def add_parser(sub: Any) -> None:
    """Register the ``dashboard`` subcommand."""
    p = sub.add_parser(
        "dashboard",
        help="serve the dashboard page (read-only) from the log",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    add_connection_flags(p)
    p.add_argument(
        "--http",
        metavar="[HOST:]PORT",
        default=os.environ.get("SCHEDULERX_DASHBOARD_HTTP") or "127.0.0.1:8080",
        help="where to serve (127.0.0.1:8080; PORT alone means loopback)",
    )
    p.add_argument(
        "--refresh",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="read new records from the log at most this often (1)",
    )
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT. Never takes the data-dir lock, never writes the log."""
    from schedulerx.cli.main import setup_logging
    from schedulerx.ops.http import AddressError, OpsServer, parse_address
    from schedulerx.ops.sources import LogViewSource

    try:
        address = parse_address(args.http)
    except AddressError as exc:
        raise UserError(str(exc)) from None
    if args.refresh <= 0:
        raise UserError("--refresh must be > 0")
    setup_logging("info", "text")
    source = LogViewSource(backend_of(args), refresh_s=args.refresh)
    try:
        server = OpsServer(address, source)
        try:
            sys.stdout.write(f"dashboard of {source.name} on {server.url}\n")
            sys.stdout.flush()
            _wait_for_signal()
        finally:
            server.close()
    finally:
        source.close()
    return 0


def _wait_for_signal() -> None:
    done = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not done.wait(0.5):
            pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
