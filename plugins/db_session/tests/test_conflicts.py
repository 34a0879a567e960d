"""Conflicts between writers: a save that lost a race once takes the row lock and cannot lose
again; a statement the database refuses because of another writer (deadlock, lock wait
timeout, busy SQLite file) is tried again, and what is left is a StoreConflictError, never a
claim that the server is unreachable. Every conflict here is made certain: another connection
holds the lock, and events say when each side has got where it must be."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Database, create

from session_core import Changes, SessionRecord, StoreUnreachableError, hash_key
from session_core_db import DbStore, StoreConflictError, sync_driver
from session_core_db.conflicts import is_conflict
from session_core_db.plans import Step


class RowLock:
    """Another connection holding the lock of one session's row (on SQLite, the file's write
    lock), as a concurrent writer's transaction would."""

    def __init__(self, db: Database, table: str, key: str) -> None:
        self.db, self.table, self.key = db, table, key
        self._sqlite: sqlite3.Connection | None = None
        self._connection: sa.Connection | None = None

    def take(self) -> None:
        if self.db.kind == "sqlite":
            self._sqlite = sqlite3.connect(sqlite_path(self.db), isolation_level=None)
            self._sqlite.execute("BEGIN IMMEDIATE")
            return
        self._connection = self.db.engine.connect()
        self._connection.begin()
        self._connection.execute(
            sa.text(f"SELECT version FROM {self.table} WHERE key_hash = :h FOR UPDATE"),
            {"h": hash_key(self.key)},
        )

    def release(self) -> None:
        if self._sqlite is not None:
            self._sqlite.rollback()
            self._sqlite.close()
            self._sqlite = None
        if self._connection is not None:
            self._connection.rollback()
            self._connection.close()
            self._connection = None


def sqlite_path(db: Database) -> str:
    path = sa.make_url(db.url).database
    assert path
    return path


def row_is_locked(db: Database, table: str, key: str) -> bool:
    """Whether another writer could lock the row right now (asked without waiting)."""
    if db.kind == "sqlite":
        probe = sqlite3.connect(sqlite_path(db), timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            refusal: BaseException = exc
        else:
            return False
        finally:
            probe.close()
        assert is_conflict(refusal)  # "database is locked", nothing else
        return True
    with db.engine.connect() as connection:
        try:
            connection.execute(
                sa.text(f"SELECT version FROM {table} WHERE key_hash = :h FOR UPDATE NOWAIT"),
                {"h": hash_key(key)},
            )
        except sa.exc.OperationalError as exc:
            refusal = exc
        else:
            return False
        finally:
            connection.rollback()
    assert is_conflict(refusal)  # the lock, nothing else
    return True


def short_lock_waits(db: Database) -> dict[str, Any]:
    """Store options that make a statement waiting for a lock give up quickly."""
    if db.kind == "postgresql":  # libpq's options: psycopg's alone (asyncpg refuses them)
        return {"connect_args": {"options": "-c lock_timeout=100"}, "native_async": False}
    if db.kind == "mariadb":
        return {"connect_args": {"init_command": "SET SESSION innodb_lock_wait_timeout=1"}}
    return {}


@pytest.fixture
def table(db: Database) -> str:
    return db.table("conflict")


@pytest.fixture
def store(db: Database, table: str) -> Iterator[DbStore]:
    store = DbStore(url=db.url, table_name=table, **short_lock_waits(db))
    if db.kind == "sqlite":
        # After the store's own PRAGMAs: a busy file is reported at once, not after 15 s.
        sa.event.listen(store.engine, "connect", lambda c, _: c.execute("PRAGMA busy_timeout=0"))
    yield store
    store.close()


def stale(store: DbStore, key: str) -> SessionRecord:
    """A record of ``key`` that another writer has saved over since it was loaded."""
    record = store.load(key)
    assert record is not None
    other = store.load(key)
    assert other is not None
    other.data["other"] = 1
    assert store.save(key, other, Changes(frozenset({"other"}))) == key
    return record


# ---------------------------------------------------------------------- the locked merge


def test_after_a_conflict_the_save_holds_the_row_lock_and_wins(
    db: Database, table: str, store: DbStore
) -> None:
    key = create(store, {"n": 0})
    first = stale(store, key)  # its usual update is certain to find the row changed
    rival_store = DbStore(url=db.url, table_name=table)
    rival = rival_store.load(key)  # current: its update needs no merge
    assert rival is not None
    locked, go, rival_sending = threading.Event(), threading.Event(), threading.Event()
    statements: list[str] = []
    execute = store._sync._execute

    def paused(connection: Any, step: Step) -> Any:
        statements.append(step.statement)
        result = execute(connection, step)
        if step.statement == "lock":  # the row is read, the merge not yet written
            locked.set()
            assert go.wait(30)
        return result

    rival_execute = rival_store._sync._execute

    def announced(connection: Any, step: Step) -> Any:
        if step.statement == "update":
            rival_sending.set()
        return rival_execute(connection, step)

    store._sync._execute = paused  # type: ignore[method-assign]
    rival_store._sync._execute = announced  # type: ignore[method-assign]
    results: dict[str, object] = {}

    def save_first() -> None:
        first.data["a"] = 1
        results["first"] = store.save(key, first, Changes(frozenset({"a"})))

    def save_rival() -> None:
        rival.data["b"] = 2
        results["rival"] = rival_store.save(key, rival, Changes(frozenset({"b"})))

    saver = threading.Thread(target=save_first)
    saver.start()
    try:
        assert locked.wait(30)
        # While the merge is between its read and its write, nobody else can take the row.
        assert row_is_locked(db, table, key)
        racer = threading.Thread(target=save_rival)
        racer.start()
        assert rival_sending.wait(30)
    finally:
        go.set()
        saver.join(30)
    racer.join(30)
    rival_store.close()
    assert results == {"first": key, "rival": key}
    # The usual update lost; the locked merge then wrote at its first try.
    assert statements == ["update", "begin", "lock", "update", "commit"]
    record = store.load(key)
    assert record is not None
    assert record.data == {"n": 0, "other": 1, "a": 1, "b": 2}
    assert not row_is_locked(db, table, key)


def test_async_save_after_a_conflict_holds_the_row_lock(db: Database, table: str) -> None:
    store = DbStore(url=db.url, table_name=table)
    key = create(store, {"n": 0})
    first = stale(store, key)
    locked, go = threading.Event(), threading.Event()
    names: list[str] = []
    execute = store._async._execute

    async def paused(held: Any, known: Any, step: Step) -> Any:
        result = await execute(held, known, step)
        names.append(step.statement)
        if names[-2:] == ["begin", "lock"]:  # the row is read, the merge not yet written
            locked.set()
            await asyncio.to_thread(go.wait, 30)
        return result

    async def scenario() -> str | None:
        try:
            first.data["a"] = 1
            return await store.asave(key, first, Changes(frozenset({"a"})))
        finally:
            await store.aclose()

    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(asyncio.run(scenario()))
        except BaseException as exc:  # reported in the test's thread
            outcome.append(exc)
            locked.set()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store._async, "_execute", paused)
        runner = threading.Thread(target=run)
        runner.start()
        try:
            assert locked.wait(30)
            assert row_is_locked(db, table, key), outcome
        finally:
            go.set()
            runner.join(30)
    assert outcome == [key]
    assert names[-4:] == ["begin", "lock", "update", "commit"]
    record = store.load(key)
    store.close()
    assert record is not None
    assert record.data == {"n": 0, "other": 1, "a": 1}


def test_locked_merge_does_not_bring_back_a_deleted_session(store: DbStore) -> None:
    key = create(store, {"n": 0})
    record = stale(store, key)
    store.delete(key)
    record.data["a"] = 1
    assert store.save(key, record, Changes(frozenset({"a"}))) is None
    assert store.load(key) is None


# ---------------------------------------------------------------------- refused statements


def test_a_statement_refused_by_a_lock_is_tried_again(
    db: Database, table: str, store: DbStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = create(store, {"n": 0})
    record = store.load(key)
    assert record is not None
    holder = RowLock(db, table, key)
    holder.take()
    pauses: list[int] = []

    def release_then_retry(attempt: int) -> float:
        pauses.append(attempt)
        holder.release()  # the other writer commits while this one waits to try again
        return 0.0

    monkeypatch.setattr(sync_driver, "pause", release_then_retry)
    try:
        record.data["n"] = 1
        assert store.save(key, record, Changes(frozenset({"n"}))) == key
    finally:
        holder.release()
    assert pauses == [0]
    loaded = store.load(key)
    assert loaded is not None
    assert loaded.data == {"n": 1}


def test_conflicts_that_go_on_are_a_conflict_error_not_an_outage(
    db: Database, table: str, store: DbStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = create(store, {"n": 0})
    record = store.load(key)
    assert record is not None
    monkeypatch.setattr(sync_driver, "ATTEMPTS", 2)
    monkeypatch.setattr(sync_driver, "pause", lambda attempt: 0.0)
    holder = RowLock(db, table, key)
    holder.take()
    try:
        record.data["n"] = 1
        with pytest.raises(StoreConflictError) as caught:
            store.save(key, record, Changes(frozenset({"n"})))
    finally:
        holder.release()
    error = caught.value
    # The server answered: the message says so, yet visitors get the outage's 503 and
    # Retry-After, since trying again later is what helps.
    assert isinstance(error, StoreUnreachableError)
    assert (error.store, error.operation, error.attempts) == ("db", "save", 2)
    assert error.target == store.target
    assert "concurrent writers" in str(error)
    assert is_conflict(error.__cause__)  # the driver's own error, chained
    # The connection was fine: the next save works on the same store.
    assert store.save(key, record, Changes(frozenset({"n"}))) == key


def test_real_deadlocks_are_recognised_as_conflicts(server: Database) -> None:
    table = server.table("deadlock")
    store = DbStore(url=server.url, table_name=table)
    keys = [create(store, {"n": n}) for n in range(2)]
    store.close()
    select = sa.text(f"SELECT version FROM {table} WHERE key_hash = :h FOR UPDATE")
    first, second = server.engine.connect(), server.engine.connect()
    errors: list[sa.exc.DBAPIError] = []
    holds = [threading.Event(), threading.Event()]

    def lock_both(number: int, connection: sa.Connection) -> None:
        # Each holds its row and only then asks for the other's, once the other holds it too:
        # a cycle the database must break by refusing one of them.
        try:
            connection.begin()
            connection.execute(select, {"h": hash_key(keys[number])})
            holds[number].set()
            assert holds[1 - number].wait(30)
            connection.execute(select, {"h": hash_key(keys[1 - number])})
        except sa.exc.DBAPIError as exc:
            errors.append(exc)
        finally:
            connection.rollback()

    try:
        other = threading.Thread(target=lock_both, args=(0, first))
        other.start()
        lock_both(1, second)
        other.join(60)
    finally:
        first.close()
        second.close()
    assert len(errors) == 1
    assert is_conflict(errors[0])
    original: Any = errors[0].orig
    code = original.args[0] if server.kind == "mariadb" else original.sqlstate
    assert code == {"mariadb": 1213, "postgresql": "40P01"}[server.kind]


def test_other_errors_are_not_conflicts(db: Database) -> None:
    with db.engine.connect() as connection, pytest.raises(sa.exc.DBAPIError) as caught:
        connection.execute(sa.text("SELECT * FROM no_such_table_here"))
    assert not is_conflict(caught.value)
    assert not is_conflict(caught.value.orig)
