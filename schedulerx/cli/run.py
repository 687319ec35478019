"""``schedulerx run APP``: run a pod of the Scheduler that APP names."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from schedulerx.api.scheduler import Scheduler
from schedulerx.cli.common import HelpFormatter, UserError, add_connection_flags

EXAMPLES = """examples:
  schedulerx run examples/demo.py
  schedulerx run myapp.jobs:scheduler --kafka 127.0.0.1:9092 --pod-id pod-a
  SCHEDULERX_KAFKA=broker:9092 schedulerx run app.py:make_scheduler
  schedulerx run examples/demo.py --http 9100   # metrics and dashboard on 127.0.0.1:9100"""


def add_parser(sub: Any) -> None:
    """Register the ``run`` subcommand."""
    p = sub.add_parser(
        "run",
        help="run a pod",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "app",
        metavar="APP",
        help="path/to/file.py[:attr] or module:attr naming a Scheduler "
        "(or a zero-argument factory); attr defaults to 'scheduler'",
    )
    add_connection_flags(p)
    p.add_argument(
        "--pod-id",
        default=os.environ.get("SCHEDULERX_POD_ID"),
        help="this pod's id (Kafka: static group membership)",
    )
    p.add_argument(
        "--no-create-topic",
        dest="create_topic",
        action="store_false",
        default=None,
        help="Kafka: fail if the topics are missing instead of creating them "
        "(env SCHEDULERX_CREATE_TOPIC=0)",
    )
    p.add_argument(
        "--workers", type=int, default=_env_int("SCHEDULERX_WORKERS"), help="executor threads (8)"
    )
    p.add_argument(
        "--http",
        metavar="[HOST:]PORT",
        default=os.environ.get("SCHEDULERX_HTTP") or None,
        help="serve /metrics, /healthz, /readyz and the dashboard (PORT alone: 127.0.0.1; "
        "0.0.0.0:PORT for all interfaces)",
    )
    p.add_argument("--log-level", default=os.environ.get("SCHEDULERX_LOG_LEVEL", "info"))
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=os.environ.get("SCHEDULERX_LOG_FORMAT", "text"),
    )
    p.set_defaults(handler=handle)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


def load_app(spec: str) -> Scheduler:
    """The Scheduler named by ``spec``; UserError with a one-line reason otherwise."""
    target, _, attr = spec.partition(":")
    attr = attr or "scheduler"
    if target.endswith(".py") or os.sep in target:
        path = Path(target)
        if not path.is_file():
            raise UserError(f"app file not found: {target}")
        sys.path.insert(0, str(path.resolve().parent))
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        if mod_spec is None or mod_spec.loader is None:
            raise UserError(f"cannot load {target}")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[path.stem] = module
        try:
            mod_spec.loader.exec_module(module)
        except Exception as exc:
            raise UserError(f"loading {target} failed: {type(exc).__name__}: {exc}") from None
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise UserError(f"cannot import {target!r}: {type(exc).__name__}: {exc}") from None
    obj = getattr(module, attr, None)
    if obj is None:
        raise UserError(f"{target} has no attribute {attr!r}")
    if not isinstance(obj, Scheduler) and callable(obj):
        obj = obj()
    if not isinstance(obj, Scheduler):
        raise UserError(f"{spec} is not a Scheduler (got {type(obj).__name__})")
    return obj


def handle(args: argparse.Namespace) -> int:
    """Run the pod until SIGTERM/SIGINT."""
    from schedulerx.cli.main import setup_logging

    setup_logging(args.log_level, args.log_format)
    if args.http is not None:
        from schedulerx.ops.http import AddressError, parse_address

        try:
            parse_address(args.http)
        except AddressError as exc:
            raise UserError(str(exc)) from None
    scheduler = load_app(args.app)
    overrides: dict[str, object] = {}
    if args.pod_id:
        overrides["pod_id"] = args.pod_id
    if args.workers:
        overrides["workers"] = args.workers
    flags: dict[str, Any] = {k: getattr(args, k) for k in ("data_dir", "kafka", "topic", "group")}
    if args.create_topic is False:
        flags["create_topic"] = False
    if args.pod_id:
        flags["static_membership"] = True  # a stable id: keep assignments across restarts
    backend = dataclasses.replace(
        scheduler.backend, **{k: v for k, v in flags.items() if v is not None}
    )
    scheduler.configure(backend, **overrides)
    scheduler.run(http=args.http)
    return 0
