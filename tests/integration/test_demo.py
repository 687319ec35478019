"""The README's demo (``./dev demo`` = ``examples/demo.py``) as a user runs it: a process.

Judged by its own output (each job's start and finish lines, the final job list) and by what
``schedulerx jobs --json`` (another process) reads from the data dir it leaves behind.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.support.procs import ROOT, jobs_json

pytestmark = pytest.mark.slow

COMMANDS = ("hello", "report", "flaky")
JOB_ID = r"(?:hello|report|flaky)@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
STARTED = re.compile(rf"  started   ({JOB_ID})")
FINISHED = re.compile(rf"  finished  ({JOB_ID})  (ok|failed): \S.*")
TABLE_ROW = re.compile(rf"({JOB_ID})\s+([a-z]+)(?:\s+\S.*)?")
# Every other line the demo may print; anything else is interleaved garbage.
OTHER = [
    re.compile(r"schedulerx demo: 3 commands on the embedded log in \S+"),
    re.compile(r""),
    re.compile(r"-- job list \(last 14 of \d+\) --"),
    re.compile(r"-- final job list \(\d+ jobs\) --"),
    re.compile(r"JOB\s+STATUS\s+STARTED\s+ERROR"),
    re.compile(r"stopped\. \d+ jobs: .+"),
    re.compile(r"next 2 scheduled per command:"),
    re.compile(rf"  [a-z]+: {JOB_ID}, {JOB_ID}"),
]


def _final_table(lines: list[str]) -> tuple[int, dict[str, str]]:
    """The job count in the final list's title, and its rows as job id -> status."""
    title = next(i for i, line in enumerate(lines) if line.startswith("-- final job list"))
    count = int(re.findall(r"\d+", lines[title])[0])
    assert lines[title + 1].startswith("JOB"), lines[title + 1]
    rows: dict[str, str] = {}
    for line in lines[title + 2 :]:
        if not line:
            break
        match = TABLE_ROW.fullmatch(line)
        assert match, f"not a job row: {line!r}"
        rows[match[1]] = match[2]
    return count, rows


def test_demo_runs_jobs_and_ends_with_the_next_two_scheduled_per_command(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = subprocess.run(
        [sys.executable, "examples/demo.py", "--seconds", "3", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    garbage = [
        line
        for line in lines
        if not any(p.fullmatch(line) for p in (STARTED, FINISHED, TABLE_ROW, *OTHER))
    ]
    assert garbage == [], f"lines that are none of the demo's forms: {garbage}"

    # Jobs are shown starting and finishing: each start once, then its finish once.
    started = [m[1] for line in lines if (m := STARTED.fullmatch(line))]
    finished = {m[1]: m[2] for line in lines if (m := FINISHED.fullmatch(line))}
    assert started, "no job was shown starting"
    assert Counter(started).most_common(1)[0][1] == 1, "a job was shown starting twice"
    assert sorted(finished) == sorted(started), "a start without a finish or the reverse"
    assert len(finished) == sum(1 for line in lines if FINISHED.fullmatch(line))
    for jid in started:
        assert lines.index(f"  started   {jid}") < next(
            i for i, line in enumerate(lines) if line.startswith(f"  finished  {jid}  ")
        ), f"{jid} finished before it started"

    # The final job list: every job, the finished ones as shown, the next 2 per command.
    count, final = _final_table(lines)
    assert len(final) == count
    for jid, outcome in finished.items():
        assert final[jid] == ("succeeded" if outcome == "ok" else "failed"), (jid, final[jid])
    scheduled = Counter(jid.split("@")[0] for jid, status in final.items() if status == "scheduled")
    assert scheduled == dict.fromkeys(COMMANDS, 2)
    assert not [jid for jid, status in final.items() if status in ("claimed", "running")]

    # Another process reading the data dir the demo left sees the same jobs.
    listed = {str(j["id"]): str(j["status"]) for j in jobs_json("--data-dir", str(data))}
    assert listed == final
