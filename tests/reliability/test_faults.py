"""Faults: servers killed and restarted under load, servers that hang, a plugin that cannot be
imported, a full disk under SQLite. Each must give its clear error, never a hang, and lose no
session saved before the fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from session_core import (
    Changes,
    PluginLoadError,
    SessionConfig,
    StoreUnreachableError,
    create_store,
)
from session_core.testing import make_record

from ._load import clean_environ, demo_server, run_load
from ._servers import ThrowawayServer
from .conftest import SECRET, db_setup, record_figure, redis_setup, scaled

SECONDS = scaled(12, 150)
OUTAGE = scaled(3, 30)
VISITORS = scaled(10, 30)
IDLE_SESSIONS = scaled(10, 100)


def _visits(response: httpx.Response) -> int:
    marker = b'id="visits">'
    start = response.content.index(marker) + len(marker)
    return int(response.content[start : response.content.index(b"<", start)])


def _open_idle_sessions(url: str) -> list[tuple[dict[str, str], int]]:
    sessions = []
    for _ in range(IDLE_SESSIONS):
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(3):
                response = client.get("/")
                assert response.status_code == 200
            sessions.append((dict(client.cookies), _visits(response)))
    return sessions


@pytest.mark.parametrize("kind", ["redis", "db-postgresql"])
def test_store_killed_and_restarted_under_load(kind, request, tmp_path):
    """Kill the store's server mid-run, start it again: 503s (no hang) while it is down, recovery
    without a restart of the app, and every session saved before the outage intact."""
    server: ThrowawayServer = request.getfixturevalue(
        "rel_own_redis" if kind == "redis" else "rel_own_postgres"
    )
    setup = redis_setup(kind, server.url) if kind == "redis" else db_setup(kind, server.url)
    options = {k: str(v) for k, v in setup.settings["store_options"].items()}
    down_at, up_at = SECONDS * 0.3, SECONDS * 0.3 + OUTAGE
    events: dict[str, float] = {}

    def during(elapsed: float) -> None:
        if "down" not in events and elapsed >= down_at:
            server.kill()
            events["down"] = elapsed
        elif "down" in events and "up" not in events and elapsed >= up_at:
            server.start()
            events["up"] = elapsed

    with demo_server(setup.settings["store"], options, tmp_path / "demo.log") as demo:
        idle = _open_idle_sessions(demo.url)
        result = run_load(demo.url, VISITORS, SECONDS, during)
        intact = 0
        for cookies, count in idle:
            with httpx.Client(base_url=demo.url, cookies=cookies, timeout=10) as client:
                response = client.get("/")
                assert response.status_code == 200
                intact += _visits(response) == count + 1
        log = demo.log.read_text()

    assert set(events) == {"down", "up"}, events
    in_outage = [(t, s, d) for t, s, d in result.timeline if events["down"] <= t < events["up"]]
    after = [(t, s, d) for t, s, d in result.timeline if t >= events["up"]]
    first_ok = min((t for t, s, _ in after if s == 200), default=None)
    recovery = None if first_ok is None else first_ok - events["up"]
    refused = sum(1 for _, s, _ in in_outage if s == 503)
    slowest_down = max((d for _, _, d in in_outage), default=0.0)
    record_figure(
        "faults",
        f"{kind} killed for {events['up'] - events['down']:.1f} s under {VISITORS} visitors: "
        f"{result.requests} requests, {refused} answered 503 during the outage (slowest "
        f"{slowest_down * 1000:.0f} ms), other errors "
        f"{sum(result.exceptions.values()) + sum(n for s, n in result.statuses.items() if s not in (200, 503))}, "
        f"recovered {recovery if recovery is None else round(recovery, 2)} s after restart, "
        f"{len(result.lost_writes)} lost writes, {intact}/{len(idle)} idle sessions intact",
    )
    assert not result.exceptions, (result.exceptions, log[-3000:])
    assert set(result.statuses) <= {200, 503}, (result.statuses, log[-3000:])
    assert refused > 0, "no request saw the outage"
    assert slowest_down < 11, "a request hung during the outage"
    assert recovery is not None, "the app did not recover by itself"
    assert recovery < 10, "the app took too long to recover"
    settled = [s for t, s, _ in after if t > first_ok + 5]
    assert all(s == 200 for s in settled), "errors went on after the store was back"
    assert not result.lost_writes, result.lost_writes[:10]
    assert intact == len(idle)
    assert "503, the store failed" in log  # the demo names the failure on stderr


def _in_thread(call, limit: float):
    """Run ``call`` in a daemon thread; (finished, seconds, exception or result)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        begin = time.monotonic()
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["value"] = exc
        outcome["seconds"] = time.monotonic() - begin

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    return not thread.is_alive(), outcome, thread


def _hang_check(setup, server: ThrowawayServer, options: dict[str, object], bound: float) -> None:
    """Every store call on a frozen server fails with StoreUnreachableError within ``bound``
    seconds (its timeouts, not a multiple of them)."""
    config = SessionConfig(
        secret_key=SECRET,
        store=setup.settings["store"],
        store_options={**setup.settings["store_options"], **options},
    )
    store = create_store(config)
    try:
        record = make_record({"user": "alice"})
        key = store.save(None, record, Changes.everything(record))
        server.freeze()
        try:
            calls = {
                "load": lambda: store.load(key),
                "save": lambda: store.save(key, make_record({"x": 1}), Changes(frozenset({"x"}))),
                "delete": lambda: store.delete(store.generate_key()),
                "async load": lambda: asyncio.run(store.aload(key)),
            }
            for name, call in calls.items():
                finished, outcome, thread = _in_thread(call, 6)
                if not finished:
                    server.thaw()
                    thread.join(30)
                    pytest.fail(f"{setup.kind}: {name} on a hung server did not return in 6 s")
                error = outcome["value"]
                assert isinstance(error, StoreUnreachableError), (name, error)
                assert outcome["seconds"] < bound, (name, outcome["seconds"])
                assert error.store == setup.settings["store"]
                record_figure(
                    "faults",
                    f"{setup.kind} hung (SIGSTOP): {name} failed in {outcome['seconds']:.2f} s "
                    f"with {type(error).__name__}: {error}",
                )
        finally:
            server.thaw()
        assert store.load(key).data == {"user": "alice"}, "the session did not survive the hang"
    finally:
        store.close()


def test_hung_redis_is_bounded_by_its_timeouts(rel_own_redis):
    setup = redis_setup("redis", rel_own_redis.url)
    # One socket timeout per call; a new client's handshake may take two (redis-py retries it).
    _hang_check(setup, rel_own_redis, {"socket_timeout": 1.0}, bound=2.5)


def test_hung_postgresql_is_bounded_by_a_timeout(rel_own_postgres):
    setup = db_setup("db-postgresql", rel_own_postgres.url)
    _hang_check(
        setup, rel_own_postgres, {"connect_args": {"connect_timeout": 2}, "timeout": 2}, bound=3
    )


def test_demo_answers_503_not_a_hang_when_postgresql_hangs(rel_own_postgres, tmp_path):
    """The demo bounds every request (its REQUEST_TIMEOUT), whatever the store does."""
    setup = db_setup("db-postgresql", rel_own_postgres.url)
    options = {k: str(v) for k, v in setup.settings["store_options"].items()}
    with (
        demo_server("db", options, tmp_path / "demo.log") as demo,
        httpx.Client(base_url=demo.url, timeout=30) as client,
    ):
        assert client.get("/").status_code == 200
        rel_own_postgres.freeze()
        try:
            begin = time.monotonic()
            response = client.get("/")
            took = time.monotonic() - begin
        finally:
            rel_own_postgres.thaw()
        assert response.status_code == 503
        assert took < 15
        record_figure("faults", f"db-postgresql hung: the demo answered 503 in {took:.1f} s")
        for _ in range(50):
            if client.get("/").status_code == 200:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the demo did not recover after PostgreSQL came back")


BROKEN_MODULE = "session_core_rel_broken_plugin"


@pytest.fixture
def rel_broken_plugin(tmp_path: Path) -> dict[str, str]:
    """A distribution whose store entry point raises on import, on a PYTHONPATH of its own."""
    site = tmp_path / "site"
    info = site / "session_core_rel_broken-9.9.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: session-core-rel-broken\nVersion: 9.9.9\n"
    )
    (info / "entry_points.txt").write_text(f"[session_core.stores]\nbroken = {BROKEN_MODULE}\n")
    (site / f"{BROKEN_MODULE}.py").write_text(
        "raise RuntimeError('the broken plugin cannot start: missing libfoo.so')\n"
    )
    return {
        **clean_environ(),
        "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }


def _python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_plugin_that_raises_on_import_gives_a_clear_error(rel_broken_plugin):
    script = (
        "import json\n"
        "from session_core import PluginLoadError\n"
        "from session_core.wsgi import SessionMiddleware\n"
        "try:\n"
        f"    SessionMiddleware(lambda e, s: [], secret_key={SECRET!r}, store='broken')\n"
        "except PluginLoadError as exc:\n"
        "    print(json.dumps({'name': exc.name, 'distribution': exc.distribution,\n"
        "                      'version': exc.version, 'message': str(exc),\n"
        "                      'cause': repr(exc.__cause__)}))\n"
    )
    done = _python(rel_broken_plugin, "-c", script)
    assert done.returncode == 0, done.stderr
    error = json.loads(done.stdout)
    assert error["name"] == "broken"
    assert error["distribution"] == "session-core-rel-broken"
    assert error["version"] == "9.9.9"
    assert "missing libfoo.so" in error["message"]
    assert "RuntimeError" in error["cause"]
    # The default store never touches plugins: an app on the cookie store still starts.
    ok = _python(
        rel_broken_plugin,
        "-c",
        f"from session_core.wsgi import SessionMiddleware; "
        f"SessionMiddleware(lambda e, s: [], secret_key={SECRET!r})",
    )
    assert ok.returncode == 0, ok.stderr
    # The command line says it in one line and exits non-zero.
    cli = _python(
        {**rel_broken_plugin, "SESSION_CORE_SECRET_KEY": SECRET},
        *("-m", "session_core", "demo", "--store", "broken", "--port", "0"),
    )
    assert cli.returncode != 0
    assert "'broken'" in cli.stderr, cli.stderr
    assert "missing libfoo.so" in cli.stderr, cli.stderr
    assert "Traceback" not in cli.stderr
    record_figure("faults", f"plugin raising on import: {error['message']}")


def test_plugin_load_error_in_process_names_the_cause(rel_broken_plugin, monkeypatch):
    """The same through the registry in this process (then forgotten again)."""
    import session_core.registry as registry

    monkeypatch.syspath_prepend(rel_broken_plugin["PYTHONPATH"].split(os.pathsep)[0])
    registry.refresh()
    try:
        with pytest.raises(PluginLoadError) as caught:
            create_store(SessionConfig(secret_key=SECRET, store="broken"))
        assert isinstance(caught.value.__cause__, RuntimeError)
    finally:
        monkeypatch.undo()
        sys.modules.pop(BROKEN_MODULE, None)
        registry.refresh()


@contextlib.contextmanager
def _tiny_disk(path: Path, size: str) -> object:
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(
            f"cannot mount a small tmpfs for the full-disk test (needs root): {mounted.stderr}"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disk_under_sqlite_gives_a_clear_error_and_keeps_saved_sessions(tmp_path):
    with _tiny_disk(tmp_path / "disk", "1m") as disk:
        filler = disk / "filler"
        filler.write_bytes(b"\0" * 256 * 1024)
        table = f"rel_full_{uuid.uuid4().hex[:8]}"
        config = SessionConfig(
            secret_key=SECRET,
            store="db",
            store_options={"url": f"sqlite:///{disk}/sessions.sqlite3", "table_name": table},
        )
        store = create_store(config)
        saved: list[tuple[str, int]] = []
        error: Exception | None = None
        try:
            for n in range(10_000):
                record = make_record({"n": n, "pad": "x" * 2000})
                try:
                    saved.append((store.save(None, record, Changes.everything(record)), n))
                except Exception as exc:
                    error = exc
                    break
            assert isinstance(error, StoreUnreachableError), repr(error)
            assert "full" in str(error).lower(), str(error)
            assert error.operation == "save"
            assert len(saved) > 10
            # What was saved before the disk filled up is all there.
            for key, n in saved:
                assert store.load(key).data["n"] == n
            # The demo answers 503 (not a 500 or a hang) for a visitor it cannot save.
            from session_core.demo import DemoApp

            status = asyncio.run(_demo_get(DemoApp(config)))
            assert status == 503
            # Space again: saves work again, with no restart.
            filler.unlink()
            record = make_record({"after": True})
            assert store.save(None, record, Changes.everything(record)) is not None
        finally:
            store.close()
    record_figure(
        "faults",
        f"SQLite on a full disk: {len(saved)} sessions saved, then {type(error).__name__}: "
        f"{error}; all {len(saved)} intact; saves resume when space is freed",
    )


async def _demo_get(app) -> int:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(
        {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""},
        receive,
        send,
    )
    await app.store.aclose()
    return sent[0]["status"]


def test_test_variables_in_the_environment_do_not_break_start_up():
    environ = {"SESSION_CORE_SECRET_KEY": SECRET, "SESSION_CORE_TEST_REDIS_URL": "redis://x"}
    done = _python({**clean_environ(), **environ}, "-m", "session_core", "check")
    assert "SESSION_CORE_TEST_REDIS_URL" not in done.stderr, done.stderr
