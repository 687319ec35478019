"""The jars of a plain-Java Apache Kafka broker, fetched once from Maven Central and cached.

Standard library only. Used by :mod:`schedulerx.testing.kafka_broker`; CI fills the cache with
``python -m schedulerx.testing.kafka_broker fetch`` before the tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

DEFAULT_KAFKA_VERSION = "4.1.1"
JARS_CACHE_ENV = "SCHEDULERX_KAFKA_JARS_CACHE"
TOOLS_DIR = Path(__file__).resolve().parents[2] / "tools" / "kafka"
"""The repository's ``tools/kafka`` (the jar POM and the broker's log4j2.yaml)."""
_PARTIAL = "jars.partial-"


class KafkaBrokerError(RuntimeError):
    """The harness could not fetch jars or start/stop a broker. The first line says why."""


def require_tool(tool: str, why: str) -> str:
    """The path of ``tool`` (``java`` prefers ``$JAVA_HOME/bin/java``); one-line error if absent."""
    if tool == "java" and os.environ.get("JAVA_HOME"):
        java = Path(os.environ["JAVA_HOME"]) / "bin" / "java"
        if java.is_file():
            return str(java)
    found = shutil.which(tool)
    if found is None:
        raise KafkaBrokerError(f"`{tool}` not found on PATH: {why}")
    return found


def jars_cache_dir(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """Where the jars of ``version`` live: ``<root>/kafka-<version>/jars``.

    ``<root>`` is ``$SCHEDULERX_KAFKA_JARS_CACHE`` if set, else ``$XDG_CACHE_HOME/schedulerx``,
    else ``~/.cache/schedulerx``.
    """
    root_env = os.environ.get(JARS_CACHE_ENV)
    if root_env:
        root = Path(root_env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "schedulerx"
    return root / f"kafka-{version}" / "jars"


def _cache_complete(jars: Path, version: str) -> bool:
    return (jars / f"kafka_2.13-{version}.jar").is_file()


def ensure_jars(version: str = DEFAULT_KAFKA_VERSION, pom: Path | None = None) -> Path:
    """Return the directory holding every runtime jar of Kafka ``version``, fetching it if absent.

    The fetch runs ``mvn dependency:copy-dependencies`` on ``pom`` (default: the repository's
    ``tools/kafka/pom.xml``) into a temporary sibling directory and renames it into place only
    when complete, so an interrupted fetch never leaves a half-filled cache; concurrent fetches
    are safe (the first rename wins). Raises :class:`KafkaBrokerError` (one line) if ``mvn`` or
    the POM is missing or Maven fails; Maven's full output is kept in ``fetch.log`` next to it.
    """
    jars = jars_cache_dir(version)
    if _cache_complete(jars, version):
        return jars
    mvn = require_tool("mvn", f"needed once, to fetch the Kafka broker jars into {jars}")
    pom = pom if pom is not None else TOOLS_DIR / "pom.xml"
    if not pom.is_file():
        raise KafkaBrokerError(f"Kafka jar POM not found at {pom}: pass pom= to ensure_jars()")
    jars.parent.mkdir(parents=True, exist_ok=True)
    for stale in jars.parent.glob(f"{_PARTIAL}*"):  # left by a fetch that was killed
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    partial = Path(tempfile.mkdtemp(prefix=_PARTIAL, dir=jars.parent))
    log = jars.parent / "fetch.log"
    try:
        cmd = [mvn, "-B", "-q", "dependency:copy-dependencies", f"-DoutputDirectory={partial}"]
        cmd += ["-DincludeScope=runtime", f"-Dkafka.version={version}", "-f", str(pom)]
        with log.open("wb") as out:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
        if rc != 0 or not _cache_complete(partial, version):
            errors = [ln for ln in log.read_text(errors="replace").splitlines() if "ERROR" in ln]
            why = re.sub(r"\x1b\[[0-9;]*m", "", errors[0]).strip() if errors else f"exit {rc}"
            raise KafkaBrokerError(f"fetching Kafka {version} jars failed ({log}): {why}")
        try:
            partial.rename(jars)
        except OSError:
            if not _cache_complete(jars, version):  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return jars
