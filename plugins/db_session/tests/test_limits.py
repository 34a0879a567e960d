"""Size limits: a session larger than its database takes fails before anything is sent, with
an error naming the limit, and the store (and its connections) go on working."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Database, create

import session_core
from session_core import Changes, SessionRecord
from session_core.testing import make_record
from session_core_db import DbStore, SessionTooLargeError
from session_core_db.limits import SizeLimit, default_limit

SQLITE_LIMIT = 200_000


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def db(request: pytest.FixtureRequest) -> Database:
    """The databases whose limit a test can reach: MariaDB's max_allowed_packet (16 MB by
    default), and SQLite's SQLITE_LIMIT_LENGTH, lowered. PostgreSQL's, 1 GB a value, is too
    large to build in a test: its SizeLimit is checked like the others' below."""
    database: Database = request.getfixturevalue(f"{request.param}_db")
    return database


@pytest.fixture
def store(db: Database) -> Iterator[DbStore]:
    if db.kind == "sqlite":
        # SQLite's own limit is 1 GB; lowered on each connection, it is read like any other.
        store = DbStore(url=db.url, table_name=db.table("size"), native_async=False)
        sa.event.listen(
            store.engine,
            "connect",
            lambda c, _: c.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, SQLITE_LIMIT),
        )
    else:
        store = DbStore(url=db.url, table_name=db.table("size"))
    yield store
    store.close()


def server_limit(db: Database) -> int:
    """The most session data the database takes, in bytes, from its own settings."""
    if db.kind == "sqlite":
        return SQLITE_LIMIT - 4096  # the row holds the other columns too
    with db.engine.connect() as connection:
        packet = int(connection.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())
    return min(packet, 2**24 - 1)


def sized(total: int, db: Database) -> dict[str, Any]:
    """Session data whose JSON is exactly ``total`` bytes as sent (MySQL drivers send each of
    its 4 quotes escaped, one byte more)."""
    return {"big": "x" * (total - len('{"big":""}') - (4 if db.kind == "mariadb" else 0))}


def kept(store: DbStore) -> list[Any]:
    return [connection.dbapi for connection in store._sync.connections._idle]


def test_a_session_over_the_limit_fails_clearly_and_the_store_goes_on(
    db: Database, store: DbStore
) -> None:
    key = create(store, {"big": "x"})
    [connection] = kept(store)
    limit = store._plans.size_limit.limit
    assert limit <= server_limit(db)
    record = store.load(key)
    assert record is not None
    record.data.update(sized(limit + 1, db))
    with pytest.raises(SessionTooLargeError) as caught:
        store.save(key, record, Changes(frozenset({"big"})))
    assert caught.value.size == limit + 1
    assert caught.value.limit == limit
    assert isinstance(caught.value, session_core.SessionTooLargeError)  # one class for any store
    assert caught.value.store == "db"
    reason = "max_allowed_packet" if db.kind == "mariadb" else "SQLITE_LIMIT_LENGTH"
    assert reason in caught.value.reason
    assert reason in str(caught.value)
    with pytest.raises(SessionTooLargeError):  # a new session too, before any statement
        store.save(None, make_record(sized(limit + 1, db)), Changes(frozenset({"big"})))
    # Nothing reached the server: the same connection serves the next saves.
    assert kept(store) == [connection]
    fresh = store.load(key)
    assert fresh is not None
    assert fresh.data == {"big": "x"}
    fresh.data["big"] = "y"
    assert store.save(key, fresh, Changes(frozenset({"big"}))) == key
    # Right at the limit, the database takes it: the limit is the database's, not a guess.
    fresh.data.update(sized(limit, db))
    assert store.save(key, fresh, Changes(frozenset({"big"}))) == key
    assert kept(store) == [connection]
    loaded = store.load(key)
    assert loaded is not None
    assert loaded.data == sized(limit, db)


def test_the_first_call_of_a_store_knows_the_limit(db: Database, store: DbStore) -> None:
    with pytest.raises(SessionTooLargeError):
        store.save(None, make_record(sized(server_limit(db) + 1, db)), Changes(frozenset({"big"})))


def test_async_save_over_the_limit_fails_clearly(db: Database, store: DbStore) -> None:
    key = create(store, {"big": "x"})
    record = store.load(key)
    assert record is not None
    record.data.update(sized(server_limit(db) + 1, db))

    async def scenario() -> SessionRecord | None:
        try:
            with pytest.raises(SessionTooLargeError):
                await store.asave(key, record, Changes(frozenset({"big"})))
            return await store.aload(key)
        finally:
            await store.aclose()

    after = asyncio.run(scenario())
    assert after is not None
    assert after.data == {"big": "x"}


def test_each_database_has_its_limit() -> None:
    assert default_limit("postgresql").limit == 2**30 - 1 - 4096
    assert "1 GB" in default_limit("postgresql").reason
    assert default_limit("mariadb").escaped
    assert not default_limit("sqlite").escaped


def test_size_counts_utf8_bytes_and_the_escaping_of_mysql_drivers() -> None:
    limit = SizeLimit(10, "a test limit")
    limit.check('"éééé"', "db://x")  # 10 bytes
    with pytest.raises(SessionTooLargeError) as caught:
        limit.check('"ééééé"', "db://x")  # 12 bytes
    assert (caught.value.size, caught.value.limit) == (12, 10)
    escaped = SizeLimit(10, "a test limit", escaped=True)
    escaped.check('"a\\\\b"', "db://x")  # 6 bytes, 4 of them escaped: 10 as sent
    with pytest.raises(SessionTooLargeError):
        escaped.check('"a\'\\\\b"', "db://x")  # 7 bytes, 5 escaped
    assert limit.quick * 4 <= limit.limit
