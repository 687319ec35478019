"""The CLI as users type it: schedule changes, trigger, replay, --as-of, bad input.

Each command runs as its own process against a real embedded data dir.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schedulerx.backends.embedded import EmbeddedLog
from tests.support.procs import PodProcess, cli, jobs_json, read_ledger


def _err(proc: object) -> str:
    stderr = str(getattr(proc, "stderr", ""))
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line error, got: {stderr!r}"
    return lines[0]


def test_schedule_set_list_pause_resume_without_a_pod(data_dir: Path) -> None:
    d = ["--data-dir", str(data_dir)]
    out = cli(
        "schedule", "set", "backup", "0 3 * * *", *d, "--timezone", "Europe/Berlin", "--", "--full"
    ).stdout
    assert "recorded" in out
    listed = json.loads(cli("schedule", "list", "--json", *d).stdout)
    assert listed == [
        {
            "command_id": "backup",
            "cron": "0 3 * * *",
            "params": ["--full"],
            "timezone": "Europe/Berlin",
            "paused": False,
        }
    ]
    paused = json.loads(cli("schedule", "pause", "backup", "--json", *d).stdout)
    assert paused == {"command_id": "backup", "outcome": "recorded: schedule.set"}
    assert json.loads(cli("schedule", "list", "--json", *d).stdout)[0]["paused"] is True
    cli("schedule", "resume", "backup", *d)
    table = cli("schedule", "list", *d).stdout
    assert "backup" in table and "0 3 * * *" in table and "Europe/Berlin" in table
    history = cli("replay", *d).stdout
    assert history.count("schedule backup") == 3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["schedule", "set", "x", "61 * * * *"], "invalid cron"),
        (["schedule", "set", "x", "0 0 30 2 *"], "never fires"),
        (["schedule", "set", "x", "* * * * *", "--timezone", "Mars/Base"], "unknown time zone"),
        (["trigger", "nope"], "unknown command 'nope'"),
        (["schedule", "pause", "nope"], "unknown command 'nope'"),
        (["jobs", "--as-of", "yesterday-ish"], "not an ISO 8601 time"),
        (["jobs", "--limit", "0"], "--limit must be >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(data_dir: Path, args: list[str], needle: str) -> None:
    cli("schedule", "set", "known", "*/5 * * * *", "--data-dir", str(data_dir))
    proc = cli(*args, "--data-dir", str(data_dir), check=False)
    assert proc.returncode == 2
    assert needle in _err(proc)
    # Nothing was lost or changed by the bad request.
    listed = json.loads(cli("schedule", "list", "--json", "--data-dir", str(data_dir)).stdout)
    assert [s["command_id"] for s in listed] == ["known"]


@pytest.mark.parametrize(
    ("args", "message", "help_of"),
    [
        (["jobs", "--bogus"], "unrecognized arguments: --bogus", "jobs"),
        (["jobs", "--stat", "failed"], "unrecognized arguments: --stat failed", "jobs"),
        (
            ["jobs", "--status", "bogus"],
            "argument --status: invalid choice: 'bogus' (choose from 'scheduled', 'claimed',",
            "jobs",
        ),
        (["jobs", "--limit", "many"], "argument --limit: invalid int value: 'many'", "jobs"),
        (
            ["schedule", "set", "backup"],
            "the following arguments are required: CRON",
            "schedule set",
        ),
        ([], "the following arguments are required: SUBCOMMAND", ""),
        (["schedule"], "the following arguments are required: ACTION", "schedule"),
        (["jbos"], "argument SUBCOMMAND: invalid choice: 'jbos' (choose from 'run',", ""),
    ],
    ids=[
        "unknown flag",
        "abbreviated flag",
        "bad choice",
        "bad value",
        "missing argument",
        "missing subcommand",
        "missing action",
        "unknown subcommand",
    ],
)
def test_usage_errors_are_one_line_naming_the_help_and_exit_2(
    args: list[str], message: str, help_of: str
) -> None:
    proc = cli(*args, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    line = _err(proc)
    assert line.startswith(f"schedulerx: error: {message}"), line
    assert line.endswith(f" (see {' '.join(['schedulerx', *help_of.split()])} --help)"), line
    assert "usage:" not in proc.stderr


def test_reading_a_data_dir_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    proc = cli("jobs", "--data-dir", str(tmp_path / "nothing"), check=False)
    assert proc.returncode == 2
    assert "no embedded log" in _err(proc)
    assert not (tmp_path / "nothing").exists()


@pytest.mark.slow
def test_pod_cli_while_running_trigger_second_pod_and_as_of(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ledger = tmp_path / "ledger"
    env = {"LEDGER": str(ledger), "COMMANDS": "2", "CRON": "*/2 * * * * *"}
    flags = ["--data-dir", str(data)]
    pod = PodProcess.start(tmp_path, "pod-a", flags, env)
    try:
        pod.wait_for_log("owns partitions")
        # A second pod on the same data dir: a clear one-line error, exit 2.
        second = cli("run", "tests/apps/ledger_app.py:make_scheduler", *flags, env=env, check=False)
        assert second.returncode == 2
        assert "in use by pod 'pod-a'" in second.stderr
        time.sleep(3)
        # `schedulerx jobs` in a second terminal works while the pod runs.
        running_view = jobs_json(*flags)
        assert any(j["status"] == "succeeded" for j in running_view)
        before_trigger = datetime.now(UTC)
        out = cli("trigger", "c1", "extra-param", *flags).stdout
        assert "submitted to the running pod" in out
        deadline = time.monotonic() + 10
        manual: list[dict[str, object]] = []
        while time.monotonic() < deadline and not manual:
            manual = [
                j
                for j in jobs_json("--command", "c1", *flags)
                if j["trigger"] == "manual" and j["status"] == "succeeded"
            ]
            time.sleep(0.2)
        assert manual, "the triggered job never succeeded"
        assert manual[0]["params"] == ["extra-param"]
        assert any(jid == manual[0]["id"] for jid, _ in read_ledger(ledger))
        # A bad request sent to the running pod is rejected on record, state unchanged.
        cli("schedule", "set", "c0", "*/4 * * * * *", *flags)
        time.sleep(1.5)
        assert pod.stop() == 0, pod.tail()
    finally:
        if pod.proc.poll() is None:
            pod.kill()
    history = cli("replay", "--command", "c0", "--json", *flags).stdout.splitlines()
    events = [json.loads(line)["event"] for line in history]
    assert any(
        e and e.get("type") == "schedule.set" and e["cron"] == "*/4 * * * * *" for e in events
    )
    # --as-of: the list as it stood before the trigger has no manual job.
    past = jobs_json("--as-of", before_trigger.isoformat(), *flags)
    assert past and not [j for j in past if j["trigger"] == "manual"]
    now = jobs_json(*flags)
    assert [j for j in now if j["trigger"] == "manual"]


@pytest.mark.slow
def test_timeout_fails_the_job_with_reason(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {
        "LEDGER": str(tmp_path / "ledger"),
        "COMMANDS": "1",
        "CRON": "*/3 * * * * *",
        "SLEEP": "2",
        "TIMEOUT": "0.5",
    }
    pod = PodProcess.start(tmp_path, "pod-a", ["--data-dir", str(data)], env)
    try:
        pod.wait_for_log("failed")
        assert pod.stop() == 0, pod.tail()
    finally:
        if pod.proc.poll() is None:
            pod.kill()
    failed = [j for j in jobs_json("--data-dir", str(data)) if j["status"] == "failed"]
    assert failed and failed[0]["error"] == "timeout after 0.5s"


def test_corrupt_and_poison_records_are_skipped_counted_and_reported(data_dir: Path) -> None:
    d = ["--data-dir", str(data_dir)]
    cli("schedule", "set", "a", "*/5 * * * *", *d)
    log = EmbeddedLog(data_dir)
    session = log.join("test")
    try:
        p = session.owned()
        assert p
        from schedulerx.domain.partitioning import partition_for

        session.append(partition_for("a", log.partitions), [(b"job/a@x", b"\x00garbage")])
    finally:
        session.close()
        log.close()
    cli("schedule", "set", "b", "*/7 * * * *", *d)
    proc = cli("jobs", *d)
    assert "1 undecodable record(s)" in proc.stderr
    listed = json.loads(cli("schedule", "list", "--json", *d).stdout)
    assert [s["command_id"] for s in listed] == ["a", "b"]  # the rest still applies
    replayed = cli("replay", *d).stdout
    assert "poison record" in replayed


def test_bash_completion_completes_subcommands_and_flags() -> None:
    script = cli("completion", "bash").stdout
    probe = (
        f"{script}\n"
        'COMP_WORDS=(schedulerx sch); COMP_CWORD=1; _schedulerx; echo "${COMPREPLY[@]}"\n'
        "COMP_WORDS=(schedulerx schedule pa); COMP_CWORD=2; _schedulerx; "
        'echo "${COMPREPLY[@]}"\n'
        'COMP_WORDS=(schedulerx jobs --st); COMP_CWORD=2; _schedulerx; echo "${COMPREPLY[@]}"\n'
    )
    import subprocess

    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["schedule", "pause", "--status"]


def _log_bytes(data_dir: Path) -> int:
    return sum(f.stat().st_size for f in (data_dir / "log").glob("*.log"))


def test_compact_json_reports_what_it_did_on_a_real_data_dir(data_dir: Path) -> None:
    d = ["--data-dir", str(data_dir)]
    for cron in ("0 1 * * *", "0 2 * * *", "0 3 * * *"):
        cli("schedule", "set", "backup", cron, *d)
    cli("schedule", "set", "heartbeat", "*/5 * * * *", *d)
    records = len(cli("replay", "--json", *d).stdout.splitlines())
    size = _log_bytes(data_dir)
    proc = cli("compact", "--json", *d)
    assert proc.stderr == ""
    report = json.loads(proc.stdout)
    assert report == {
        "partitions": list(range(12)),
        "records_before": records,
        "records_after": report["records_after"],
        "tombstones_removed": 0,
        "bytes_before": size,
        "bytes_after": _log_bytes(data_dir),
    }
    # Two superseded versions of cmd/backup went; what is left is what replay still shows.
    assert report["records_after"] == records - 2
    assert report["records_after"] == len(cli("replay", "--json", *d).stdout.splitlines())
    assert report["bytes_after"] < report["bytes_before"]
    listed = json.loads(cli("schedule", "list", "--json", *d).stdout)
    assert {s["command_id"]: s["cron"] for s in listed} == {
        "backup": "0 3 * * *",
        "heartbeat": "*/5 * * * *",
    }
    again = json.loads(cli("compact", "--json", *d).stdout)
    assert again["records_before"] == again["records_after"] == report["records_after"]
    assert again["bytes_before"] == again["bytes_after"] == report["bytes_after"]


def test_compact_without_json_prints_one_readable_line(data_dir: Path) -> None:
    d = ["--data-dir", str(data_dir)]
    for cron in ("0 1 * * *", "0 2 * * *"):
        cli("schedule", "set", "backup", cron, *d)
    records = len(cli("replay", "--json", *d).stdout.splitlines())
    out = cli("compact", *d).stdout.splitlines()
    assert len(out) == 1
    assert out[0].startswith(f"compacted 12 partitions: {records:,} -> {records - 1:,} records, ")
    assert out[0].endswith(" bytes, 0 tombstones removed")


def test_compact_json_while_a_pod_holds_the_data_dir_is_a_one_line_error(data_dir: Path) -> None:
    cli("schedule", "set", "backup", "0 3 * * *", "--data-dir", str(data_dir))
    log = EmbeddedLog(data_dir)
    session = log.join("pod-a")  # what a running pod holds
    try:
        proc = cli("compact", "--json", "--data-dir", str(data_dir), check=False)
    finally:
        session.close()
        log.close()
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "in use by pod 'pod-a'" in _err(proc)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["jobs", "--json", "--data-dir", "{missing}"], "no embedded log"),
        (["jobs", "--json", "--as-of", "soon", "--data-dir", "{data}"], "not an ISO 8601 time"),
        (["schedule", "list", "--json", "--data-dir", "{missing}"], "no embedded log"),
        (["schedule", "set", "x", "61 * * * *", "--json", "--data-dir", "{data}"], "invalid cron"),
        (["schedule", "pause", "nope", "--json", "--data-dir", "{data}"], "unknown command"),
        (["schedule", "remove", "nope", "--json", "--data-dir", "{data}"], "unknown command"),
        (["trigger", "nope", "--json", "--data-dir", "{data}"], "unknown command 'nope'"),
        (["replay", "--json", "--data-dir", "{missing}"], "no embedded log"),
        (["compact", "--json", "--data-dir", "{missing}"], "no embedded log"),
        (["compact", "--json", "--kafka", "127.0.0.1:9"], "Kafka compacts the topic itself"),
        (["topic", "create", "--json", "--data-dir", "{data}"], "needs --kafka"),
        (
            ["topic", "create", "--json", "--kafka", "127.0.0.1:9", "--partitions", "0"],
            "--partitions must be >= 1",
        ),
    ],
    ids=lambda v: " ".join(v[:3]) if isinstance(v, list) else None,
)
def test_errors_under_json_are_one_line_on_stderr_and_nothing_on_stdout(
    data_dir: Path, args: list[str], needle: str
) -> None:
    cli("schedule", "set", "known", "*/5 * * * *", "--data-dir", str(data_dir))
    missing = data_dir.parent / "missing"
    argv = [a.format(data=data_dir, missing=missing) for a in args]
    proc = cli(*argv, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert _err(proc).startswith("schedulerx: error: ")
    assert needle in _err(proc)
    assert not missing.exists()  # no command creates a data dir it was only asked to read


def test_every_subcommand_that_reports_a_result_takes_json() -> None:
    from tools.cli_docs import render_help, required

    no_result = {("run",), ("dashboard",), ("completion",)}  # nothing to parse
    leaves = [words for words in required() if words]  # every subcommand without actions
    assert len(leaves) == 14
    missing = [w for w in leaves if w not in no_result and "--json" not in render_help(w)]
    assert not missing, f"subcommands without --json: {missing}"
