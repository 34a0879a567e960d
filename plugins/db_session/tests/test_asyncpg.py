"""The async path on asyncpg: statements prepared once per connection, and bounded by the
loop's one deadline timer instead of one timer each."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from conftest import Database, create

from session_core_db import DbStore
from session_core_db.async_deadlines import Deadlines

pytestmark = pytest.mark.postgresql


def test_a_statement_prepared_before_the_table_changed_runs_again(
    postgresql_db: Database,
) -> None:
    # A column's type changed (as a migration might): the statement prepared on the kept
    # connection no longer fits, and asyncpg refuses it. The store prepares it again, as
    # asyncpg's own statement cache would, instead of failing the request.
    table = postgresql_db.table()
    store = DbStore(url=postgresql_db.url, table_name=table)
    key = create(store, {"user": "alice"})

    async def scenario() -> None:
        try:
            assert store.async_driver == "asyncpg"
            first = await store.aload(key)
            assert first is not None
            await asyncio.to_thread(_retype_expiry, postgresql_db, table)
            for _ in range(3):  # on the same kept connection
                loaded = await store.aload(key)
                assert loaded is not None
                assert loaded.data == {"user": "alice"}
        finally:
            await store.aclose()

    try:
        asyncio.run(scenario())
    finally:
        store.close()


def _retype_expiry(database: Database, table: str) -> None:
    with database.engine.begin() as connection:
        connection.execute(sa.text(f"ALTER TABLE {table} ALTER COLUMN expiry TYPE varchar"))


def test_statements_are_prepared_once_per_connection(postgresql_db: Database) -> None:
    table = postgresql_db.table()
    store = DbStore(url=postgresql_db.url, table_name=table, pool_size=1)
    key = create(store, {"user": "alice"})

    async def prepared_loads() -> int:
        try:
            for _ in range(5):
                assert await store.aload(key) is not None
            loop_engine = store._async.connections.current()
            assert loop_engine is not None
            (held,) = loop_engine.idle
            rows = await held.driver_connection.fetch(
                "SELECT statement FROM pg_prepared_statements WHERE statement LIKE $1",
                f"SELECT %FROM {table}%",
            )
            return len(rows)
        finally:
            await store.aclose()

    try:
        assert asyncio.run(prepared_loads()) == 1
    finally:
        store.close()


# ---------------------------------------------------------------------- Deadlines, alone


def test_a_deadline_cancels_the_statement_and_says_it_timed_out() -> None:
    async def scenario() -> tuple[bool, int]:
        deadlines = Deadlines(0.01, asyncio.get_running_loop())
        owner = object()
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadlines.start(owner)
        try:
            await never
        except asyncio.CancelledError:
            timed_out = deadlines.timed_out(owner)
            task = asyncio.current_task()
            assert task is not None
            return timed_out, task.cancelling()
        finally:
            deadlines.stop(owner)
            deadlines.close()
        raise AssertionError("not cancelled")

    # Its own cancellation is withdrawn: the task is not left "cancelling".
    assert asyncio.run(scenario()) == (True, 0)


def test_a_task_cancelled_by_someone_else_is_not_a_timeout() -> None:
    async def scenario() -> bool:
        deadlines = Deadlines(60, asyncio.get_running_loop())
        owner = object()
        started = asyncio.Event()
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def statement() -> bool:
            deadlines.start(owner)
            started.set()
            try:
                await never
            except asyncio.CancelledError:
                return deadlines.timed_out(owner)
            finally:
                deadlines.stop(owner)
            raise AssertionError("not cancelled")

        task = asyncio.create_task(statement())
        await started.wait()
        task.cancel()
        try:
            return await task
        finally:
            deadlines.close()

    assert asyncio.run(scenario()) is False


def test_only_the_late_statements_are_cut() -> None:
    async def scenario() -> list[str]:
        deadlines = Deadlines(0.05, asyncio.get_running_loop())
        outcomes: list[str] = []
        late_started = asyncio.Event()
        release = asyncio.get_running_loop().create_future()

        async def late() -> None:
            deadlines.start("late")
            late_started.set()
            try:
                await asyncio.get_running_loop().create_future()  # never answered
            except asyncio.CancelledError:
                outcomes.append(f"late timed out: {deadlines.timed_out('late')}")
            finally:
                deadlines.stop("late")

        async def quick() -> None:
            deadlines.start("quick")
            try:
                await release
                outcomes.append("quick answered")
            finally:
                deadlines.stop("quick")

        late_task = asyncio.create_task(late())
        await late_started.wait()
        quick_task = asyncio.create_task(quick())
        await asyncio.sleep(0)  # quick registers
        release.set_result(None)
        await asyncio.gather(late_task, quick_task)
        deadlines.close()
        return outcomes

    assert asyncio.run(scenario()) == ["quick answered", "late timed out: True"]
