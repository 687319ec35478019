"""Operating schedulerx: Prometheus metrics, health endpoints, a dashboard, ``doctor``.

- ``PodMetrics``: a pod's metrics in a ``CollectorRegistry`` of its own.
- ``OpsServer``: the HTTP server of ``schedulerx run --http`` and ``schedulerx dashboard``.
- ``serve_pod(pod, "127.0.0.1:9100")``: both, for one pod (what ``Scheduler.start`` uses).
- ``schedulerx.ops.doctor``: the checks of ``schedulerx doctor``.

This package imports neither ``kafka`` nor ``rocksdict``; the Kafka checks of ``doctor`` live
in ``schedulerx.backends.kafka.doctor``.
"""

from __future__ import annotations

from schedulerx.engine.pod import Pod
from schedulerx.ops.http import AddressError, OpsServer, parse_address
from schedulerx.ops.metrics import PodMetrics
from schedulerx.ops.sources import LogViewSource, PodSource


class PodServer:
    """``OpsServer`` of one pod; ``close`` also releases the metrics' log reader."""

    def __init__(self, pod: Pod, address: str) -> None:
        self._source = PodSource(pod)
        try:
            self.server = OpsServer(parse_address(address), self._source)
        except BaseException:
            self._source.close()
            raise

    @property
    def url(self) -> str:
        """Where it serves."""
        return self.server.url

    def close(self) -> None:
        """Stop serving (idempotent)."""
        self.server.close()
        self._source.close()


def serve_pod(pod: Pod, address: str) -> PodServer:
    """Serve ``pod``'s metrics, health and dashboard on ``address`` (``parse_address``).

    Call it before ``pod.start()``: health then says 503 until the loop runs, and no start
    goes unobserved by the fire-lag histogram. Raises AddressError (a ValueError) for a bad
    address, OSError (one line) when it cannot be bound.
    """
    return PodServer(pod, address)


__all__ = [
    "AddressError",
    "LogViewSource",
    "OpsServer",
    "PodMetrics",
    "PodServer",
    "PodSource",
    "parse_address",
    "serve_pod",
]
