"""A small threaded HTTP server: metrics, health, the dashboard page and its JSON API.

Standard library only (``http.server.ThreadingHTTPServer``), in daemon threads. Endpoints:

- ``/metrics``  Prometheus text (404 on ``schedulerx dashboard``, which runs no pod)
- ``/healthz``  liveness: 200 while the pod's loop runs, else 503
- ``/readyz``   readiness: 200 only when the pod owns partitions and has caught up on them
- ``/``         the dashboard (one static page; it builds its DOM with ``textContent``)
- ``/api/jobs?command=&status=&limit=``  the job list, as ``schedulerx jobs --json``
- ``/api/schedules``, ``/api/pods``, ``/api/status``

Only GET and HEAD. Query parameters are validated (a bad one is a 400 with a one-line JSON
error) and only ever used as filter values. Binds to loopback unless told otherwise.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import re
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Final
from urllib.parse import parse_qs, urlsplit

from schedulerx.domain.job import JobStatus
from schedulerx.ops.metrics import CONTENT_TYPE
from schedulerx.ops.sources import Source, Unavailable

log: Final = logging.getLogger("schedulerx.ops")

DEFAULT_HOST: Final = "127.0.0.1"
MAX_LIMIT: Final = 10_000
_JSON: Final = "application/json; charset=utf-8"


class AddressError(ValueError):
    """An ``--http`` value that is not ``PORT``, ``HOST:PORT`` or ``[IPV6]:PORT``."""


def parse_address(text: str) -> tuple[str, int]:
    """``9100`` -> (127.0.0.1, 9100); ``HOST:PORT``; ``[::1]:9100``. Port 0 picks a free one.

    Loopback unless a host is given: ``0.0.0.0:9100`` (all interfaces) must be said.
    """
    value = text.strip()
    if value.isdigit():
        host, port_text = DEFAULT_HOST, value
    elif value.startswith("["):
        host, sep, port_text = value[1:].partition("]:")
        if not sep:
            raise AddressError(f"--http {text!r}: write an IPv6 address as [::1]:9100")
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host:
            raise AddressError(
                f"--http {text!r}: give PORT (loopback) or HOST:PORT, e.g. 9100, "
                "127.0.0.1:9100 or 0.0.0.0:9100"
            )
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise AddressError(f"--http {text!r}: the port must be a number 0..65535")
    return host, int(port_text)


def _page() -> tuple[bytes, str]:
    """The dashboard page and a Content-Security-Policy allowing exactly its inline code."""
    page = resources.files("schedulerx.ops").joinpath("static/dashboard.html").read_bytes()
    text = page.decode()

    def hashes(tag: str) -> str:
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.DOTALL)
        return " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
            for s in found
        )

    csp = (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return page, csp


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], source: Source) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.source = source
        self.page, self.csp = _page()
        super().__init__(address, _Handler)


class OpsServer:
    """Serves ``source`` on ``address`` in background threads until ``close``.

    Raises OSError with a one-line message when the address cannot be bound.
    """

    def __init__(self, address: tuple[str, int], source: Source) -> None:
        host, port = address
        try:
            self._server = _Server(address, source)
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise OSError(f"cannot serve HTTP on {host}:{port}: {why}") from None
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="schedulerx-http",
            daemon=True,
        )
        self._thread.start()
        log.info("serving metrics, health and the dashboard on %s", self.url)

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): the real port when 0 was asked for."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """``http://host:port/``."""
        host, port = self.address
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def close(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


class BadQuery(ValueError):
    """A query parameter that is not allowed (a 400)."""


def _query(raw: str) -> tuple[str | None, JobStatus | None, int | None]:
    try:
        params = parse_qs(raw, keep_blank_values=True, strict_parsing=False, max_num_fields=8)
    except ValueError:
        raise BadQuery("too many query parameters") from None
    unknown = set(params) - {"command", "status", "limit"}
    if unknown:
        raise BadQuery(f"unknown query parameter {sorted(unknown)[0]!r}")

    def one(name: str) -> str | None:
        values = params.get(name, [])
        if len(values) > 1:
            raise BadQuery(f"{name!r} given more than once")
        return values[0] if values and values[0] != "" else None

    command, status_text, limit_text = one("command"), one("status"), one("limit")
    status: JobStatus | None = None
    if status_text is not None:
        try:
            status = JobStatus(status_text)
        except ValueError:
            names = ", ".join(s.value for s in JobStatus)
            raise BadQuery(f"status must be one of {names}") from None
    limit: int | None = None
    if limit_text is not None:
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
            raise BadQuery(f"limit must be a whole number 1..{MAX_LIMIT}")
        limit = int(limit_text)
    return command, status, limit


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a client that sends nothing does not hold a thread for long
    server_version = "schedulerx"
    sys_version = ""

    def do_GET(self) -> None:
        self._route(with_body=True)

    def do_HEAD(self) -> None:
        self._route(with_body=False)

    def _refuse(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, _JSON, _error("only GET and HEAD"), True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def _route(self, with_body: bool) -> None:
        # A client that went away (a closed tab, a scrape timeout) needs no answer.
        with contextlib.suppress(ConnectionError):
            self._dispatch(with_body)

    def _dispatch(self, with_body: bool) -> None:
        url = urlsplit(self.path)
        source = self.server.source
        try:
            if url.path == "/metrics":
                body = source.metrics()
                if body is None:
                    self._send(
                        HTTPStatus.NOT_FOUND,
                        "text/plain; charset=utf-8",
                        b"no metrics here: this dashboard runs no pod; scrape the pods' --http\n",
                        with_body,
                    )
                else:
                    self._send(HTTPStatus.OK, CONTENT_TYPE, body, with_body)
            elif url.path in ("/healthz", "/readyz"):
                ok = source.live() if url.path == "/healthz" else source.ready()
                code = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
                text = b"ok\n" if ok else b"not " + url.path[1:-1].encode() + b"\n"
                self._send(code, "text/plain; charset=utf-8", text, with_body)
            elif url.path in ("/", "/index.html"):
                self._send(
                    HTTPStatus.OK,
                    "text/html; charset=utf-8",
                    self.server.page,
                    with_body,
                    {"Content-Security-Policy": self.server.csp},
                )
            elif url.path == "/api/jobs":
                command, status, limit = _query(url.query)
                self._json(source.jobs(command, status, limit), with_body)
            elif url.path == "/api/schedules":
                self._json(source.schedules(), with_body)
            elif url.path == "/api/pods":
                self._json(source.pods(), with_body)
            elif url.path == "/api/status":
                self._json(source.status(), with_body)
            else:
                self._send(HTTPStatus.NOT_FOUND, _JSON, _error("no such endpoint"), with_body)
        except BadQuery as exc:
            self._send(HTTPStatus.BAD_REQUEST, _JSON, _error(str(exc)), with_body)
        except Unavailable as exc:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, _JSON, _error(str(exc)), with_body)
        except ConnectionError:
            raise
        except Exception:
            log.exception("HTTP %s failed", url.path)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, _JSON, _error("internal error"), with_body)

    def _json(self, value: object, with_body: bool) -> None:
        self._send(HTTPStatus.OK, _JSON, json.dumps(value).encode(), with_body)

    def _send(
        self,
        code: HTTPStatus,
        content_type: str,
        body: bytes,
        with_body: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http %s " + format, self.address_string(), *args)


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()
