"""The embedded event log on real files: durability, recovery, locking, inbox, compaction."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from schedulerx.backends.embedded import EmbeddedLog
from schedulerx.backends.embedded.segment import (
    FLAG_BATCH_END,
    HEADER_SIZE,
    encode_record,
)
from schedulerx.ports.event_log import (
    EventLog,
    LogError,
    LogLocked,
    LogReader,
    LogSession,
    NotOwner,
    Record,
)


def _values(records: list[Record]) -> list[tuple[int, bytes | None]]:
    return [(r.offset, r.value) for r in records]


def _file(data_dir: Path, partition: int = 0) -> Path:
    return data_dir / "log" / f"{partition:05d}.log"


def _python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _fill(log: EmbeddedLog, count: int, partition: int = 0) -> None:
    session = log.join("filler")
    for i in range(count):
        session.append(partition, [(b"key-%04d" % i, b"value-%04d" % i)])
    session.close()


# --- append, read, bounds, reopen -------------------------------------------------------


def test_append_read_and_bounds(tmp_path: Path) -> None:
    log: EventLog = EmbeddedLog(tmp_path, 3)  # typed as the port: mypy checks conformance
    session: LogSession = log.join("p1")
    big = os.urandom(3 * 1024 * 1024)  # spans several read chunks
    assert session.append(1, [(b"a", b"1"), (b"b", None), (b"", b"")]) == [0, 1, 2]
    assert session.append(1, [(b"c", big)]) == [3]
    assert session.append(1, []) == []
    reader: LogReader = log.reader()

    records = reader.read(1, 0)
    assert _values(records) == [(0, b"1"), (1, None), (2, b""), (3, big)]
    assert [r.key for r in records] == [b"a", b"b", b"", b"c"]
    assert all(r.partition == 1 and r.timestamp_ms > 0 for r in records)
    assert reader.bounds(1) == (0, 4)
    assert reader.bounds(0) == (0, 0)
    assert _values(reader.read(1, 1, max_records=2)) == [(1, None), (2, b"")]
    assert reader.read(1, 4) == []
    assert reader.read(0, 0) == []
    with pytest.raises(ValueError, match="out of range"):
        reader.read(3, 0)
    session.close()

    reopened = EmbeddedLog(tmp_path).reader()  # a fresh scan of the files finds the same
    assert _values(reopened.read(1, 0)) == _values(records)


def test_offsets_continue_after_reopen(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path, 2)
    session = log.join("p1")
    session.append(0, [(b"k", b"a"), (b"k", b"b")])
    session.append(1, [(b"k", b"c")])
    log.close()

    log = EmbeddedLog(tmp_path)
    session = log.join("p1")
    assert session.start_offsets == (2, 1)
    assert session.append(0, [(b"k", b"d")]) == [2]
    assert session.append(1, [(b"k", b"e")]) == [1]
    reader = log.reader()
    assert _values(reader.read(0, 0)) == [(0, b"a"), (1, b"b"), (2, b"d")]
    assert _values(reader.read(1, 0)) == [(0, b"c"), (1, b"e")]


def test_partition_count_is_stored_and_checked(tmp_path: Path) -> None:
    assert EmbeddedLog(tmp_path / "default").partitions == 12
    assert EmbeddedLog(tmp_path / "four", 4).partitions == 4
    assert EmbeddedLog(tmp_path / "four").partitions == 4
    with pytest.raises(LogError) as err:
        EmbeddedLog(tmp_path / "four", 8)
    assert "has 4 partitions, not 8" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(LogError, match="no embedded log"):
        EmbeddedLog(tmp_path / "missing", create=False)


# --- durability and recovery ------------------------------------------------------------

_KILL_WRITER = """
import json, sys
from schedulerx.backends.embedded import EmbeddedLog
session = EmbeddedLog(sys.argv[1], 2).join("writer")
n = 0
while True:
    partition = n % 2
    batch = [(b"k%d" % (n + i), b"v%d" % (n + i)) for i in range(1 + n % 3)]
    offsets = session.append(partition, batch)
    acked = [[partition, o, v.decode()] for o, (_, v) in zip(offsets, batch)]
    print(json.dumps(acked), flush=True)
    n += len(batch)
"""


def test_acknowledged_appends_survive_kill_9(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _KILL_WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    acked: list[list[int | str]] = []
    try:
        while len(acked) < 300:
            line = child.stdout.readline()
            assert line, "writer exited early"
            acked.extend(json.loads(line))
    finally:
        child.send_signal(signal.SIGKILL)
        rest = child.communicate(timeout=30)[0]
    # Lines printed before the kill were acknowledged too; a cut last line was not printed.
    for line in rest.splitlines(keepends=True):
        if line.endswith("\n"):
            acked.extend(json.loads(line))

    log = EmbeddedLog(tmp_path)
    reader = log.reader()
    stored = {(p, r.offset): r.value for p in (0, 1) for r in reader.read(p, 0, 100_000)}
    for partition, offset, value in acked:
        assert stored.get((int(partition), int(offset))) == str(value).encode()
    for p in (0, 1):  # no holes: offsets are dense 0..next-1
        assert sorted(o for q, o in stored if q == p) == list(range(reader.bounds(p)[1]))
    session = log.join("next")
    next0 = reader.bounds(0)[1]
    assert session.append(0, [(b"k", b"after")]) == [next0]


def test_torn_last_record_is_truncated(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path, 1)
    _fill(log, 3)
    path = _file(tmp_path)
    good_size = path.stat().st_size
    with path.open("ab") as f:
        f.write(encode_record(3, 0, b"key", b"x" * 100, FLAG_BATCH_END)[:60])

    reader = log.reader()
    assert reader.bounds(0) == (0, 3)  # a reader ignores the unfinished tail
    assert reader.corrupt_records == 0
    session = log.join("p1")
    assert path.stat().st_size == good_size
    assert session.append(0, [(b"key", b"new")]) == [3]
    assert _values(reader.read(0, 0))[-2:] == [(2, b"value-0002"), (3, b"new")]
    assert reader.corrupt_records == 0


def test_torn_batch_disappears_whole(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path, 1)
    _fill(log, 2)
    session = log.join("p1")
    session.append(0, [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
    session.close()
    path = _file(tmp_path)
    with path.open("r+b") as f:  # the crash cut the batch's last record
        f.truncate(path.stat().st_size - 2)

    assert log.reader().bounds(0) == (0, 2)
    session = log.join("p1")
    assert session.append(0, [(b"d", b"4")]) == [2]
    assert _values(log.reader().read(0, 0)) == [(0, b"value-0000"), (1, b"value-0001"), (2, b"4")]


def test_bad_crc_of_the_last_record_is_truncated(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path, 1)
    _fill(log, 3)
    path = _file(tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))

    session = log.join("p1")
    assert session.append(0, [(b"k", b"again")]) == [2]
    assert _values(log.reader().read(0, 0))[-1] == (2, b"again")


def test_corruption_in_the_middle_is_skipped_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = EmbeddedLog(tmp_path, 1)
    _fill(log, 10)
    path = _file(tmp_path)
    data = bytearray(path.read_bytes())
    payload_flip = data.find(b"value-0004")
    data[payload_flip + 3] ^= 0x10
    header_flip = data.find(b"key-0007") - HEADER_SIZE + 6  # inside record 7's header
    data[header_flip] ^= 0x01
    path.write_bytes(bytes(data))

    reader = log.reader()
    with caplog.at_level("WARNING", logger="schedulerx.log"):
        records = reader.read(0, 0)
    assert [r.offset for r in records] == [0, 1, 2, 3, 5, 6, 8, 9]
    assert records[4].value == b"value-0005"
    assert reader.corrupt_records == 2
    record4 = data.find(b"key-0004") - HEADER_SIZE
    assert f"partition 0: skipped corrupt record at file position {record4}" in caplog.text
    assert reader.bounds(0) == (0, 10)

    session = log.join("p1")  # the writer keeps the later records and appends after them
    assert session.corrupt_records == 2
    assert session.append(0, [(b"k", b"new")]) == [10]
    assert [r.offset for r in log.reader().read(0, 0)][-3:] == [8, 9, 10]


# --- locking ----------------------------------------------------------------------------

_SECOND_POD = """
import sys
from schedulerx.backends.embedded import EmbeddedLog
from schedulerx.ports.event_log import LogLocked
log = EmbeddedLog(sys.argv[1])
for attempt in (lambda: log.join("p2"), lambda: log.compact()):
    try:
        attempt()
        print("ok")
    except LogLocked as exc:
        print(str(exc))
log.submit("backup", b"from another process")
"""


def test_second_pod_from_another_process_is_locked_out(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path, 2)
    session = log.join("p1")
    out = _python(_SECOND_POD, str(tmp_path))
    assert out.returncode == 0, out.stderr
    message = (
        f"data dir {tmp_path} is in use by pod 'p1' (pid {os.getpid()});"
        " stop it or use another --data-dir"
    )
    assert out.stdout.splitlines() == [message, message]
    assert session.poll(0).requests == [b"from another process"]  # submit needs no lock

    with pytest.raises(LogLocked):  # a second join in this process is refused too
        EmbeddedLog(tmp_path).join("p3")
    session.close()
    out = _python(_SECOND_POD, str(tmp_path))
    assert out.stdout.splitlines() == ["ok", "ok"]


# --- session: poll, ownership, inbox ----------------------------------------------------


def test_poll_returns_records_since_join_including_own_appends(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path, 2)
    _fill(log, 2)
    session = log.join("p1")
    assert session.append(0, [(b"k", b"mine")]) == [2]
    first = session.poll(0)
    assert first.assigned == frozenset({0, 1})
    assert _values(first.records) == [(2, b"mine")]
    assert session.poll(0).records == []

    later = threading.Timer(0.1, session.append, args=(1, [(b"k", b"late")]))
    later.start()
    woke = session.poll(30)
    later.join()
    assert [(r.partition, r.offset, r.value) for r in woke.records] == [(1, 0, b"late")]
    assert woke.assigned == frozenset()


def test_closed_session_owns_nothing(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path, 2)
    session = log.join("p1")
    assert session.owned() == frozenset({0, 1})
    session.poll(0)
    with pytest.raises(NotOwner):
        session.append(2, [(b"k", b"v")])
    session.close()
    assert session.owned() == frozenset()
    with pytest.raises(NotOwner):
        session.append(0, [(b"k", b"v")])
    assert session.poll(0).revoked == frozenset({0, 1})
    assert session.poll(0).revoked == frozenset()
    assert log.reader().bounds(0) == (0, 0)


def test_inbox_is_at_least_once_and_never_crashes_on_bad_files(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path, 2)
    log.submit("a", b"first")
    log.submit("b", b"second")
    inbox = tmp_path / "inbox"
    (inbox / "zz-garbage.req").write_bytes(b"\xff\x00 not json")
    (inbox / "zz-dir").mkdir()
    (inbox / ".tmp-unfinished").write_bytes(b"half")
    expected = [b"first", b"second", b"\xff\x00 not json"]

    session = log.join("p1")
    assert session.poll(0).requests == expected
    session.close()  # died before the next poll: nothing is forgotten
    session = log.join("p1")
    assert session.poll(0).requests == expected
    assert session.poll(0).requests == []  # the previous poll's requests are now deleted
    log.submit("c", b"third")
    assert session.poll(30).requests == [b"third"]
    assert session.poll(0).requests == []
    assert sorted(p.name for p in inbox.iterdir()) == [".tmp-unfinished", "zz-dir"]


def test_concurrent_appends_and_poll(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path, 1)
    session = log.join("p1")
    session.poll(0)
    offsets: list[int] = []

    def writer() -> None:
        for i in range(100):
            offsets.extend(session.append(0, [(b"k", b"%d" % i), (b"k", b"x")]))

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    polled: list[Record] = []
    while len(polled) < 400:
        polled.extend(session.poll(5).records)
    for t in threads:
        t.join()
    assert sorted(offsets) == list(range(400))
    assert [r.offset for r in polled] == list(range(400))


# --- readers in other processes ---------------------------------------------------------

_OTHER_READER = """
import json, sys
from schedulerx.backends.embedded import EmbeddedLog
reader = EmbeddedLog(sys.argv[1], create=False).reader()
print(json.dumps([r.offset for r in reader.read(0, 0)]), flush=True)
sys.stdin.readline()
print(json.dumps([[r.offset, r.value.decode()] for r in reader.read(0, 0)]), flush=True)
print(json.dumps(reader.bounds(0)), flush=True)
"""


def test_reader_in_another_process_follows_appends_and_compaction(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path, 1)
    session = log.join("p1")
    session.append(0, [(b"a", b"a1"), (b"b", b"b1"), (b"c", b"c1")])
    child = subprocess.Popen(
        [sys.executable, "-c", _OTHER_READER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        assert json.loads(child.stdout.readline()) == [0, 1, 2]
        session.append(0, [(b"a", b"a2")])
        log.compact(0)  # replaces the file the child has open
        session.append(0, [(b"d", b"d1")])
        child.stdin.write("go\n")
        child.stdin.flush()
        after = json.loads(child.stdout.readline())
        bounds = json.loads(child.stdout.readline())
    finally:
        child.kill()
        child.communicate(timeout=30)
    assert after == [[1, "b1"], [2, "c1"], [3, "a2"], [4, "d1"]]
    assert bounds == [1, 5]


# --- compaction -------------------------------------------------------------------------


def test_compaction_keeps_latest_per_key_with_original_offsets(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path, 2)
    session = log.join("p1")
    session.append(0, [(b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"c", b"1"), (b"b", None)])
    reader = log.reader()
    assert len(reader.read(0, 0)) == 5  # opened and indexed before compaction
    tombstone_ms = reader.read(0, 4)[0].timestamp_ms

    stats = log.compact(0, tombstone_retention_ms=60_000, now_ms=tombstone_ms + 1_000)
    assert (stats.records_before, stats.records_after, stats.tombstones_removed) == (5, 3, 0)
    assert stats.bytes_after < stats.bytes_before
    assert _values(reader.read(0, 0)) == [(2, b"2"), (3, b"1"), (4, None)]
    assert _values(reader.read(0, 1, max_records=1)) == [(2, b"2")]  # offsets have gaps now
    assert reader.bounds(0) == (2, 5)

    stats = log.compact(0, tombstone_retention_ms=60_000, now_ms=tombstone_ms + 61_000)
    assert stats.tombstones_removed == 1
    assert _values(reader.read(0, 0)) == [(2, b"2"), (3, b"1")]
    assert reader.bounds(0) == (2, 5)  # the next offset does not go back
    assert session.append(0, [(b"c", b"2")]) == [5]
    assert _values(reader.read(0, 0)) == [(2, b"2"), (3, b"1"), (5, b"2")]
    session.close()

    log = EmbeddedLog(tmp_path)
    assert log.reader().bounds(0) == (2, 6)
    assert log.join("p2").append(0, [(b"x", b"y")]) == [6]


def test_compaction_without_a_pod_and_of_a_fully_deleted_partition(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path, 1)
    session = log.join("p1")
    session.append(0, [(b"a", b"1"), (b"a", None)])
    session.close()

    stats = log.compact(tombstone_retention_ms=0, now_ms=time.time_ns() // 1_000_000 + 1_000)
    assert stats.partitions == (0,)
    assert stats.records_after == 0
    assert log.reader().read(0, 0) == []
    assert log.reader().bounds(0) == (2, 2)
    assert EmbeddedLog(tmp_path).join("p1").append(0, [(b"b", b"1")]) == [2]


# --- I/O errors -------------------------------------------------------------------------

_FULL_DISK = """
import os, resource, signal, sys
from schedulerx.backends.embedded import EmbeddedLog
from schedulerx.ports.event_log import LogError
session = EmbeddedLog(sys.argv[1], 1).join("p1")
session.append(0, [(b"k", b"before")])
path = os.path.join(sys.argv[1], "log", "00000.log")
size = os.path.getsize(path)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 200, resource.RLIM_INFINITY))
try:
    session.append(0, [(b"k", b"x" * 100)] * 5)
    print("appended")
except LogError as exc:
    print(str(exc))
print(os.path.getsize(path) == size)
print(session.append(0, [(b"k", b"after")]))
"""


def test_failed_append_leaves_nothing_behind(tmp_path: Path) -> None:
    out = _python(_FULL_DISK, str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "cannot append to partition 0: File too large",
        "True",
        "[1]",
    ]
    assert _values(EmbeddedLog(tmp_path).reader().read(0, 0)) == [(0, b"before"), (1, b"after")]
