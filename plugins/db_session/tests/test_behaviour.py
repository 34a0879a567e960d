"""The db store's own promises, on each real database: concurrency, cleanup, table creation,
errors, engines handed over, and discovery through the entry point."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from conftest import Database, create
from sqlalchemy.ext.asyncio import create_async_engine

import session_core
from session_core import Changes, Session, SessionConfig, StoreUnreachableError
from session_core.testing import make_record, run_in_threads
from session_core_db import (
    DbStore,
    MissingTableError,
    create_session_table,
    drop_session_table,
    schema_sql,
    session_table,
)

SECRET = "s" * 40


@pytest.fixture
def store(db: Database) -> Iterator[DbStore]:
    store = DbStore(url=db.url, table_name=db.table())
    yield store
    store.close()


# ---------------------------------------------------------------------- concurrency


def test_update_is_one_statement_when_nobody_else_saved(store: DbStore) -> None:
    key = create(store, {"a": 1})
    record = store.load(key)
    assert record is not None
    assert record.version == 1
    record.data["b"] = 2
    assert store.save(key, record, Changes(frozenset({"b"}))) == key
    assert record.version == 2
    reloaded = store.load(key)
    assert reloaded is not None
    assert reloaded.version == 2
    assert reloaded.data == {"a": 1, "b": 2}


def test_threads_changing_different_keys_all_keep_their_change(store: DbStore) -> None:
    key = create(store, {"start": 0, **{f"gone{n}": n for n in range(8)}})
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        for round_ in range(10):
            session = Session(store, key)
            session.load()
            if round_ == 0:
                barrier.wait()
            session[f"w{n}"] = round_
            session.pop(f"gone{n}", None)
            assert session.save() == key

    run_in_threads(work, 8)
    final = store.load(key)
    assert final is not None
    assert final.data == {"start": 0, **{f"w{n}": 9 for n in range(8)}}


def test_async_tasks_changing_different_keys_all_keep_their_change(store: DbStore) -> None:
    key = create(store, {"start": 0, **{f"old{n}": n for n in range(12)}})
    loaded: list[asyncio.Barrier] = []

    async def task(n: int) -> None:
        # Every task loads the same version, then saves: all but the first conflict and merge.
        record = await store.aload(key)
        assert record is not None
        await loaded[0].wait()
        record.data[f"t{n}"] = n
        del record.data[f"old{n}"]
        changes = Changes(frozenset({f"t{n}"}), frozenset({f"old{n}"}))
        assert await store.asave(key, record, changes) == key

    async def scenario() -> None:
        loaded.append(asyncio.Barrier(12))
        try:
            await asyncio.gather(*(task(n) for n in range(12)))
        finally:
            await store.aclose()

    asyncio.run(scenario())
    final = store.load(key)
    assert final is not None
    assert final.data == {"start": 0, **{f"t{n}": n for n in range(12)}}
    assert final.version == 13


def test_stale_session_saved_twice_keeps_the_other_writers_key(store: DbStore) -> None:
    key = create(store, {"a": 0})
    mine, theirs = Session(store, key), Session(store, key)
    mine.load()
    theirs.load()
    theirs["theirs"] = 1
    theirs.save()
    mine["mine"] = 1
    mine.save()  # conflict: merged into the row as it is now
    mine["mine"] = 2
    mine.save()  # must not write back its stale copy over "theirs"
    final = store.load(key)
    assert final is not None
    assert final.data == {"a": 0, "theirs": 1, "mine": 2}


def test_sign_out_is_not_undone_by_a_concurrent_save(store: DbStore) -> None:
    key = create(store, {"user": 1})
    browsing, signing_out = Session(store, key), Session(store, key)
    assert browsing["user"] == 1
    signing_out.load()
    signing_out.flush()
    assert signing_out.save() is None
    browsing["cart"] = [1, 2]
    assert browsing.save() is None
    assert browsing.vanished
    assert store.load(key) is None


def test_sign_out_is_not_undone_by_a_concurrent_async_save(store: DbStore) -> None:
    key = create(store, {"user": 1})

    async def scenario() -> None:
        late = await store.aload(key)
        assert late is not None
        await store.adelete(key)
        late.data["cart"] = [1]
        assert await store.asave(key, late, Changes(frozenset({"cart"}))) is None
        assert await store.aload(key) is None
        await store.aclose()

    asyncio.run(scenario())
    assert store.load(key) is None


def test_expired_row_is_not_brought_back_by_an_update(store: DbStore) -> None:
    key = create(store, {"a": 1})
    record = store.load(key)
    assert record is not None
    with store.engine.begin() as connection:  # it expires after this request loaded it
        connection.execute(sa.update(store.table).values(expires_at=time.time() - 60))
    record.data["b"] = 2
    record.expires_at = time.time() + 3600
    assert store.save(key, record, Changes(frozenset({"b"}))) is None
    assert store.load(key) is None


def test_cycle_key_moves_the_row(db: Database, store: DbStore) -> None:
    key = create(store, {"user": 1})
    record = store.load(key)
    assert record is not None
    new_key = store.cycle_key(key, record)
    assert store.load(key) is None
    assert store.load(new_key) is not None
    assert db.count(store.table.name) == 1


# ---------------------------------------------------------------------- cleanup


def fill_expired(db: Database, store: DbStore, count: int) -> None:
    """Insert ``count`` expired rows directly, in bulk."""
    store.delete(store.generate_key())  # the first call creates the table
    past = time.time() - 60
    rows = [
        {"key_hash": f"{n:064x}", "data": "{}", "expiry": None, "expires_at": past, "version": 1}
        for n in range(count)
    ]
    with db.engine.begin() as connection:
        for start in range(0, count, 5000):
            connection.execute(sa.insert(store.table), rows[start : start + 5000])


def test_clear_expired_works_in_batches_and_reports_progress(db: Database) -> None:
    store = DbStore(url=db.url, table_name=db.table("clear"), cleanup_batch_size=1000)
    try:
        live = [create(store, {"live": n}) for n in range(5)]
        fill_expired(db, store, 20_000)
        seen: list[int] = []
        assert store.clear_expired(seen.append) == 20_000
        assert len(seen) >= 20
        assert seen == sorted(seen)
        assert seen[-1] == 20_000
        assert all(b - a <= 1000 for a, b in zip([0, *seen], seen, strict=False))
        assert all(store.load(key) is not None for key in live)
        assert db.count(store.table.name) == 5
    finally:
        store.close()


def test_clear_expired_does_not_block_reads(db: Database) -> None:
    store = DbStore(url=db.url, table_name=db.table("clearlive"), cleanup_batch_size=500)
    try:
        key = create(store, {"live": 1})
        fill_expired(db, store, 20_000)
        done = threading.Event()
        failures: list[BaseException] = []

        def read() -> None:
            while not done.is_set():
                try:
                    assert store.load(key) is not None
                except BaseException as exc:  # reported in the test's thread
                    failures.append(exc)
                    return

        # A cleanup statement caught midway, its transaction open: a read does not wait for
        # it (a read that did would fail: the timeout on servers, busy_timeout on SQLite).
        with db.engine.connect() as cleaner:
            cleaner.begin()
            batch = store._sql.by_name["clear"]
            assert cleaner.execute(batch, {"cutoff": time.time()}).rowcount == 500
            assert store.load(key) is not None
            cleaner.rollback()
        reader = threading.Thread(target=read)
        reader.start()
        try:
            assert store.clear_expired() == 20_000
        finally:
            done.set()
            reader.join()
        assert not failures
    finally:
        store.close()


def test_async_clear_expired_reports_progress(db: Database, store: DbStore) -> None:
    fill_expired(db, store, 2500)
    seen: list[int] = []

    async def scenario() -> int | None:
        try:
            return await store.aclear_expired(seen.append)
        finally:
            await store.aclose()

    assert asyncio.run(scenario()) == 2500
    assert seen == [1000, 2000, 2500]


# ---------------------------------------------------------------------- table creation


def _create_in_process(url: str, table: str, start: Any) -> str:
    store = DbStore(url=url, table_name=table)
    try:
        start.wait(120)  # all seven at once: the first use of each creates the table
        key = create(store, {"pid": multiprocessing.current_process().name})
        assert store.load(key) is not None
        return key
    finally:
        store.close()


def test_create_table_races_between_processes_and_threads(db: Database) -> None:
    table = db.table("race")
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(3) as pool:
        start = manager.Barrier(7)
        pending = [pool.apply_async(_create_in_process, (db.url, table, start)) for _ in range(3)]
        keys: list[str | None] = run_in_threads(
            lambda _: _create_in_process(db.url, table, start), 4
        )
        keys.extend(result.get(timeout=120) for result in pending)
    assert len(set(keys)) == 7
    assert db.count(table) == 7
    with db.engine.connect() as connection:
        indexes = sa.inspect(connection).get_indexes(table)
    assert sorted(ix["column_names"] for ix in indexes) == [["expires_at"], ["user_id"]]


def test_missing_table_says_how_to_create_it(db: Database) -> None:
    table = db.table("missing")
    store = DbStore(url=db.url, table_name=table, create_table=False)
    try:
        with pytest.raises(MissingTableError) as caught:
            store.load(store.generate_key())
        message = str(caught.value)
        assert "create_table" in message
        assert "session-core db schema" in message
        assert "schema.sql" in message
        assert "create_session_table(op" in message
        # Not a configuration error (those come at start-up): the database is not ready yet,
        # so the middleware answers 503, and the store works once the table exists.
        assert isinstance(caught.value, session_core.StoreUnreachableError)
        assert not isinstance(caught.value, session_core.ConfigurationError)
        assert caught.value.operation == "load"
        assert caught.value.table_name == table

        async def scenario() -> None:
            try:
                with pytest.raises(MissingTableError):
                    await store.aload(store.generate_key())
            finally:
                await store.aclose()

        asyncio.run(scenario())
        with db.engine.begin() as connection:  # the migration runs; no restart of the app
            session_table(sa.MetaData(), table).create(connection)
        key = create(store, {"a": 1})
        assert store.load(key) is not None
    finally:
        store.close()


def test_shipped_schema_sql_makes_a_working_table(db: Database) -> None:
    table = db.table("sql")
    script = schema_sql(db.kind).replace("session_core_sessions", table)
    with db.engine.begin() as connection:
        for statement in script.split(";"):
            if statement.strip():
                connection.execute(sa.text(statement))
    store = DbStore(url=db.url, table_name=table, create_table=False)
    try:
        key = create(store, {"a": "☃"})
        record = store.load(key)
        assert record is not None
        assert record.data == {"a": "☃"}
    finally:
        store.close()


def test_alembic_helpers_create_and_drop_the_table(db: Database) -> None:
    table = db.table("alembic")
    with db.engine.begin() as connection:
        create_session_table(Operations(MigrationContext.configure(connection)), table)
    store = DbStore(url=db.url, table_name=table, create_table=False)
    try:
        key = create(store, {"a": 1})
        assert store.load(key) is not None
    finally:
        store.close()
    with db.engine.begin() as connection:
        drop_session_table(Operations(MigrationContext.configure(connection)), table)
        assert not sa.inspect(connection).has_table(table)


# ---------------------------------------------------------------------- errors


def _unreachable_urls(db: Database) -> list[str]:
    if db.kind == "sqlite":
        return ["sqlite:////nonexistent-dir/s3cret-pw/sessions.sqlite3"]
    url = sa.make_url(db.url)
    return [
        url.set(port=1, username="user", password="s3cret-pw").render_as_string(False),
        url.set(username="no_such_user", password="s3cret-pw").render_as_string(False),
    ]


def test_unreachable_database_names_store_and_url_without_password(db: Database) -> None:
    for url in _unreachable_urls(db):
        store = DbStore(url=url, table_name="never_created")
        try:
            with pytest.raises(StoreUnreachableError) as caught:
                store.load(store.generate_key())
            error = caught.value
            assert error.store == "db"
            assert error.operation == "load"
            if db.kind != "sqlite":
                assert "s3cret-pw" not in str(error)
                assert "***" in error.target
            assert "could not load" in str(error)

            async def scenario(store: DbStore = store) -> StoreUnreachableError:
                record = make_record({"a": 1})
                try:
                    with pytest.raises(StoreUnreachableError) as caught:
                        await store.asave(None, record, Changes.everything(record))
                    return caught.value
                finally:
                    await store.aclose()

            async_error = asyncio.run(scenario())
            assert async_error.operation == "save"
            if db.kind != "sqlite":
                assert "s3cret-pw" not in str(async_error)
        finally:
            store.close()


# ---------------------------------------------------------------------- engines in code


def test_engine_handed_over_in_code(db: Database) -> None:
    engine = sa.create_engine(db.url)  # default isolation: the store must commit its writes
    store = DbStore(engine=engine, table_name=db.table("engine"))
    try:
        key = create(store, {"a": 1})
        record = store.load(key)
        assert record is not None
        record.data["b"] = 2
        assert store.save(key, record, Changes(frozenset({"b"}))) == key
        assert db.rows(store.table.name)[0][0] == session_core.hash_key(key)
        other = DbStore(url=db.url, table_name=store.table.name)
        try:
            seen = other.load(key)
            assert seen is not None
            assert seen.data == {"a": 1, "b": 2}
        finally:
            other.close()
    finally:
        store.close()
    with engine.connect() as connection:  # close() left the engine to its owner
        assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1
    engine.dispose()


def test_async_engine_handed_over_in_code(db: Database) -> None:
    sync = DbStore(url=db.url, table_name=db.table("aengine"))
    async_url = sync.async_driver and sa.make_url(db.url).set(
        drivername=f"{sa.make_url(db.url).get_backend_name()}+{sync.async_driver}"
    )
    sync.close()
    assert async_url
    table = sync.table.name

    async def scenario() -> None:
        engine = create_async_engine(async_url)
        store = DbStore(url=db.url, async_engine=engine, table_name=table)
        assert store.native_async
        try:
            given = make_record({"via": "given engine"})
            key = await store.asave(None, given, Changes.everything(given))
            assert key is not None
            seen = await store.aload(key)
            assert seen is not None
            assert seen == store.load(key)
        finally:
            await store.aclose()
            await engine.dispose()

    asyncio.run(scenario())


# ---------------------------------------------------------------------- discovery


def test_entry_point_builds_the_store(db: Database) -> None:
    config = SessionConfig(
        secret_key=SECRET,
        store="db",
        store_options={"url": db.url, "table_name": db.table("ep"), "pool_size": 3},
    )
    store = session_core.create_store(config)
    try:
        assert isinstance(store, DbStore)
        assert store.name == "db"
        assert type(store).needs_cleanup
        key = create(store, {"a": 1})
        assert store.load(key) is not None
    finally:
        store.close()
    listed = {info.name: info for info in session_core.available_stores()}
    assert listed["db"].distribution == "session-core-db"
