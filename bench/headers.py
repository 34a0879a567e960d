"""Hostile Cookie headers: a request whose cookies come in N separate ``Cookie`` lines (how
HTTP/2 may split them, and how an attack sent 60,000 lines in one megabyte), through the ASGI and
WSGI middleware with the cookie store, the app reading its session.

The ASGI middleware joins the lines; the WSGI server hands over one joined header. Joining the
lines one by one cost the square of their number (4.8 s of CPU for 60,000 lines, blocking the
event loop); joined once and read only up to ``MAX_COOKIE_HEADER_BYTES``, a request's cost per
line must not grow with N. The table prints that cost per line, and its ratio to the smallest
N's: a ratio at or below 1 is linear (below: the bound stops the work).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from .harness import (
    SECRET,
    AreaResult,
    Batch,
    Settings,
    Stat,
    Table,
    Target,
    asgi_batch,
    asgi_call,
    check,
    environ_for,
    measure,
    ratio,
    scope_for,
    wsgi_batch,
    wsgi_call,
)

LINES = (1_000, 10_000, 60_000)
QUICK_LINES = (100, 1_000, 10_000)
ENVIRON_KEY = "session_core.session"


def cookie_lines(count: int) -> list[bytes]:
    """``count`` cookies of 16 bytes each, none of them the session's."""
    return [b"c%05d=%09d" % (i % 100_000, i) for i in range(count)]


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    value = environ[ENVIRON_KEY].get("n")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [repr(value).encode()]


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = repr(scope["session"].get("n")).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def build(loop: asyncio.AbstractEventLoop, counts: Iterable[int]) -> dict[str, Batch]:
    """One batch per interface and number of lines, each checked to answer an empty session."""
    from session_core.asgi import SessionMiddleware as ASGIMiddleware
    from session_core.wsgi import SessionMiddleware as WSGIMiddleware

    asgi = ASGIMiddleware(_asgi_app, secret_key=SECRET)
    wsgi = WSGIMiddleware(_wsgi_app, secret_key=SECRET)
    batches: dict[str, Batch] = {}
    for count in counts:
        lines = cookie_lines(count)
        scope = scope_for("/")
        scope["headers"] = [*scope["headers"], *((b"cookie", line) for line in lines)]
        environ = environ_for("/", b"; ".join(lines).decode("latin-1"))
        status, _, body = asgi_call(loop, asgi, scope)
        check(status == 200 and body == b"None", f"asgi with {count} cookie lines")
        wsgi_status, _, wsgi_body = wsgi_call(wsgi, environ)
        check(wsgi_status.startswith("200") and wsgi_body == b"None", f"wsgi, {count} cookies")
        batches[f"asgi|{count}"] = asgi_batch(loop, asgi, scope)
        batches[f"wsgi|{count}"] = wsgi_batch(wsgi, environ)
    return batches


def run(settings: Settings) -> AreaResult:
    """Measure each interface at each number of cookie lines, interleaved."""
    counts = QUICK_LINES if settings.quick else LINES
    loop = asyncio.new_event_loop()
    try:
        stats = measure(build(loop, counts), settings)
    finally:
        loop.close()
    result = AreaResult("headers")
    table = Table(
        "Cookie header in N lines: whole request (cookie store, session read)",
        ["interface", "lines", "µs per request", "ns per line", "per-line ratio to the fewest"],
        note="Median ±half the interquartile range over the rounds, in-process. A ratio at or "
        "below 1 means the cost grows no faster than the number of lines.",
    )
    for interface in ("asgi", "wsgi"):
        first = stats[f"{interface}|{counts[0]}"].median / counts[0]
        worst = 0.0
        for count in counts:
            stat: Stat = stats[f"{interface}|{count}"]
            per_line = stat.median / count
            worst = max(worst, ratio(per_line, first))
            table.rows.append(
                [
                    interface,
                    str(count),
                    stat.show(),
                    f"{per_line * 1e3:.1f}",
                    f"{ratio(per_line, first):.2f}",
                ]
            )
            result.data.setdefault(interface, {})[str(count)] = {
                "total_us": stat.as_json(),
                "per_line_ratio": round(ratio(per_line, first), 3),
            }
        result.targets.append(
            Target(
                f"{interface}: cost per Cookie line does not grow with the number of lines",
                "per-line ratio ≤ 1.5",
                f"{worst:.2f} at most, {counts[0]} to {counts[-1]} lines",
                worst <= 1.5,
            )
        )
    result.tables.append(table)
    return result
