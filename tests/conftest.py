"""Live servers on free loopback ports, for the tests that drive apps through real HTTP: ASGI apps
under uvicorn, WSGI apps under waitress (both in a thread), and the demo as a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

STARTUP_TIMEOUT = 20.0


@contextlib.contextmanager
def _serve_asgi(app: Any) -> Iterator[str]:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped during start-up"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT)
        sock.close()


@contextlib.contextmanager
def _serve_wsgi(app: Any) -> Iterator[str]:
    import waitress
    from waitress import wasyncore

    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4, ident="test")
    port = server.effective_port  # type: ignore[union-attr]
    stop = threading.Event()

    def run() -> None:
        # Poll in short turns and close from this same thread: closing the sockets from
        # another thread while this one waits on them fails with EBADF.
        while not stop.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)  # type: ignore[union-attr]
        server.task_dispatcher.shutdown()
        wasyncore.close_all(server._map)  # type: ignore[union-attr]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(STARTUP_TIMEOUT)


@pytest.fixture
def live_asgi_server() -> Iterator[Callable[[Any], str]]:
    """Serve an ASGI app under uvicorn on a free port: ``url = live_asgi_server(app)``."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(_serve_asgi(app))


@pytest.fixture
def live_wsgi_server() -> Iterator[Callable[[Any], str]]:
    """Serve a WSGI app under waitress on a free port: ``url = live_wsgi_server(app)``."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(_serve_wsgi(app))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_CORE_")}
    env.update(extra)
    return env


@pytest.fixture
def live_free_port() -> Callable[[], int]:
    """Returns a function giving a TCP port on 127.0.0.1 that nothing listens on right now."""
    return _free_port


@pytest.fixture
def live_clean_env() -> Callable[..., dict[str, str]]:
    """Returns a function giving this process's environment without any ``SESSION_CORE_*``
    variable, plus the variables passed to it."""
    return _clean_env


@dataclass
class LiveDemo:
    """A running ``session-core demo`` subprocess."""

    url: str
    process: subprocess.Popen[str]
    banner: list[str] = field(default_factory=list)

    def stop(self) -> str:
        """Stop the demo and return what it wrote to stderr."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=STARTUP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err


def _wait_for_port(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate()
            raise AssertionError(f"the demo exited with {process.returncode}: {err}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the demo did not start listening in time")


@pytest.fixture
def live_demo(tmp_path: Any) -> Iterator[Callable[..., LiveDemo]]:
    """Start ``python -m session_core demo`` on a free port, in ``tmp_path``, with no
    ``SESSION_CORE_*`` variables but those given: ``demo = live_demo("--store", "cookie",
    SESSION_CORE_SECRET_KEY=...)``. Stopped at teardown."""
    started: list[LiveDemo] = []

    def start(*args: str, **env: str) -> LiveDemo:
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "session_core", "demo", "--port", str(port), *args],
            cwd=tmp_path,
            env=_clean_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        demo = LiveDemo(f"http://127.0.0.1:{port}", process)
        started.append(demo)
        _wait_for_port(process, port)
        assert process.stdout is not None
        for line in process.stdout:
            demo.banner.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl+C"):
                break
        return demo

    yield start
    for demo in started:
        demo.stop()


class LiveChecks:
    """Checks shared by the tests that drive an app over HTTP."""

    @staticmethod
    def as_another_browser(client: Any, path: str, cookie: str) -> Any:
        """GET ``path`` from a new client that sends only this session cookie."""
        import httpx

        with httpx.Client(base_url=client.base_url, cookies={"sessionid": cookie}) as other:
            return other.get(path)

    @staticmethod
    def counter_then_untouched(client: Any) -> None:
        """``/`` counts visits in the session with a two-week cookie and ``Vary: Cookie``;
        ``/untouched`` reads no session, so its response has neither."""
        first = client.get("/")
        assert first.json() == {"visits": 1, "user": None}
        assert "Cookie" in first.headers["vary"]
        cookie = first.headers["set-cookie"]
        assert cookie.startswith("sessionid=")
        for attribute in ("HttpOnly", "SameSite=Lax", "Max-Age=1209600"):
            assert attribute in cookie
        assert client.get("/").json()["visits"] == 2
        untouched = client.get("/untouched")
        assert "set-cookie" not in untouched.headers
        assert "vary" not in untouched.headers


@pytest.fixture
def live_checks() -> LiveChecks:
    """Checks shared by the tests that drive an app over HTTP (see :class:`LiveChecks`)."""
    return LiveChecks()


@pytest.fixture
def redis_app_env() -> Iterator[dict[str, str]]:
    """An app's configuration on the redis store (``SESSION_CORE_TEST_REDIS_URL``, a key prefix of
    its own), as environment variables, for a live demo and the command line to share; the keys
    written under it are removed afterwards."""
    import redis

    redis_url = os.environ.get("SESSION_CORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"session-core-test:sign-out:{uuid.uuid4().hex}:"
    options = {"url": redis_url, "key_prefix": prefix}
    yield {
        "SESSION_CORE_SECRET_KEY": "redis-app-secret-" + "r" * 40,
        "SESSION_CORE_STORE": "redis",
        "SESSION_CORE_STORE_OPTIONS": json.dumps(options),
    }
    with redis.Redis.from_url(redis_url) as client:
        for name in client.scan_iter(match=prefix + "*", count=1000):
            client.unlink(name)
