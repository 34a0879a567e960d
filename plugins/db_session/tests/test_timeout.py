"""The ``timeout`` option: a statement that gets no answer fails with StoreUnreachableError
instead of blocking, and the store works again once the database answers."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Database, create

from session_core import (
    Changes,
    ConfigurationError,
    SessionConfig,
    StoreUnreachableError,
    create_store,
    hash_key,
)
from session_core.testing import make_record, run_in_threads
from session_core_db import DEFAULT_TIMEOUT, DbStore, Settings
from session_core_db.timeouts import Watchdog

SECRET = "s" * 40


# ---------------------------------------------------------------------- the option


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("5", "timeout must be a number of seconds"),
        (True, "timeout must be a number of seconds"),
        (-1, "timeout must be a number of seconds, 0 or more"),
        (float("nan"), "0 or more"),
        (float("inf"), "0 or more"),
    ],
)
def test_bad_timeout_fails_at_start_up(value: object, fragment: str) -> None:
    config = SessionConfig(secret_key=SECRET, store="db", store_options={"timeout": value})
    with pytest.raises(ConfigurationError, match=fragment):
        create_store(config)


@pytest.mark.parametrize(
    ("value", "seconds"), [(None, None), (0, None), (2, 2.0), (0.5, 0.5), (DEFAULT_TIMEOUT, 10.0)]
)
def test_timeout_values(value: float | None, seconds: float | None) -> None:
    assert Settings(timeout=value).seconds == seconds
    assert Settings().timeout == DEFAULT_TIMEOUT == 10


def test_timeout_bounds_connecting_unless_connect_args_say_otherwise() -> None:
    def connect_args(url: str, **options: Any) -> dict[str, Any]:
        arguments = Settings(url=url, **options).engine_arguments(sa.make_url(url))
        return dict(arguments.get("connect_args", {}))

    assert connect_args("postgresql+psycopg://h/d", timeout=2.5) == {"connect_timeout": 3}
    assert connect_args("postgresql+asyncpg://h/d", timeout=2.5) == {"timeout": 2.5}
    # PyMySQL bounds each socket read and write itself: no watchdog needs its socket
    assert connect_args("mysql+pymysql://h/d", timeout=0.2) == {
        "connect_timeout": 1,
        "read_timeout": 0.2,
        "write_timeout": 0.2,
    }
    assert connect_args("mysql+aiomysql://h/d", timeout=4) == {"connect_timeout": 4}
    assert connect_args("sqlite:///x.db", timeout=4) == {}
    assert connect_args("postgresql+psycopg://h/d", timeout=None) == {}
    given = {"connect_timeout": 7}
    assert connect_args("postgresql+psycopg://h/d", timeout=2, connect_args=given) == given
    # asyncpg calls it timeout: the same connect_args serve the sync and the async engine
    assert connect_args("postgresql+asyncpg://h/d", timeout=2, connect_args=given) == {"timeout": 7}


def test_sqlite_needs_no_watchdog(tmp_path: Any) -> None:
    store = DbStore(url=f"sqlite:///{tmp_path / 's.db'}", timeout=1)
    try:
        key = create(store, {"a": 1})
        loaded = store.load(key)
        assert loaded is not None
        assert loaded.data == {"a": 1}
        assert store._sync.watchdog is None
    finally:
        store.close()


# ---------------------------------------------------------------------- the watchdog


class _FakeConnection:
    """Stands for a DB-API connection: psycopg exposes its socket's descriptor."""

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock

    def fileno(self) -> int:
        return self._socket.fileno()


def test_watchdog_breaks_the_socket_of_a_late_call_only() -> None:
    watchdog = Watchdog(0.3)
    mine, theirs = socket.socketpair()
    try:
        connection = _FakeConnection(mine)
        # A call that finishes in time is left alone.
        token = watchdog.start(connection)
        assert watchdog.stop(token) is False
        # A call blocked past its deadline gets its socket shut down.
        token = watchdog.start(connection)
        begin = time.monotonic()
        assert mine.recv(1) == b""  # returns when the watchdog breaks the socket
        took = time.monotonic() - begin
        assert watchdog.stop(token) is True
        assert took >= 0.29  # not before its deadline (a late one only makes the test slower)
        # The driver's descriptor is still open (only its duplicate was closed).
        assert mine.fileno() >= 0
    finally:
        watchdog.close()
        mine.close()
        theirs.close()


# ---------------------------------------------------------------------- real servers

TIMEOUT = 2.0
"""Each statement's bound in these tests: what waits for a held lock waits this long, and what
does not must finish within it even on a loaded machine (creating the table, say)."""


@pytest.fixture
def store(server: Database) -> Iterator[DbStore]:
    # One pooled connection: after a timeout the next call must not get a broken one.
    store = DbStore(
        url=server.url, table_name=server.table(), timeout=TIMEOUT, pool_size=1, max_overflow=0
    )
    yield store
    store.close()


def _lock_row(server: Database, store: DbStore, key: str) -> sa.Connection:
    """Another client locks the row until it rolls back: writes to it wait meanwhile."""
    holder = server.engine.connect()
    holder.execute(
        sa.text(f"SELECT version FROM {store.table.name} WHERE key_hash = :h FOR UPDATE"),
        {"h": hash_key(key)},
    )
    return holder


def _check_timed_out(error: StoreUnreachableError, operation: str) -> None:
    assert error.store == "db"
    assert error.operation == operation
    assert f"timed out after {TIMEOUT:g} seconds" in str(error)


def test_statement_without_answer_times_out_and_the_store_recovers(
    server: Database, store: DbStore
) -> None:
    key = create(store, {"user": "alice"})
    holder = _lock_row(server, store, key)
    try:
        with pytest.raises(StoreUnreachableError) as caught:
            store.save(key, make_record({"x": 1}), Changes(frozenset({"x"})))
        _check_timed_out(caught.value, "save")
    finally:
        holder.rollback()
        holder.close()
    for _ in range(3):  # the broken connection was discarded, not pooled
        loaded = store.load(key)
        assert loaded is not None
        assert "user" in loaded.data


def test_async_statement_without_answer_times_out_and_the_store_recovers(
    server: Database, store: DbStore
) -> None:
    key = create(store, {"user": "alice"})

    async def scenario() -> StoreUnreachableError:
        try:
            await store.aload(key)  # opens the pooled async connection
            holder = _lock_row(server, store, key)
            try:
                with pytest.raises(StoreUnreachableError) as caught:
                    await store.asave(key, make_record({"x": 1}), Changes(frozenset({"x"})))
            finally:
                await asyncio.to_thread(holder.rollback)
                holder.close()
            for _ in range(3):
                loaded = await store.aload(key)
                assert loaded is not None
            return caught.value
        finally:
            await store.aclose()

    assert store.native_async
    _check_timed_out(asyncio.run(scenario()), "save")


def test_many_threads_share_one_watchdog(server: Database) -> None:
    store = DbStore(url=server.url, table_name=server.table(), timeout=5)
    try:
        if server.kind == "mariadb":
            # PyMySQL bounds each read and write itself (read_timeout, write_timeout): no
            # thread watches its statements, and no private name reaches its socket.
            assert store._sync.watchdog is None
            connect_args = store.settings.engine_arguments(store.engine.url)["connect_args"]
            assert connect_args["read_timeout"] == connect_args["write_timeout"] == 5.0
            return
        key = create(store, {"n": 0})

        def work(_: int) -> None:
            for _ in range(20):
                assert store.load(key) is not None

        run_in_threads(work, 4)
        watchdog = store._sync.watchdog
        assert watchdog is not None
        assert not watchdog._running
        assert not watchdog._fired
    finally:
        store.close()
