"""Options are checked when the store is built (at start-up), with messages that say what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from session_core import Changes, ConfigurationError, SessionConfig, create_store
from session_core.testing import make_record
from session_core_db import DEFAULT_SQLITE_FILE, DbStore, create_sql
from session_core_db.commands import main
from session_core_db.errors import unreachable
from session_core_db.options import Settings, sync_url_for

SECRET = "s" * 40


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"nope": 1}, "no option 'nope'"),
        ({"url": 5}, "url must be a database URL"),
        ({"pool_sise": 5}, "no option 'pool_sise'; did you mean 'pool_size'\\?"),
        ({"url": "not a url"}, "not a database URL"),
        ({"url": "sqlite://"}, "in-memory SQLite"),
        ({"url": "sqlite:///:memory:"}, "in-memory SQLite"),
        ({"table_name": "drop table x"}, "letters, digits and underscores"),
        ({"create_table": "yes"}, "create_table must be true or false"),
        ({"keep_connections": "yes"}, "keep_connections must be true or false"),
        ({"sql_events": 1}, "sql_events must be true or false"),
        ({"prepare_statements": "no"}, "prepare_statements must be true or false"),
        ({"pool_size": "5"}, "pool_size must be a whole number"),
        ({"pool_size": True}, "pool_size must be a whole number"),
        ({"cleanup_batch_size": 0}, "cleanup_batch_size must be from 1 to"),
        ({"cleanup_pause": -1}, "cleanup_pause must be 0 or more"),
        ({"url": "nosuchdb://x/y"}, "not the URL of a SQL database"),
        ({"url": "postgresql+nosuchdriver://x/y"}, "cannot load the database driver"),
        # Each of these used to pass start-up and fail at the first request (or later).
        ({"max_overflow": -5}, "max_overflow must be -1 \\(no limit\\), 0 or more, not -5"),
        ({"pool_size": -1}, "pool_size must be 0 \\(no limit\\) or more"),
        ({"pool_timeout": 0}, "pool_timeout must be seconds above 0"),
        ({"pool_timeout": -3}, "pool_timeout must be seconds above 0"),
        ({"pool_timeout": float("nan")}, "pool_timeout must be seconds above 0"),
        ({"pool_recycle": -5}, "pool_recycle must be -1 \\(never\\) or seconds above 0"),
        ({"pool_recycle": 0}, "pool_recycle must be -1"),
        ({"cleanup_pause": float("inf")}, "cleanup_pause must be 0 or more seconds"),
        ({"cleanup_batch_size": 2**40}, "cleanup_batch_size must be from 1 to 2147483647"),
        ({"table_name": "t" * 50}, "49 at most"),
        ({"url": "redis://127.0.0.1:6379/0"}, "not the URL of a SQL database.*store = 'redis'"),
        ({"url": "https://example.com/db"}, "not the URL of a SQL database"),
        ({"url": "redis://:hunter2@h/0"}, "redis://:\\*\\*\\*@h/0"),
        ({"async_url": "sqlite:///x.sqlite3"}, "async_url must name an async driver"),
        ({"async_url": "postgresql+nosuch://h/d"}, "knows no driver 'nosuch'"),
    ],
)
def test_bad_options_fail_at_start_up(options: dict[str, Any], fragment: str) -> None:
    config = SessionConfig(secret_key=SECRET, store="db", store_options=options)
    with pytest.raises(ConfigurationError, match=fragment) as caught:
        create_store(config)
    assert caught.value.key == "store_options"
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        pytest.param(
            {"url": "mariadb+pymysql://u@127.0.0.1/d", "connect_args": {"nope": 1}},
            "connect_args: pymysql does not take 'nope'",
            marks=pytest.mark.mariadb,
        ),
        pytest.param(
            {"url": "postgresql+psycopg://u@127.0.0.1/d", "connect_args": {"options": "-c a=1"}},
            "connect_args: asyncpg does not take 'options'.*native_async = false",
            marks=pytest.mark.postgresql,
        ),
    ],
)
def test_connect_args_the_driver_refuses_fail_at_start_up(
    options: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        DbStore(**options)


@pytest.mark.postgresql
def test_connect_args_are_checked_as_each_driver_gets_them() -> None:
    # asyncpg calls it timeout: the store renames it for the async engine, so it is accepted.
    store = DbStore(url="postgresql+psycopg://u@127.0.0.1/d", connect_args={"connect_timeout": 3})
    assert store.async_driver == "asyncpg"
    store.close()


def test_prepare_statements_false_turns_the_drivers_statement_caches_off() -> None:
    # Each driver its own: psycopg's connect() would refuse asyncpg's argument, and asyncpg's
    # psycopg's.
    settings = Settings(url="postgresql+psycopg://u@127.0.0.1/d", prepare_statements=False)
    asyncpg = sa.make_url("postgresql+asyncpg://u@127.0.0.1/d")
    given = settings.engine_arguments(asyncpg)["connect_args"]
    assert given["statement_cache_size"] == 0
    assert "prepare_threshold" not in given
    psycopg = settings.engine_arguments(settings.sync_target())["connect_args"]
    assert "statement_cache_size" not in psycopg
    assert psycopg["prepare_threshold"] is None  # psycopg's own: never prepare
    assert "statement_cache_size" not in Settings().engine_arguments(asyncpg)["connect_args"]


def test_pool_limits_at_their_edges_work(tmp_path: Path) -> None:
    # -1 overflow and a pool size of 0 both mean "no limit" to SQLAlchemy.
    saves_and_loads(
        DbStore(url=f"sqlite:///{tmp_path / 'edge.sqlite3'}", pool_size=0, max_overflow=-1)
    )


def saves_and_loads(store: DbStore) -> None:
    """Check that ``store`` saves and loads a session, then close it."""
    try:
        record = make_record({"a": 1})
        key = store.save(None, record, Changes.everything(record))
        assert key is not None
        assert store.load(key) is not None
    finally:
        store.close()


def test_engine_and_url_together_are_refused(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    try:
        with pytest.raises(ConfigurationError, match="url cannot be used with engine"):
            DbStore(engine=engine, url=f"sqlite:///{tmp_path / 'y.sqlite3'}")
    finally:
        engine.dispose()


def test_async_engine_with_async_url_or_without_native_async_is_refused(tmp_path: Path) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}")
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    try:
        with pytest.raises(ConfigurationError, match="async_url cannot be used with async_engine"):
            DbStore(url=url, async_engine=engine, async_url=f"sqlite+aiosqlite:///{tmp_path}/y")
        with pytest.raises(ConfigurationError, match="native_async = false contradicts"):
            DbStore(url=url, async_engine=engine, native_async=False)
    finally:
        engine.sync_engine.dispose()


def test_pool_settings_with_a_given_engine_are_refused(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with pytest.raises(ConfigurationError, match="cannot be used with engine"):
        DbStore(engine=engine, pool_size=3)
    engine.dispose()


def test_default_is_a_sqlite_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = DbStore()
    assert store.engine.dialect.name == "sqlite"
    saves_and_loads(store)
    assert (tmp_path / DEFAULT_SQLITE_FILE).is_file()
    assert DEFAULT_SQLITE_FILE == "session_core_sessions.sqlite3"


def test_url_without_a_driver_gets_one_that_installs_from_wheels() -> None:
    for url, driver in [
        ("postgresql://u@h/d", "postgresql+psycopg"),
        ("mariadb://u@h/d", "mariadb+pymysql"),
        ("mysql://u@h/d", "mysql+pymysql"),
        ("sqlite:///x.sqlite3", "sqlite+pysqlite"),
        ("postgresql+asyncpg://u@h/d", "postgresql+psycopg"),
        ("postgresql+pg8000://u@h/d", "postgresql+pg8000"),
    ]:
        assert sync_url_for(sa.make_url(url)).drivername == driver


def test_errors_never_show_the_password() -> None:
    url = sa.make_url("postgresql+psycopg://u:hunter2@127.0.0.1/d")
    error = unreachable(url, "load", OSError("password hunter2 refused"))
    assert "hunter2" not in str(error)
    assert error.target == "postgresql+psycopg://u:***@127.0.0.1/d"
    assert error.store == "db"


def test_schema_command_prints_ddl(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dialect", "mariadb", "--table", "my_sessions"]) == 0
    out = capsys.readouterr().out
    assert "CREATE TABLE IF NOT EXISTS my_sessions" in out
    assert "ix_my_sessions_expires_at" in out
    assert "MEDIUMTEXT" in out
    mysql = create_sql(sa.make_url("mysql://").get_dialect()())
    assert "CREATE INDEX ix_session_core_sessions_expires_at" in mysql
