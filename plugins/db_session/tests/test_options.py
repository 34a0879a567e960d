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
from session_core_db.options import sync_url_for

SECRET = "s" * 40


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"nope": 1}, "no option 'nope'"),
        ({"url": 5}, "url must be a database URL"),
        ({"url": "not a url"}, "not a database URL"),
        ({"url": "sqlite://"}, "in-memory SQLite"),
        ({"url": "sqlite:///:memory:"}, "in-memory SQLite"),
        ({"table_name": "drop table x"}, "letters, digits and underscores"),
        ({"create_table": "yes"}, "create_table must be true or false"),
        ({"pool_size": "5"}, "pool_size must be a whole number"),
        ({"pool_size": True}, "pool_size must be a whole number"),
        ({"cleanup_batch_size": 0}, "cleanup_batch_size must be 1 or more"),
        ({"cleanup_pause": -1}, "cleanup_pause must be 0 or more"),
        ({"url": "nosuchdb://x/y"}, "cannot load the database driver"),
    ],
)
def test_bad_options_fail_at_start_up(options: dict[str, Any], fragment: str) -> None:
    config = SessionConfig(secret_key=SECRET, store="db", store_options=options)
    with pytest.raises(ConfigurationError, match=fragment) as caught:
        create_store(config)
    assert caught.value.key == "store_options"


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
    try:
        assert store.engine.dialect.name == "sqlite"
        record = make_record({"a": 1})
        key = store.save(None, record, Changes.everything(record))
        assert key is not None
        assert store.load(key) is not None
    finally:
        store.close()
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
