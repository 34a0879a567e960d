"""The ``db`` store: sessions in one SQL table, through SQLAlchemy Core.

Each operation is written once, as a *plan*: a generator that yields the statements it needs and
receives their results. The sync driver runs a plan on a pooled DB-API connection with the SQL
compiled ahead of time; the async driver runs the same plan on SQLAlchemy's asyncio extension.
So both paths share every rule (merging, retries, what a missing row means).

Concurrency, in short (the README has the long form): every row has a version. An update whose
loaded version still matches is one ``UPDATE ... WHERE key_hash = ? AND version = ?``; if another
request saved in between, the row is read again, this request's changed keys are applied to it,
and the ``UPDATE`` retried. A row that is gone (deleted or expired) is never written again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine

from session_core import (
    Changes,
    ConfigurationError,
    SessionConfig,
    SessionData,
    SessionRecord,
    SessionStore,
    StoreUnreachableError,
    hash_key,
    is_plausible_key,
)
from session_core.store import Progress, decode_json, encode_json

from .errors import MissingTableError, timed_out, unreachable
from .options import Settings
from .schema import ensure_table, session_table, table_exists
from .statements import Statements

if TYPE_CHECKING:  # SQLAlchemy's asyncio extension imports only with greenlet installed
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["DbStore"]

T = TypeVar("T")

# One step of a plan: ("row", statement, params) returns the first row or None,
# ("count", statement, params) the number of rows written, ("sleep", "", seconds) nothing.
Step = tuple[str, str, Any]
Plan = Generator[Step, Any, T]

_CURSOR = "session_core_db.cursor"

MAX_ATTEMPTS = 40
"""How many times a conflicting update is re-read and retried before giving up."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: readers never wait for a writer (nor for clear_expired); NORMAL is safe with WAL.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=15000")
    finally:
        cursor.close()


def _close_quietly(cursor: Any) -> None:
    with contextlib.suppress(Exception):  # the connection is being discarded anyway
        cursor.close()


class _Steps(Generic[T]):
    """Iterates over a plan's steps; the driver sets :attr:`result` to each step's outcome
    before the next one, and reads :attr:`value`, what the plan returned, at the end."""

    __slots__ = ("_plan", "result", "value")

    def __init__(self, plan: Plan[T]) -> None:
        self._plan = plan
        self.result: Any = None

    def __iter__(self) -> Iterator[Step]:
        return self

    def __next__(self) -> Step:
        result, self.result = self.result, None
        try:
            return self._plan.send(result)
        except StopIteration as done:
            self.value: T = done.value
            raise StopIteration from None


def _break_socket(dbapi_connection: Any) -> bool:
    """Shut down the socket of a DB-API connection, so that a call blocked on it fails at once;
    whether that was possible."""
    try:
        sock = getattr(dbapi_connection, "_sock", None)  # PyMySQL
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
            return True
        fileno = getattr(dbapi_connection, "fileno", None)  # psycopg, psycopg2
        if fileno is None:
            return False
        # A duplicate of the descriptor: shutting it down breaks the shared socket, and closing
        # it leaves the driver's own descriptor alone.
        with socket.socket(fileno=os.dup(fileno())) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)
    except Exception:  # a closed socket, or the driver's own "connection is closed" error
        return False
    return True


class _TimedOut(Exception):
    """A statement ran past the ``timeout`` option and its connection was broken."""


class _Watchdog:
    """Bounds the statements of the sync driver: one daemon thread per store, started on first
    use, shuts down the socket of any statement still running at its deadline.

    A statement costs a lock and a dict operation to register and as much to unregister; the
    thread sleeps until the earliest deadline (all deadlines are ``seconds`` after their start,
    so the registry, in insertion order, is also in deadline order).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._reset()
        _WATCHDOGS.add(self)

    def _reset(self) -> None:
        # Also the state of a forked child: the parent's thread and lock do not come along.
        self._cond = threading.Condition(threading.Lock())
        self._running: dict[int, tuple[float, Any]] = {}
        self._fired: set[int] = set()
        self._thread: threading.Thread | None = None

    def start(self, dbapi_connection: Any) -> int:
        """Register a statement about to run on ``dbapi_connection``; returns its token."""
        token = id(dbapi_connection)
        deadline = time.monotonic() + self.seconds
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="session_core_db timeout", daemon=True
                )
                self._thread.start()
            if not self._running:
                self._cond.notify()
            self._running[token] = (deadline, dbapi_connection)
        return token

    def stop(self, token: int) -> bool:
        """Unregister a statement; whether its deadline passed (its connection is broken)."""
        with self._cond:
            if self._running.pop(token, None) is not None:
                return False
            if token in self._fired:
                self._fired.remove(token)
                return True
            return False

    def close(self) -> None:
        """Stop the thread (a later statement starts another)."""
        with self._cond:
            self._thread = None
            self._cond.notify_all()

    def _watch(self) -> None:
        me = threading.current_thread()
        cond = self._cond
        with cond:
            while self._thread is me:
                if not self._running:
                    if not cond.wait(_IDLE_SECONDS) and not self._running:
                        self._thread = None  # idle: the next statement starts another
                        return
                    continue
                now = time.monotonic()
                for token, (deadline, dbapi_connection) in list(self._running.items()):
                    if deadline > now:
                        cond.wait(deadline - now)
                        break
                    del self._running[token]
                    if _break_socket(dbapi_connection):
                        self._fired.add(token)


_IDLE_SECONDS = 60.0
"""How long a watchdog thread waits with nothing to watch before it ends."""

_WATCHDOGS: weakref.WeakSet[_Watchdog] = weakref.WeakSet()


def _after_fork() -> None:
    for watchdog in list(_WATCHDOGS):
        watchdog._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


async def _within(awaitable: Awaitable[T], seconds: float | None) -> T:
    if seconds is None:
        return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


async def _dispose_at_shutdown(engine: AsyncEngine) -> AsyncGenerator[None, None]:
    # Started once per event loop: the loop finalizes live async generators when it shuts down
    # (asyncio.run does, and so do ASGI servers), which closes the engine's connections on
    # their own loop, before it is closed.
    try:
        yield
    finally:
        await engine.dispose()


class DbStore(SessionStore):
    """Sessions in a SQL table, on any database SQLAlchemy supports.

    The table holds ``hash_key(key)``, never the key. Reads are one indexed ``SELECT`` that also
    filters out expired rows; a save is one ``INSERT`` (new session) or one ``UPDATE`` (existing
    one) unless a concurrent request saved the same session meanwhile; a delete is one
    ``DELETE``. No transaction stays open across a request.

    Takes the keyword arguments of :class:`~session_core_db.options.Settings` (the
    ``store_options`` keys). Without a ``url`` or an ``engine`` it uses the SQLite file
    :data:`~session_core_db.DEFAULT_SQLITE_FILE`.
    """

    name = "db"
    needs_cleanup = True

    def __init__(self, **options: Any) -> None:
        settings = Settings.from_options(options)
        self.settings = settings
        """The validated settings."""
        self._owns_engine = settings.engine is None
        self._url = settings.sync_target()
        if settings.engine is not None:
            self._engine = settings.engine
        else:
            self._engine = self._build(sa.create_engine, self._url)
        self.target = self._url.render_as_string(hide_password=True)
        """The database URL without its password, as named in errors."""
        self.table = session_table(sa.MetaData(), settings.table_name)
        """The sessions table."""
        self._sql = Statements(self.table, self._engine.dialect, settings.cleanup_batch_size)
        self._dbapi_error: type[Exception] = self._engine.dialect.loaded_dbapi.Error
        seconds = settings.seconds
        # SQLite has no network to hang on (and busy_timeout bounds its waits).
        self._watchdog = (
            _Watchdog(seconds)
            if seconds is not None and self._url.get_backend_name() != "sqlite"
            else None
        )
        self._ready = False
        self._lock = threading.Lock()
        self._async_url = None if settings.async_engine else settings.async_target()
        self._async_engine = settings.async_engine
        if self._async_engine is not None:
            self._async_engine = self._async_engine.execution_options(isolation_level="AUTOCOMMIT")
        # Async connections belong to the event loop that opened them: one engine per loop.
        self._loop_engines: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[AsyncEngine, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()

    @classmethod
    def from_config(cls, config: SessionConfig) -> DbStore:
        """Build from a configuration's ``store_options``; bad options raise
        :class:`~session_core.ConfigurationError`."""
        return cls(**config.store_options)

    def _build(self, factory: Callable[..., T], url: URL) -> T:
        try:
            engine = factory(url, **self.settings.engine_arguments(url))
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise ConfigurationError(
                "store_options",
                f"cannot load the database driver for {url.drivername} ({exc}); install it, "
                f"for example: {self.settings.install_hint()}",
            ) from exc
        except (TypeError, sa.exc.ArgumentError) as exc:
            raise ConfigurationError("store_options", f"bad engine settings: {exc}") from exc
        if url.get_backend_name() == "sqlite":
            event.listen(getattr(engine, "sync_engine", engine), "connect", _sqlite_pragmas)
        return engine

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine of the sync methods."""
        return self._engine

    @property
    def async_driver(self) -> str | None:
        """The async driver's name (``"asyncpg"``, ``"aiosqlite"``, ...), or ``None`` when the
        async methods run the sync driver in worker threads."""
        if self._async_url is not None:
            return self._async_url.get_driver_name()
        if self._async_engine is not None:
            return str(self._async_engine.dialect.driver)
        return None

    @property
    def native_async(self) -> bool:
        """Whether the async methods use an async driver (else they run in worker threads)."""
        return self.async_driver is not None

    # ------------------------------------------------------------------ plans

    def _load_plan(self, key: str) -> Plan[SessionRecord | None]:
        if not is_plausible_key(key):
            return None
        row = yield ("row", "load", {"h": hash_key(key), "now": time.time()})
        if row is None:
            return None
        data, expiry, expires_at, version = row
        return SessionRecord(
            data=decode_json(data),
            expires_at=float(expires_at),
            expiry=None if expiry is None else decode_json(expiry),
            version=int(version),
        )

    @staticmethod
    def _values(record: SessionRecord, data: SessionData, version: int) -> dict[str, Any]:
        return {
            "p_data": encode_json(data),
            "p_expiry": None if record.expiry is None else encode_json(record.expiry),
            "p_expires_at": float(record.expires_at),
            "p_version": version,
        }

    def _create_plan(self, record: SessionRecord) -> Plan[str]:
        key = self.generate_key()
        yield ("count", "insert", {"h": hash_key(key), **self._values(record, record.data, 1)})
        record.version = 1
        return key

    def _save_plan(
        self, key: str | None, record: SessionRecord, changes: Changes
    ) -> Plan[str | None]:
        if key is None:
            return (yield from self._create_plan(record))
        if not is_plausible_key(key):
            return None
        h = hash_key(key)
        version = record.version
        if changes.complete and type(version) is int:
            # Fast path: nobody saved since this request loaded the row, so its data is current.
            params = {"h": h, "expected": version, "now": time.time()}
            written = yield (
                "count",
                "update",
                {**params, **self._values(record, record.data, version + 1)},
            )
            if written:
                record.version = version + 1
                return key
        for attempt in range(MAX_ATTEMPTS):
            row = yield ("row", "load", {"h": h, "now": time.time()})
            if row is None:
                return None  # deleted or expired meanwhile: not brought back
            data: dict[str, Any] = decode_json(row[0])
            for name in changes.updated:
                if name in record.data:
                    data[name] = record.data[name]
            for name in changes.deleted:
                data.pop(name, None)
            stored = int(row[3])
            params = {"h": h, "expected": stored, "now": time.time()}
            written = yield (
                "count",
                "update",
                {**params, **self._values(record, data, stored + 1)},
            )
            if written:
                # The caller's copy lacks what the other writers added: its next save re-reads.
                record.version = None
                return key
            pause = random.uniform(0, 0.002 * (attempt + 1))  # noqa: S311 - jitter, not secrets
            yield ("sleep", "", pause)
        raise StoreUnreachableError(
            self.name,
            self.target,
            "save",
            f"the session changed under {MAX_ATTEMPTS} concurrent saves in a row; try again",
        )

    def _delete_plan(self, key: str) -> Plan[None]:
        if is_plausible_key(key):
            yield ("count", "delete", {"h": hash_key(key)})

    def _cycle_plan(self, key: str, record: SessionRecord) -> Plan[str]:
        # The new row first: if the delete then fails the old row still holds only what it held
        # (the caller gets an error, not the new key), so nothing leaks to a planted key.
        new_key = yield from self._create_plan(record)
        yield from self._delete_plan(key)
        return new_key

    def _clear_plan(self, progress: Progress | None) -> Plan[int]:
        cutoff = time.time()
        batch = self.settings.cleanup_batch_size
        total = 0
        while True:
            removed: int = yield ("count", "clear", {"cutoff": cutoff})
            total += max(removed, 0)
            if progress is not None:
                progress(total)
            if removed < batch:
                return total
            if self.settings.cleanup_pause:
                yield ("sleep", "", self.settings.cleanup_pause)

    # ------------------------------------------------------------------ first use

    def _prepare(self, connection: Connection) -> None:
        if self.settings.create_table:
            ensure_table(connection, self.table)
        elif not table_exists(connection, self.table.name):
            raise MissingTableError(self.table.name, self.target)
        self._ready = True

    def _ensure_ready(self, operation: str) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            watchdog = self._watchdog
            try:
                with self._engine.connect() as connection:
                    token = (
                        watchdog.start(connection.connection.dbapi_connection) if watchdog else 0
                    )
                    try:
                        self._prepare(connection)
                    finally:
                        if watchdog is not None and watchdog.stop(token):
                            connection.invalidate()
                            raise _TimedOut
            except _TimedOut as exc:
                raise timed_out(self._url, operation, self._watchdog_seconds()) from exc
            except (sa.exc.SQLAlchemyError, OSError) as exc:
                raise unreachable(self._url, operation, exc) from exc

    def _watchdog_seconds(self) -> float:
        return self._watchdog.seconds if self._watchdog is not None else 0.0

    # ------------------------------------------------------------------ sync driver

    def _run(self, operation: str, plan: Plan[T]) -> T:
        if not self._ready:
            self._ensure_ready(operation)
        try:
            connection = self._engine.raw_connection()
        except (sa.exc.SQLAlchemyError, OSError, self._dbapi_error) as exc:
            # raw_connection() passes the driver's own connect errors through, unwrapped
            raise unreachable(self._url, operation, exc) from exc
        cursor = None
        try:
            # One cursor per pooled connection, kept in its info dict (which the pool clears
            # when it replaces the connection): a new cursor costs as much as a quarter of a
            # loopback round trip with some drivers.
            dbapi_connection = connection.dbapi_connection
            cached = connection.info.get(_CURSOR)
            if cached is not None and cached[0] is dbapi_connection:
                cursor = cached[1]
            else:
                cursor = connection.cursor()
                connection.info[_CURSOR] = (dbapi_connection, cursor)
            result = self._drive(cursor, plan, dbapi_connection)
            if not self._owns_engine:  # a given engine may not be in autocommit mode
                self._commit(connection, dbapi_connection)
            return result
        except _TimedOut as exc:
            # The watchdog broke the socket: the connection must not go back to the pool.
            connection.info.pop(_CURSOR, None)
            connection.invalidate(exc)
            raise timed_out(self._url, operation, self._watchdog_seconds()) from exc
        except self._dbapi_error as exc:
            connection.info.pop(_CURSOR, None)
            if self._engine.dialect.is_disconnect(
                cast(Any, exc), connection.dbapi_connection, cursor
            ):
                connection.invalidate(exc)
            elif cursor is not None:
                _close_quietly(cursor)
            raise unreachable(self._url, operation, exc) from exc
        finally:
            connection.close()

    def _drive(self, cursor: Any, plan: Plan[T], dbapi_connection: Any) -> T:
        compiled = self._sql.compiled
        watchdog = self._watchdog
        steps = _Steps(plan)
        for kind, name, params in steps:
            if kind == "sleep":
                time.sleep(params)
                continue
            statement = compiled[name]
            token = watchdog.start(dbapi_connection) if watchdog is not None else 0
            try:
                cursor.execute(statement.sql, statement.parameters(params))
                steps.result = cursor.fetchone() if kind == "row" else cursor.rowcount
            finally:
                if watchdog is not None and watchdog.stop(token):
                    raise _TimedOut  # replaces the driver's error about the broken socket
        return steps.value

    def _commit(self, connection: Any, dbapi_connection: Any) -> None:
        watchdog = self._watchdog
        token = watchdog.start(dbapi_connection) if watchdog is not None else 0
        try:
            connection.commit()
        finally:
            if watchdog is not None and watchdog.stop(token):
                raise _TimedOut

    def load(self, key: str) -> SessionRecord | None:
        """The live session saved under ``key``: one indexed ``SELECT``."""
        if not is_plausible_key(key):  # before checking a connection out of the pool
            return None
        return self._run("load", self._load_plan(key))

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Create (``key=None``) or update a session; see the module's notes on concurrency."""
        return self._run("save", self._save_plan(key, record, changes))

    def delete(self, key: str) -> None:
        """Delete the session saved under ``key``: one ``DELETE``."""
        if is_plausible_key(key):
            self._run("delete", self._delete_plan(key))

    def cycle_key(self, key: str, record: SessionRecord) -> str:
        """Save ``record`` under a fresh key, then delete the row of ``key``."""
        return self._run("cycle the key", self._cycle_plan(key, record))

    def clear_expired(self, progress: Progress | None = None) -> int | None:
        """Delete expired rows in batches of ``cleanup_batch_size``, each its own statement, so
        live traffic is never blocked for long; ``progress`` gets the running total."""
        return self._run("clear expired sessions", self._clear_plan(progress))

    def close(self) -> None:
        """Close the pools the store made (an engine handed over is left to its owner).

        Async connections are closed when their event loop shuts down (``asyncio.run`` and
        ASGI servers do that), or by :meth:`aclose`; ``close`` only forgets those still open.
        """
        for engine, _ in self._pop_loop_engines():
            engine.sync_engine.dispose(close=False)
        if self._owns_engine:
            self._engine.dispose()
        if self._watchdog is not None:
            self._watchdog.close()

    def _pop_loop_engines(self) -> list[tuple[AsyncEngine, AsyncGenerator[None, None]]]:
        with self._lock:
            engines = list(self._loop_engines.values())
            self._loop_engines.clear()
        return engines

    # ------------------------------------------------------------------ async driver

    async def _engine_for_loop(self) -> AsyncEngine | None:
        """The async engine for the running event loop (connections cannot cross loops)."""
        if self._async_url is None:
            return self._async_engine
        loop = asyncio.get_running_loop()
        entry = self._loop_engines.get(loop)
        if entry is not None:
            return entry[0]
        with self._lock:
            from sqlalchemy.ext.asyncio import create_async_engine

            engine = self._build(create_async_engine, self._async_url)
            guard = _dispose_at_shutdown(engine)
            self._loop_engines[loop] = (engine, guard)
        await anext(guard)
        return engine

    async def _arun(self, operation: str, plan: Plan[T], engine: AsyncEngine) -> T:
        url = engine.url
        seconds = self.settings.seconds  # each of connecting and every statement
        try:
            connection = engine.connect()
            await _within(connection.start(), seconds)
            try:
                if not self._ready:
                    await _within(connection.run_sync(self._prepare), seconds)
                by_name = self._sql.by_name
                steps = _Steps(plan)
                for kind, name, params in steps:
                    if kind == "sleep":
                        await asyncio.sleep(params)
                    else:
                        executed = await _within(connection.execute(by_name[name], params), seconds)
                        steps.result = executed.first() if kind == "row" else executed.rowcount
                return steps.value
            except TimeoutError:
                # The statement was cancelled midway: the connection must not be reused.
                with contextlib.suppress(sa.exc.SQLAlchemyError, OSError):
                    await connection.invalidate()
                raise
            finally:
                await connection.close()
        except TimeoutError as exc:
            if seconds is None:  # the driver's own timeout
                raise unreachable(url, operation, exc) from exc
            raise timed_out(url, operation, seconds) from exc
        except (sa.exc.SQLAlchemyError, OSError) as exc:  # asyncpg raises OSError on connect
            raise unreachable(url, operation, exc) from exc

    async def aload(self, key: str) -> SessionRecord | None:
        """Async twin of :meth:`load`, on the async driver when there is one."""
        if not is_plausible_key(key):
            return None
        engine = await self._engine_for_loop()
        if engine is None:
            return await super().aload(key)
        return await self._arun("load", self._load_plan(key), engine)

    async def asave(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Async twin of :meth:`save`."""
        engine = await self._engine_for_loop()
        if engine is None:
            return await super().asave(key, record, changes)
        return await self._arun("save", self._save_plan(key, record, changes), engine)

    async def adelete(self, key: str) -> None:
        """Async twin of :meth:`delete`."""
        if not is_plausible_key(key):
            return
        engine = await self._engine_for_loop()
        if engine is None:
            await super().adelete(key)
        else:
            await self._arun("delete", self._delete_plan(key), engine)

    async def acycle_key(self, key: str, record: SessionRecord) -> str:
        """Async twin of :meth:`cycle_key`."""
        engine = await self._engine_for_loop()
        if engine is None:
            return await super().acycle_key(key, record)
        return await self._arun("cycle the key", self._cycle_plan(key, record), engine)

    async def aclear_expired(self, progress: Progress | None = None) -> int | None:
        """Async twin of :meth:`clear_expired`."""
        engine = await self._engine_for_loop()
        if engine is None:
            return await super().aclear_expired(progress)
        return await self._arun("clear expired sessions", self._clear_plan(progress), engine)

    async def aclose(self) -> None:
        """Async twin of :meth:`close`: also closes the async connections of this event loop."""
        loop = asyncio.get_running_loop()
        mine = self._loop_engines.get(loop)
        for engine, guard in self._pop_loop_engines():
            if mine is not None and engine is mine[0]:
                await guard.aclose()
            else:
                engine.sync_engine.dispose(close=False)
        if self._owns_engine:
            await asyncio.to_thread(self._engine.dispose)

    def __repr__(self) -> str:
        return f"<DbStore {self.target} table={self.table.name!r}>"
