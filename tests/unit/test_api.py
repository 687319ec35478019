"""The public Python API: exports, registration, schedules, fetchers, current_job, Policy."""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import schedulerx
from schedulerx import (
    Command,
    FileScheduleFetcher,
    FunctionCommand,
    Job,
    JobStatus,
    LogScheduleFetcher,
    Overlap,
    Policy,
    Schedule,
    ScheduleFetcher,
    Scheduler,
    StaticScheduleFetcher,
    current_job,
)
from schedulerx.api.admin import stamped, submit
from schedulerx.api.wiring import BackendConfig
from schedulerx.backends.embedded import EmbeddedLog
from schedulerx.domain.requests import Request, decode_request, encode_request
from schedulerx.engine.context import reset_current_job, set_current_job
from schedulerx.engine.refresher import Refresher

PUBLIC = [
    "Command",
    "CronError",
    "FileScheduleFetcher",
    "FunctionCommand",
    "Job",
    "JobStatus",
    "LogScheduleFetcher",
    "Overlap",
    "Policy",
    "Schedule",
    "ScheduleFetcher",
    "Scheduler",
    "StaticScheduleFetcher",
    "current_job",
]


def test_all_is_the_pinned_list() -> None:
    assert sorted(schedulerx.__all__) == sorted(PUBLIC)
    assert len(schedulerx.__all__) == len(set(schedulerx.__all__))


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_is_importable(name: str) -> None:
    module = importlib.import_module("schedulerx")
    assert getattr(module, name) is not None
    namespace: dict[str, object] = {}
    exec(f"from schedulerx import {name}", namespace)
    assert namespace[name] is getattr(module, name)


def test_package_ships_type_information() -> None:
    assert (Path(schedulerx.__file__).parent / "py.typed").is_file()


# -- registration ----------------------------------------------------------------------------


class Echo:
    def __init__(self, id: str) -> None:
        self.id = id
        self.calls: list[Sequence[str]] = []

    def execute(self, params: Sequence[str]) -> None:
        self.calls.append(params)


def scheduler() -> Scheduler:
    return Scheduler(StaticScheduleFetcher({}), pod_id="test-pod")


def test_register_returns_the_command() -> None:
    s = scheduler()
    cmd = Echo("backup")
    assert s.register(cmd) is cmd
    assert s.commands == ["backup"]
    assert isinstance(cmd, Command)


def test_register_rejects_a_duplicate_id() -> None:
    s = scheduler()
    s.register(Echo("backup"))
    with pytest.raises(ValueError, match="already registered") as info:
        s.register(Echo("backup"))
    assert "\n" not in str(info.value)
    assert s.commands == ["backup"]


@pytest.mark.parametrize(
    "bad", ["", "   ", " backup", "backup ", "a/b", "a\tb", "a\nb", "a\rb", "x" * 201]
)
def test_register_rejects_unusable_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="command id") as info:
        scheduler().register(Echo(bad))
    assert "\n" not in str(info.value)


def test_register_rejects_an_inner_space() -> None:
    with pytest.raises(ValueError, match="whitespace"):
        scheduler().register(Echo("back up"))


@pytest.mark.parametrize("ok", ["backup", "mail@example.com", "grüße", "a.b-c_d:e", "x" * 200])
def test_register_accepts_ordinary_ids(ok: str) -> None:
    s = scheduler()
    s.register(Echo(ok))
    assert s.commands == [ok]


def test_register_rejects_objects_without_execute() -> None:
    class NoExecute:
        id = "backup"

    class NotCallable:
        id = "backup"
        execute = "run"

    for bad in (NoExecute(), NotCallable()):
        with pytest.raises(TypeError, match="execute"):
            scheduler().register(bad)  # type: ignore[arg-type]


def test_register_rejects_objects_without_an_id() -> None:
    class NoId:
        def execute(self, params: Sequence[str]) -> None:
            pass

    with pytest.raises(ValueError, match="command id"):
        scheduler().register(NoId())  # type: ignore[arg-type]


def test_register_rejects_a_bad_overlap() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (enum's own message)
        scheduler().register(Echo("backup"), overlap="sometimes")


def test_register_rejects_invalid_policy_values() -> None:
    with pytest.raises(ValueError, match="retries"):
        scheduler().register(Echo("backup"), retries=-1)


def test_command_decorator_registers_a_function() -> None:
    s = scheduler()
    seen: list[Sequence[str]] = []

    @s.command("hello", retries=1)
    def hello(params: Sequence[str]) -> None:
        seen.append(params)

    assert s.commands == ["hello"]
    hello(["direct"])  # the decorator returns the function itself
    assert seen == [["direct"]]
    with pytest.raises(ValueError, match="already registered"):
        s.command("hello")(hello)


def test_function_command_passes_params() -> None:
    got: list[Sequence[str]] = []
    cmd = FunctionCommand("f", got.append)
    cmd.execute(("a", "b"))
    assert got == [("a", "b")]
    assert isinstance(cmd, Command)


# -- schedules and fetchers ------------------------------------------------------------------


def test_schedule_coerce_accepts_the_seeds_forms() -> None:
    s = Schedule(cron="0 3 * * *", params=("a",), timezone="Europe/Berlin")
    assert Schedule.coerce(s) is s
    assert Schedule.coerce(("0 3 * * *", ["--full", "x"])) == Schedule(
        cron="0 3 * * *", params=("--full", "x")
    )
    assert Schedule.coerce(["0 3 * * *", ()]) == Schedule(cron="0 3 * * *")
    assert Schedule.coerce("0 3 * * *") == Schedule(cron="0 3 * * *")
    assert Schedule.coerce(("* * * * *", [1, 2])).params == ("1", "2")


@pytest.mark.parametrize(
    "bad",
    [
        ("0 3 * * *",),
        ("0 3 * * *", [], "extra"),
        (3, []),
        ("0 3 * * *", "--full"),
        ("0 3 * * *", 5),
        (),
    ],
)
def test_schedule_coerce_rejects_bad_shapes(bad: object) -> None:
    with pytest.raises(TypeError) as info:
        Schedule.coerce(bad)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_static_fetcher() -> None:
    f = StaticScheduleFetcher(
        {
            "backup": ("0 3 * * *", ["--full"]),
            "report": "*/5 * * * *",
            "tz": Schedule(cron="0 9 * * *", timezone="Asia/Tokyo"),
        }
    )
    assert isinstance(f, ScheduleFetcher)
    assert f.fetch_schedule("backup") == Schedule(cron="0 3 * * *", params=("--full",))
    assert f.fetch_schedule("report") == Schedule(cron="*/5 * * * *")
    assert f.fetch_schedule("tz") == Schedule(cron="0 9 * * *", timezone="Asia/Tokyo")
    assert f.fetch_schedule("other") is None


def test_static_fetcher_rejects_bad_shapes_at_once() -> None:
    with pytest.raises(TypeError):
        StaticScheduleFetcher({"backup": ("0 3 * * *", "--full")})


def test_log_fetcher_returns_nothing() -> None:
    assert LogScheduleFetcher().fetch_schedule("backup") is None
    assert isinstance(LogScheduleFetcher(), ScheduleFetcher)


def bump(path: Path, text: str) -> None:
    """Rewrite ``path`` and move its mtime forward, so the change is seen on any file system."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


TOML = """
[backup]
cron = "0 3 * * *"
params = ["--full", 7]
timezone = "Europe/Berlin"

[report]
cron = "*/5 * * * *"
"""


def test_file_fetcher_reads_toml_and_rereads_on_change(tmp_path: Path) -> None:
    path = tmp_path / "schedules.toml"
    path.write_text(TOML)
    f = FileScheduleFetcher(path)
    assert f.fetch_schedule("backup") == Schedule(
        cron="0 3 * * *", params=("--full", "7"), timezone="Europe/Berlin"
    )
    assert f.fetch_schedule("report") == Schedule(cron="*/5 * * * *")
    assert f.fetch_schedule("other") is None
    bump(path, '[backup]\ncron = "0 4 * * *"\n')
    assert f.fetch_schedule("backup") == Schedule(cron="0 4 * * *")
    assert f.fetch_schedule("report") is None


def test_file_fetcher_reads_json_and_rereads_on_change(tmp_path: Path) -> None:
    path = tmp_path / "schedules.json"
    path.write_text(json.dumps({"backup": {"cron": "0 3 * * *", "params": ["a"]}}))
    f = FileScheduleFetcher(str(path))
    assert f.fetch_schedule("backup") == Schedule(cron="0 3 * * *", params=("a",))
    bump(path, json.dumps({"backup": {"cron": "0 5 * * *", "params": ["a"]}}))
    assert f.fetch_schedule("backup") == Schedule(cron="0 5 * * *", params=("a",))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("s.toml", "[backup\ncron = 1"),
        ("s.json", "{not json"),
        ("s.json", "[1, 2]"),
        ("s.toml", "[backup]\nparams = []\n"),  # no cron
        ("s.toml", '[backup]\ncron = "* * * * *"\nparams = "--full"\n'),
        ("s.json", '{"backup": "* * * * *"}'),
    ],
)
def test_file_fetcher_raises_on_a_broken_file(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError):  # noqa: PT011 (parser errors vary; all are ValueError)
        FileScheduleFetcher(path).fetch_schedule("backup")


def test_file_fetcher_recovers_after_a_broken_edit(tmp_path: Path) -> None:
    path = tmp_path / "schedules.toml"
    path.write_text(TOML)
    f = FileScheduleFetcher(path)
    assert f.fetch_schedule("report") == Schedule(cron="*/5 * * * *")
    bump(path, "[report\n")
    with pytest.raises(ValueError):  # noqa: PT011
        f.fetch_schedule("report")
    with pytest.raises(ValueError):  # still broken: raises again, not a stale answer  # noqa: PT011
        f.fetch_schedule("report")
    bump(path, '[report]\ncron = "0 * * * *"\n')
    assert f.fetch_schedule("report") == Schedule(cron="0 * * * *")


def test_file_fetcher_on_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        FileScheduleFetcher(tmp_path / "absent.toml").fetch_schedule("backup")


# -- current_job -----------------------------------------------------------------------------


def test_current_job_outside_a_run_raises() -> None:
    with pytest.raises(RuntimeError, match="only available inside"):
        current_job()


def test_current_job_inside_a_run() -> None:
    t = datetime(2026, 5, 1, 12, tzinfo=UTC)
    job = Job(id="backup@x", command_id="backup", scheduled_at=t, status=JobStatus.RUNNING)
    token = set_current_job(job)
    try:
        assert current_job() is job
    finally:
        reset_current_job(token)
    with pytest.raises(RuntimeError):
        current_job()


# -- Policy ----------------------------------------------------------------------------------


def test_policy_defaults() -> None:
    p = Policy()
    assert (p.misfire_grace, p.coalesce, p.overlap, p.timeout, p.retries) == (
        timedelta(seconds=30),
        True,
        Overlap.SKIP,
        None,
        0,
    )
    assert p.retry_backoff == timedelta(seconds=1)
    assert p.history_limit == 1000
    assert Policy(misfire_grace=timedelta(0)).misfire_grace == timedelta(0)


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"misfire_grace": timedelta(seconds=-1)}, "misfire_grace"),
        ({"retries": -1}, "retries"),
        ({"history_limit": 0}, "history_limit"),
        ({"timeout": timedelta(0)}, "timeout"),
        ({"timeout": timedelta(seconds=-5)}, "timeout"),
    ],
)
def test_policy_validation(fields: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as info:
        Policy(**fields)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_policy_rejects_a_negative_retry_backoff() -> None:
    with pytest.raises(ValueError, match="retry_backoff"):
        Policy(retry_backoff=timedelta(seconds=-1))


def test_overlap_values() -> None:
    assert {o.value for o in Overlap} == {"skip", "allow"}


# -- requests as the CLI sends them ----------------------------------------------------------

ASKED = datetime(2026, 12, 4, 10, 15, tzinfo=UTC)


def test_stamped_gives_each_request_a_fresh_id_and_the_time_and_keeps_given_ones() -> None:
    bare = Request(command_id="backup", trigger=True, source="cli")
    a, b = stamped(bare, ASKED), stamped(bare, ASKED)
    assert re.fullmatch(r"[0-9a-f]{32}", a.request_id), a.request_id
    assert a.request_id != b.request_id  # two triggers are two runs, not a redelivery
    assert a.requested_at == ASKED
    assert (a.command_id, a.trigger, a.source) == ("backup", True, "cli")
    given = Request(command_id="backup", trigger=True, request_id="deploy-4711", requested_at=ASKED)
    assert stamped(given) == given
    before = datetime.now(UTC)
    at = stamped(bare).requested_at
    assert at is not None and before <= at <= datetime.now(UTC)
    # On the wire: the documented fields (docs/events.md), read back unchanged.
    sent = json.loads(encode_request(a))
    assert (sent["request_id"], sent["requested_at"]) == (a.request_id, "2026-12-04T10:15:00Z")
    assert decode_request(encode_request(a)) == a


def test_submit_to_a_running_pod_sends_stamped_requests(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path)
    session = log.join("pod-a")  # what a running pod holds
    try:
        before = datetime.now(UTC)
        for _ in range(2):
            outcome = submit(
                BackendConfig(data_dir=tmp_path), Request(command_id="c", trigger=True)
            )
            assert outcome == "submitted to the running pod"
        after = datetime.now(UTC)
        received = [decode_request(raw) for raw in session.poll(1.0).requests]
    finally:
        session.close()
        log.close()
    assert len(received) == 2
    ids = [r.request_id for r in received]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and ids[0] != ids[1]
    assert all(r.requested_at is not None and before <= r.requested_at <= after for r in received)


# -- fetcher errors ----------------------------------------------------------------------------


class FailsOnce:
    """Answers ``(cron, [])`` for every command, except that call number ``fail_at`` (1-based)
    raises; ``calls`` counts the calls, ``failed`` is set once it has raised."""

    def __init__(self, cron: str, fail_at: int) -> None:
        self.cron = cron
        self.fail_at = fail_at
        self.calls = 0
        self.asked: list[str] = []
        self.failed = threading.Event()

    def fetch_schedule(self, command_id: str) -> tuple[str, list[str]]:
        self.calls += 1
        self.asked.append(command_id)
        if self.calls == self.fail_at:
            self.failed.set()
            raise ConnectionError("schedule service unreachable (503)")
        return (self.cron, [])


def _until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"never: {what}"
        time.sleep(0.01)


def test_refresher_hands_each_fetch_exception_over_with_its_command_id() -> None:
    fetcher = FailsOnce("0 3 * * *", fail_at=2)
    refresher = Refresher(fetcher, ["a", "b"], timedelta(seconds=60))
    refresher.start()
    _until(lambda: fetcher.calls >= 2, "both commands fetched")
    refresher.stop()
    results: list[tuple[str, object]] = []

    def drained() -> bool:
        results.extend(refresher.drain())
        return len(results) >= 2

    _until(drained, "both results drained")
    assert [cid for cid, _ in results] == ["a", "b"]
    assert results[0][1] == Schedule.coerce(("0 3 * * *", []))
    error = results[1][1]
    assert isinstance(error, ConnectionError)
    assert str(error) == "schedule service unreachable (503)"


def test_a_fetcher_exception_is_logged_once_with_the_command_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fetcher = FailsOnce("*/5 * * * *", fail_at=2)  # the second round raises, later ones answer
    sched = Scheduler(fetcher, data_dir=tmp_path, refresh_interval=timedelta(milliseconds=50))
    sched.register(Echo("backup"))
    caplog.set_level(logging.WARNING, logger="schedulerx")
    sched.start()
    try:
        pod = sched.pod
        assert pod is not None
        _until(fetcher.failed.is_set, "the fetcher raised")
        _until(lambda: fetcher.calls >= 5, "three more rounds after the error")
        _until(lambda: pod.stats.snapshot().get("fetcher_errors", 0) >= 1, "the error counted")
        counted = pod.stats.snapshot().get("fetcher_errors", 0)
        schedule = pod.store.schedule("backup")
    finally:
        sched.stop()
    assert set(fetcher.asked) == {"backup"}
    logged = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert logged[0].levelno == logging.WARNING
    assert "backup" in logged[0].getMessage()
    assert "schedule service unreachable (503)" in logged[0].getMessage()
    assert counted == 1
    assert schedule is not None and schedule.cron == "*/5 * * * *"  # the last good one kept


def test_a_fetcher_exception_while_the_pod_owns_nothing_is_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Kafka pod fetches before its group has given it partitions (or while it is a
    standby): the failure is still this pod's to report."""
    from projections import MemoryView
    from schedulerx.api.command import Registration
    from schedulerx.engine.config import PodConfig
    from schedulerx.engine.pod import Pod
    from schedulerx.testing.memory_log import MemoryLog

    log = MemoryLog(2, exclusive=False)
    log.revoke({0, 1})  # no partition of its own yet
    fetcher = FailsOnce("*/5 * * * *", fail_at=1)
    regs = {"backup": Registration(Echo("backup"), Policy())}
    cfg = PodConfig(pod_id="p1", refresh_interval=timedelta(milliseconds=50))
    pod = Pod(log, MemoryView, regs, fetcher, cfg)
    caplog.set_level(logging.WARNING, logger="schedulerx")
    pod.start()
    try:
        _until(lambda: fetcher.calls >= 3, "two more rounds after the error")
        _until(lambda: pod.stats.snapshot().get("fetcher_errors", 0) >= 1, "the error counted")
        assert pod.owned() == frozenset()
    finally:
        pod.stop()
        assert pod.join(10)
    logged = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(logged) == 1 and "backup" in logged[0].getMessage()
