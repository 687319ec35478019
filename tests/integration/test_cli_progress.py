"""Progress of ``schedulerx replay`` and ``schedulerx jobs``: on stderr only, with the right
total, never changing stdout; on by itself only when stderr is a terminal (a real pty here).

The log is a real embedded data dir written the way a pod writes it (a session appending
encoded events); the CLI runs as its own process.
"""

from __future__ import annotations

import io
import os
import pty
import queue
import re
import signal
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schedulerx.api.history import PROGRESS_EVERY
from schedulerx.backends.embedded import EmbeddedLog
from schedulerx.cli.common import ProgressLine
from schedulerx.domain.events import ScheduleSet, encode, new_event_id, schedule_key
from schedulerx.domain.partitioning import partition_for
from tests.support.procs import ROOT, SCHEDULERX, cli

VERSIONS = 50  # ScheduleSet records per command
RECORDS = (2 * PROGRESS_EVERY // VERSIONS + 7) * VERSIONS  # progress shows before the end
_SEGMENT = re.compile(r"(?P<label>[a-z ]+): (?P<done>[\d,]+)/(?P<total>[\d,]+) records")


def _append_schedule_sets(data_dir: Path, n: int) -> None:
    """``n`` ScheduleSet events, VERSIONS per command, as a pod records them."""
    log = EmbeddedLog(data_dir)
    session = log.join("pod-a")
    try:
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for i in range(n):
            command = f"c{i % (n // VERSIONS)}"
            event = ScheduleSet(
                event_id=new_event_id(),
                pod="pod-a",
                ts=datetime.now(UTC),
                command_id=command,
                cron=f"{i % 60} * * * *",
                source="cli",
            )
            p = partition_for(command, log.partitions)
            by_partition.setdefault(p, []).append((schedule_key(command), encode(event)))
        for p, items in by_partition.items():
            session.append(p, items)
    finally:
        session.close()
        log.close()


def _total(data_dir: Path) -> int:
    """Sum over partitions of (end offset - start offset), read from the log itself."""
    log = EmbeddedLog(data_dir, create=False)
    reader = log.reader()
    try:
        return sum(end - start for start, end in map(reader.bounds, range(reader.partitions)))
    finally:
        reader.close()
        log.close()


def _counts(stderr: str, label: str, total: int) -> list[int]:
    """The counts drawn on one progress line; asserts its shape and that it ends."""
    assert stderr.startswith("\r") and stderr.endswith("\n"), repr(stderr)
    assert stderr.count("\n") == 1, repr(stderr)
    counts = []
    for segment in stderr[1:-1].split("\r"):
        m = _SEGMENT.fullmatch(segment.rstrip(" "))
        assert m, repr(segment)
        assert m["label"] == label
        assert m["total"] == f"{total:,}"
        counts.append(int(m["done"].replace(",", "")))
    assert counts == sorted(counts)
    assert counts[-1] == total
    return counts


def _run(*args: str) -> tuple[bytes, str]:
    """``schedulerx ARGS`` (must exit 0): stdout as bytes, stderr with its \\r kept."""
    proc = subprocess.run([*SCHEDULERX, *args], capture_output=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout, proc.stderr.decode()


def test_replay_progress_is_on_stderr_with_the_log_total_and_stdout_is_unchanged(
    data_dir: Path,
) -> None:
    _append_schedule_sets(data_dir, RECORDS)
    total = _total(data_dir)
    assert total == RECORDS
    d = ["--data-dir", str(data_dir)]
    for extra in ([], ["--json"], ["--command", "c3"]):
        plain, plain_err = _run("replay", *extra, *d)
        shown, shown_err = _run("replay", *extra, "--progress", *d)
        off, off_err = _run("replay", *extra, "--no-progress", *d)
        assert plain_err == "" and off_err == ""  # not a terminal: off by itself
        assert shown == plain == off  # byte for byte
        counts = _counts(shown_err, "replaying", total)
        assert len(counts) >= 2, "progress only appeared at the end"
        assert counts[0] < total
    assert len(plain.splitlines()) == VERSIONS  # --command c3: filtered, yet all were read


def test_replay_progress_reaches_the_total_across_compaction_gaps(data_dir: Path) -> None:
    _append_schedule_sets(data_dir, RECORDS)
    cli("compact", "--data-dir", str(data_dir))
    total = _total(data_dir)  # offsets kept: the total still spans the gaps
    out, err = _run("replay", "--json", "--progress", "--data-dir", str(data_dir))
    assert len(out.splitlines()) == RECORDS // VERSIONS  # one survivor per command
    _counts(err, "replaying", total)


def test_replay_progress_on_an_empty_log_draws_nothing(data_dir: Path) -> None:
    EmbeddedLog(data_dir).close()
    assert _run("replay", "--progress", "--data-dir", str(data_dir)) == (b"", "")


def _run_on_pty(args: list[str], *, stdout_too: bool, out_file: Path) -> tuple[str, str]:
    """Run the CLI with stderr (and stdout, if ``stdout_too``) on a pseudo-terminal.

    Returns (what the terminal received, with its \\r\\n turned into \\n; stdout if it went
    to ``out_file``).
    """
    master, slave = pty.openpty()
    with open(out_file, "wb") as out:
        proc = subprocess.Popen(
            [*SCHEDULERX, *args],
            stdout=slave if stdout_too else out,
            stderr=slave,
            cwd=ROOT,
        )
    os.close(slave)
    received = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        received += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0, received.decode(errors="replace")
    return received.decode().replace("\r\n", "\n"), out_file.read_text()


def _visible_lines(terminal: str) -> list[str]:
    """What a terminal shows: each \\r returns to column 0 and overwrites."""
    lines = []
    for raw in terminal.split("\n"):
        cells: list[str] = []
        col = 0
        for ch in raw:
            if ch == "\r":
                col = 0
                continue
            if col < len(cells):
                cells[col] = ch
            else:
                cells.append(ch)
            col += 1
        lines.append("".join(cells).rstrip())
    return lines


def test_replay_progress_is_on_by_itself_when_stderr_is_a_terminal(
    data_dir: Path, tmp_path: Path
) -> None:
    _append_schedule_sets(data_dir, RECORDS)
    d = ["--data-dir", str(data_dir)]
    expected = cli("replay", "--json", *d).stdout
    terminal, stdout = _run_on_pty(
        ["replay", "--json", *d], stdout_too=False, out_file=tmp_path / "out"
    )
    assert stdout == expected
    _counts(terminal, "replaying", RECORDS)
    off, stdout = _run_on_pty(
        ["replay", "--json", "--no-progress", *d], stdout_too=False, out_file=tmp_path / "out"
    )
    assert (off, stdout) == ("", expected)


def test_replay_progress_never_mixes_into_event_lines_on_one_terminal(
    data_dir: Path, tmp_path: Path
) -> None:
    _append_schedule_sets(data_dir, RECORDS)
    d = ["--data-dir", str(data_dir)]
    expected = cli("replay", *d).stdout.splitlines()
    terminal, _ = _run_on_pty(["replay", *d], stdout_too=True, out_file=tmp_path / "out")
    assert "replaying: " in terminal  # it was drawn (and erased) along the way
    shown = _visible_lines(terminal)
    assert shown == [*expected, f"replaying: {RECORDS:,}/{RECORDS:,} records", ""]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_replay_follow_ends_the_progress_line_once_the_history_is_read(data_dir: Path) -> None:
    _append_schedule_sets(data_dir, RECORDS)
    argv = ["replay", "--follow", "--json", "--progress", "--data-dir", str(data_dir)]
    with subprocess.Popen(
        [*SCHEDULERX, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        # Ctrl-C as in a terminal, even when this suite was started in the background (a
        # shell then starts it with SIGINT ignored, and Python keeps that for children).
        preexec_fn=_default_sigint,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        lines: queue.Queue[bytes] = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True)
        reader.start()  # drain stdout, or a full pipe blocks replay before its progress ends
        try:
            progress = bytearray()
            while not progress.endswith(b"\n"):
                byte = proc.stderr.read(1)
                assert byte, "replay --follow exited before finishing its progress line"
                progress += byte
            _counts(progress.decode(), "replaying", RECORDS)
            existing = [lines.get(timeout=60) for _ in range(RECORDS)]
            assert all(b'"schedule.set"' in line for line in existing)
            _append_schedule_sets(data_dir, VERSIONS)  # new records while it follows
            new = [lines.get(timeout=60) for _ in range(VERSIONS)]
            assert all(b'"schedule.set"' in line for line in new)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 130
            assert proc.stderr.read() == b""  # no second progress line for followed records
        finally:
            if proc.poll() is None:
                proc.kill()
        reader.join(timeout=30)


def test_jobs_progress_shows_the_catch_up_and_nothing_when_there_is_none(data_dir: Path) -> None:
    _append_schedule_sets(data_dir, RECORDS)
    d = ["--data-dir", str(data_dir)]
    first, first_err = _run("jobs", "--json", "--progress", *d)
    _counts(first_err, "catching up", RECORDS)
    again, again_err = _run("jobs", "--json", "--progress", *d)  # the projection is current
    assert again_err == ""
    assert again == first == _run("jobs", "--json", *d)[0]
    as_of, as_of_err = _run("jobs", "--json", "--progress", "--as-of", "now", *d)
    _counts(as_of_err, "catching up", RECORDS)
    assert as_of == first


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_line_is_throttled_always_draws_the_end_and_ends_once() -> None:
    out, clock = io.StringIO(), _Clock()
    line = ProgressLine("replaying", stream=out, interval_s=0.25, clock=clock)
    line(1_000, 50_000)  # the first report draws at once
    clock.now += 0.1
    line(2_000, 50_000)  # too soon: skipped
    clock.now += 0.2
    line(12_345, 50_000)
    clock.now += 0.01
    line(50_000, 50_000)  # the end is drawn however soon, and ends the line
    line(50_000, 50_000)
    line.finish()
    assert out.getvalue() == (
        "\rreplaying: 1,000/50,000 records"
        "\rreplaying: 12,345/50,000 records"
        "\rreplaying: 50,000/50,000 records\n"
    )


def test_progress_line_clear_erases_and_finish_ends_an_interrupted_line() -> None:
    out, clock = io.StringIO(), _Clock()
    line = ProgressLine("x", stream=out, interval_s=0.25, clock=clock)
    line(0, 0)  # nothing to wait for: nothing drawn
    line.finish()
    assert out.getvalue() == ""
    line = ProgressLine("x", stream=out, interval_s=0.25, clock=clock)
    line(5, 10)
    line.clear()
    assert out.getvalue() == "\rx: 5/10 records" + "\r" + " " * len("x: 5/10 records") + "\r"
    line(6, 10)  # erased, but still at most one draw per interval
    clock.now += 0.3
    line(7, 10)
    line.finish()  # interrupted before the end: the line still ends
    line.finish()
    assert out.getvalue().endswith("\rx: 7/10 records\n")
    assert out.getvalue().count("\n") == 1


@pytest.mark.parametrize("words", [["replay"], ["jobs"]], ids=" ".join)
def test_progress_flags_are_in_the_help(words: list[str]) -> None:
    out = cli(*words, "--help").stdout
    assert "--progress, --no-progress" in out
