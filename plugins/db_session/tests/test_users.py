"""Sessions per user on the db store, beyond the conformance suite: what the table holds, what a
login and an ordinary request cost in statements, and the upgrade of a table made before the
user columns existed (at first use, by the printed SQL, by Alembic), on each real database."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from conftest import Database

import session_core
from session_core import Changes, Session, hash_key
from session_core.testing import make_record, run_in_threads
from session_core_db import (
    DbStore,
    OutdatedTableError,
    UserIdTooLongError,
    add_user_columns,
    upgrade_sql,
)
from session_core_db.schema import USER_COLUMNS, USER_ID_LENGTH

# The table as session-core-db made it before sessions per user (its schema.sql of that time).
_OLD_DDL = {
    "postgresql": """
        CREATE TABLE {t} (
            key_hash VARCHAR(64) NOT NULL, data TEXT NOT NULL, expiry TEXT,
            expires_at DOUBLE PRECISION NOT NULL, version BIGINT NOT NULL,
            PRIMARY KEY (key_hash));
        CREATE INDEX ix_{t}_expires_at ON {t} (expires_at)""",
    "sqlite": """
        CREATE TABLE {t} (
            key_hash VARCHAR(64) NOT NULL, data TEXT NOT NULL, expiry TEXT,
            expires_at DOUBLE NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (key_hash));
        CREATE INDEX ix_{t}_expires_at ON {t} (expires_at)""",
    "mariadb": """
        CREATE TABLE {t} (
            key_hash CHAR(64) CHARACTER SET ascii NOT NULL, data MEDIUMTEXT NOT NULL,
            expiry TEXT, expires_at DOUBLE NOT NULL, version BIGINT NOT NULL,
            PRIMARY KEY (key_hash)) CHARSET=utf8mb4;
        CREATE INDEX ix_{t}_expires_at ON {t} (expires_at)""",
}

_OLD_KEY = "o" * 43  # the shape of a session key


def _run_sql(db: Database, script: str) -> None:
    with db.engine.begin() as connection:
        for statement in script.split(";"):
            if statement.strip():
                connection.execute(sa.text(statement))


def _old_table(db: Database) -> str:
    """A table made by the old DDL, holding one anonymous session under ``_OLD_KEY``."""
    table = db.table("old")
    _run_sql(db, _OLD_DDL[db.kind].format(t=table))
    with db.engine.begin() as connection:
        connection.execute(
            sa.text(f"INSERT INTO {table} VALUES (:h, :d, NULL, :e, 1)"),
            {"h": hash_key(_OLD_KEY), "d": '{"cart":[1]}', "e": time.time() + 3600},
        )
    return table


def _shape(db: Database, table: str) -> tuple[set[str], set[tuple[str, ...]]]:
    with db.engine.connect() as connection:
        inspector = sa.inspect(connection)
        columns = {column["name"] for column in inspector.get_columns(table)}
        indexes = {tuple(ix["column_names"]) for ix in inspector.get_indexes(table)}
    return columns, indexes


def _sign_in(store: DbStore, user: Any) -> str:
    session = Session(store)
    session["cart"] = []
    session.user_id = user
    key = session.save()
    assert key is not None
    return key


def _works_for_users(store: DbStore) -> None:
    """The upgraded table serves the old session and new signed-in ones."""
    old = store.load(_OLD_KEY)
    assert old is not None
    assert old.data["cart"][0] == 1
    assert old.user_id is None
    old.data["cart"].append(2)
    assert store.save(_OLD_KEY, old, Changes(frozenset({"cart"}))) == _OLD_KEY
    key = _sign_in(store, "ann")
    assert [info.key_hash for info in store.sessions_of("ann")] == [hash_key(key)]
    assert store.revoke_user("ann") == 1
    assert store.load(_OLD_KEY) is not None, "an anonymous session belongs to no user"


# ---------------------------------------------------------------------- upgrade


def test_old_table_gets_the_user_columns_at_first_use(db: Database) -> None:
    table = _old_table(db)
    for _ in range(2):  # the second store finds the work done
        store = DbStore(url=db.url, table_name=table)
        try:
            _works_for_users(store)
        finally:
            store.close()
    columns, indexes = _shape(db, table)
    assert set(USER_COLUMNS) <= columns
    assert indexes == {("expires_at",), ("user_id",)}


def _upgrade_in_process(url: str, table: str, start: Any) -> str:
    store = DbStore(url=url, table_name=table)
    try:
        start.wait(120)  # all seven at once: the first use of each upgrades the table
        return _sign_in(store, "racer")
    finally:
        store.close()


def test_upgrade_races_between_processes_and_threads(db: Database) -> None:
    table = _old_table(db)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(3) as pool:
        start = manager.Barrier(7)
        pending = [pool.apply_async(_upgrade_in_process, (db.url, table, start)) for _ in range(3)]
        keys: list[str] = run_in_threads(lambda _: _upgrade_in_process(db.url, table, start), 4)
        keys.extend(result.get(timeout=120) for result in pending)
    assert len(set(keys)) == 7
    store = DbStore(url=db.url, table_name=table, create_table=False)
    try:
        assert {info.key_hash for info in store.sessions_of("racer")} == {
            hash_key(key) for key in keys
        }
    finally:
        store.close()
    assert _shape(db, table)[1] == {("expires_at",), ("user_id",)}


def test_outdated_table_without_create_table_says_how_to_upgrade(db: Database) -> None:
    table = _old_table(db)
    store = DbStore(url=db.url, table_name=table, create_table=False)
    try:
        with pytest.raises(OutdatedTableError) as caught:
            store.load(_OLD_KEY)
        error = caught.value
        assert isinstance(error, session_core.StoreUnreachableError)  # a 503, not a crash
        assert not isinstance(error, session_core.ConfigurationError)
        assert error.table_name == table
        assert error.missing == USER_COLUMNS
        message = str(error)
        assert "session-core db upgrade" in message
        assert "add_user_columns(op" in message
        assert f"ALTER TABLE {table} ADD COLUMN" in message
        assert error.statements in message

        async def scenario() -> None:
            try:
                with pytest.raises(OutdatedTableError):
                    await store.aload(_OLD_KEY)
            finally:
                await store.aclose()

        asyncio.run(scenario())
        assert _shape(db, table)[0].isdisjoint(USER_COLUMNS), "create_table is false"
        _run_sql(db, error.statements)  # what the message printed; no restart of the app
        _works_for_users(store)
    finally:
        store.close()


def test_printed_upgrade_sql_upgrades_an_old_table(db: Database) -> None:
    table = _old_table(db)
    script = upgrade_sql(db.engine.dialect, table)
    _run_sql(db, script)
    if db.kind != "sqlite":  # IF NOT EXISTS: running it again changes nothing
        _run_sql(db, script)
    store = DbStore(url=db.url, table_name=table, create_table=False)
    try:
        _works_for_users(store)
    finally:
        store.close()
    assert _shape(db, table)[1] == {("expires_at",), ("user_id",)}


def test_alembic_helper_adds_the_user_columns(db: Database) -> None:
    table = _old_table(db)
    with db.engine.begin() as connection:
        add_user_columns(Operations(MigrationContext.configure(connection)), table)
    store = DbStore(url=db.url, table_name=table, create_table=False)
    try:
        _works_for_users(store)
    finally:
        store.close()


# ---------------------------------------------------------------------- the table and its cost


@pytest.fixture
def store(db: Database) -> Any:
    store = DbStore(url=db.url, table_name=db.table("users"))
    yield store
    store.close()


def _statements(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "session_core_db.sql"]


def test_login_and_ordinary_requests_cost_no_extra_statement(
    store: DbStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.load(store.generate_key())  # first use (the table) out of the way
    with caplog.at_level(logging.DEBUG, logger="session_core_db.sql"):
        key = _sign_in(store, "ann")
        login = _statements(caplog)
        caplog.clear()
        session = Session(store, key)
        session["cart"] = [1]
        assert session.save() == key
        request = _statements(caplog)
    assert [line.split(": ")[1] for line in login] == ["insert"]
    assert "user_id" in login[0]
    assert [line.split(": ")[1] for line in request] == ["load", "update"]
    update_sql = request[1].split(": ", 2)[2]
    assert "user_id" not in update_sql.split("WHERE")[0], "an update never rebinds the user"


def test_user_id_comes_back_with_its_type(store: DbStore) -> None:
    """An int id stays an int (and a digit string a string), so an app that sets
    ``session.user_id = user.id`` on every request does not cycle the key each time."""
    number = _sign_in(store, 7)
    text = _sign_in(store, "7")
    loaded = Session(store, number)
    assert loaded.user_id == 7
    assert type(loaded.user_id) is int
    loaded.user_id = 7  # the same user: no new key
    assert loaded.save() == number
    assert Session(store, text).user_id == "7"
    assert {type(info.user_id) for info in store.sessions_of(7)} == {int, str}


def test_client_details_are_kept_until_replaced(store: DbStore) -> None:
    session = Session(store)
    session.user_id = "ann"
    session.record_client(user_agent="Phone/1.0", ip="192.0.2.7")
    key = session.save()
    assert key is not None
    later = Session(store, key)
    later["x"] = 1
    assert later.save() == key  # an update without client details keeps them
    (info,) = store.sessions_of("ann")
    assert info.client == {"user_agent": "Phone/1.0", "ip": "192.0.2.7"}
    again = Session(store, key)
    again.record_client(user_agent="Phone/2.0")
    assert again.save() == key
    (info,) = store.sessions_of("ann")
    assert info.client == {"user_agent": "Phone/2.0"}


def test_last_seen_is_the_last_save(db: Database, store: DbStore) -> None:
    key = _sign_in(store, "ann")
    with db.engine.begin() as connection:  # as if signed in an hour ago
        connection.execute(
            sa.update(store.table)
            .where(store.table.c.key_hash == hash_key(key))
            .values(created_at=time.time() - 3600, seen_at=time.time() - 3600)
        )
    before = time.time()
    session = Session(store, key)
    session["x"] = 1
    assert session.save() == key
    (info,) = store.sessions_of("ann")
    assert info.last_seen_at.timestamp() >= before
    assert info.created_at.timestamp() < before - 3000, "an update does not move the login"


def test_revoke_removes_the_users_expired_rows_and_counts_the_live_ones(
    db: Database, store: DbStore
) -> None:
    record = make_record({"a": 1}, ttl=3600)
    record.user_id = "ann"
    dead = store.save(None, record, Changes.everything(record))
    assert dead is not None
    with db.engine.begin() as connection:  # expired, not yet cleaned up
        connection.execute(
            sa.update(store.table)
            .where(store.table.c.key_hash == hash_key(dead))
            .values(expires_at=time.time() - 10)
        )
    live = _sign_in(store, "ann")
    bystander = _sign_in(store, "bob")
    assert store.revoke_user("ann") == 1
    held = {row[0] for row in db.rows(store.table.name)}
    assert hash_key(live) not in held
    assert hash_key(bystander) in held
    assert hash_key(dead) not in held, "the expired row went with the others"


def test_a_user_id_too_long_for_the_column_is_refused_before_any_io(
    db: Database, store: DbStore
) -> None:
    longest = "é" * USER_ID_LENGTH  # characters, not bytes, on every database
    key = _sign_in(store, longest)
    assert Session(store, key).user_id == longest
    assert [info.key_hash for info in store.sessions_of(longest)] == [hash_key(key)]
    record = make_record({"a": 1})
    record.user_id = longest + "x"
    with pytest.raises(UserIdTooLongError) as caught:
        store.save(None, record, Changes.everything(record))
    assert isinstance(caught.value, session_core.SessionCoreError)
    assert (caught.value.length, caught.value.limit) == (USER_ID_LENGTH + 1, USER_ID_LENGTH)
    assert "shorter id" in str(caught.value)
    with pytest.raises(UserIdTooLongError):
        store.cycle_key(key, record)
    with pytest.raises(UserIdTooLongError):
        asyncio.run(store.asave(None, record, Changes.everything(record)))
    assert db.count(store.table.name) == 1
    assert store.load(key) is not None


def _plan(db: Database, store: DbStore) -> str:
    """The database's plan for the ``sessions`` statement, as text."""
    table = store.table.name
    query = f"SELECT key_hash FROM {table} WHERE user_id = 'ann' AND expires_at > 0"
    explain = {
        "postgresql": f"EXPLAIN {query}",
        "sqlite": f"EXPLAIN QUERY PLAN {query}",
        "mariadb": f"EXPLAIN {query}",
    }[db.kind]
    with db.engine.begin() as connection:
        if db.kind == "postgresql":  # a tiny table: make the planner show what it can use
            connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
        return repr(connection.execute(sa.text(explain)).all())


def test_a_users_sessions_are_found_through_the_index(db: Database, store: DbStore) -> None:
    for n in range(20):
        _sign_in(store, f"user{n}")
        record = make_record({"anonymous": n})
        store.save(None, record, Changes.everything(record))
    assert f"ix_{store.table.name}_user_id" in _plan(db, store)
    if db.kind != "mariadb":  # partial where the database can: no entry per anonymous session
        with db.engine.connect() as connection:
            (index,) = [
                ix
                for ix in sa.inspect(connection).get_indexes(store.table.name)
                if ix["column_names"] == ["user_id"]
            ]
        where = index.get("dialect_options", {}).get(f"{db.kind}_where")
        assert where is not None
        assert "user_id IS NOT NULL" in str(where)
