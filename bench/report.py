"""Writing the results: ``<out>.md`` (the report), ``<out>.json`` (raw figures) and
``<out>-fire-lag.png`` (the fire-lag distributions side by side).

The Markdown holds the machine, a summary of every target (met / missed), the key ratios,
the ledger check of every run, each row's tables and notes, and the profile analysis kept in
``bench/analysis.md`` (hand-written after profiling a run; its date says which run).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ANALYSIS = Path(__file__).with_name("analysis.md")


def outputs(out: Path) -> tuple[Path, Path, Path]:
    """(markdown, json, png) paths for ``--out``."""
    return out, out.with_suffix(".json"), out.with_name(f"{out.stem}-fire-lag.png")


def machine(kafka_version: str) -> dict[str, str]:
    """What ran the benchmark."""
    cpu = "unknown"
    mem = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20)
        jvm = (java.stderr or java.stdout).splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        jvm = "unknown"

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "cores (nproc)": str(os.cpu_count()),
        "CPU": cpu,
        "memory": mem,
        "OS": platform.platform(),
        "Python": sys.version.split()[0],
        "kafka-python": version("kafka-python"),
        "Kafka broker": kafka_version or "not started",
        "JVM": jvm,
        "APScheduler": version("APScheduler"),
        "msgspec / rocksdict / croniter": " / ".join(
            version(d) for d in ("msgspec", "rocksdict", "croniter")
        ),
    }


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    return "-" if v is None else str(v)


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of ``rows`` (columns: the union of keys, first-seen order)."""
    if not rows:
        return "(no rows)\n"
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot(samples: dict[str, list[float]], path: Path) -> bool:
    """ECDFs of the fire lag per system, one panel per rate; False when there is nothing."""
    curves = {}
    for label, lags in samples.items():
        ms = sorted(max(x * 1000, 0.01) for x in lags)
        curves[label] = (ms, [(i + 1) / len(ms) for i in range(len(ms))])
    return _draw({k: v for k, v in curves.items() if v[0]}, path)


def plot_quantiles(raw: dict[str, Any], path: Path) -> bool:
    """The same plot from the stored percentile ladders (``quantiles_ms``, p0..p100)."""
    curves = {}
    for label, figures in raw.items():
        q = [x for x in figures.get("quantiles_ms") or [] if x is not None]
        if len(q) == 101:
            curves[label] = ([max(x, 0.01) for x in q], [i / 100 for i in range(101)])
    return _draw(curves, path)


def _draw(curves: dict[str, tuple[list[float], list[float]]], path: Path) -> bool:
    if not curves:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    rates = sorted({label.split(" @ ")[1] for label in curves}, key=lambda r: int(r[:-2]))
    fig, axes = plt.subplots(1, len(rates), figsize=(5.5 * len(rates), 4.2), squeeze=False)
    for ax, rate in zip(axes[0], rates, strict=True):
        for label, (xs, ys) in sorted(curves.items()):
            if label.endswith(f" @ {rate}"):
                ax.step(xs, ys, where="post", label=label.split(" @ ")[0])
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{rate.replace('/s', '')} fires/s")
        ax.set_xlabel("fire lag (ms, log scale)")
        ax.set_ylabel("fraction of starts")
        ax.axhline(0.99, color="grey", lw=0.6, ls=":")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Fire lag (scheduled second -> execute() entered), ECDF; dotted line = p99")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _f(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else math.nan


def _div(a: Any, b: Any) -> float:
    a, b = _f(a), _f(b)
    return a / b if math.isfinite(a) and math.isfinite(b) and b else math.nan


def clean(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj


def key_ratios(rows: dict[str, Any]) -> list[dict[str, Any]]:
    """The ratios the report leads with (schedulerx / the bar it is compared with)."""
    out: list[dict[str, Any]] = []

    def add(what: str, value: float, against: str) -> None:
        out.append({"ratio": what, "value": value, "against": against})

    lag = rows.get("fire_lag", {}).get("tables", {}).get("fire lag", [])
    aps = {r["fires/s"]: r for r in lag if r["system"] == "apscheduler"}
    for r in lag:
        base = aps.get(r["fires/s"])
        if r["system"] == "apscheduler" or base is None:
            continue
        add(
            f"fire lag p99, {r['system']} @ {r['fires/s']}/s",
            _div(r.get("p99 ms"), base.get("p99 ms")),
            "APScheduler p99, same rate, same run",
        )
        add(
            f"CPU per 1k fires, {r['system']} @ {r['fires/s']}/s",
            _div(r.get("CPU s / 1k fires"), base.get("CPU s / 1k fires")),
            "APScheduler, same rate",
        )
    found = rows.get("throughput", {}).get("raw", {}).get("max_sustained", {})
    if "1" in found:
        add("max sustained fires/s, 1 Kafka pod", _div(found["1"], 1000), "target 1,000")
    if "1" in found and "3" in found:
        add("max sustained fires/s, 3 pods / 1 pod", _div(found["3"], found["1"]), "linear: 3")
    for r in rows.get("herd", {}).get("tables", {}).get("herd", []):
        add(
            f"herd of {r['commands']:,} all started, {r['system']}",
            _div(r.get("all started after s"), 10),
            "target 10 s",
        )
    for r in rows.get("failover", {}).get("tables", {}).get("trials", []):
        first = r.get("first start elsewhere s")
        if first is None:
            continue
        if r["kind"] == "kill -9":
            add(
                "failover after kill -9",
                _div(first, r["session timeout s"]),
                f"session timeout {r['session timeout s']:g} s (target: +1 s)",
            )
        else:
            add("hand-over after SIGTERM", _div(first, 2), "target 2 s")
    for r in rows.get("replay", {}).get("tables", {}).get("replay", []):
        if r["step"].startswith("rebuild"):
            add(r["step"], _f(r.get("vs raw consume")), "raw kafka-python consume")
    for r in rows.get("query", {}).get("tables", {}).get("queries", [])[:3]:
        add(f"query p99, {r['query']} ({r['store']})", _f(r["p99"]), "target 1 ms")
    mem = rows.get("memory", {}).get("tables", {}).get("memory", [])
    if mem:
        big = max(r["commands"] for r in mem)
        per = {r["system"]: r["per 10k commands MiB"] for r in mem if r["commands"] == big}
        add(
            f"RSS per 10k commands (1 -> {big:,})",
            _div(per.get("embedded"), per.get("apscheduler")),
            "APScheduler, same jobs",
        )
    return out


def write(
    out: Path, results: dict[str, Any], ctx: Any, args: dict[str, Any], elapsed: float
) -> dict[str, Path]:
    """Write the JSON, the plot and the Markdown; returns their paths."""
    md, js, png = outputs(out)
    md.parent.mkdir(parents=True, exist_ok=True)
    ledgers = ctx.ledgers
    data = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if ctx.quick else "full",
        "args": args,
        "elapsed_s": elapsed,
        "machine": {
            **machine(ctx.kafka_version),
            "load average 1/5/15 min, start -> end": " -> ".join(
                "/".join(f"{x:.1f}" for x in load) for load in (ctx.load_start, os.getloadavg())
            ),
        },
        "incidents": list(ctx.incidents),
        "ledger": {
            "runs": sum(v["runs"] for v in ledgers),
            "duplicates": sum(v["duplicates"] for v in ledgers),
            "checks": ledgers,
        },
        "rows": results,
    }
    data = clean(data)
    js.write_text(json.dumps(data, indent=1, default=str, allow_nan=False) + "\n")
    plot(ctx.samples.get("fire_lag", {}), png)
    render(data, md, png)
    return {"md": md, "json": js, "png": png}


def render(data: dict[str, Any], md: Path, png: Path) -> None:
    """Write the Markdown report of ``data`` (the JSON document) to ``md``."""
    quick = data["mode"] == "quick"
    ledger = data["ledger"]
    results = data["rows"]
    lines = [
        "# schedulerx performance",
        "",
        f"Generated {data['generated']} by `python -m bench{' --quick' if quick else ''}` "
        f"({data['mode']} mode, {data['elapsed_s'] / 60:.1f} min). Raw figures: "
        f"`{md.with_suffix('.json').name}`. Re-run: `.venv/bin/python -m bench` "
        "(`--only ROW[,ROW]`, `--quick`).",
        "",
    ]
    if quick:
        lines += [
            "> **Quick (smoke) mode**: tiny sizes, rows run concurrently; the figures "
            "only show that every row runs end to end. They are not measurements.",
            "",
        ]
    lines += [
        "The machine is small and shared (2 cores for the broker, the pods and the "
        "driver), so absolute figures are noisy: compare the ratios, measured side by "
        "side in the same run.",
        "",
        "## Machine",
        "",
        table([{"item": k, "value": v} for k, v in data["machine"].items()]),
        "## Targets",
        "",
    ]
    targets = [
        {"row": r.get("title", k).split(":")[0], **t}
        for k, r in results.items()
        for t in r.get("targets", [])
    ]
    lines += [table(targets) if targets else "(no targets in the selected rows)\n"]
    ratios = key_ratios(results)
    if ratios:
        lines += [
            "## Key ratios",
            "",
            "Below 1 is better than the bar, except for "
            "throughput and replay, where above 1 is better.",
            "",
            table(ratios),
        ]
    lines += [
        "## Ledger check (every run)",
        "",
        f"Every benchmark run's commands wrote a ledger; **{ledger['duplicates']} "
        f"duplicate starts** in {ledger['runs']:,} ledger lines over "
        f"{len(ledger['checks'])} runs.",
        "",
        table([{k: v for k, v in x.items() if k != "examples"} for x in ledger["checks"]]),
        "",
    ]
    timing = [
        {"row": r.get("title", k).split(":")[0], "minutes": r["seconds"] / 60}
        for k, r in results.items()
        if isinstance(r.get("seconds"), (int, float))
    ]
    if timing and not quick:
        lines += [
            "## Run time and sizes",
            "",
            "Full-mode sizes: fire lag 12 s windows per system and rate; throughput ramps "
            "screened with 10 s windows, confirmed over 60 s; herd of 10,000 commands; "
            "failover 2 trials of each kind with a 6 s session timeout; replay of 1,002,500 "
            "events; query on 102,000 jobs; memory up to 100,000 commands. Scaled down from "
            "the issue only where it allows (windows); the load average above says how busy "
            "the shared machine was.",
            "",
            table(timing),
        ]
    incidents = data.get("incidents", [])
    lines += [
        "## Incidents",
        "",
        "Things that went wrong during the run without ending a row (each is also a finding):",
        "",
    ]
    lines += [f"- {text}" for text in incidents] or ["- none"]
    lines.append("")
    for key, r in results.items():
        lines += [f"## {r.get('title', key)}", ""]
        if r.get("from_run"):
            lines += [
                f"*(figures of an earlier run, {r['from_run']}: this run did not select the row)*",
                "",
            ]
        if "error" in r:
            lines += [f"**This row failed:** `{r['error']}`", ""]
            continue
        if key == "fire_lag" and png.exists():
            lines += [f"![fire lag distributions]({png.name})", ""]
        for name, rows in r.get("tables", {}).items():
            lines += [f"**{name}**", "", table(rows)]
        for note in r.get("notes", []):
            lines.append(f"- {note}")
        lines.append("")
    if ANALYSIS.exists() and not quick:
        lines += [ANALYSIS.read_text().rstrip(), ""]
    md.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.report RESULT.json``: render the Markdown (same name, .md) and the
    plot (from the stored percentiles) again."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m bench.report RESULT.json", file=sys.stderr)
        return 2
    js = Path(args[0])
    md, _, png = outputs(js.with_suffix(".md"))
    data = json.loads(js.read_text())
    plot_quantiles(data["rows"].get("fire_lag", {}).get("raw", {}), png)
    render(data, md, png)
    print(f"wrote {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
