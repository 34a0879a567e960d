"""The demo app under uvicorn in a subprocess, and a load generator of virtual visitors.

Each visitor has its own cookie jar and counts its own successful page views; the demo's visit
counter must match that count at every step (or run ahead only by requests that failed, whose
save may have landed before the failure), so a lost write is seen at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ._servers import free_port, port_open
from .conftest import SECRET

_VISITS = re.compile(rb'id="visits">(\d+)<')
REQUEST_TIMEOUT = 30.0  # the client's bound; a request taking this long is a hang


def clean_environ() -> dict[str, str]:
    """This process's environment without ``SESSION_CORE_*`` variables (test settings such as
    ``SESSION_CORE_TEST_*`` are not session settings, and the core refuses unknown ones)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SESSION_CORE_")}


def rss_bytes(pid: int) -> int:
    """The resident set size of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@contextlib.contextmanager
def demo_server(store: str, options: dict[str, Any], log: Path) -> Iterator[DemoProcess]:
    """``session-core demo`` on a free loopback port with the given store; stopped at the end."""
    port = free_port()
    command = [sys.executable, "-m", "session_core", "demo", "--store", store, "--port", str(port)]
    for name, value in options.items():
        command += ["--store-option", f"{name}={value}"]
    environment = {**clean_environ(), "SESSION_CORE_SECRET_KEY": SECRET, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment
        )
    demo = DemoProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 30
        # The demo prints its address before uvicorn listens: wait for both.
        while b"session-core demo on" not in log.read_bytes() or not port_open(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the demo did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield demo
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class DemoProcess:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def rss(self) -> int:
        return rss_bytes(self.process.pid)


@dataclass
class Visitor:
    """One virtual visitor: its own cookies, and what it has seen."""

    number: int
    seen: int = 0  # the demo's counter on the last successful page
    pending_failures: int = 0  # failed requests since then (their saves may have landed)
    requests: int = 0
    lost: list[str] = field(default_factory=list)


@dataclass
class LoadResult:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    exceptions: Counter[str] = field(default_factory=Counter)
    lost_writes: list[str] = field(default_factory=list)
    slowest: float = 0.0
    timeline: list[tuple[float, int, float]] = field(default_factory=list)  # (start, status, s)
    visitors: list[Visitor] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != 200) + sum(self.exceptions.values())


async def _visit(
    client: httpx.AsyncClient, visitor: Visitor, result: LoadResult, started: float
) -> None:
    """One page view, or (every 25th) a sign-in, which cycles the key and keeps the data."""
    visitor.requests += 1
    sign_in = visitor.requests % 25 == 0
    begin = time.monotonic()
    status = -1
    try:
        if sign_in:
            response = await client.post("/sign-in", data={"name": f"visitor{visitor.number}"})
        else:
            response = await client.get("/")
        status = response.status_code
        if sign_in and status == 303:
            status = 200
        elif status == 200:
            match = _VISITS.search(response.content)
            assert match, response.text[:500]
            count = int(match.group(1))
            low, high = visitor.seen + 1, visitor.seen + 1 + visitor.pending_failures
            if not low <= count <= high:
                visitor.lost.append(
                    f"visitor {visitor.number}: saw {count}, expected {low}..{high}"
                )
            visitor.seen = count
            visitor.pending_failures = 0
        if status != 200:
            visitor.pending_failures += 1
    except httpx.HTTPError as exc:
        result.exceptions[type(exc).__name__] += 1
        visitor.pending_failures += 1
    elapsed = time.monotonic() - begin
    result.requests += 1
    result.statuses[status] += 1
    result.slowest = max(result.slowest, elapsed)
    result.timeline.append((begin - started, status, elapsed))


def run_load(
    url: str,
    visitors: int,
    seconds: float,
    during: Callable[[float], None] | None = None,
) -> LoadResult:
    """``visitors`` virtual visitors on ``url`` for ``seconds``; ``during(elapsed)`` is called
    about ten times a second from the load loop's thread (for fault injection), and may block
    only briefly. Ends with each visitor's final check of its own counter."""
    result = LoadResult()

    async def main() -> None:
        started = time.monotonic()
        stop_at = started + seconds
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

        async def one(visitor: Visitor) -> None:
            async with httpx.AsyncClient(
                base_url=url, timeout=REQUEST_TIMEOUT, limits=limits
            ) as client:
                while time.monotonic() < stop_at:
                    await _visit(client, visitor, result, started)
                    if visitor.pending_failures:
                        await asyncio.sleep(0.05)  # do not spin on a store that is down
                # The final check: the counter is exactly what this visitor counted.
                for _ in range(50):
                    await _visit(client, visitor, result, started)
                    if not visitor.pending_failures:
                        break
                    await asyncio.sleep(0.2)
                visitor.lost.extend(
                    [f"visitor {visitor.number}: could not read its counter at the end"]
                    if visitor.pending_failures
                    else []
                )

        async def ticker() -> None:
            while time.monotonic() < stop_at:
                if during is not None:
                    await asyncio.to_thread(during, time.monotonic() - started)
                await asyncio.sleep(0.1)

        result.visitors = [Visitor(n) for n in range(visitors)]
        await asyncio.gather(ticker(), *(one(v) for v in result.visitors))

    asyncio.run(main())
    result.lost_writes = [line for v in result.visitors for line in v.lost]
    return result
