"""A real Apache Kafka broker (KRaft, no Docker) as plain ``java`` processes, for tests and benches.

Standard library only: this module never imports ``kafka``, so anything may use it.

Jars come from Maven Central once (:func:`ensure_jars`, or ``python -m
schedulerx.testing.kafka_broker fetch``) and are cached per version; later starts are offline.

A session-scoped pytest fixture is then::

    if os.environ.get("SCHEDULERX_TEST_KAFKA"):      # "host:port" of a broker the user runs
        yield os.environ["SCHEDULERX_TEST_KAFKA"]    # -> start nothing, use that one
        return
    with KafkaBroker.start(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker.bootstrap

``SCHEDULERX_TEST_KAFKA=host:port`` means "use my broker": the fixture must then not start one
(this module does not read that variable). Tests should create a unique topic each.

Developers and benches: ``python -m schedulerx.testing.kafka_broker [--nodes N] [--workdir D]``
prints ``bootstrap=...`` and serves until SIGTERM/SIGINT.

Every broker started here is stopped at interpreter exit (``atexit``), and on Linux a node started
from the main thread also gets SIGTERM if its parent process dies (``PR_SET_PDEATHSIG``), so a
crashed or killed test session does not leave JVMs behind. Only our own pids are ever signalled.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ctypes
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from schedulerx.testing.kafka_jars import (
    DEFAULT_KAFKA_VERSION,
    TOOLS_DIR,
    KafkaBrokerError,
    ensure_jars,
    require_tool,
)

__all__ = ["DEFAULT_KAFKA_VERSION", "KafkaBroker", "KafkaBrokerError", "Node", "ensure_jars"]

DEFAULT_HEAP = "-Xms256m -Xmx384m"
READY_LINE = b"Kafka Server started"
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0


def _free_ports(count: int) -> list[int]:
    """Ports the kernel says are free on 127.0.0.1 (all held open together, so distinct)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _cluster_id() -> str:
    """A random cluster id in Kafka's ``Uuid`` form (base64url, no padding, not starting '-')."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child get SIGTERM when this thread dies (Linux, main thread).

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only safe from the
    main thread; elsewhere the atexit handler alone covers us.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child only calls it

    def preexec() -> None:
        prctl(1, int(signal.SIGTERM))  # 1 == PR_SET_PDEATHSIG

    return preexec


def _tail(path: Path, offset: int, lines: int = 25) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + ln for ln in text.splitlines()[-lines:]) or "    (log empty)"


class Node:
    """One combined broker+controller JVM. Ports and log dirs stay the same across restarts."""

    def __init__(self, node_id: int, port: int, controller_port: int, directory: Path) -> None:
        self.node_id = node_id
        self.port = port
        self.controller_port = controller_port
        self.directory = directory
        self.config = directory / "server.properties"
        self.data_dir = directory / "data"
        self.log_path = directory / "broker.log"
        self._cmd: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int:
        """The pid of the current (or last) JVM of this node."""
        if self._proc is None:
            raise KafkaBrokerError(f"kafka node {self.node_id} was never started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """True while this node's JVM has not exited (a SIGSTOPped node is still running)."""
        return self._proc is not None and self._proc.poll() is None

    def _spawn(self) -> None:
        if self.running:
            raise KafkaBrokerError(f"kafka node {self.node_id} is already running")
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,  # a terminal's Ctrl-C goes to us; we stop the JVM
                preexec_fn=_parent_death_signal(),  # see its docstring
            )

    def _ready(self) -> bool:
        """True once this start's log has the ready line; raises if the JVM already exited."""
        with self.log_path.open("rb") as f:
            f.seek(self._log_offset)
            if READY_LINE in f.read():
                return True
        if self._proc is not None and self._proc.poll() is not None:
            raise KafkaBrokerError(
                f"kafka node {self.node_id} exited with code {self._proc.returncode} before"
                f" it was ready; end of {self.log_path}:\n{_tail(self.log_path, self._log_offset)}"
            )
        return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to this node's JVM (if running); for SIGKILL also wait until it is gone."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self._proc.wait()

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM, then SIGKILL if the JVM has not exited after ``grace`` seconds. Idempotent."""
        _stop_all([self], grace)

    def restart(self, timeout: float = START_TIMEOUT_S) -> None:
        """Stop the node if it still runs, start it again on the same ports and data; wait ready."""
        self.stop()
        self._spawn()
        _wait_ready([self], timeout)


def _stop_all(nodes: list[Node], grace: float) -> None:
    """SIGTERM every running node at once (a quorum shuts down faster together), then SIGKILL."""
    live = [n for n in nodes if n.running]
    for n in live:
        n.kill(signal.SIGCONT)  # a SIGSTOPped JVM cannot act on SIGTERM
        n.kill(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for n in live:
        assert n._proc is not None
        try:
            n._proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            n.kill(signal.SIGKILL)


def _wait_ready(nodes: list[Node], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(nodes)
    while pending:
        pending = [n for n in pending if not n._ready()]
        if not pending:
            return
        if time.monotonic() > deadline:
            n = pending[0]
            raise KafkaBrokerError(
                f"kafka node {n.node_id} not ready after {timeout:.0f} s; end of"
                f" {n.log_path}:\n{_tail(n.log_path, n._log_offset)}"
            )
        time.sleep(0.1)


def _properties(node: Node, all_nodes: list[Node]) -> dict[str, str]:
    rf = 1 if len(all_nodes) == 1 else 3
    min_isr = 1 if len(all_nodes) == 1 else 2
    plain = f"PLAINTEXT://127.0.0.1:{node.port}"
    ctrl = f"CONTROLLER://127.0.0.1:{node.controller_port}"
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "listeners": f"{plain},{ctrl}",
        "advertised.listeners": f"{plain},{ctrl}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(node.data_dir),
        "auto.create.topics.enable": "false",
        "default.replication.factor": str(rf),
        "min.insync.replicas": str(min_isr),
        "offsets.topic.replication.factor": str(rf),
        "offsets.topic.num.partitions": "5",
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": str(min_isr),
        "transaction.state.log.num.partitions": "3",
        "share.coordinator.state.topic.replication.factor": str(rf),
        "share.coordinator.state.topic.min.isr": str(min_isr),
        "share.coordinator.state.topic.num.partitions": "3",
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "1000",
        "log.cleaner.enable": "true",
        "log.cleaner.dedupe.buffer.size": "16777216",
        "log.cleaner.backoff.ms": "1000",
        # A node restarted after kill -9 cannot register until its old session expires, and a
        # dead node holds acks=all writes until it is fenced: both wait this long (default 9 s).
        "broker.session.timeout.ms": "3000",
        "broker.heartbeat.interval.ms": "500",
        "num.network.threads": "2",
        "num.io.threads": "4",
    }
    if len(all_nodes) == 1:
        props["controller.quorum.bootstrap.servers"] = f"127.0.0.1:{node.controller_port}"
    else:
        props["controller.quorum.voters"] = ",".join(
            f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in all_nodes
        )
    return props


_LIVE: set[KafkaBroker] = set()


@atexit.register
def _stop_live_brokers() -> None:
    for broker in list(_LIVE):
        broker.stop()


class KafkaBroker:
    """A running 1- or 3-node KRaft cluster on loopback; a context manager that stops it."""

    def __init__(self, workdir: Path, nodes: list[Node], version: str) -> None:
        self.workdir = workdir
        self.nodes = nodes
        self.version = version
        self.bootstrap = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
        """Client bootstrap servers, ``"127.0.0.1:p1,127.0.0.1:p2,..."``."""

    @classmethod
    def start(
        cls,
        workdir: Path,
        nodes: int = 1,
        heap: str = DEFAULT_HEAP,
        *,
        version: str = DEFAULT_KAFKA_VERSION,
        jars: Path | None = None,
        log4j_config: Path | None = None,
        timeout: float = START_TIMEOUT_S,
    ) -> KafkaBroker:
        """Format and start ``nodes`` (1 or 3) combined nodes under ``workdir``; return when all
        logged "Kafka Server started".

        ``workdir`` may exist but must not hold a broker already (``node-<id>/`` dirs). Ports are
        picked free at run time. Internal topics get replication factor 1 (one node) or 3 with
        min ISR 2 (three nodes), which are also the defaults for new topics; topics are never
        auto-created. ``jars`` defaults to :func:`ensure_jars(version) <ensure_jars>`. On a start
        failure every node already started is stopped and :class:`KafkaBrokerError` carries the
        end of the failing node's log.
        """
        if nodes not in (1, 3):
            raise KafkaBrokerError(f"nodes must be 1 or 3, got {nodes}")
        java = require_tool("java", "the Kafka test broker needs a JDK 17+")
        jars = jars if jars is not None else ensure_jars(version)
        log4j = log4j_config if log4j_config is not None else TOOLS_DIR / "log4j2.yaml"
        if not log4j.is_file():
            raise KafkaBrokerError(f"broker log config not found at {log4j}")
        workdir = Path(workdir).resolve()
        ports = _free_ports(2 * nodes)
        members = [
            Node(i + 1, ports[2 * i], ports[2 * i + 1], workdir / f"node-{i + 1}")
            for i in range(nodes)
        ]
        for n in members:
            if n.directory.exists():
                raise KafkaBrokerError(f"{n.directory} exists: start a new broker in a fresh dir")
        classpath = ["-cp", str(jars / "*")]
        for n in members:
            n.directory.mkdir(parents=True)
            lines = [f"{k}={v}" for k, v in _properties(n, members).items()]
            n.config.write_text("\n".join(lines) + "\n")
            n._cmd = [java, *shlex.split(heap), "-XX:+ExitOnOutOfMemoryError"]
            n._cmd += ["-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}"]
            n._cmd += [*classpath, "kafka.Kafka", str(n.config)]
        _format(java, classpath, members)
        broker = cls(workdir, members, version)
        _LIVE.add(broker)
        try:
            for n in members:
                n._spawn()
            _wait_ready(members, timeout)
        except BaseException:
            broker.stop()
            raise
        return broker

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Stop every node (SIGTERM together, SIGKILL after ``grace`` s). Idempotent."""
        _stop_all(self.nodes, grace)
        _LIVE.discard(self)

    def __enter__(self) -> KafkaBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _format(java: str, classpath: list[str], nodes: list[Node]) -> None:
    """Format every node's log dir with one cluster id (in parallel: each is a JVM start)."""
    cid = _cluster_id()
    standalone = ["--standalone"] if len(nodes) == 1 else []
    tool = [java, "-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", *classpath]
    tool += ["kafka.tools.StorageTool", "format", *standalone, "-t", cid]
    procs = []
    for n in nodes:
        cmd = [*tool, "-c", str(n.config)]
        procs.append((n, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
    for n, p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            last = out.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise KafkaBrokerError(f"formatting kafka node {n.node_id} failed: {last[0]}")


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m schedulerx.testing.kafka_broker",
        description="Run a local KRaft Kafka broker until SIGTERM/SIGINT, or fill the jar cache.",
    )
    parser.add_argument("command", nargs="?", choices=["run", "fetch"], default="run")
    parser.add_argument("--nodes", type=int, choices=[1, 3], default=1)
    parser.add_argument("--workdir", type=Path, help="default: a temporary dir, removed at exit")
    parser.add_argument("--version", default=DEFAULT_KAFKA_VERSION, help="Kafka version")
    parser.add_argument("--heap", default=DEFAULT_HEAP, help="JVM heap flags per node")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(f"jars={ensure_jars(args.version)}", flush=True)
            return 0
        with _workdir(args.workdir) as workdir:
            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            with KafkaBroker.start(workdir, args.nodes, args.heap, version=args.version) as b:
                print(f"bootstrap={b.bootstrap}", flush=True)
                print(f"workdir={workdir} pids={[n.pid for n in b.nodes]}", flush=True)
                while not stop.wait(1.0):
                    if not any(n.running for n in b.nodes):
                        print("error: every kafka node exited", file=sys.stderr)
                        return 1
        return 0
    except KafkaBrokerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


@contextlib.contextmanager
def _workdir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    tmp = Path(tempfile.mkdtemp(prefix="schedulerx-kafka-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(_main())
