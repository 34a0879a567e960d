"""What every area shares: timing with interleaved rounds, statistics, request drivers, results.

Timing: each contender is a *batch* function that handles ``n`` requests. Batches are sized to
last about :attr:`Settings.batch_seconds`, then measured for :attr:`Settings.rounds` rounds; in
each round every contender runs once, in an order that rotates from round to round, so that a
burst of load from another process hits every contender alike. Per contender we keep the
microseconds per request of each round and report the median and the interquartile range.
A session's own cost is the paired difference, round by round, between the app with sessions
and the same app without (its *bare* twin), which cancels most of the shared noise.

Contenders that are compared can be measured as a *set* (``measure(..., together=...)``): the
members of a set run back to back within each round, a fraction of a second apart, so that a
comparison of two of them can be paired too: :meth:`Stat.over` is the ratio taken within each
round, and a target on a ratio reports the median of those per-round ratios (with their
quartiles), not the ratio of two medians measured seconds apart.
"""

from __future__ import annotations

import asyncio
import gc
import io
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SECRET = "bench-secret-key-0123456789abcdef-0123456789abcdef"
"""The secret every contender signs with (long enough for all of them)."""

Batch = Callable[[int], None]


@dataclass(frozen=True)
class Settings:
    """How long and how often to measure.

    Attributes:
        quick: the CI smoke mode: few rounds, small sizes, no assertion on timings.
        rounds: measured rounds per contender.
        batch_seconds: the length one batch is sized to.
    """

    quick: bool
    rounds: int
    batch_seconds: float

    @classmethod
    def for_mode(cls, quick: bool) -> Settings:
        """The defaults of the full run, or of ``--quick``."""
        if quick:
            return cls(quick=True, rounds=3, batch_seconds=0.01)
        return cls(quick=False, rounds=11, batch_seconds=0.04)


@dataclass(frozen=True)
class Stat:
    """The median and quartiles of a list of samples."""

    median: float
    q1: float
    q3: float
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: Iterable[float]) -> Stat:
        """Summarise ``samples`` (at least one)."""
        values = tuple(samples)
        if len(values) >= 2:
            q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        else:
            q1 = q3 = values[0]
        return cls(statistics.median(values), q1, q3, values)

    @property
    def spread(self) -> float:
        """Half the interquartile range: the ``±`` shown in tables."""
        return (self.q3 - self.q1) / 2

    def minus(self, other: Stat) -> Stat:
        """The paired, round-by-round difference ``self - other``."""
        return Stat.of(a - b for a, b in zip(self.samples, other.samples, strict=True))

    def over(self, other: Stat) -> Stat:
        """The paired, round-by-round ratio ``self / other`` (infinite where ``other`` is not
        positive): meaningful when both were measured in one set (see :func:`measure`)."""
        return Stat.of(ratio(a, b) for a, b in zip(self.samples, other.samples, strict=True))

    def show(self, digits: int = 1) -> str:
        """``median ±half-IQR`` for a table cell."""
        return f"{self.median:.{digits}f} ±{self.spread:.{digits}f}"

    def show_ratio(self) -> str:
        """A ratio's ``median x [q1-q3]`` for a table cell."""
        return f"{self.median:.2f}x [{self.q1:.2f}-{self.q3:.2f}]"

    def as_json(self) -> dict[str, Any]:
        """The JSON form: median, quartiles and every sample."""
        return {
            "median": round(self.median, 4),
            "q1": round(self.q1, 4),
            "q3": round(self.q3, 4),
            "samples": [round(s, 4) for s in self.samples],
        }


def _calibrate(batch: Batch, seconds: float) -> int:
    n = 1
    while True:
        start = time.perf_counter()
        batch(n)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4 or n >= 1 << 20:
            return max(1, int(n * seconds / max(elapsed, 1e-9)))
        n *= 4


def measure(
    contenders: Mapping[str, Batch], settings: Settings, together: Mapping[str, str] | None = None
) -> dict[str, Stat]:
    """Microseconds per request of each contender, interleaved round by round.

    A first batch of each is a warm-up (and sizes the batches); the garbage collector is kept
    off during a batch, as :mod:`timeit` does, and run between batches.

    ``together`` maps contenders to the name of their set (a contender it leaves out is a set of
    its own); without it all the contenders are one set. In every round each set runs as a
    block, its members back to back; the order of the sets, and that of the members within
    each set, rotate from round to round.
    """
    sizes = {name: _calibrate(batch, settings.batch_seconds) for name, batch in contenders.items()}
    sets: dict[str, list[str]] = {}
    for name in contenders:
        sets.setdefault("" if together is None else together.get(name, name), []).append(name)
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(settings.rounds):
        for members in _rotated(list(sets.values()), round_):
            for name in _rotated(members, round_):
                samples[name].append(_time(contenders[name], sizes[name]))
    return {name: Stat.of(values) for name, values in samples.items()}


def _rotated(items: list[Any], shift: int) -> list[Any]:
    shift %= len(items)
    return items[shift:] + items[:shift]


def _time(batch: Batch, n: int) -> float:
    """Microseconds per request of one batch of ``n``."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        batch(n)
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return elapsed / n * 1e6


def repeat(function: Callable[[], float], rounds: int) -> Stat:
    """Call ``function`` (which returns one measurement) ``rounds`` times and summarise."""
    return Stat.of(function() for _ in range(rounds))


# ---------------------------------------------------------------------- request drivers


def environ_for(path: str, cookie: str | None = None, **extra: Any) -> dict[str, Any]:
    """A GET request's WSGI environ, as a server on loopback would build it."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    environ.update(extra)
    return environ


def scope_for(path: str, cookie: str | None = None, **extra: Any) -> dict[str, Any]:
    """A GET request's ASGI HTTP scope, as a server on loopback would build it."""
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")]
    if cookie is not None:
        headers.append((b"cookie", cookie.encode("latin-1")))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    scope.update(extra)
    return scope


def _ignore_start_response(
    status: str, headers: list[tuple[str, str]], exc_info: Any = None
) -> Any:
    return None


def wsgi_batch(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> Batch:
    """A batch that sends the request ``environ`` (copied each time) to a WSGI ``app``."""

    def run(n: int) -> None:
        for _ in range(n):
            body = app(environ.copy(), _ignore_start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()

    return run


def wsgi_call(
    app: Callable[..., Iterable[bytes]], environ: dict[str, Any]
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Send one request; return the status, the headers and the body (for checks)."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, headers
        return None

    body = app(environ.copy(), start_response)
    data = b"".join(body)
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return seen["status"], seen["headers"], data


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _ignore_send(message: Mapping[str, Any]) -> None:
    return None


def asgi_batch(
    loop: asyncio.AbstractEventLoop,
    app: Callable[..., Awaitable[None]],
    scope: dict[str, Any],
) -> Batch:
    """A batch that sends the request ``scope`` (copied each time) to an ASGI ``app``."""

    async def many(n: int) -> None:
        for _ in range(n):
            await app(scope.copy(), _receive, _ignore_send)

    return lambda n: loop.run_until_complete(many(n))


def asgi_call(
    loop: asyncio.AbstractEventLoop,
    app: Callable[..., Awaitable[None]],
    scope: dict[str, Any],
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send one request; return the status, the headers (decoded) and the body (for checks)."""
    sent: list[Mapping[str, Any]] = []

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(message)

    loop.run_until_complete(app(scope.copy(), _receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", ())]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], headers, body


def set_cookie_of(headers: Iterable[tuple[str, str]]) -> str:
    """The ``name=value`` of the first ``Set-Cookie`` header (for the next request's cookie)."""
    for name, value in headers:
        if name.lower() == "set-cookie":
            return value.split(";", 1)[0]
    raise AssertionError(f"no Set-Cookie in {list(headers)}")


def check(condition: bool, what: str) -> None:
    """Stop the benchmark when a contender does not do what it is measured doing."""
    if not condition:
        raise AssertionError(f"benchmark self-check failed: {what}")


# ---------------------------------------------------------------------- results


@dataclass
class Table:
    """One Markdown table of an area's results."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""

    def markdown(self) -> str:
        """The table as Markdown, under a level-3 heading."""
        lines = [f"### {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "---|" * len(self.columns))
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"


@dataclass
class Target:
    """A performance target from the project's issues, and where the measurement stands."""

    name: str
    goal: str
    measured: str
    met: bool
    ratio: Stat | None = None  # the per-round ratios, for a target on a paired ratio

    def as_json(self) -> dict[str, Any]:
        """The JSON form (with the per-round ratios, if any)."""
        found: dict[str, Any] = {
            "name": self.name,
            "goal": self.goal,
            "measured": self.measured,
            "met": self.met,
        }
        if self.ratio is not None:
            found["ratio"] = self.ratio.as_json()
        return found


@dataclass
class AreaResult:
    """What one area reports: tables for people, data for machines, and targets."""

    name: str
    tables: list[Table] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    skipped: str = ""


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or infinity for a zero or negative denominator."""
    return numerator / denominator if denominator > 0 else float("inf")
