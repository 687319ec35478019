"""The guarantees on the embedded log, with a real clock, a real pod process and a ledger.

Judged by the ledger the commands wrote themselves (job id, pod per run) and by what
``schedulerx jobs --json`` (another process) reports.
"""

from __future__ import annotations

import signal
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.procs import PodProcess, Run, duplicates, jobs_json, read_ledger, read_runs

pytestmark = pytest.mark.slow


def _second(job_id: str) -> datetime:
    stamp = job_id.rsplit("@", 1)[1]
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _time(text: object) -> datetime:
    """A time of ``jobs --json`` (ISO 8601, ``Z``)."""
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def _wait_for_runs(ledger: Path, pod: PodProcess, until: int, timeout: float = 15) -> list[Run]:
    """The ledger's lines once it has at least ``until`` of them (polling every 10 ms)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        runs = read_runs(ledger)
        if len(runs) >= until:
            return runs
        assert pod.proc.poll() is None, f"the pod exited:\n{pod.tail()}"
        time.sleep(0.01)
    raise AssertionError(f"the ledger never had {until} line(s):\n{pod.tail()}")


def _unfinished(ledger: Path, ends: Path) -> set[str]:
    """Job ids with a start line in ``ledger`` and no end line in ``ends`` (LEDGER_END)."""
    return {r.job_id for r in read_runs(ledger)} - {r.job_id for r in read_runs(ends)}


def _by_command(job_ids: list[str]) -> dict[str, list[datetime]]:
    out: dict[str, list[datetime]] = defaultdict(list)
    for jid in job_ids:
        out[jid.rsplit("@", 1)[0]].append(_second(jid))
    return out


def test_three_commands_every_second_for_20s_run_exactly_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ledger = tmp_path / "ledger"
    env = {"LEDGER": str(ledger), "COMMANDS": "3"}
    pod = PodProcess.start(tmp_path, "pod-a", ["--data-dir", str(data)], env)
    try:
        pod.wait_for_log("owns partitions")
        started = datetime.now(UTC)
        time.sleep(20)
        stopped = datetime.now(UTC)
        assert pod.stop() == 0, pod.tail()
    finally:
        if pod.proc.poll() is None:
            pod.kill()
    entries = read_ledger(ledger)
    assert duplicates(entries) == {}
    runs = _by_command([jid for jid, _ in entries])
    assert sorted(runs) == ["c0", "c1", "c2"]
    # Every whole second strictly inside the window ran once per command: no gaps.
    first = started.replace(microsecond=0) + timedelta(seconds=2)
    last = stopped.replace(microsecond=0) - timedelta(seconds=1)
    expected = [first + timedelta(seconds=i) for i in range(int((last - first).total_seconds()))]
    assert len(expected) >= 16
    for cid, seconds in runs.items():
        missing = sorted(set(expected) - set(seconds))
        assert missing == [], f"{cid} has gaps: {missing}"

    listed = jobs_json("--data-dir", str(data))
    status = {j["id"]: j["status"] for j in listed}
    for jid, _ in entries:
        assert status.get(jid) == "succeeded", (jid, status.get(jid))
    succeeded = {j["id"] for j in listed if j["status"] == "succeeded"}
    assert succeeded == {jid for jid, _ in entries}, "a succeeded job the ledger never saw"
    for cid in ("c0", "c1", "c2"):
        nxt = [j for j in listed if j["command_id"] == cid and j["status"] == "scheduled"]
        assert len(nxt) == 2, (cid, nxt)
        assert all(_second(str(j["id"])) > stopped - timedelta(seconds=1) for j in nxt)
    assert not [j for j in listed if j["status"] in ("claimed", "running")]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_run_lets_it_finish_and_keeps_the_next_two(
    tmp_path: Path, sig: signal.Signals
) -> None:
    data = tmp_path / "data"
    ledger, ends = tmp_path / "ledger", tmp_path / "ledger.end"
    # Both commands start on even seconds and run 1.5 s: a signal right after both started
    # finds them running, with the next start 2 s away.
    env = {
        "LEDGER": str(ledger),
        "LEDGER_END": str(ends),
        "COMMANDS": "2",
        "CRON": "*/2 * * * * *",
        "SLEEP": "1.5",
    }
    pod = PodProcess.start(tmp_path, "pod-a", ["--data-dir", str(data)], env)
    try:
        pod.wait_for_log("owns partitions")
        running = _wait_for_runs(ledger, pod, until=2)
        signalled = time.time()
        pod.signal(sig)
        code = pod.proc.wait(30)
        stopped = datetime.now(UTC)
    finally:
        if pod.proc.poll() is None:
            pod.kill()
    assert code == 0, pod.tail()
    assert {r.command_id for r in running} == {"c0", "c1"}
    assert not _unfinished(ledger, ends), "a started run never ended"
    starts, finished = read_runs(ledger), {r.job_id: r for r in read_runs(ends)}
    assert duplicates(read_ledger(ledger)) == {}
    assert all(r.at < signalled for r in starts), "a job started after the signal"
    listed = {str(j["id"]): j for j in jobs_json("--data-dir", str(data))}
    for run in running:  # running at the signal: let finish, and recorded so
        assert finished[run.job_id].at > signalled, "it ended before the signal: not mid-run"
        job = listed[run.job_id]
        assert job["status"] == "succeeded", job
        assert _time(job["finished_at"]) > datetime.fromtimestamp(signalled, UTC), job
    assert {jid for jid, j in listed.items() if j["status"] == "succeeded"} == {
        r.job_id for r in starts
    }
    assert not [j for j in listed.values() if j["status"] in ("claimed", "running")]
    for cid in ("c0", "c1"):
        nxt = [j for j in listed.values() if j["command_id"] == cid and j["status"] == "scheduled"]
        assert len(nxt) == 2, (cid, nxt)
        assert all(_second(str(j["id"])) > stopped - timedelta(seconds=2) for j in nxt), nxt


def test_kill_9_mid_run_then_restart_reports_not_repeats(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ledger, ends = tmp_path / "ledger", tmp_path / "ledger.end"
    grace = 2
    # Every second, each run 2 s (overlap=skip: one run at a time per command), 2 s grace.
    env = {
        "LEDGER": str(ledger),
        "LEDGER_END": str(ends),
        "COMMANDS": "2",
        "SLEEP": "2",
        "MISFIRE_GRACE": str(grace),
    }
    flags = ["--data-dir", str(data)]
    pod = PodProcess.start(tmp_path, "pod-a", flags, env)
    try:
        pod.wait_for_log("owns partitions")
        # Let runs complete first, then kill -9 the moment a new one has started.
        _wait_for_runs(ends, pod, until=1)
        before = len(read_runs(ledger))
        victim = _wait_for_runs(ledger, pod, until=before + 1)[before]
        pod.kill()
    finally:
        if pod.proc.poll() is None:
            pod.kill()
    killed = datetime.now(UTC)
    assert victim.job_id in _unfinished(ledger, ends), "the victim was not mid-run"
    time.sleep(6)  # seconds missed while down, beyond the 2 s grace
    restarted = datetime.now(UTC)
    again = PodProcess.start(tmp_path, "pod-a2", flags, env)
    try:
        again.wait_for_log("owns partitions")
        time.sleep(4)
        assert again.stop() == 0, again.tail()
    finally:
        if again.proc.poll() is None:
            again.kill()

    entries = read_ledger(ledger)
    assert duplicates(entries) == {}, "a job ran twice"
    starts = Counter(jid for jid, _ in entries)
    listed = {str(j["id"]): j for j in jobs_json("--data-dir", str(data))}
    # The job running at kill -9 ends failed: owner lost, and was not run again.
    job = listed[victim.job_id]
    assert job["status"] == "failed" and "owner lost" in str(job["error"]), job
    assert starts[victim.job_id] == 1
    assert not [j for j in listed.values() if j["status"] in ("claimed", "running")]
    # Every run that ended (before the kill, or on the restarted pod) is succeeded, and only
    # those: the victim's end was never written.
    succeeded = {jid for jid, j in listed.items() if j["status"] == "succeeded"}
    assert succeeded == {r.job_id for r in read_runs(ends)}

    def accounted(jid: str) -> str:
        """How a job ended, checked against the ledger: it ran once, or it has a reason."""
        assert jid in listed, f"{jid} silently absent"
        j = listed[jid]
        if j["status"] == "succeeded":
            assert starts[jid] == 1, j
        elif j["status"] == "failed":
            assert "owner lost" in str(j["error"]) and starts[jid] <= 1, j
        else:
            assert j["status"] == "missed" and j["error"] and starts[jid] == 0, j
        return str(j["status"])

    for cid in ("c0", "c1"):
        ran = sorted(_second(jid) for jid in starts if jid.startswith(cid + "@"))
        t = ran[0]
        while t <= ran[-1]:  # from the first run to the restart's last: nothing absent
            accounted(f"{cid}@{t:%Y-%m-%dT%H:%M:%SZ}")
            t += timedelta(seconds=1)
        # Down, and older than the grace when the restarted pod planned: missed, late.
        # (From the first second no claim could be committed for before the kill.)
        down = (killed + timedelta(milliseconds=500)).replace(microsecond=0) + timedelta(seconds=1)
        late = []
        while down + timedelta(seconds=grace + 1) < restarted:
            late.append(f"{cid}@{down:%Y-%m-%dT%H:%M:%SZ}")
            down += timedelta(seconds=1)
        assert len(late) >= 2, (killed, restarted)
        for jid in late:
            assert accounted(jid) == "missed", listed[jid]
            assert "late by" in str(listed[jid]["error"]), listed[jid]
