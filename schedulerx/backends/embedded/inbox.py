"""The requests inbox: schedule-change requests handed to the pod through files.

Any process may ``submit`` (no lock): the request is written to a temp file, fsynced and
renamed into ``data_dir/inbox/`` under a name that sorts by submission time
(``<time_ns>-<random>.req``), so a reader never sees half a request. The pod's session takes
pending requests in name order and deletes them only at its next poll: at-least-once.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path
from typing import Final

from schedulerx.ports.event_log import LogError

logger: Final = logging.getLogger("schedulerx.log")

MAX_REQUEST_BYTES: Final = 1024 * 1024
"""A larger request file is returned cut at this size (+1 byte), so it fails to decode."""
_SUFFIX: Final = ".req"


def submit(inbox_dir: Path, request: bytes) -> None:
    """Put ``request`` into the inbox atomically and durably; LogError if it cannot."""
    name = f"{time.time_ns():020d}-{secrets.token_hex(8)}{_SUFFIX}"
    tmp = inbox_dir / f".tmp-{name}"
    try:
        inbox_dir.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as out:
            out.write(request)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, inbox_dir / name)
        fd = os.open(inbox_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LogError(f"cannot submit a request to {inbox_dir}: {exc.strerror or exc}") from None


class InboxConsumer:
    """The pod's side of the inbox (one consumer per data dir: the lock holder)."""

    def __init__(self, inbox_dir: Path) -> None:
        self._dir = inbox_dir
        self._delivered: list[str] = []
        self._stuck: set[str] = set()
        """Delivered files that could not be deleted: never delivered again this session."""

    def forget_delivered(self) -> None:
        """Delete the files returned by the previous ``take``."""
        for name in self._delivered:
            try:
                os.unlink(self._dir / name)
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.warning("cannot delete request %s: %s", self._dir / name, exc.strerror)
                self._stuck.add(name)
        self._delivered = []

    def has_pending(self) -> bool:
        """Whether a request is waiting."""
        return bool(self._names(1))

    def take(self, limit: int) -> list[bytes]:
        """Up to ``limit`` pending requests in name order; deleted by the next ``forget``."""
        self._delivered, requests = [], []
        for name in self._names(limit):
            data = self._read(name)
            if data is not None:
                self._delivered.append(name)
                requests.append(data)
        return requests

    def remove_stale_temp_files(self, older_than_s: float) -> None:
        """Delete temp files left by submitters that died mid-write."""
        cutoff = time.time() - older_than_s
        try:
            entries = list(os.scandir(self._dir))
        except OSError:
            return
        for entry in entries:
            try:
                if entry.name.startswith(".tmp-") and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except OSError:
                pass

    def _names(self, limit: int) -> list[str]:
        try:
            entries = list(os.scandir(self._dir))
        except OSError:
            return []
        names = []
        for entry in entries:
            if entry.name.startswith(".") or entry.name in self._stuck:
                continue
            try:
                if entry.is_file():
                    names.append(entry.name)
            except OSError:
                continue
        names.sort()
        return names[:limit]

    def _read(self, name: str) -> bytes | None:
        """The file's bytes; b"" if unreadable (the engine rejects it), None if gone."""
        try:
            with open(self._dir / name, "rb") as f:
                return f.read(MAX_REQUEST_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("cannot read request %s: %s", self._dir / name, exc.strerror)
            return b""
