"""Fixtures of the reliability tests: every store, on servers these tests own, and the figures.

``RELIABILITY=long`` switches every part from its short version (run on every CI
run, a few seconds each) to its long one (``tox -e reliability``, minutes each). The figures the
parts measure (cases run, lost updates, errors, memory) are printed at the end of the run and,
with ``RELIABILITY_REPORT=path``, written there as JSON.

A store whose server cannot be started fails its tests; nothing here skips.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from session_core import SessionConfig, SessionStore, create_store

from ._servers import ThrowawayPostgres, ThrowawayRedis, running

LONG = os.environ.get("RELIABILITY", "short").strip().lower() == "long"
"""Whether the long versions run."""

SECRET = secrets.token_urlsafe(48)
OTHER_SECRET = secrets.token_urlsafe(48)

STORE_KINDS = ("cookie", "cookie-encrypted", "db-sqlite", "db-postgresql", "redis")
SERVER_KINDS = ("db-sqlite", "db-postgresql", "redis")

_figures: list[tuple[str, str]] = []


def scaled(short: Any, long: Any) -> Any:
    """``long`` under ``RELIABILITY=long``, else ``short``."""
    return long if LONG else short


def record_figure(part: str, line: str) -> None:
    """Keep a measured figure for the end-of-run report."""
    _figures.append((part, line))


def pytest_report_header(config: pytest.Config) -> str:
    return f"session-core reliability: {'long' if LONG else 'short'} versions"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _figures:
        return
    terminalreporter.section(f"session-core reliability figures ({'long' if LONG else 'short'})")
    for part, line in _figures:
        terminalreporter.write_line(f"[{part}] {line}")
    report = os.environ.get("RELIABILITY_REPORT")
    if report:
        Path(report).write_text(
            json.dumps([{"part": p, "figure": f} for p, f in _figures], indent=2) + "\n"
        )


# ---------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def rel_redis_server() -> Iterator[ThrowawayRedis]:
    """A Redis server for this run (append-only file, so restarts keep data)."""
    with running(ThrowawayRedis()) as server:
        yield server


@pytest.fixture(scope="session")
def rel_postgres_server() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL cluster made for this run."""
    with running(ThrowawayPostgres()) as server:
        yield server


@pytest.fixture
def rel_own_redis() -> Iterator[ThrowawayRedis]:
    """A Redis server for one test only (the fault tests stop and freeze it)."""
    with running(ThrowawayRedis()) as server:
        yield server


@pytest.fixture
def rel_own_postgres() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL cluster for one test only (the fault tests stop and freeze it)."""
    with running(ThrowawayPostgres()) as server:
        yield server


# ---------------------------------------------------------------------- stores


@dataclass
class StoreSetup:
    """One store kind configured for one test: its settings, and a look at its server's data."""

    kind: str
    settings: dict[str, Any]
    inspect: Callable[[], list[str]] = field(default=lambda: [])
    stores: list[SessionStore] = field(default_factory=list)

    @property
    def server_side(self) -> bool:
        return self.kind in SERVER_KINDS

    def config(self, **overrides: Any) -> SessionConfig:
        return SessionConfig(**{**self.settings, **overrides})

    def store(self, **overrides: Any) -> SessionStore:
        """A store built from the settings the way an app builds it (closed after the test)."""
        made = create_store(self.config(**overrides))
        self.stores.append(made)
        return made

    def server_contents(self) -> list[str]:
        """Everything the server holds for this store, as text (empty for cookie stores)."""
        return self.inspect()


def _settings(store: str, **options: Any) -> dict[str, Any]:
    return {"secret_key": SECRET, "store": store, "store_options": options}


def redis_setup(kind: str, url: str) -> StoreSetup:
    import redis

    prefix = f"rel:{uuid.uuid4().hex[:12]}:"

    def inspect() -> list[str]:
        with redis.Redis.from_url(url) as client:
            return [
                f"{name!r} {client.hgetall(name)!r}"
                for name in client.scan_iter(match=prefix + "*", count=1000)
            ]

    return StoreSetup(kind, _settings("redis", url=url, key_prefix=prefix), inspect)


def db_setup(kind: str, url: str, sqlite_file: Path | None = None) -> StoreSetup:
    import sqlalchemy as sa

    table = f"rel_{uuid.uuid4().hex[:12]}"

    def inspect() -> list[str]:
        if sqlite_file is not None:  # no engine: the file may be on a full disk
            with sqlite3.connect(sqlite_file) as connection:
                try:
                    rows = connection.execute(f"SELECT * FROM {table}").fetchall()
                except sqlite3.OperationalError:
                    return []
            return [repr(r) for r in rows]
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                if not sa.inspect(connection).has_table(table):
                    return []
                return [
                    repr(tuple(r)) for r in connection.execute(sa.text(f"SELECT * FROM {table}"))
                ]
        finally:
            engine.dispose()

    return StoreSetup(kind, _settings("db", url=url, table_name=table), inspect)


def _make_setup(kind: str, request: pytest.FixtureRequest, directory: Path) -> StoreSetup:
    if kind == "cookie":
        return StoreSetup(kind, {"secret_key": SECRET})
    if kind == "cookie-encrypted":
        return StoreSetup(kind, {"secret_key": SECRET, "store_options": {"encrypt": True}})
    if kind == "db-sqlite":
        path = directory / "sessions.sqlite3"
        return db_setup(kind, f"sqlite:///{path}", path)
    if kind == "db-postgresql":
        return db_setup(kind, request.getfixturevalue("rel_postgres_server").url)
    if kind == "redis":
        return redis_setup(kind, request.getfixturevalue("rel_redis_server").url)
    raise AssertionError(kind)


@contextlib.contextmanager
def _store_setup(request: pytest.FixtureRequest, directory: Path) -> Iterator[StoreSetup]:
    setup = _make_setup(request.param, request, directory)
    try:
        yield setup
    finally:
        for store in setup.stores:
            store.close()


@pytest.fixture(params=STORE_KINDS)
def rel_setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreSetup]:
    """Each store kind in turn, on the servers of this run."""
    with _store_setup(request, tmp_path) as setup:
        yield setup


@pytest.fixture(params=SERVER_KINDS)
def rel_server_setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreSetup]:
    """Each server-side store kind in turn."""
    with _store_setup(request, tmp_path) as setup:
        yield setup
