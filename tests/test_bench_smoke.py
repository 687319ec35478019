"""The benchmark cannot rot: ``python -m bench --quick`` runs every row end to end.

Quick mode's figures mean nothing (tiny sizes, rows run concurrently); what is checked is that
every row ran, the report and the raw JSON were written, and every ledger the benchmark's
commands wrote shows no job started twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[1]
ROWS = {"fire_lag", "throughput", "herd", "failover", "replay", "query", "memory", "kafka_floor"}


BUDGET_S = 300
"""The quick run's own budget (``BENCH_QUICK_BUDGET_S``): a row still running then fails, with
every thread's stack on stderr. The test waits a little longer (broker, report, clean-up)."""


def test_quick_benchmark_writes_the_report_with_no_duplicate_start(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    out = tmp_path / "perf.md"
    argv = [sys.executable, "-m", "bench", "--quick", "--out", str(out), "--kafka", kafka_bootstrap]
    env = {**os.environ, "BENCH_QUICK_BUDGET_S": str(BUDGET_S)}
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _, stderr = proc.communicate(timeout=BUDGET_S + 120)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the bench stops every process it started
        try:
            _, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        pytest.fail(f"python -m bench --quick outlived its budget:\n{stderr[-6000:]}")
    assert proc.returncode == 0, stderr[-6000:]

    data = json.loads((tmp_path / "perf.json").read_text())
    assert data["mode"] == "quick"
    assert set(data["rows"]) == ROWS
    assert [name for name, row in data["rows"].items() if "error" in row] == []
    assert data["ledger"]["duplicates"] == 0
    assert data["ledger"]["runs"] > 0
    assert all(check["duplicates"] == 0 for check in data["ledger"]["checks"])

    report = out.read_text()
    assert "**0 duplicate starts**" in report
    for row in data["rows"].values():
        assert f"## {row['title']}" in report
    assert (tmp_path / "perf-fire-lag.png").stat().st_size > 0
