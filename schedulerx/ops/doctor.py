"""``schedulerx doctor``: findings (OK / WARN / PROBLEM / SKIP) about a deployment.

This module holds the embedded-log checks and the rendering; the Kafka checks live in
``schedulerx.backends.kafka.doctor`` (the only package that may import ``kafka``) and return
findings of the same shape (``FindingLike``). Every check only reads: none takes the
data-dir lock, writes a record or creates a topic.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from projections import ProjectionError, ProjectionStore
from schedulerx.backends.embedded import EmbeddedLog
from schedulerx.domain.events import PoisonRecord, decode
from schedulerx.ports.event_log import LogError

LEVELS: Final = ("OK", "WARN", "PROBLEM", "SKIP")
_CHUNK: Final = 5000
_LAG_WARN: Final = 1000
_INBOX_STUCK_S: Final = 60.0


class FindingLike(Protocol):
    """One line of the checklist."""

    @property
    def level(self) -> str:
        """OK, WARN, PROBLEM (exit code 1) or SKIP (not checked, and why)."""
        ...

    @property
    def check(self) -> str:
        """What was checked (a short name)."""
        ...

    @property
    def detail(self) -> str:
        """What was found, one line."""
        ...

    @property
    def fix(self) -> str | None:
        """What to do about it (a command when there is one)."""
        ...


@dataclass(frozen=True, slots=True)
class Finding:
    """A finding of the embedded checks."""

    level: str
    check: str
    detail: str
    fix: str | None = None


def exit_code(findings: Sequence[FindingLike]) -> int:
    """1 when any finding is a PROBLEM, else 0."""
    return 1 if any(f.level == "PROBLEM" for f in findings) else 0


def render_text(findings: Sequence[FindingLike]) -> str:
    """The checklist: ``LEVEL    check: detail`` and an indented ``fix:`` line, then a
    summary line."""
    lines = []
    for f in findings:
        lines.append(f"{f.level:<8} {f.check}: {f.detail}")
        if f.fix:
            lines.append(f"         fix: {f.fix}")
    counts = {level: sum(1 for f in findings if f.level == level) for level in LEVELS}
    verdict = "problems found" if counts["PROBLEM"] else "no problems"
    lines.append(
        f"{verdict}: {counts['OK']} ok, {counts['WARN']} warnings, "
        f"{counts['PROBLEM']} problems, {counts['SKIP']} skipped"
    )
    return "\n".join(lines) + "\n"


def render_json(findings: Sequence[FindingLike]) -> str:
    """``{"ok": bool, "checks": [{"level", "check", "detail", "fix"}, ...]}``."""
    return json.dumps(
        {
            "ok": exit_code(findings) == 0,
            "checks": [
                {"level": f.level, "check": f.check, "detail": f.detail, "fix": f.fix}
                for f in findings
            ],
        },
        indent=2,
    )


# -- embedded -------------------------------------------------------------------------------


def embedded_checks(data_dir: Path) -> list[Finding]:
    """Data dir, log, corrupt and poison records, lock holder, projection lag, inbox, disk."""
    shown = os.path.abspath(data_dir)
    if not data_dir.is_dir():
        return [
            Finding(
                "PROBLEM",
                "data dir",
                f"{shown} does not exist",
                "check --data-dir (or SCHEDULERX_DATA_DIR); a pod creates it on its first start",
            )
        ]
    out = [Finding("OK", "data dir", shown)]
    try:
        log_ = EmbeddedLog(data_dir, create=False)
    except LogError as exc:
        out.append(Finding("PROBLEM", "log", _line(exc), "check --data-dir"))
        return out
    try:
        out += _log_checks(data_dir, log_)
    finally:
        log_.close()
    return out


def _log_checks(data_dir: Path, log_: EmbeddedLog) -> list[Finding]:
    out: list[Finding] = []
    reader = log_.reader()
    try:
        ends: dict[int, int] = {}
        records = poison = 0
        for p in range(reader.partitions):
            start, end = reader.bounds(p)
            ends[p] = end
            offset = start
            while offset < end:
                batch = reader.read(p, offset, _CHUNK)
                if not batch:
                    break
                for r in batch:
                    records += 1
                    if r.value is not None and _poison(r.value):
                        poison += 1
                offset = batch[-1].offset + 1
        corrupt = reader.corrupt_records
    except (LogError, OSError) as exc:
        out.append(Finding("PROBLEM", "log", f"cannot read the log: {_line(exc)}"))
        return out
    finally:
        reader.close()
    size = sum(f.stat().st_size for f in (data_dir / "log").glob("*.log"))
    out.append(
        Finding(
            "OK",
            "log",
            f"{reader.partitions} partitions, {records} records, {size / 2**20:.1f} MiB, readable",
        )
    )
    if corrupt:
        out.append(
            Finding(
                "WARN",
                "corrupt records",
                f"{corrupt} record(s) failed their CRC and are skipped (the log warns with "
                "their file positions)",
                f"stop the pod, then 'schedulerx compact --data-dir {data_dir}' rewrites the "
                "log without them",
            )
        )
    else:
        out.append(Finding("OK", "corrupt records", "none"))
    if poison:
        out.append(
            Finding(
                "WARN",
                "poison records",
                f"{poison} record(s) cannot be decoded; pods and readers skip them",
                f"'schedulerx replay --data-dir {data_dir}' shows them with their offsets",
            )
        )
    holder = lock_holder(data_dir)
    running = holder is not None
    if running:
        out.append(Finding("OK", "lock", f"held by {holder}: a pod is running"))
    else:
        out.append(
            Finding(
                "WARN",
                "lock",
                "free: no pod is running, so no job starts",
                f"schedulerx run APP --data-dir {data_dir}",
            )
        )
    out.append(_projection_check(data_dir, ends, running))
    out.append(_inbox_check(data_dir, running))
    out.append(_disk_check(data_dir))
    return out


def _poison(value: bytes) -> bool:
    try:
        decode(value)
    except (PoisonRecord, ValueError, TypeError):
        return True
    return False


def lock_holder(data_dir: Path) -> str | None:
    """Who holds ``data_dir/LOCK`` (``pod 'p' (pid 12)``), None when nobody does.

    The kernel's lock table (``/proc/locks``) says whether the lock is held, and by which
    pid; the file says which pod (the holder writes ``{"pid", "pod_id"}`` into it). Without
    ``/proc/locks``, a pid named in the file that is alive counts as the holder.
    """
    path = data_dir / "LOCK"
    try:
        st = path.stat()
        info = json.loads(path.read_bytes() or b"{}")
    except (OSError, ValueError):
        return None
    pod_id = info.get("pod_id") if isinstance(info, dict) else None
    pid_in_file = info.get("pid") if isinstance(info, dict) else None
    kernel_pid = _flock_pid(st.st_ino)
    if kernel_pid is None:
        if not isinstance(pid_in_file, int) or not _alive(pid_in_file) or _has_proc_locks():
            return None
        kernel_pid = pid_in_file
    who = f"pod {pod_id!r}" if pod_id else "a compaction" if "pid" in info else "a process"
    return f"{who} (pid {kernel_pid})"


def _has_proc_locks() -> bool:
    return os.path.exists("/proc/locks")


def _flock_pid(inode: int) -> int | None:
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:2f:567 0 EOF"; "->" marks waiters
        if (
            len(parts) >= 6
            and parts[1] == "FLOCK"
            and parts[2] != "->"
            and parts[5].rsplit(":", 1)[-1] == str(inode)
            and parts[4].isdigit()
        ):
            return int(parts[4])
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _projection_check(data_dir: Path, ends: dict[int, int], running: bool) -> Finding:
    path = data_dir / "projection"
    if not (path / "CURRENT").is_file():
        return Finding(
            "WARN",
            "projection",
            f"none at {path} yet",
            "a pod builds it when it starts ('schedulerx jobs' too)",
        )
    try:
        store = ProjectionStore.open_reader(path)
    except ProjectionError as exc:
        return Finding("PROBLEM", "projection", _line(exc), "start a pod: it rebuilds the store")
    try:
        lag = sum(max(0, end - store.next_offset(p)) for p, end in ends.items())
        stats = store.stats
    finally:
        store.close()
    extra = ""
    if stats.poison_records or stats.illegal_transitions:
        extra = (
            f"; skipped {stats.poison_records} poison record(s) and "
            f"{stats.illegal_transitions} illegal transition(s)"
        )
    if not running:
        return Finding(
            "OK",
            "projection",
            f"{lag} record(s) behind the log (the next pod start or 'schedulerx jobs' catches "
            f"up){extra}",
        )
    if lag > _LAG_WARN:
        return Finding(
            "WARN",
            "projection",
            f"{lag} record(s) behind the log while a pod runs (catching up after start?){extra}",
            "run doctor again: the lag should fall; if not, see the pod's log",
        )
    return Finding("OK", "projection", f"{lag} record(s) behind the log{extra}")


def _inbox_check(data_dir: Path, running: bool) -> Finding:
    waiting = sorted((data_dir / "inbox").glob("*.req"), key=lambda f: f.stat().st_mtime)
    if not waiting:
        return Finding("OK", "inbox", "no request waiting")
    age = time.time() - waiting[0].stat().st_mtime
    text = f"{len(waiting)} request(s) waiting, the oldest for {age:.0f}s"
    if not running:
        return Finding("WARN", "inbox", text + ": no pod is running to apply them")
    if age > _INBOX_STUCK_S:
        return Finding(
            "WARN", "inbox", text + " although a pod runs", "see the pod's log (is its loop stuck?)"
        )
    return Finding("OK", "inbox", text)


def _disk_check(data_dir: Path) -> Finding:
    usage = shutil.disk_usage(data_dir)
    free_mib = usage.free / 2**20
    text = f"{free_mib:.0f} MiB free ({100 * usage.free / usage.total:.0f}%)"
    if usage.free < 512 * 2**20 or usage.free < 0.05 * usage.total:
        return Finding(
            "WARN",
            "disk",
            text + ": appends fail when the disk is full",
            "free space, or run 'schedulerx compact' with the pod stopped",
        )
    return Finding("OK", "disk", text)


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
