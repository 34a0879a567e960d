"""session-core's store conformance suite, on each database and each async driver."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Database

from session_core import SessionStore
from session_core.testing import StoreConformance
from session_core_db import DbStore


class DbConformance(StoreConformance):
    """The suite against one database; subclasses name it with the ``database`` fixture."""

    options: dict[str, Any] = {}  # noqa: RUF012 - read only
    expect_native_async = True
    database: Database

    @pytest.fixture(autouse=True)
    def _use_database(self, database: Database) -> None:
        self.database = database
        self.table_name = database.table("conf")

    def make_store(self) -> SessionStore:
        store = DbStore(url=self.database.url, table_name=self.table_name, **self.options)
        assert store.native_async is self.expect_native_async
        return store

    def dump_storage(self, store: SessionStore) -> str:
        assert isinstance(store, DbStore)
        with store.engine.connect() as connection:
            rows = connection.execute(sa.select(store.table)).all()
        return "\n".join(repr(tuple(row)) for row in rows)


@pytest.mark.sqlite
class TestSqlite(DbConformance):
    @pytest.fixture
    def database(self, sqlite_db: Database) -> Database:
        return sqlite_db


@pytest.mark.sqlite
class TestSqliteThreadFallback(DbConformance):
    """Async methods on worker threads when no async driver is used."""

    options = {"native_async": False}  # noqa: RUF012
    expect_native_async = False

    @pytest.fixture
    def database(self, sqlite_db: Database) -> Database:
        return sqlite_db


@pytest.mark.postgresql
class TestPostgresql(DbConformance):
    """psycopg for sync, asyncpg for async."""

    @pytest.fixture
    def database(self, postgresql_db: Database) -> Database:
        return postgresql_db

    def make_store(self) -> SessionStore:
        store = super().make_store()
        assert isinstance(store, DbStore)
        assert store.async_driver == "asyncpg"
        return store


@pytest.mark.postgresql
class TestPostgresqlPsycopgAsync(DbConformance):
    """psycopg for both sync and async."""

    @pytest.fixture
    def database(self, postgresql_db: Database) -> Database:
        return postgresql_db

    def make_store(self) -> SessionStore:
        url = sa.make_url(self.database.url).set(drivername="postgresql+psycopg_async")
        self.options = {"async_url": url}
        store = super().make_store()
        assert isinstance(store, DbStore)
        assert store.async_driver == "psycopg_async"
        return store


@pytest.mark.mariadb
class TestMariadb(DbConformance):
    """PyMySQL for sync, aiomysql for async."""

    @pytest.fixture
    def database(self, mariadb_db: Database) -> Database:
        return mariadb_db
