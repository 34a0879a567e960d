"""The async path on asyncpg: statements prepared once per connection, and bounded by the
loop's one deadline timer instead of one timer each."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from conftest import Database, create

from session_core import Changes, SessionData
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


def test_a_table_change_drops_every_statement_prepared_on_the_connection(
    postgresql_db: Database,
) -> None:
    # The locked merge's SELECT ... FOR UPDATE, prepared before the table changed, runs inside
    # a transaction, where a refused statement cannot run again. A load refused for the change
    # first drops every statement prepared on the connection (as asyncpg's own statement cache
    # does), so the locked merge after it prepares its SELECT again instead of failing.
    table = postgresql_db.table()
    store = DbStore(url=postgresql_db.url, table_name=table, pool_size=1)
    key = create(store, {"user": "alice"})

    async def locked_merge(name: str) -> None:
        # A save whose loaded version another save overtook: its update writes nothing, so it
        # merges holding the row's lock (the "lock" statement, in a transaction).
        late = await store.aload(key)
        overtaking = await store.aload(key)
        assert late is not None
        assert overtaking is not None
        overtaking.data["by"] = name
        assert await store.asave(key, overtaking, Changes(frozenset({"by"}))) == key
        late.data[name] = True
        assert await store.asave(key, late, Changes(frozenset({name}))) == key

    async def scenario() -> SessionData:
        try:
            assert store.async_driver == "asyncpg"
            await locked_merge("before")
            await asyncio.to_thread(_retype_expiry, postgresql_db, table)
            assert await store.aload(key) is not None  # refused once, prepared again
            await locked_merge("after")
            loaded = await store.aload(key)
            assert loaded is not None
            return loaded.data
        finally:
            await store.aclose()

    try:
        data = asyncio.run(scenario())
    finally:
        store.close()
    assert data == {"user": "alice", "by": "after", "before": True, "after": True}


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


class ManualClock:
    """A clock for :class:`Deadlines` that moves only when a test says: its sweep is then
    driven by hand, and no outcome depends on how fast the machine runs the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _unanswered(deadlines: Deadlines, owner: object, started: asyncio.Event) -> bool:
    """A statement of ``owner`` that never gets an answer; once cancelled, whether that was
    the timer's doing."""
    deadlines.start(owner)
    started.set()
    try:
        await asyncio.get_running_loop().create_future()
    except asyncio.CancelledError:
        return deadlines.timed_out(owner)
    finally:
        deadlines.stop(owner)
    raise AssertionError("not cancelled")


async def _cancelled_by_its_caller(deadlines: Deadlines, owner: object) -> bool:
    """Whether :meth:`Deadlines.timed_out` says a statement of ``owner`` its caller cancelled
    was cut by the timer."""
    started = asyncio.Event()
    task = asyncio.create_task(_unanswered(deadlines, owner, started))
    await started.wait()
    task.cancel()
    return await task


def test_a_task_cancelled_by_someone_else_is_not_a_timeout() -> None:
    async def scenario() -> bool:
        deadlines = Deadlines(60, asyncio.get_running_loop())
        try:
            return await _cancelled_by_its_caller(deadlines, object())
        finally:
            deadlines.close()

    assert asyncio.run(scenario()) is False


def test_a_cut_statement_that_ends_otherwise_leaves_no_timeout_behind() -> None:
    # The timer cut a statement, which then ended by another exception than CancelledError
    # (its connection lost on the way, say), so timed_out() never ran for it. The next
    # statement on that connection, cancelled by its caller, is still a cancellation.
    async def scenario() -> bool:
        clock = ManualClock()
        deadlines = Deadlines(60, asyncio.get_running_loop(), clock)
        connection = object()
        started = asyncio.Event()

        async def cut_then_lost() -> None:
            deadlines.start(connection)
            started.set()
            try:
                await asyncio.get_running_loop().create_future()
            except asyncio.CancelledError:
                raise ConnectionResetError("lost while being cancelled") from None
            finally:
                deadlines.stop(connection)

        first = asyncio.create_task(cut_then_lost())
        await started.wait()
        clock.now = 60.0
        deadlines._sweep()  # its deadline: cut
        with pytest.raises(ConnectionResetError):
            await first
        try:
            return await _cancelled_by_its_caller(deadlines, connection)
        finally:
            deadlines.close()

    assert asyncio.run(scenario()) is False


def test_only_the_late_statements_are_cut() -> None:
    async def scenario() -> tuple[bool, str]:
        clock = ManualClock()
        deadlines = Deadlines(60, asyncio.get_running_loop(), clock)
        late_started = asyncio.Event()
        release: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        late_task = asyncio.create_task(_unanswered(deadlines, "late", late_started))
        await late_started.wait()  # due at 60

        quick_started = asyncio.Event()

        async def quick() -> str:
            deadlines.start("quick")
            quick_started.set()
            try:
                await release
                return "quick answered"
            finally:
                deadlines.stop("quick")

        clock.now = 30.0
        quick_task = asyncio.create_task(quick())
        await quick_started.wait()  # due at 90
        clock.now = 60.0
        deadlines._sweep()  # cuts late only
        late_outcome = await late_task
        assert not quick_task.done()
        release.set_result(None)
        quick_outcome = await quick_task
        deadlines.close()
        return late_outcome, quick_outcome

    assert asyncio.run(scenario()) == (True, "quick answered")
