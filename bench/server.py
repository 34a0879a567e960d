"""A real-server run: the plain app under uvicorn (ASGI) and gunicorn (WSGI, one sync worker),
driven over loopback by wrk, with and without session-core's cookie sessions.

Reports requests per second and latency percentiles, as wrk measures them, for each server and
case, over a few rounds (each round runs every case once, interleaved). The server and wrk share
the machine, so these numbers say how much sessions change the throughput of a tiny app, not
how fast a real deployment is.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .harness import AreaResult, Settings, Stat, Table, environ_for, set_cookie_of, wsgi_call

ROOT = Path(__file__).resolve().parent.parent
CASES = (
    ("bare", "/read", False),
    ("session-core, untouched", "/untouched", True),
    ("session-core, read", "/read", True),
    ("session-core, write", "/write", True),
)
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for(port: int, process: subprocess.Popen[bytes], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the server did not listen on port {port} within {seconds} s")


def _command(server: str, app: str, port: int) -> list[str]:
    if server == "uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            f"bench.server_apps:{app}_asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--lifespan",
            "off",
        ]
    return [
        sys.executable,
        "-m",
        "gunicorn",
        f"bench.server_apps:{app}_wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--log-level",
        "warning",
    ]


def _start(server: str, app: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        _command(server, app, port),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _wait_for(port, process)
    except Exception:
        _stop(process)
        raise
    return process, port


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # nothing happens if it already exited
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def parse_wrk(output: str) -> dict[str, float]:
    """Requests per second and the 50/75/90/99th latency percentiles (ms) from ``wrk --latency``."""
    found: dict[str, float] = {}
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    found["rps"] = float(rate.group(1))
    for percent, value, unit in re.findall(
        r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.M
    ):
        found[f"p{percent}_ms"] = float(value) * _UNITS[unit]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    found["non_2xx"] = float(errors.group(1)) if errors else 0.0
    return found


def _wrk(port: int, path: str, cookie: str | None, seconds: float) -> dict[str, float]:
    command = ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency"]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    command.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return parse_wrk(out.stdout)


def _cookie() -> str:
    from .server_apps import sessions_wsgi

    _, headers, _ = wsgi_call(sessions_wsgi, environ_for("/seed"))
    return set_cookie_of(headers)


def run(settings: Settings) -> AreaResult:
    """Each server, each case, a few interleaved rounds."""
    if shutil.which("wrk") is None:
        return AreaResult("server", skipped="wrk is not installed (Debian package wrk)")
    seconds = 1 if settings.quick else 3
    rounds = 1 if settings.quick else 3
    cookie = _cookie()
    result = AreaResult("server")
    table = Table(
        "Real servers on loopback, wrk -t1 -c16",
        ["server", "case", "requests/s", "p50 ms", "p90 ms", "p99 ms"],
        note=(
            f"{rounds} round(s) of {seconds} s per case, median ±half-IQR of requests/s; "
            "latency percentiles are the medians over the rounds. Server and wrk share the "
            "machine's cores."
        ),
    )
    for server in ("uvicorn", "gunicorn"):
        processes: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        try:
            for app in ("bare", "sessions"):
                processes[app] = _start(server, app)
            samples: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in CASES}
            for _ in range(rounds):
                for name, path, with_sessions in CASES:
                    _, port = processes["sessions" if with_sessions else "bare"]
                    found = _wrk(port, path, cookie, seconds)
                    if found["non_2xx"]:
                        raise RuntimeError(
                            f"{server} {name}: {found['non_2xx']:.0f} failed responses"
                        )
                    samples[name].append(found)
        finally:
            for process, _ in processes.values():
                _stop(process)
        entry: dict[str, Any] = {}
        for name, runs in samples.items():
            rps = Stat.of(s["rps"] for s in runs)
            p = {
                k: Stat.of(s.get(k, 0.0) for s in runs).median
                for k in ("p50_ms", "p90_ms", "p99_ms")
            }
            table.rows.append(
                [
                    server,
                    name,
                    rps.show(0),
                    f"{p['p50_ms']:.2f}",
                    f"{p['p90_ms']:.2f}",
                    f"{p['p99_ms']:.2f}",
                ]
            )
            entry[name] = {"rps": rps.as_json(), **{k: round(v, 3) for k, v in p.items()}}
        result.data[server] = entry
    result.tables.append(table)
    return result
