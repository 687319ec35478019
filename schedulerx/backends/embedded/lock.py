"""The data-dir lock: one writer (pod or compaction) per data dir, across processes.

``fcntl.flock`` on ``data_dir/LOCK``, non-blocking. The kernel releases it when the holder's
process dies (kill -9 included), so a stale lock never blocks a restart. The holder writes
its pid and pod id into the file so that the next one can say who holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from schedulerx.ports.event_log import LogError, LogLocked


class DirLock:
    """An acquired data-dir lock; ``release`` (or process exit) frees it."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path, pod_id: str | None) -> DirLock:
        """Take the lock for ``pod_id`` (None: a compaction run) or raise LogLocked."""
        path = data_dir / "LOCK"
        shown = os.path.abspath(data_dir)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LogError(f"cannot open {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise LogLocked(
                f"data dir {shown} is in use by {holder}; stop it or use another --data-dir"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise LogError(f"cannot lock {path}: {exc.strerror}") from None
        info = json.dumps({"pid": os.getpid(), "pod_id": pod_id}).encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, info, 0)
        except OSError:
            pass  # the lock holds; only the "in use by" message would be less precise
        return cls(fd)

    def release(self) -> None:
        """Free the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


def _holder(fd: int) -> str:
    """Who holds the lock, as the LOCK file says: "pod 'p1' (pid 1234)"."""
    try:
        info = json.loads(os.pread(fd, 4096, 0))
        pid = int(info["pid"])
        pod_id = info.get("pod_id")
    except (OSError, ValueError, TypeError, KeyError):
        return "another process"
    if pod_id is None:
        return f"a compaction (pid {pid})"
    return f"pod {str(pod_id)!r} (pid {pid})"
