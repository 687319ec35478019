"""``Scheduler``: register commands, run a pod, list jobs."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from schedulerx.api.command import Command, FunctionCommand, Registration, validate_command_id
from schedulerx.api.fetchers import ScheduleFetcher, StaticScheduleFetcher
from schedulerx.api.wiring import BackendConfig, open_log
from schedulerx.domain.job import Job, JobStatus
from schedulerx.domain.schedule import Overlap, Policy
from schedulerx.engine.config import PodConfig, default_pod_id
from schedulerx.engine.pod import Pod
from schedulerx.ports.clock import Clock
from schedulerx.ports.event_log import EventLog

if TYPE_CHECKING:
    from schedulerx.ops import PodServer

log = logging.getLogger("schedulerx")
F = TypeVar("F", bound=Callable[[Sequence[str]], object])


class Scheduler:
    """Runs registered commands on their schedules; each job is started at most once.

    ``log=None`` picks the backend at start: ``schedulerx run`` flags, else the
    ``SCHEDULERX_KAFKA`` environment variable, else the embedded log in ``data_dir``.
    """

    def __init__(
        self,
        fetcher: ScheduleFetcher | None = None,
        log: EventLog | None = None,
        *,
        data_dir: str | Path | None = None,
        pod_id: str | None = None,
        workers: int = 8,
        refresh_interval: timedelta = timedelta(seconds=10),
        claim_lead: timedelta = timedelta(milliseconds=500),
        stop_grace: timedelta = timedelta(seconds=30),
        clock: Clock | None = None,
    ):
        self.fetcher: ScheduleFetcher = fetcher or StaticScheduleFetcher({})
        self._log = log
        self._backend = BackendConfig.from_env(data_dir=data_dir)
        self._pod_config = PodConfig(
            pod_id=pod_id or default_pod_id(),
            workers=workers,
            refresh_interval=refresh_interval,
            claim_lead=claim_lead,
            stop_grace=stop_grace,
        )
        self._clock = clock
        self._registrations: dict[str, Registration] = {}
        self._pod: Pod | None = None
        self._opened: EventLog | None = None
        self._ops: PodServer | None = None
        self._lock = threading.Lock()

    # -- configuration -------------------------------------------------------------------

    def configure(self, backend: BackendConfig | None = None, **pod: Any) -> None:
        """Override the backend and pod settings (the CLI's flags) before ``start``."""
        if self._pod is not None:
            raise RuntimeError("configure() must be called before start()")
        if backend is not None:
            self._backend = backend
        if pod:
            fields = {f: getattr(self._pod_config, f) for f in PodConfig.__dataclass_fields__}
            fields.update(pod)
            self._pod_config = PodConfig(**fields)

    @property
    def backend(self) -> BackendConfig:
        """Where this scheduler's log lives."""
        return self._backend

    @property
    def pod_id(self) -> str:
        """This pod's id."""
        return self._pod_config.pod_id

    def register(
        self,
        command: Command,
        policy: Policy | None = None,
        *,
        misfire_grace: timedelta | None = None,
        coalesce: bool | None = None,
        overlap: Overlap | str | None = None,
        timeout: timedelta | None = None,
        retries: int | None = None,
        retry_backoff: timedelta | None = None,
        history_limit: int | None = None,
    ) -> Command:
        """Register ``command`` (its ``id`` must be unique here) with its policy."""
        cid = validate_command_id(getattr(command, "id", None))
        if not callable(getattr(command, "execute", None)):
            raise TypeError(f"command {cid!r} has no execute(params) method")
        if cid in self._registrations:
            raise ValueError(f"command {cid!r} is already registered")
        if self._pod is not None:
            raise RuntimeError("register commands before start()")
        base = policy or Policy()
        changes: dict[str, object] = {
            k: v
            for k, v in {
                "misfire_grace": misfire_grace,
                "coalesce": coalesce,
                "overlap": Overlap(overlap) if overlap is not None else None,
                "timeout": timeout,
                "retries": retries,
                "retry_backoff": retry_backoff,
                "history_limit": history_limit,
            }.items()
            if v is not None
        }
        if changes:
            fields = {f: getattr(base, f) for f in base.__struct_fields__}
            fields.update(changes)
            base = Policy(**fields)
        self._registrations[cid] = Registration(command, base)
        return command

    def command(self, command_id: str, **policy: Any) -> Callable[[F], F]:
        """Decorator: register a plain function ``fn(params)`` as command ``command_id``."""

        def decorate(fn: F) -> F:
            self.register(FunctionCommand(command_id, fn), **policy)
            return fn

        return decorate

    @property
    def commands(self) -> list[str]:
        """Ids of the registered commands."""
        return list(self._registrations)

    # -- running -------------------------------------------------------------------------

    def start(self, http: str | None = None) -> None:
        """Start the pod in background threads; returns once it has joined the log.

        ``http``: also serve metrics, health and the dashboard there (``9100`` means
        127.0.0.1:9100; see ``schedulerx.ops.parse_address``), from before the pod joins.
        """
        from projections import ProjectionStore

        with self._lock:
            if self._pod is not None:
                raise RuntimeError("scheduler already started")
            event_log = self._log or open_log(self._backend)
            self._opened = event_log
            # Kafka pods each keep their own local projection; the embedded one is shared
            # with the CLI (which opens it as a secondary while the pod runs).
            owner = "pod" if self._backend.kafka is None else self.pod_id
            path = self._backend.projection_dir(owner)
            pod = Pod(
                event_log,
                lambda: ProjectionStore(path, event_log.partitions),
                self._registrations,
                self.fetcher,
                self._pod_config,
                self._clock,
            )
            ops = None
            try:
                if http is not None:
                    from schedulerx.ops import serve_pod

                    ops = serve_pod(pod, http)
                pod.start()
            except BaseException:
                if ops is not None:
                    ops.close()
                if self._log is None:
                    event_log.close()
                raise
            self._pod = pod
            self._ops = ops

    def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully: no new claims, running jobs finish within the stop grace."""
        pod = self._pod
        if pod is None:
            return
        pod.stop()
        pod.join(timeout)
        if self._ops is not None:
            self._ops.close()
            self._ops = None
        close = getattr(pod.store, "close", None)
        if close is not None:
            close()
        if self._opened is not None and self._log is None:
            self._opened.close()
        self._pod = None

    def run(self, http: str | None = None) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully (blocking; main thread).

        ``http``: as for ``start``."""
        self.start(http)
        pod = self._pod
        assert pod is not None

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: stopping gracefully", signal.Signals(signum).name)
            pod.stop()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not pod.join(0.5):
                pass
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.stop()

    @property
    def pod(self) -> Pod | None:
        """The running pod (None when stopped)."""
        return self._pod

    # -- queries -------------------------------------------------------------------------

    def list_jobs(
        self, command_id: str | None = None, status: JobStatus | str | None = None
    ) -> list[Job]:
        """Completed executions and the next 2 scheduled jobs of every command, from the
        projection (the running pod's, or one caught up from the log when stopped)."""
        wanted = JobStatus(status) if status is not None else None
        if self._pod is not None:
            return self._pod.store.jobs(command_id=command_id, status=wanted)
        from schedulerx.api.query import open_query

        with open_query(self._backend, self._log) as view:
            return view.jobs(command_id=command_id, status=wanted)
