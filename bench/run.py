"""The benchmark runner::

    python -m bench [--quick] [--only AREA,...] [--json PATH] [--markdown PATH]


Areas: cookie, headers, redis, users, db, registry, scale, server (all by default). Each prints its
tables as it finishes; at the end the Markdown report and the JSON data are written where asked.
Areas whose server (Redis, PostgreSQL) or tool (wrk) is missing are reported as skipped, not
failed. Timings are never asserted: the run fails only when a contender does not do what it is
measured doing (a self-check) or an area crashes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .harness import AreaResult, Settings, Target

AREAS = ("cookie", "headers", "redis", "users", "db", "registry", "scale", "server")
_MODULES = {
    "redis": "redis_store",
    "users": "user_index",
}  # bench.redis would shadow redis-py for scripts in bench/

PACKAGES = (
    "session-core",
    "session-core-redis",
    "session-core-db",
    "starlette",
    "flask",
    "werkzeug",
    "Flask-Session",
    "Flask-SQLAlchemy",
    "starsessions",
    "django",
    "SQLAlchemy",
    "psycopg",
    "redis",
    "hiredis",
    "itsdangerous",
    "uvicorn",
    "gunicorn",
)


def versions() -> dict[str, str]:
    """The installed version of the project and of every peer."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "system": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


QUICK_HEADER = (
    "bench --quick is a smoke run: every benchmark runs, with few rounds and small sizes, to "
    "show that it still works. Its timings are too rough to judge, so no target is judged "
    "here: the goals below are those of the full run (tox -e bench), for reference."
)


def target_line(target: Target, quick: bool) -> str:
    """One target as printed: met or missed in a full run; in a smoke run, never judged."""
    if quick:
        return f"-    {target.name}: {target.measured} (full-run goal {target.goal}; not judged)"
    mark = "ok  " if target.met else "MISS"
    return f"{mark} {target.name}: {target.measured} (goal {target.goal})"


def markdown(results: list[AreaResult], meta: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    m = meta["machine"]
    lines = [
        "# session-core benchmarks",
        "",
        f"Measured {meta['date']} with `python -m bench{' --quick' if meta['quick'] else ''}` "
        f"in {meta['seconds']:.0f} s, on {m['cpu']} ({m['cores']} cores), {m['python']}, "
        f"{m['system']}; load average at start {m['load_average_at_start']}.",
        "",
        "Per-request numbers are microseconds, in-process (no sockets between client and app), "
        f"median ±half the interquartile range over {meta['rounds']} interleaved rounds (the "
        "cookie area runs twice as many, each half as long).",
        "",
        "Reading the numbers:",
        "",
        "- A session's *cost* is the request with sessions minus the same app without them (its "
        "*bare* twin, whose views get a plain dict), paired round by round.",
        "- A target on a ratio of a server store (redis, db, tiered, asyncpg: a session cost "
        "against its client's floor, a peer's cost against ours) is paired too: in every round, "
        "the contenders of one app and case run back to back with the floor they are compared "
        "to, the ratio is taken within the round, and the target is the median of those "
        "per-round ratios, their quartiles in brackets. The medians in parentheses are for "
        "scale: their quotient is not what is judged.",
        "- Floors use the same client libraries as the stores: redis-py `GET` and `GET` + "
        "`SET EX`; the database driver's `SELECT` by primary key and an upsert, in autocommit.",
        "- With a server-side store, the ASGI middleware loads the session before the app runs "
        "whenever the visitor sends a cookie (`request.session` is synchronous, and loading "
        "inside it would block the event loop), so there an untouched request costs one round "
        "trip and a write costs two; the WSGI middleware loads on first access. The contender "
        "`session-core, asgi_preload=false` loads nothing ahead: its views that read call "
        "`await request.session.aload()`, and a write is one round trip.",
        "- The machine may be shared with other work: compare contenders within one run, and "
        "mind the spread.",
        "",
    ]
    targets = [t for r in results for t in r.targets]
    if targets and meta["quick"]:
        lines += ["## Targets", "", QUICK_HEADER, "", "| target | full-run goal | measured |"]
        lines += ["|---|---|---|", *(f"| {t.name} | {t.goal} | {t.measured} |" for t in targets)]
        lines.append("")
    elif targets:
        lines += ["## Targets", "", "| target | goal | measured | met |", "|---|---|---|---|"]
        lines += [
            f"| {t.name} | {t.goal} | {t.measured} | {'yes' if t.met else '**no**'} |"
            for t in targets
        ]
        lines.append("")
    for result in results:
        lines += [f"## {result.name}", ""]
        if result.skipped:
            lines += [f"Skipped: {result.skipped}", ""]
        lines += [table.markdown() for table in result.tables]
    lines += ["## Versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {name} | {v} |" for name, v in meta["versions"].items()]
    return "\n".join(lines) + "\n"


def run_area(name: str, settings: Settings) -> AreaResult:
    """Run one area; a missing server or tool becomes a skipped result."""
    module = importlib.import_module(f"bench.{_MODULES.get(name, name)}")
    started = time.perf_counter()
    result: AreaResult = module.run(settings)
    result.data["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the areas, write the reports."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI smoke: few rounds, small sizes")
    parser.add_argument("--only", default=",".join(AREAS), help="comma-separated areas")
    parser.add_argument("--rounds", type=int, help="measured rounds (default 11, quick 3)")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the Markdown report here")
    args = parser.parse_args(argv)
    areas = [a.strip() for a in args.only.split(",") if a.strip()]
    unknown = [a for a in areas if a not in AREAS]
    if unknown:
        parser.error(f"unknown area {unknown[0]!r}; choose from {', '.join(AREAS)}")
    settings = Settings.for_mode(args.quick)
    if args.rounds:
        settings = Settings(settings.quick, args.rounds, settings.batch_seconds)
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": settings.quick,
        "rounds": settings.rounds,
        "machine": machine(),
        "versions": versions(),
    }
    if settings.quick:
        print(QUICK_HEADER, flush=True)
    started = time.perf_counter()
    results: list[AreaResult] = []
    failed = False
    for name in areas:
        print(f"== {name}", flush=True)
        try:
            result = run_area(name, settings)
        except Exception:
            traceback.print_exc()
            failed = True
            result = AreaResult(name, skipped="crashed; see the log")
        results.append(result)
        if result.skipped:
            print(f"skipped: {result.skipped}")
        for table in result.tables:
            print(table.markdown())
        for target in result.targets:
            print(target_line(target, settings.quick))
        sys.stdout.flush()
    meta["seconds"] = time.perf_counter() - started
    if args.markdown:
        args.markdown.write_text(markdown(results, meta))
    if args.json:
        payload = {
            **meta,
            "targets": [t.as_json() for r in results for t in r.targets],
            "areas": {r.name: {"skipped": r.skipped, **r.data} for r in results},
        }
        args.json.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"done in {meta['seconds']:.0f} s")
    return 1 if failed else 0
