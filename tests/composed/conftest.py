"""Fixtures for the composed stores over real servers: the shared Redis (a key prefix per
test), SQLite files, PostgreSQL (a table per test, dropped at the end) and throwaway Redis
servers the tests stop and restart. Run by the ``composed`` tox env, which installs both store
plugins; a server that is not running fails the test."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa

# The redis plugin's throwaway servers (redis_servers.py) serve these tests too.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "redis_session" / "tests"))

from redis_servers import RUN_PREFIX, RedisProcess, dump_keys, new_prefix

from session_core import SessionConfig, SessionStore
from session_core.cookie import CookieStore
from session_core.migrate import MigrateStore
from session_core.registry import create_store
from session_core.tiered import TieredStore
from session_core_db import DbStore
from session_core_redis import RedisStore

SECRET = "composed-secret-" + "x" * 32
REDIS_URL = os.environ.get("SESSION_CORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRESQL_URL = os.environ.get(
    "SESSION_CORE_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_RUN = secrets.token_hex(3)
_tables: list[str] = []

Options = dict[str, Any]


def _check_redis() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"no Redis server at {REDIS_URL} (set SESSION_CORE_TEST_REDIS_URL): {exc}")
    finally:
        client.close()


def _check_postgresql() -> None:
    engine = sa.create_engine(POSTGRESQL_URL)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRESQL_URL}: {exc.orig}")
    finally:
        engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def _clean_up() -> Iterator[None]:
    yield
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for name in client.scan_iter(match=RUN_PREFIX + "*", count=1000):
            client.unlink(name)
    finally:
        client.close()
    if _tables:
        engine = sa.create_engine(POSTGRESQL_URL)
        with engine.begin() as connection:
            for name in _tables:
                connection.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        engine.dispose()


@pytest.fixture
def place(tmp_path: Path) -> Callable[[str], Options]:
    """``place(kind)``: a nested store table (``{"store": ..., options}``) for a fresh, empty
    place of that kind: ``cookie``, ``redis`` (a new key prefix on the shared server),
    ``sqlite`` (a new file) or ``postgresql`` (a new table)."""
    made = 0

    def make(kind: str) -> Options:
        nonlocal made
        made += 1
        if kind == "cookie":
            return {"store": "cookie"}
        if kind == "redis":
            _check_redis()
            return {"store": "redis", "url": REDIS_URL, "key_prefix": new_prefix()}
        if kind == "sqlite":
            return {"store": "db", "url": f"sqlite:///{tmp_path}/s{made}.sqlite3"}
        if kind == "postgresql":
            _check_postgresql()
            name = f"t_composed_{_RUN}_{len(_tables)}"
            _tables.append(name)
            return {"store": "db", "url": POSTGRESQL_URL, "table_name": name}
        raise AssertionError(kind)

    return make


def build(store: str, **options: Any) -> SessionStore:
    """The store a configuration names, built through the registry as a middleware does."""
    return create_store(SessionConfig(secret_key=SECRET, store=store, store_options=options))


def build_nested(table: Options) -> SessionStore:
    """The store one nested table describes."""
    options = dict(table)
    return build(options.pop("store"), **options)


def dump(store: SessionStore) -> str:
    """Everything a (composed) store keeps at rest, as text."""
    if isinstance(store, TieredStore):
        return dump(store.front) + "\n" + dump(store.back)
    if isinstance(store, MigrateStore):
        return dump(store.old) + "\n" + dump(store.new)
    if isinstance(store, RedisStore):
        with redis.Redis.from_url(REDIS_URL) as client:
            return dump_keys(client, store.prefix)
    if isinstance(store, DbStore):
        with store.engine.connect() as connection:
            if not sa.inspect(connection).has_table(store.table.name):
                return ""  # never used: the store creates its table on first use
            rows = connection.execute(sa.select(store.table)).all()
        return "\n".join(repr(tuple(row)) for row in rows)
    assert isinstance(store, CookieStore)
    return ""


@pytest.fixture
def throwaway(tmp_path: Path) -> Iterator[Callable[..., RedisProcess]]:
    """Start a private ``redis-server`` (arguments are extra server options); all are stopped
    after the test, whatever happens."""
    started: list[RedisProcess] = []

    def start(*args: str) -> RedisProcess:
        server = RedisProcess(tmp_path / f"redis{len(started)}", None, *args)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()
