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


def test_quick_benchmark_writes_the_report_with_no_duplicate_start(tmp_path: Path) -> None:
    out = tmp_path / "perf.md"
    argv = [sys.executable, "-m", "bench", "--quick", "--out", str(out)]
    if os.environ.get("SCHEDULERX_TEST_KAFKA"):
        argv += ["--kafka", os.environ["SCHEDULERX_TEST_KAFKA"]]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]

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
