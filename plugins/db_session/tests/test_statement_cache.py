"""asyncpg's statement cache, turned off for PgBouncer's transaction pooling: the store then
prepares none of its statements either (and with asyncpg's cache off, no named statement is
made at all); with the cache on, it prepares each once per connection."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Database

from session_core import Changes
from session_core.testing import make_record
from session_core_db import DbStore
from session_core_db.async_connections import PREPARED, prepares

pytestmark = pytest.mark.postgresql


def _asyncpg_url(database: Database, query: str = "") -> str:
    url = sa.make_url(database.url).set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False) + query


def _users(data: dict[str, Any]) -> Any:
    return dataclasses.replace(make_record(data), user_id=7)


async def _every_operation(store: DbStore) -> None:
    """Creates, loads, updates (also after another save overtook it: a locked merge),
    lists, revokes and deletes, checking each worked."""
    key = await store.asave(None, _users({"n": 1}), Changes(frozenset()))
    assert key is not None
    late = await store.aload(key)
    loaded = await store.aload(key)
    assert late is not None
    assert loaded is not None
    loaded.data["n"] = 2
    assert await store.asave(key, loaded, Changes(frozenset({"n"}))) == key
    late.data["m"] = 3
    assert await store.asave(key, late, Changes(frozenset({"m"}))) == key  # merged, locked
    merged = await store.aload(key)
    assert merged is not None
    assert merged.data == {"n": 2, "m": 3}
    assert len(await store.asessions_of(7)) == 1
    other = await store.asave(None, _users({}), Changes(frozenset()))
    assert await store.arevoke_user(7, keep=key) == 1
    assert other is not None
    assert await store.aload(other) is None
    await store.adelete(key)
    assert await store.aload(key) is None


async def _statements_on(engine: Any) -> tuple[Any, list[str]]:
    """What the store keeps on the pool's one connection of ``engine``, and the names of the
    statements prepared on it (``pg_prepared_statements`` is per connection)."""
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        rows = await raw.driver_connection.fetch("SELECT name FROM pg_prepared_statements")
        kept = raw.info.get(PREPARED)
        return (None if kept is None else kept[1]), [row["name"] for row in rows]


@pytest.mark.parametrize(
    "connect_args",
    [{"statement_cache_size": 0}, {"statement_cache_size": 0, "prepared_statement_cache_size": 0}],
)
def test_with_asyncpgs_cache_off_no_statement_is_named(
    postgresql_db: Database, connect_args: dict[str, int]
) -> None:
    # PgBouncer's transaction pooling hands each transaction another server connection, where
    # a statement prepared on the first does not exist: its users turn asyncpg's statement
    # cache off, and the store must not prepare its own statements either.
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(
        _asyncpg_url(postgresql_db), connect_args=connect_args, pool_size=1, max_overflow=0
    )
    store = DbStore(url=postgresql_db.url, async_engine=engine, table_name=postgresql_db.table())

    async def scenario() -> tuple[Any, list[str]]:
        try:
            await _every_operation(store)
            return await _statements_on(engine)
        finally:
            await store.aclose()
            await engine.dispose()

    try:
        assert asyncio.run(scenario()) == (None, [])
    finally:
        store.close()


def test_prepare_statements_false_makes_the_engine_name_no_statement(
    postgresql_db: Database,
) -> None:
    # The option, for an engine the store builds (store_options cannot hand one over): its
    # asyncpg connections get statement_cache_size=0, so neither the store nor SQLAlchemy nor
    # asyncpg names a statement.
    store = DbStore(
        url=postgresql_db.url,
        table_name=postgresql_db.table(),
        pool_size=1,
        prepare_statements=False,
    )

    async def scenario() -> tuple[Any, list[str]]:
        try:
            assert store.async_driver == "asyncpg"
            await _every_operation(store)
            loop_engine = store._async.connections.current()
            assert loop_engine is not None
            (held,) = loop_engine.idle  # the one kept connection
            rows = await held.driver_connection.fetch("SELECT name FROM pg_prepared_statements")
            return held.prepared, [row["name"] for row in rows]
        finally:
            await store.aclose()

    try:
        assert asyncio.run(scenario()) == (None, [])
    finally:
        store.close()


def test_prepare_statements_false_has_psycopg_prepare_nothing(postgresql_db: Database) -> None:
    # psycopg 3 prepares a statement run 5 times on a connection (its prepare_threshold).
    store = DbStore(
        url=postgresql_db.url,
        table_name=postgresql_db.table(),
        pool_size=1,
        prepare_statements=False,
    )
    try:
        record = make_record({"n": 1})
        key = store.save(None, record, Changes.everything(record))
        assert key is not None
        for _ in range(10):
            assert store.load(key) is not None
        (connection,) = store._sync.connections._idle  # the one kept connection
        connection.cursor.execute("SELECT name FROM pg_prepared_statements")
        assert connection.cursor.fetchall() == []
    finally:
        store.close()


def test_with_sqlalchemys_cache_off_the_store_keeps_no_statement(
    postgresql_db: Database,
) -> None:
    # SQLAlchemy's own spelling, in the URL: the store keeps none of its statements either
    # (asyncpg's own cache, still on, then serves them, as it serves SQLAlchemy's).
    from sqlalchemy.ext.asyncio import create_async_engine

    url = _asyncpg_url(postgresql_db, "?prepared_statement_cache_size=0")
    engine = create_async_engine(url, pool_size=1, max_overflow=0)
    store = DbStore(url=postgresql_db.url, async_engine=engine, table_name=postgresql_db.table())

    async def scenario() -> Any:
        try:
            await _every_operation(store)
            kept, _ = await _statements_on(engine)
            return kept
        finally:
            await store.aclose()
            await engine.dispose()

    try:
        assert asyncio.run(scenario()) is None
    finally:
        store.close()


def test_with_the_cache_on_a_given_engine_has_its_statements_prepared_once(
    postgresql_db: Database,
) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(_asyncpg_url(postgresql_db), pool_size=1, max_overflow=0)
    table = postgresql_db.table()
    store = DbStore(url=postgresql_db.url, async_engine=engine, table_name=table)

    async def scenario() -> tuple[list[str], list[str]]:
        try:
            key = await store.asave(None, make_record({"n": 1}), Changes(frozenset()))
            assert key is not None
            for _ in range(3):
                assert await store.aload(key) is not None
            kept, names = await _statements_on(engine)
            assert kept is not None
            return sorted(kept), names
        finally:
            await store.aclose()
            await engine.dispose()

    try:
        kept, names = asyncio.run(scenario())
    finally:
        store.close()
    assert len(kept) == 2  # the insert and the load, each prepared once
    assert all(table in sql for sql in kept)
    assert len(names) == len(set(names))


def test_a_given_engine_loses_the_stores_listener_on_close(postgresql_db: Database) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(_asyncpg_url(postgresql_db))
    store = DbStore(url=postgresql_db.url, async_engine=engine, table_name=postgresql_db.table())
    listener = store._async.connections._note_prepares
    assert sa.event.contains(engine.sync_engine, "do_connect", listener)
    store.close()
    assert not sa.event.contains(engine.sync_engine, "do_connect", listener)
    asyncio.run(engine.dispose())


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, True),
        ({"statement_cache_size": 100}, True),
        ({"statement_cache_size": 0}, False),
        ({"prepared_statement_cache_size": 0}, False),
        ({"prepared_statement_cache_size": "0"}, False),  # from the URL's query
        ({"prepared_statement_cache_size": None}, False),
        ({"statement_cache_size": -1}, False),
        ({"prepared_statement_cache_size": "500"}, True),
        ({"statement_cache_size": 100, "prepared_statement_cache_size": 500}, True),
    ],
)
def test_which_connections_may_have_statements_prepared(
    params: dict[str, Any], expected: bool
) -> None:
    assert prepares(params) is expected
