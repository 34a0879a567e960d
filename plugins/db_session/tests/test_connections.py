"""The sync driver's connections: the store keeps the ones it needed checked out between calls
(saving the pool's checkout and checkin), within the pool's limits, and gives them up on a
disconnect, on close() and in a forked child."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Database, create

from session_core import Changes, StoreUnreachableError
from session_core.testing import run_in_threads
from session_core_db import DbStore, timeouts
from session_core_db.statements import CompiledStatement
from session_core_db.timeouts import Watchdog


@pytest.fixture
def store(db: Database) -> Iterator[DbStore]:
    store = DbStore(url=db.url, table_name=db.table("conn"))
    yield store
    store.close()


def kept(store: DbStore) -> list[Any]:
    """The DB-API connections the store keeps checked out between calls, most recent last."""
    return [connection.dbapi for connection in store._sync.connections._idle]


def checked_out(store: DbStore) -> int:
    pool = store.engine.pool
    assert isinstance(pool, sa.pool.QueuePool)
    return pool.checkedout()


# ---------------------------------------------------------------------- reuse


def test_calls_reuse_one_kept_connection(store: DbStore) -> None:
    key = create(store, {"a": 1})
    [first] = kept(store)
    for _ in range(5):
        record = store.load(key)
        assert record is not None
        record.data["a"] = 2
        assert store.save(key, record, Changes(frozenset({"a"}))) == key
    store.delete(create(store, {"b": 1}))
    assert kept(store) == [first]
    assert checked_out(store) == 1  # the kept one: nothing else is held


def test_many_threads_never_hold_more_than_the_pool_allows(db: Database) -> None:
    # More threads than connections: a call that has to wait for the pool gets the connection
    # the next call puts back, instead of waiting for pool_timeout while it sits kept.
    store = DbStore(
        url=db.url, table_name=db.table("threads"), pool_size=2, max_overflow=1, pool_timeout=30
    )
    try:
        key = create(store, {"n": 0})
        highest = 0
        # A call that waited out pool_timeout would fail (the pool raises), failing the test.

        def work(n: int) -> None:
            nonlocal highest
            for round_ in range(25):
                record = store.load(key)
                assert record is not None
                if round_ % 5 == n % 5:
                    record.data[f"t{n}"] = round_
                    assert store.save(key, record, Changes(frozenset({f"t{n}"}))) == key
                highest = max(highest, checked_out(store))

        run_in_threads(work, 12)
        assert highest <= 3
        # The store keeps at most pool_size, so that the engine's overflow is left for others.
        assert len(kept(store)) <= 2
        assert checked_out(store) <= 2
        with store.engine.connect() as connection:  # capacity is left: no wait, no timeout
            assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1
        record = store.load(key)
        assert record is not None
        assert set(record.data) == {"n", *(f"t{n}" for n in range(12))}
    finally:
        store.close()


def test_without_overflow_nothing_is_kept_from_other_users(db: Database) -> None:
    # max_overflow = 0: every connection the store kept idle would be one the app's own use of
    # store.engine could not have. So the whole pool stays free between the store's calls.
    store = DbStore(
        url=db.url, table_name=db.table("nooverflow"), pool_size=3, max_overflow=0, pool_timeout=2
    )
    try:
        key = create(store, {"n": 0})

        def work(n: int) -> None:
            for _ in range(10):
                assert store.load(key) is not None

        run_in_threads(work, 6)
        assert kept(store) == []
        # Had the store kept one, the third would wait out pool_timeout and fail.
        with store.engine.connect() as a, store.engine.connect() as b, store.engine.connect() as c:
            for connection in (a, b, c):
                assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        store.close()


def test_at_most_pool_size_connections_are_kept(db: Database) -> None:
    store = DbStore(url=db.url, table_name=db.table("size"), pool_size=2, max_overflow=3)
    try:
        key = create(store, {"n": 0})
        connections = store._sync.connections
        held = [connections.acquire() for _ in range(5)]  # the pool's whole capacity
        assert checked_out(store) == 5
        for connection in held:
            connections.release(connection)
        assert len(kept(store)) == 2
        assert checked_out(store) == 2  # the other three went back (and, overflow, closed)
        assert store.load(key) is not None
    finally:
        store.close()


def test_a_call_waiting_for_the_pool_gets_the_next_connection_put_back(db: Database) -> None:
    store = DbStore(
        url=db.url, table_name=db.table("wait"), pool_size=1, max_overflow=1, pool_timeout=3
    )
    try:
        key = create(store, {"a": 1})
        connections = store._sync.connections
        first, second = connections.acquire(), connections.acquire()  # the pool's capacity
        outcome: list[object] = []
        waiter = threading.Thread(target=lambda: outcome.append(store.load(key)))
        waiter.start()
        deadline = time.monotonic() + 60
        while connections._waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert connections._waiting == 1  # the waiter is in _checkout, asking the pool
        # The store would keep this one (it keeps up to pool_size = 1), but someone waits:
        # it goes to the pool, where the waiter gets it (kept, the waiter would time out).
        connections.release(first)
        assert kept(store) == []
        waiter.join()
        assert len(outcome) == 1
        assert outcome[0] is not None
        connections.release(second)
        assert len(kept(store)) == 1
    finally:
        store.close()


def test_a_finished_event_loop_is_not_kept_alive(db: Database) -> None:
    # Each event loop gets an engine of its own; once the loop has shut down (asyncio.run), the
    # store holds nothing of it, so a program or a test suite that runs many loops keeps none.
    store = DbStore(url=db.url, table_name=db.table("loops"))
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def scenario(key: str) -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        assert await store.aload(key) is not None

    try:
        key = create(store, {"a": 1})
        for _ in range(3):
            asyncio.run(scenario(key))
        gc.collect()
        assert [ref() for ref in loops] == [None, None, None]
        asyncio.run(scenario(key))  # a new loop still gets an engine
    finally:
        store.close()


def test_nothing_is_kept_without_keep_connections(db: Database) -> None:
    # Each call checks a connection out of the pool and back in, sync and async: nothing stays
    # checked out between calls, and the one connection the pool opened serves every call.
    store = DbStore(url=db.url, table_name=db.table("nokeep"), keep_connections=False)
    served: set[int] = set()

    async def scenario() -> None:
        try:
            for _ in range(3):
                assert await store.aload(key) is not None
            loop_engine = await store._async.connections.for_loop()
            assert loop_engine is not None
            assert loop_engine.idle == []
        finally:
            await store.aclose()

    try:
        key = create(store, {"a": 1})
        for _ in range(5):
            assert store.load(key) is not None
            assert kept(store) == []
            assert checked_out(store) == 0
            with store.engine.connect() as connection:  # the pool's only one
                served.add(id(connection.connection.dbapi_connection))
        assert len(served) == 1
        asyncio.run(scenario())
    finally:
        store.close()


def test_nothing_is_kept_for_a_given_engine_or_with_pre_ping(db: Database) -> None:
    engine = sa.create_engine(db.url)
    given = DbStore(engine=engine, table_name=db.table("given"))
    pinged = DbStore(url=db.url, table_name=db.table("ping"), pool_pre_ping=True)
    try:
        for store in (given, pinged):
            key = create(store, {"a": 1})
            assert store.load(key) is not None
            assert kept(store) == []
            assert checked_out(store) == 0
    finally:
        given.close()
        pinged.close()
        engine.dispose()


def test_a_kept_connection_is_recycled_after_pool_recycle(db: Database) -> None:
    store = DbStore(url=db.url, table_name=db.table("recycle"), pool_recycle=0.3)
    try:
        key = create(store, {"a": 1})
        [first] = kept(store)
        assert store.load(key) is not None
        assert kept(store) == [first]
        time.sleep(0.5)
        assert store.load(key) is not None
        [second] = kept(store)
        assert second is not first
        assert checked_out(store) == 1
    finally:
        store.close()


def test_close_gives_the_kept_connections_back(store: DbStore) -> None:
    key = create(store, {"a": 1})
    pool = store.engine.pool
    assert isinstance(pool, sa.pool.QueuePool)
    assert pool.checkedout() == 1
    store.close()
    assert kept(store) == []
    assert pool.checkedout() == 0
    assert store.load(key) is not None  # usable again, on a fresh pool


def test_a_call_that_fails_gives_up_its_connection(store: DbStore) -> None:
    key = create(store, {"a": 1})
    [first] = kept(store)
    # A statement the database refuses (not a disconnect): the connection goes back to the
    # pool without its cursor, and the next call works.
    original = store._sql.compiled["load"]
    assert ".data," in original.sql
    store._sql.compiled["load"] = type(original)(
        original.sql.replace(".data,", ".no_such_column,", 1), original.order, original.defaults
    )
    try:
        with pytest.raises(StoreUnreachableError):
            store.load(key)
    finally:
        store._sql.compiled["load"] = original
    assert first not in kept(store)
    assert store.load(key) is not None


# ---------------------------------------------------------------------- disconnects


def _backend_id(server: Database, dbapi_connection: Any) -> int:
    query = "SELECT pg_backend_pid()" if server.kind == "postgresql" else "SELECT CONNECTION_ID()"
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(query)
        return int(cursor.fetchone()[0])
    finally:
        cursor.close()


def _kill(server: Database, ids: list[int]) -> None:
    # Autocommit: pg_stat_activity is a snapshot taken once per transaction.
    engine = server.engine.execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for backend in ids:
            if server.kind == "postgresql":
                connection.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": backend})
            else:
                connection.execute(sa.text(f"KILL {int(backend)}"))
        listing = (
            "SELECT pid FROM pg_stat_activity"
            if server.kind == "postgresql"
            else "SELECT ID FROM information_schema.PROCESSLIST"
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            alive = {int(row[0]) for row in connection.execute(sa.text(listing))}
            if not alive & set(ids):
                return
            time.sleep(0.05)
    pytest.fail(f"the server did not end connections {ids}")


def test_disconnect_fails_one_call_and_the_store_recovers(server: Database) -> None:
    store = DbStore(url=server.url, table_name=server.table("kill"))
    try:
        key = create(store, {"user": "alice"})
        connections = store._sync.connections
        held = [connections.acquire() for _ in range(3)]
        for connection in held:
            connections.release(connection)
        assert len(kept(store)) == 3
        _kill(server, [_backend_id(server, dbapi) for dbapi in kept(store)])
        with pytest.raises(StoreUnreachableError) as caught:
            store.load(key)
        assert caught.value.operation == "load"
        # The other kept connections lost their server too: they were let go with the first,
        # so no further request fails.
        assert kept(store) == []
        for _ in range(5):
            record = store.load(key)
            assert record is not None
            assert record.data == {"user": "alice"}
        assert len(kept(store)) == 1
    finally:
        store.close()


@pytest.mark.parametrize("keep", [False, True])
def test_disconnect_replaces_the_connections_idle_in_the_pool(server: Database, keep: bool) -> None:
    # Three connections idle in the pool (none kept by the store) lose their server: the first
    # call on one fails, and the pool replaces the other two when it next hands them out
    # (through a public checkout event: no private SQLAlchemy name), so no further call fails.
    store = DbStore(url=server.url, table_name=server.table("stale"), keep_connections=keep)
    try:
        key = create(store, {"user": "alice"})
        store._sync.connections.close()  # nothing kept: every connection is in the pool
        held = [store.engine.raw_connection() for _ in range(3)]
        ids = [_backend_id(server, proxy.dbapi_connection) for proxy in held]
        for proxy in held:
            proxy.close()
        _kill(server, ids)
        with pytest.raises(StoreUnreachableError):
            store.load(key)
        # Three calls at once (one after another, the pool would hand out the replaced one
        # again and again): each on a live connection.
        held = [store._sync.connections.acquire() for _ in range(3)]
        try:
            assert not {_backend_id(server, connection.dbapi) for connection in held} & set(ids)
        finally:
            for connection in held:
                store._sync.connections.release(connection)
        record = store.load(key)
        assert record is not None
        assert record.data == {"user": "alice"}
    finally:
        store.close()


def test_a_given_engine_replaces_older_connections_and_loses_the_listeners_on_close(
    sqlite_db: Database,
) -> None:
    # After a disconnect the store listens to the engine's connects and checkouts, to replace
    # each connection opened before it once; an engine handed over outlives the store, and
    # keeps no listener of it.
    engine = sa.create_engine(sqlite_db.url, pool_size=2, max_overflow=0)
    store = DbStore(engine=engine, table_name=sqlite_db.table("given"))
    try:
        first, second = engine.raw_connection(), engine.raw_connection()
        old = [first.dbapi_connection, second.dbapi_connection]
        first.close()
        second.close()
        stale = store._sync.connections.stale
        stale.disconnected(RuntimeError("lost"))
        assert sa.event.contains(engine, "checkout", stale._checkout)
        third, fourth = engine.raw_connection(), engine.raw_connection()
        new = [third.dbapi_connection, fourth.dbapi_connection]
        third.close()
        fourth.close()
        assert not any(connection in old for connection in new)
        # Opened after the disconnect: handed out again as they are.
        fifth = engine.raw_connection()
        assert fifth.dbapi_connection in new
        fifth.close()
        store.close()
        assert not sa.event.contains(engine, "checkout", stale._checkout)
        assert not sa.event.contains(engine, "connect", stale._connect)
    finally:
        engine.dispose()


def test_two_stores_on_one_engine_keep_their_own_stamps(sqlite_db: Database) -> None:
    # Two stores handed the same engine each count the disconnects they saw; neither may read
    # the other's stamp, or once their counts differ every fresh connection looks stale to one
    # of them and the engine (the app's own queries included) can hand out no connection.
    engine = sa.create_engine(sqlite_db.url, pool_size=2, max_overflow=0)
    first = DbStore(engine=engine, table_name=sqlite_db.table("one"))
    second = DbStore(engine=engine, table_name=sqlite_db.table("two"))
    try:
        for store in (first, second, first):
            store._sync.connections.stale.disconnected(RuntimeError("lost"))
        for _ in range(3):
            with engine.connect() as connection:
                assert connection.exec_driver_sql("SELECT 1").scalar() == 1
        key = create(first, {"a": 1})
        assert first.load(key) is not None
        key = create(second, {"b": 2})
        assert second.load(key) is not None
    finally:
        first.close()
        second.close()
        engine.dispose()


def test_async_disconnect_fails_one_call_and_the_store_recovers(server: Database) -> None:
    store = DbStore(url=server.url, table_name=server.table("akill"))
    assert store.native_async
    key = create(store, {"user": "alice"})
    query = "SELECT pg_backend_pid()" if server.kind == "postgresql" else "SELECT CONNECTION_ID()"

    async def scenario() -> StoreUnreachableError:
        try:
            assert await store.aload(key) is not None  # opens the loop's kept connection
            loop_engine = await store._async.connections.for_loop()
            assert loop_engine is not None
            [held] = loop_engine.idle
            backend = (await held.connection.execute(sa.text(query))).scalar_one()
            await held.connection.rollback()
            await asyncio.to_thread(_kill, server, [int(backend)])
            with pytest.raises(StoreUnreachableError) as caught:
                await store.aload(key)
            for _ in range(3):  # the dead connection was invalidated, not pooled again
                record = await store.aload(key)
                assert record is not None
                assert record.data == {"user": "alice"}
            return caught.value
        finally:
            await store.aclose()

    try:
        assert asyncio.run(scenario()).operation == "load"
    finally:
        store.close()


def test_named_placeholders_become_positional_and_literal_percents_stay(
    server: Database,
) -> None:
    # psycopg and PyMySQL compile to %(name)s; the store hands them %s and a tuple instead.
    statement = sa.select(
        sa.literal_column("'100%'").label("p"), sa.bindparam("x", type_=sa.Integer()) + 1
    )
    compiled = CompiledStatement.of(statement, server.engine.dialect)
    assert "%(" not in compiled.sql
    assert compiled.order == ("x", "param_1")
    assert compiled.defaults == {"param_1": 1}  # fixed by the statement; x is the caller's
    connection = server.engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(compiled.sql, compiled.parameters({"x": 41}))
        assert tuple(cursor.fetchone()) == ("100%", 42)
        cursor.close()
    finally:
        connection.close()


# ---------------------------------------------------------------------- fork


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # multi-threaded fork, 3.12+
def test_forked_child_never_touches_the_parents_connections(db: Database) -> None:
    store = DbStore(url=db.url, table_name=db.table("fork"))
    try:
        key = create(store, {"user": "alice"})
        [parent_connection] = kept(store)
        parent_id = _backend_id(db, parent_connection) if db.kind != "sqlite" else 0
        pid = os.fork()
        if pid == 0:  # the child: report through the exit status, never return into pytest
            status = 1
            try:
                assert kept(store) == []
                child_key = create(store, {"user": "child"})
                loaded = store.load(child_key)
                assert loaded is not None
                assert store.load(key) is not None
                [child_connection] = kept(store)
                assert child_connection is not parent_connection
                if db.kind != "sqlite":
                    assert _backend_id(db, child_connection) != parent_id
                status = 0
            finally:
                os._exit(status)
        _, wait_status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(wait_status) == 0
        # The parent's connection survived the child (which neither used nor closed it).
        for _ in range(3):
            assert store.load(key) is not None
        assert kept(store) == [parent_connection]
        if db.kind != "sqlite":
            assert _backend_id(db, parent_connection) == parent_id
    finally:
        store.close()


# ---------------------------------------------------------------------- the watchdog


def test_watchdog_thread_ends_when_idle_and_comes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timeouts, "IDLE_SECONDS", 0.3)
    watchdog = Watchdog(0.1)
    try:
        marker = object()
        assert watchdog.stop(watchdog.start(marker)) is False
        first = watchdog._thread
        assert first is not None
        first.join(timeout=5)
        assert not first.is_alive()
        assert watchdog._thread is None
        assert watchdog.stop(watchdog.start(marker)) is False
        assert watchdog._thread is not None
        assert watchdog._thread is not first
    finally:
        watchdog.close()


def test_watchdog_keeps_its_thread_asleep_between_statements() -> None:
    # Registering a statement does not wake the thread (that cost a thread switch per
    # statement); it still wakes by itself in time for every deadline.
    watchdog = Watchdog(0.5)
    wakes = 0
    cond = watchdog._cond
    original_wait = cond.wait

    def counting_wait(timeout: float | None = None) -> bool:
        nonlocal wakes
        wakes += 1
        return original_wait(timeout)

    cond.wait = counting_wait  # type: ignore[method-assign]
    try:
        marker = object()
        for _ in range(50):
            assert watchdog.stop(watchdog.start(marker)) is False
            time.sleep(0.002)  # time for the thread to run, had it been woken
        assert wakes <= 3
        thread = watchdog._thread
        assert thread is not None
        assert thread.is_alive()
    finally:
        watchdog.close()


# ---------------------------------------------------------------------- interrupted calls


class _Interrupted(Exception):
    """What a signal handler raises mid-statement (like Celery's SoftTimeLimitExceeded)."""


def test_a_call_interrupted_inside_the_driver_never_leaves_its_connection(
    server: Database,
) -> None:
    # A load is interrupted while its statement runs (the driver is waiting for the reply):
    # the connection must not be kept or pooled, or the next call would find another command
    # in progress, or read the interrupted one's reply.
    import signal

    store = DbStore(url=server.url, table_name=server.table("interrupt"), timeout=0)
    try:
        alice, bob = create(store, {"user": "alice"}), create(store, {"user": "bob"})
        load = store._sql.compiled["load"]
        slow = "(SELECT SLEEP(0.5)) z" if server.kind == "mariadb" else "(SELECT pg_sleep(0.5)) z"
        table = store.table.name
        store._sql.compiled["load"] = dataclasses.replace(
            load, sql=load.sql.replace(f"FROM {table}", f"FROM {slow}, {table}", 1)
        )
        assert store._sql.compiled["load"].sql != load.sql

        def interrupt(*_: object) -> None:
            raise _Interrupted

        running = (
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%SLEEP(0.5)%'"
            " AND ID <> CONNECTION_ID()"
            if server.kind == "mariadb"
            else "SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(0.5)%'"
            " AND state = 'active' AND pid <> pg_backend_pid()"
        )
        main = threading.get_ident()

        def interrupt_once_running() -> None:
            # The signal comes while the server runs the statement, so the driver is waiting
            # for its reply: certain, whatever the machine's load.
            with server.engine.connect() as watcher:
                deadline = time.monotonic() + 60
                while not watcher.execute(sa.text(running)).scalar_one():
                    assert time.monotonic() < deadline
                    watcher.rollback()
            signal.pthread_kill(main, signal.SIGALRM)

        previous = signal.signal(signal.SIGALRM, interrupt)
        watcher = threading.Thread(target=interrupt_once_running)
        try:
            watcher.start()
            with pytest.raises(_Interrupted):
                store.load(alice)
        finally:
            watcher.join()
            signal.signal(signal.SIGALRM, previous)
        store._sql.compiled["load"] = load
        assert kept(store) == []
        time.sleep(0.6)  # the interrupted statement has finished on the server by now
        for _ in range(5):
            record = store.load(bob)
            assert record is not None
            assert record.data == {"user": "bob"}
    finally:
        store.close()


def test_a_call_in_flight_during_close_does_not_keep_its_connection(db: Database) -> None:
    store = DbStore(url=db.url, table_name=db.table("closerace"))
    try:
        key = create(store, {"n": 1})
        started, closed = threading.Event(), threading.Event()
        execute = store._sync._execute

        def held(*args: Any) -> Any:
            started.set()
            assert closed.wait(5)
            return execute(*args)

        store._sync._execute = held  # type: ignore[method-assign]
        loader = threading.Thread(target=store.load, args=(key,))
        loader.start()
        assert started.wait(5)
        store.close()
        closed.set()
        loader.join(5)
        store._sync._execute = execute  # type: ignore[method-assign]
        assert kept(store) == []  # returned to the pool, not kept past close()
        assert checked_out(store) == 0
    finally:
        store.close()


# ---------------------------------------------------------------------- merges take turns


def _count_overlapping_merges(store: DbStore) -> dict[str, int]:
    """Wrap the store's merge plan to record how many run at once (and how many ran)."""
    seen = {"now": 0, "most": 0, "merges": 0}
    merge_plan = store._plans.merge

    def counted(*args: Any) -> Any:
        seen["now"] += 1
        seen["merges"] += 1
        seen["most"] = max(seen["most"], seen["now"])
        try:
            return (yield from merge_plan(*args))
        finally:
            seen["now"] -= 1

    store._plans.merge = counted  # type: ignore[method-assign]
    return seen


def _check_turns(store: DbStore, key: str, seen: dict[str, int]) -> None:
    """8 writers x 15 rounds, all loading before any saves: in each round one writer's update
    went through and the other 7 merged, their merges never overlapped, nothing was lost."""
    assert seen["merges"] == 7 * 15
    assert seen["most"] == 1
    record = store.load(key)
    assert record is not None
    assert record.data == {"n": 0, **{f"t{n}": 14 for n in range(8)}}


def test_merges_of_one_session_take_turns_in_threads(db: Database) -> None:
    # Writers of one session that all loaded the same version: every save but the first has
    # to merge. Within one process the merges take turns (no writer can lose race after race
    # to its neighbours), so they never overlap, and none gives up.
    store = DbStore(url=db.url, table_name=db.table("turns"))
    try:
        key = create(store, {"n": 0})
        seen = _count_overlapping_merges(store)
        loaded, saved = threading.Barrier(8), threading.Barrier(8)

        def work(n: int) -> None:
            for round_ in range(15):
                record = store.load(key)
                assert record is not None
                loaded.wait()  # every writer holds the same version: all but one must merge
                record.data[f"t{n}"] = round_
                assert store.save(key, record, Changes(frozenset({f"t{n}"}))) == key
                saved.wait()  # the next round loads what this one wrote

        run_in_threads(work, 8)
        _check_turns(store, key, seen)
    finally:
        store.close()


def test_merges_of_one_session_take_turns_in_tasks(db: Database) -> None:
    store = DbStore(url=db.url, table_name=db.table("aturns"))
    try:
        key = create(store, {"n": 0})
        seen = _count_overlapping_merges(store)

        barriers: list[asyncio.Barrier] = []

        async def work(n: int) -> None:
            loaded, saved = barriers
            for round_ in range(15):
                record = await store.aload(key)
                assert record is not None
                await loaded.wait()  # every task holds the same version: all but one merge
                record.data[f"t{n}"] = round_
                assert await store.asave(key, record, Changes(frozenset({f"t{n}"}))) == key
                await saved.wait()

        async def scenario() -> None:
            barriers.extend([asyncio.Barrier(8), asyncio.Barrier(8)])
            try:
                await asyncio.gather(*(work(n) for n in range(8)))
            finally:
                await store.aclose()

        asyncio.run(scenario())
        _check_turns(store, key, seen)
    finally:
        store.close()


# ---------------------------------------------------------------------- error chains


def test_a_failed_checkout_chains_only_its_real_cause(db: Database) -> None:
    # The store keeps no idle connection and the pool is full: the call fails on the pool's
    # timeout, and that is all its traceback shows (no "IndexError: pop from empty list" from
    # looking at the empty stack of kept connections).
    store = DbStore(
        url=db.url, table_name=db.table("chain"), pool_size=1, max_overflow=1, pool_timeout=0.1
    )
    held: list[sa.Connection] = []
    try:
        key = create(store, {"a": 1})
        store.close()  # the kept connection goes back to a fresh pool
        held = [store.engine.connect(), store.engine.connect()]  # all the pool allows
        with pytest.raises(StoreUnreachableError) as caught:
            store.load(key)
        chain: list[BaseException] = []
        error: BaseException | None = caught.value
        while error is not None and len(chain) < 10:
            chain.append(error)
            error = error.__cause__ or error.__context__
        assert [type(e) for e in chain] == [StoreUnreachableError, sa.exc.TimeoutError]
    finally:
        for connection in held:
            connection.close()
        store.close()


# ---------------------------------------------------------------------- async connections


def test_async_calls_reuse_one_kept_connection_closed_with_its_loop(db: Database) -> None:
    store = DbStore(url=db.url, table_name=db.table("aconn"))
    key = create(store, {"a": 1})
    seen: list[Any] = []

    async def scenario() -> None:
        for _ in range(5):
            record = await store.aload(key)
            assert record is not None
            record.data["a"] = 2
            assert await store.asave(key, record, Changes(frozenset({"a"}))) == key
        loop_engine = await store._async.connections.for_loop()
        assert loop_engine is not None
        seen.extend(loop_engine.idle)
        seen.append(loop_engine)

    try:
        asyncio.run(scenario())
        *held, loop_engine = seen
        if not _queue_pooled(loop_engine):
            assert held == []
            return
        assert len(held) == 1  # one connection served every call
        # The loop's shutdown gave it back and closed the loop's pool.
        assert loop_engine.idle == []
        assert held[0].connection.closed
    finally:
        store.close()


def test_a_kept_async_connection_is_recycled_after_pool_recycle(db: Database) -> None:
    store = DbStore(url=db.url, table_name=db.table("arecycle"), pool_recycle=0.3)
    key = create(store, {"a": 1})
    kept_ones: list[Any] = []

    async def kept_now() -> Any:
        assert await store.aload(key) is not None
        loop_engine = await store._async.connections.for_loop()
        assert loop_engine is not None
        if not _queue_pooled(loop_engine):
            assert loop_engine.idle == []
            return None
        [held] = loop_engine.idle
        return held

    async def scenario() -> None:
        try:
            first = await kept_now()
            if first is None:
                return
            assert await kept_now() is first  # young enough: kept
            await asyncio.sleep(0.5)  # past pool_recycle
            second = await kept_now()
            assert second is not first
            assert first.connection.closed  # given back to the pool, which replaces it
            kept_ones.extend([first, second])
        finally:
            await store.aclose()

    try:
        asyncio.run(scenario())
        assert len(kept_ones) == 2 or db.kind == "sqlite"
    finally:
        store.close()


def _queue_pooled(loop_engine: Any) -> bool:
    """Whether the loop's engine has a queue pool: SQLAlchemy 2.0 gives an aiosqlite file a
    NullPool, from which nothing is kept (2.1 gives it a queue pool)."""
    return isinstance(loop_engine.engine.sync_engine.pool, sa.pool.QueuePool)
