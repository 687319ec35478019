"""Log lines: ``text`` (time level logger message) or ``json`` (one object per line)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure(level: int = logging.INFO, fmt: str = "text") -> None:
    """Send schedulerx logs to stderr in ``fmt``."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_Json())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("schedulerx").setLevel(level)
    # kafka-python logs every failed connection attempt at ERROR; schedulerx reports the
    # outcome itself in one line. Its own logs show with --log-level debug.
    logging.getLogger("kafka").setLevel(
        logging.DEBUG if level <= logging.DEBUG else logging.CRITICAL
    )
