"""The ``db`` store: sessions in one SQL table, through SQLAlchemy Core.

Each operation is written once, as a *plan*: a generator that yields the statements it needs and
receives their results. The sync driver runs a plan on a DB-API connection it keeps checked
out of the pool, with the SQL compiled ahead of time (a load, the usual update and a delete are a
single step, with no generator at all); the async driver runs the same plans on the cursor of a
connection of SQLAlchemy's asyncio extension. So both paths share every rule (merging, retries,
what a missing row means).

Concurrency, in short (the README has the long form): every row has a version. An update whose
loaded version still matches is one ``UPDATE ... WHERE key_hash = ? AND version = ?``; if another
request saved in between, the save locks the row in a transaction, applies this request's changed
keys to it and writes it, so it cannot lose again. A row that is gone (deleted or expired) is
never written again. A statement the database refuses because of concurrent writers (a
deadlock, a busy SQLite file) is tried again (see :mod:`.conflicts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import PoolProxiedConnection

from session_core import (
    Changes,
    ConfigurationError,
    SessionConfig,
    SessionData,
    SessionRecord,
    SessionStore,
    hash_key,
    is_plausible_key,
)
from session_core.store import Progress, decode_json, encode_json

from .conflicts import ATTEMPTS, Conflict, is_conflict, pause
from .errors import (
    MissingTableError,
    SessionTooLargeError,
    StoreConflictError,
    describe,
    timed_out,
    unreachable,
)
from .limits import default_limit, read_limit
from .options import Settings
from .schema import ensure_table, session_table, table_exists
from .statements import CompiledStatement, Statements

if TYPE_CHECKING:  # SQLAlchemy's asyncio extension imports only with greenlet installed
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["DbStore"]

T = TypeVar("T")

# One step of a plan: ("row", statement, params) returns the first row or None,
# ("count", statement, params) the number of rows written, ("tx", "begin" | "commit" |
# "rollback", {}) nothing, ("sleep", "", seconds) nothing. A statement refused by a conflict
# outside a transaction is tried again by the driver; inside one, the driver rolls the
# transaction back and throws Conflict into the plan, which starts it again.
Step = tuple[str, str, Any]
Plan = Generator[Step, Any, T]

_BEGIN: Step = ("tx", "begin", {})
_COMMIT: Step = ("tx", "commit", {})
_ROLLBACK: Step = ("tx", "rollback", {})

_CURSOR = "session_core_db.cursor"
_SEEN = "session_core_db.seen"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: readers never wait for a writer (nor for clear_expired); NORMAL is safe with WAL.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=15000")
    finally:
        cursor.close()


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
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._running: dict[int, tuple[float, Any]] = {}
        self._fired: set[int] = set()
        self._thread: threading.Thread | None = None

    def start(self, dbapi_connection: Any) -> int:
        """Register a statement about to run on ``dbapi_connection``; returns its token."""
        token = id(dbapi_connection)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="session_core_db timeout", daemon=True
                )
                self._thread.start()
            # No notify: the thread never sleeps past now + seconds, this statement's deadline
            # (waking it for every statement cost a thread switch, tens of µs, per statement).
            self._running[token] = (time.monotonic() + self.seconds, dbapi_connection)
        return token

    def stop(self, token: int) -> bool:
        """Unregister a statement; whether its deadline passed (its connection is broken)."""
        with self._lock:
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
        # Never sleeps past the earliest deadline, nor for more than ``seconds`` (a statement
        # registered meanwhile is due no earlier than that), so start() never has to wake it:
        # under load it wakes about once per ``seconds``, when idle as often, and it ends after
        # _IDLE_SECONDS with nothing to watch.
        me = threading.current_thread()
        cond = self._cond
        idle_since = time.monotonic()
        with cond:
            while self._thread is me:
                now = time.monotonic()
                wait = self.seconds
                for token, (deadline, dbapi_connection) in list(self._running.items()):
                    if deadline > now:
                        wait = deadline - now
                        break
                    del self._running[token]
                    if _break_socket(dbapi_connection):
                        self._fired.add(token)
                if self._running:
                    idle_since = now
                elif now - idle_since >= _IDLE_SECONDS:
                    self._thread = None  # the next statement starts another
                    return
                cond.wait(wait)


_IDLE_SECONDS = 60.0
"""How long a watchdog thread waits with nothing to watch before it ends."""

_WATCHDOGS: weakref.WeakSet[_Watchdog] = weakref.WeakSet()


class _Connection:
    """A pooled DB-API connection checked out by the store, with the cursor it keeps on it."""

    __slots__ = ("cursor", "dbapi", "generation", "proxy", "recycle_at", "transaction")

    def __init__(
        self, proxy: PoolProxiedConnection, recycle: float | None, generation: int = 0
    ) -> None:
        self.proxy = proxy
        self.generation = generation
        self.dbapi: Any = proxy.dbapi_connection
        self.cursor: Any = _kept_cursor(proxy)
        # The connection's age counts from when the store first saw it (the pool clears the
        # info dict when it replaces a connection), not from its cursor, which an error drops.
        since: float = proxy.info.setdefault(_SEEN, time.monotonic())
        self.recycle_at = None if recycle is None else since + recycle
        self.transaction = False  # inside a locked merge's transaction

    def forget_cursor(self) -> None:
        """Close the cursor (quietly) and drop it from the connection's info dict."""
        self.proxy.info.pop(_CURSOR, None)
        with contextlib.suppress(Exception):  # the connection may be broken already
            self.cursor.close()


class _MergeLocks:
    """Serialises, within this process, the merges of saves of one session.

    A save whose row changed since it was loaded merges under the row's database lock. Taking
    a lock per session (striped over a fixed set) first makes the merges of this process queue
    here, instead of each holding a pooled connection while it waits for the row lock; only
    writers in other processes wait on the database. The usual save (its row unchanged since
    it was loaded) takes no lock. Async merges take an :class:`asyncio.Lock` of their own event
    loop's set.
    """

    _STRIPES = 64

    def __init__(self) -> None:
        self._locks = [threading.Lock() for _ in range(self._STRIPES)]
        self._loop_locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, list[asyncio.Lock]
        ] = weakref.WeakKeyDictionary()
        self._guard = threading.Lock()

    def for_key(self, key: str) -> threading.Lock:
        """The lock for merges of the session ``key``, in threads."""
        return self._locks[hash(key) % self._STRIPES]

    def for_key_async(self, key: str) -> asyncio.Lock:
        """The lock for merges of the session ``key``, in the running event loop."""
        loop = asyncio.get_running_loop()
        locks = self._loop_locks.get(loop)
        if locks is None:
            with self._guard:
                locks = self._loop_locks.setdefault(
                    loop, [asyncio.Lock() for _ in range(self._STRIPES)]
                )
        return locks[hash(key) % self._STRIPES]


class _Connections:
    """The sync driver's connections: the engine's pool, plus a stack of connections the store
    keeps checked out between calls.

    Checking a connection out of SQLAlchemy's pool and back in costs about 4 µs of Python per
    call (its queue, locks, fairy and weakref, events), as much as a whole SQLite read. So a
    call takes the most recently used connection from ``_idle`` (a ``list.pop``, atomic and
    lock-free) and puts it back when done, and the pool is only asked when the stack is empty.

    Why a stack and not a connection per thread: a thread's connection stays checked out while
    the thread is idle, so a server with more threads than the pool allows would make threads
    wait for connections nobody is using. The stack holds only as many as were needed at once,
    and never more than the pool's ``pool_size`` (none at all when ``max_overflow`` is 0), so
    there is always capacity left for other users of :attr:`DbStore.engine`. A call of the
    store that has to wait for the pool counts itself in ``_waiting``; while anyone waits, a
    connection being put back goes to the pool instead (where the waiter gets it).

    The rest of the pool's duties are kept: ``pool_recycle`` (a kept connection past its age
    goes back to the pool, which replaces it), ``pool_pre_ping`` (then nothing is kept: the
    ping happens at each checkout), a disconnect (the connection is invalidated, and so are
    the idle ones, which most likely lost their server too, as SQLAlchemy does on a disconnect),
    :meth:`close` and forking (a child process never touches its parent's connections). With
    an engine handed over, or a pool that is not a ``QueuePool``, nothing is kept: the pool
    serves every call.
    """

    def __init__(self, engine: Engine, settings: Settings, owned: bool) -> None:
        self._engine = engine
        self._owned = owned
        pool = engine.pool
        keep = 0
        if owned and not settings.pool_pre_ping and isinstance(pool, sa.pool.QueuePool):
            # With no overflow, connections kept idle would be taken from other users of the
            # engine: keep none then.
            keep = pool.size() if settings.max_overflow != 0 else 0
        self._keep = keep
        self._recycle = settings.pool_recycle if owned and keep else None
        if self._recycle is not None and self._recycle < 0:
            self._recycle = None
        self._idle: list[_Connection] = []
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._generation = 0  # close() starts a new one: older connections are not kept

    def acquire(self) -> _Connection:
        """A connection for one call: a kept one, else one from the pool (which may wait for
        ``pool_timeout``, and raises the pool's or the driver's error)."""
        if not self._keep:
            return self._from_pool()
        try:
            connection: _Connection | None = self._idle.pop()
        except IndexError:
            connection = None
        if connection is None:  # outside the except block: its errors are not "during" it
            connection = self._checkout()
        while connection.recycle_at is not None and time.monotonic() >= connection.recycle_at:
            connection.proxy.close()  # too old: the pool replaces it when it hands it out
            connection = self._checkout()
        return connection

    def _checkout(self) -> _Connection:
        with self._waiting_lock:
            self._waiting += 1
        try:
            # Again, now that a caller of release() would see us waiting: one put back
            # between our first look and here would otherwise sit idle while we wait.
            try:
                return self._idle.pop()
            except IndexError:
                pass
            return self._from_pool()  # outside the except block, as in acquire()
        finally:
            with self._waiting_lock:
                self._waiting -= 1

    def _from_pool(self) -> _Connection:
        proxy = self._engine.raw_connection()
        try:
            return _Connection(proxy, self._recycle, self._generation)
        except BaseException:
            proxy.close()
            raise

    def release(self, connection: _Connection) -> None:
        """Take back a connection after a call that went well."""
        if connection.generation != self._generation:
            # In flight when close() ran: its pool is being disposed of, so close it for good
            # (given back, it would sit open in a pool nobody uses).
            connection.proxy.invalidate()
            return
        if not self._keep:
            connection.proxy.close()
            return
        idle = self._idle
        idle.append(connection)
        # Each check follows the append, so a waiter or close() that came in between sees to
        # this connection itself, or is seen here.
        if idle is not self._idle:  # close() ran meanwhile
            self._drain(idle)
        elif len(idle) > self._keep or self._waiting:
            with contextlib.suppress(IndexError):
                idle.pop().proxy.close()

    def discard(self, connection: _Connection, error: BaseException | None) -> None:
        """Give back a connection after a failed call: invalidated (closed, never reused) with
        ``error``, else returned to the pool without its cursor."""
        if error is not None:
            connection.proxy.info.pop(_CURSOR, None)
            connection.proxy.invalidate(error)
        else:
            connection.forget_cursor()
            connection.proxy.close()

    def invalidate_idle(self, error: BaseException) -> None:
        """Invalidate the kept connections (after a disconnect, they most likely lost their
        server as well)."""
        self._drain(self._idle, lambda connection: self.discard(connection, error))

    def close(self) -> None:
        """Return the kept connections to the pool (before it is disposed of)."""
        self._generation += 1
        idle, self._idle = self._idle, []
        self._drain(idle)

    @staticmethod
    def _drain(
        idle: list[_Connection],
        dispose: Callable[[_Connection], object] = lambda connection: connection.proxy.close(),
    ) -> None:
        """Pop every connection of ``idle`` and ``dispose`` of it (by default, give it back to
        the pool); best effort, one at a time, so a concurrent ``release`` loses nothing."""
        while True:
            try:
                connection = idle.pop()
            except IndexError:
                return
            with contextlib.suppress(Exception):
                dispose(connection)

    def after_fork(self) -> None:
        """In a child process: forget the parent's connections without touching them (closing
        one would end the parent's session on the server) and start afresh."""
        _INHERITED.append(self._idle)
        self._idle = []
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        if self._owned:
            self._engine.dispose(close=False)  # the pool's idle ones, as SQLAlchemy advises


_INHERITED: list[list[_Connection]] = []
"""The parent's kept connections, in a forked child: referenced forever, so that they are never
garbage-collected (which would close them, and with some drivers end the parent's session)."""


_STORES: weakref.WeakSet[DbStore] = weakref.WeakSet()


def _after_fork() -> None:
    for watchdog in list(_WATCHDOGS):
        watchdog._reset()
    for store in list(_STORES):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _kept_cursor(proxy: PoolProxiedConnection) -> Any:
    """The cursor kept for a pooled connection, in its info dict (which the pool clears when it
    replaces the connection): a new cursor costs as much as a quarter of a loopback round trip
    with some drivers, and a round trip to aiosqlite's thread."""
    dbapi_connection = proxy.dbapi_connection
    cached = proxy.info.get(_CURSOR)
    if cached is not None and cached[0] is dbapi_connection:
        return cached[1]
    cursor = proxy.cursor()
    proxy.info[_CURSOR] = (dbapi_connection, cursor)
    return cursor


def _fetch(cursor: Any, statement: CompiledStatement, kind: str, params: Any) -> Any:
    """Run one step on ``cursor``: the first row for a ``row`` step, else the rows written."""
    cursor.execute(statement.sql, statement.parameters(params))
    return cursor.fetchone() if kind == "row" else cursor.rowcount


def _execute_step(
    connection: Connection, statement: CompiledStatement, kind: str, params: Any
) -> Any:
    """Run one step on the DB-API cursor of an async engine's connection, in the greenlet of
    ``AsyncConnection.run_sync`` (the adapted cursor awaits the driver there)."""
    proxy = connection.connection
    dbapi_connection = proxy.dbapi_connection
    cursor = _kept_cursor(proxy)
    try:
        return _fetch(cursor, statement, kind, params)
    except connection.dialect.loaded_dbapi.Error as exc:
        proxy.info.pop(_CURSOR, None)
        if connection.dialect.is_disconnect(exc, dbapi_connection, cursor):
            connection.invalidate(exc)  # as SQLAlchemy's own execute() would
        raise
    except BaseException:  # cancelled (the timeout) midway: the cursor's state is unknown
        proxy.info.pop(_CURSOR, None)
        raise


async def _adrive(
    connection: AsyncConnection,
    compiled: dict[str, CompiledStatement],
    plan: Plan[T],
    seconds: float | None,
    refusals: tuple[type[Exception], ...],
) -> T:
    """The async twin of :meth:`DbStore._drive`: run ``plan``'s steps on ``connection``."""
    result: Any = None
    conflict: Conflict | None = None
    transaction = False
    try:
        while True:
            try:
                step = plan.send(result) if conflict is None else plan.throw(conflict)
            except StopIteration as done:
                value: T = done.value
                return value
            conflict = None
            kind, name, params = step
            if kind == "sleep":
                await asyncio.sleep(params)
                result = None
                continue
            try:
                result = await _astep(connection, compiled[name], kind, params, seconds)
            except refusals as exc:
                if not is_conflict(exc):
                    raise
                if transaction:
                    await _astep(connection, compiled["rollback"], "tx", {}, seconds)
                    transaction = False
                    conflict = Conflict()
                    conflict.__cause__ = exc
                else:
                    result = await _aretry(connection, compiled[name], step, exc, seconds, refusals)
            if kind == "tx":
                transaction = name == "begin"
    except BaseException:
        if transaction:  # never back to the pool inside a transaction (the pool resets nothing)
            with contextlib.suppress(Exception):
                await connection.invalidate()
        raise


async def _aretry(
    connection: AsyncConnection,
    statement: CompiledStatement,
    step: Step,
    exc: Exception,
    seconds: float | None,
    refusals: tuple[type[Exception], ...],
) -> Any:
    """The async twin of :meth:`DbStore._retry`."""
    kind, _, params = step
    for attempt in range(ATTEMPTS - 1):
        await asyncio.sleep(pause(attempt))
        try:
            return await _astep(connection, statement, kind, params, seconds)
        except refusals as again:
            if not is_conflict(again):
                raise
            exc = again
    raise Conflict from exc


async def _astep(
    connection: AsyncConnection,
    statement: CompiledStatement,
    kind: str,
    params: Any,
    seconds: float | None,
) -> Any:
    # The compiled SQL straight to the driver's (adapted) cursor, as on the sync path:
    # SQLAlchemy's execute() machinery costs about as much CPU as the rest of the call.
    return await _within(connection.run_sync(_execute_step, statement, kind, params), seconds)


async def _within(awaitable: Awaitable[T], seconds: float | None) -> T:
    if seconds is None:
        return await awaitable
    # Not asyncio.wait_for: before Python 3.12 it runs the awaitable in a task of its own,
    # several extra turns of the event loop per statement.
    async with asyncio.timeout(seconds):
        return await awaitable


def _untranslated_errors(dialect: sa.engine.Dialect) -> tuple[type[Exception], ...]:
    """Driver errors that SQLAlchemy may let through untranslated: asyncpg's own, on
    SQLAlchemy 2.0 (a refused login while connecting; a protocol in a broken state after the
    server dropped the connection mid-statement)."""
    asyncpg = sys.modules.get("asyncpg") if dialect.driver == "asyncpg" else None
    if asyncpg is None:  # not asyncpg (the dialect has imported it when it is)
        return ()
    return (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


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
        self._connections = _Connections(self._engine, settings, self._owns_engine)
        self._ready = False
        # Until the database's own limit is read at first use (see _prepare).
        self._size_limit = default_limit(self._engine.dialect.name)
        self._quick_size = self._size_limit.quick
        self._lock = threading.Lock()
        self._merge_locks = _MergeLocks()
        self._async_url = None if settings.async_engine else settings.async_target()
        if self._owns_engine:
            settings.check_connect_args(self._url, self._async_url)
        self._async_engine = settings.async_engine
        self._async_sql: dict[tuple[str, str, str], dict[str, CompiledStatement]] = {}
        if self._async_engine is not None:
            self._async_engine = self._async_engine.execution_options(isolation_level="AUTOCOMMIT")
        # Async connections belong to the event loop that opened them: one engine per loop.
        self._loop_engines: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[AsyncEngine, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()
        _STORES.add(self)

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
        """The SQLAlchemy engine of the sync methods. When the store built it, the store keeps
        up to ``pool_size`` of its pooled connections checked out between calls (see
        :class:`_Connections`), always leaving room in the pool for other users."""
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

    @staticmethod
    def _load_step(key: str) -> Step:
        return ("row", "load", {"h": hash_key(key), "now": time.time()})

    @staticmethod
    def _record(row: Any) -> SessionRecord | None:
        if row is None:
            return None
        data, expiry, expires_at, version = row
        # Positional: half the cost of keywords for a dataclass; the order is data,
        # expires_at, expiry, version.
        return SessionRecord(
            decode_json(data),
            float(expires_at),
            None if expiry is None else decode_json(expiry),
            int(version),
        )

    def _load_plan(self, key: str) -> Plan[SessionRecord | None]:
        if not is_plausible_key(key):
            return None
        return self._record((yield self._load_step(key)))

    def _values(
        self, record: SessionRecord, data: SessionData, version: int, h: str
    ) -> dict[str, Any]:
        text = encode_json(data)
        if len(text) > self._quick_size:  # only a large session is measured
            self._size_limit.check(text, self.target)
        return {
            "h": h,
            "p_data": text,
            "p_expiry": None if record.expiry is None else encode_json(record.expiry),
            "p_expires_at": float(record.expires_at),
            "p_version": version,
        }

    def _update(self, record: SessionRecord, data: SessionData, h: str, expected: int) -> Step:
        params = self._values(record, data, expected + 1, h)
        params["expected"] = expected
        params["now"] = time.time()
        return ("count", "update", params)

    def _create_plan(self, record: SessionRecord) -> Plan[str]:
        key = self.generate_key()
        yield ("count", "insert", self._values(record, record.data, 1, hash_key(key)))
        record.version = 1
        return key

    @staticmethod
    def _is_current(record: SessionRecord, changes: Changes) -> bool:
        """Whether ``record`` holds the whole session as of the version it was loaded at, so
        an update is one ``UPDATE ... WHERE version = <that version>`` unless someone else
        saved meanwhile (then the save merges; see :meth:`_merge_plan`)."""
        return changes.complete and type(record.version) is int

    def _update_step(self, h: str, record: SessionRecord) -> Step:
        return self._update(record, record.data, h, cast(int, record.version))

    def _update_plan(self, h: str, record: SessionRecord) -> Plan[int]:
        count: int = yield self._update_step(h, record)
        return count

    @staticmethod
    def _updated(key: str, record: SessionRecord, count: int) -> str | None:
        """After the usual update: ``key`` if it wrote the row (the record's version moves on),
        ``None`` if the row changed meanwhile and the save must merge."""
        if not count:
            return None
        record.version = cast(int, record.version) + 1
        return key

    @staticmethod
    def _merged(row: Any, record: SessionRecord, changes: Changes) -> dict[str, Any]:
        """The data of ``row`` with this request's changed and deleted keys applied."""
        data: dict[str, Any] = decode_json(row[0])
        for name in changes.updated:
            if name in record.data:
                data[name] = record.data[name]
        for name in changes.deleted:
            data.pop(name, None)
        return data

    def _merge_plan(
        self, key: str, h: str, record: SessionRecord, changes: Changes, conflicted: bool
    ) -> Plan[str | None]:
        """Save ``record``'s changes into the row as it is now. A save that has not met a
        conflict yet (its record did not know the row's version) tries once without a lock;
        after a conflict it takes the row lock (:meth:`_locked_merge_plan`)."""
        if not conflicted:
            row = yield ("row", "load", {"h": h, "now": time.time()})
            if row is None:
                return None  # deleted or expired meanwhile: not brought back
            data = self._merged(row, record, changes)
            written = yield self._update(record, data, h, int(row[3]))
            if written:
                # The caller's copy lacks what the other writers added: its next save re-reads.
                record.version = None
                return key
        return (yield from self._locked_merge_plan(key, h, record, changes))

    def _locked_merge_plan(
        self, key: str, h: str, record: SessionRecord, changes: Changes
    ) -> Plan[str | None]:
        """Merge in a transaction holding the row's lock, so no other writer can change the row
        between the read and the write: this save cannot lose a race again."""
        for attempt in range(ATTEMPTS):
            try:
                yield _BEGIN
                row = yield ("row", "lock", {"h": h})
                if row is None or float(row[2]) <= time.time():
                    yield _ROLLBACK
                    return None  # deleted or expired meanwhile: not brought back
                data = self._merged(row, record, changes)
                written = yield self._update(record, data, h, int(row[3]))
                yield _COMMIT
            except Conflict:  # a deadlock, say: rolled back by the driver; start again
                if attempt == ATTEMPTS - 1:
                    raise
                yield ("sleep", "", pause(attempt))
                continue
            record.version = None
            # Under the lock the version matched, so only an expiry passing meanwhile stops it.
            return key if written else None
        raise AssertionError("unreachable: the last attempt returns or raises")

    @staticmethod
    def _delete_step(key: str) -> Step:
        return ("count", "delete", {"h": hash_key(key)})

    def _delete_plan(self, key: str) -> Plan[None]:
        if is_plausible_key(key):
            yield self._delete_step(key)

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

    def _prepare(self, connection: Connection, operation: str) -> None:
        if self.settings.create_table:
            ensure_table(connection, self.table)
        elif not table_exists(connection, self.table.name):
            raise MissingTableError(self.table.name, self.target, operation)
        limit = read_limit(connection)
        self._size_limit, self._quick_size = limit, limit.quick
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
                        self._prepare(connection, operation)
                    finally:
                        if watchdog is not None and watchdog.stop(token):
                            connection.invalidate()
                            raise _TimedOut
            except _TimedOut as exc:
                raise timed_out(self._url, operation, self._watchdog_seconds()) from exc
            except MissingTableError:  # a ConnectionError (OSError) itself: already made
                raise
            except (sa.exc.SQLAlchemyError, OSError) as exc:
                raise unreachable(self._url, operation, exc) from exc

    def _watchdog_seconds(self) -> float:
        return self._watchdog.seconds if self._watchdog is not None else 0.0

    # ------------------------------------------------------------------ sync driver

    @overload
    def _run(self, operation: str, plan: Plan[T]) -> T: ...

    @overload
    def _run(self, operation: str, plan: Step) -> Any: ...

    def _run(self, operation: str, plan: Plan[T] | Step) -> T | Any:
        """Run ``plan``, or a single step (whose result it returns), on a connection."""
        if not self._ready:
            self._ensure_ready(operation)
        connections = self._connections
        try:
            connection = connections.acquire()
        except (sa.exc.SQLAlchemyError, OSError, self._dbapi_error) as exc:
            # raw_connection() passes the driver's own connect errors through, unwrapped
            raise unreachable(self._url, operation, exc) from exc
        try:
            result = self._drive(connection, plan)
            if not self._owns_engine:  # a given engine may not be in autocommit mode
                self._commit(connection)
        except SessionTooLargeError as exc:
            # Refused before it was sent: the connection is fine (unless the rollback of the
            # locked merge that refused it failed).
            if connection.transaction:
                connections.discard(connection, exc)
            else:
                connections.release(connection)
            raise
        except Conflict as exc:
            # Refused by concurrent writers, again and again: the server answered, and the
            # connection is fine (the driver rolled back any transaction).
            connections.release(connection)
            cause = exc.__cause__ or exc
            raise StoreConflictError(
                self.target, operation, ATTEMPTS, describe(self._url, cause)
            ) from cause
        except _TimedOut as exc:
            # The watchdog broke the socket: the connection must not be used again.
            connections.discard(connection, exc)
            raise timed_out(self._url, operation, self._watchdog_seconds()) from exc
        except self._dbapi_error as exc:
            try:
                lost = self._engine.dialect.is_disconnect(
                    cast(Any, exc), connection.dbapi, connection.cursor
                )
            except Exception:  # the check itself failed: assume the worst, never leak it
                lost = True
            if lost:
                connections.discard(connection, exc)
                connections.invalidate_idle(exc)
                # And the ones idle in the pool, as SQLAlchemy's own execute() does: they are
                # replaced when next checked out, instead of failing a call each.
                invalidate_pool = getattr(self._engine.pool, "_invalidate", None)
                if invalidate_pool is not None:
                    with contextlib.suppress(Exception):
                        invalidate_pool(connection.proxy, exc)
            else:
                # Left inside a transaction (its rollback failed), it must not be reused: the
                # pool does not reset connections (pool_reset_on_return is off).
                connections.discard(connection, exc if connection.transaction else None)
            raise unreachable(self._url, operation, exc) from exc
        except BaseException as exc:
            # Interrupted midway (a signal handler's exception, a timeout library's, a
            # KeyboardInterrupt), perhaps inside the driver: the connection's state is unknown,
            # so it is never reused.
            connections.discard(connection, exc)
            raise
        connections.release(connection)
        return result

    def _drive(self, connection: _Connection, plan: Plan[T] | Step) -> T | Any:
        if type(plan) is tuple:  # one statement: no generator to step through
            kind, name, params = plan
            try:
                return self._execute(connection, kind, name, params)
            except self._dbapi_error as exc:
                if not is_conflict(exc):
                    raise
                return self._retry(connection, plan, exc)
        plan = cast(Plan[T], plan)
        result: Any = None
        conflict: Conflict | None = None
        try:
            while True:
                try:
                    step = plan.send(result) if conflict is None else plan.throw(conflict)
                except StopIteration as done:
                    value: T = done.value
                    return value
                conflict = None
                kind, name, params = step
                if kind == "sleep":
                    time.sleep(params)
                    result = None
                    continue
                try:
                    result = self._execute(connection, kind, name, params)
                except self._dbapi_error as exc:
                    if not is_conflict(exc):
                        raise
                    if connection.transaction:
                        conflict = self._roll_back(connection, exc)
                    else:
                        result = self._retry(connection, step, exc)
                if kind == "tx":
                    connection.transaction = name == "begin"
        finally:
            if connection.transaction:  # an error inside the transaction: end it
                with contextlib.suppress(self._dbapi_error, _TimedOut):
                    self._roll_back(connection, None)

    def _retry(self, connection: _Connection, step: Step, exc: Exception) -> Any:
        """Run a statement refused by a conflict again, after a random pause, up to
        :data:`~.conflicts.ATTEMPTS` times in all; its first refusal was ``exc``."""
        kind, name, params = step
        for attempt in range(ATTEMPTS - 1):
            time.sleep(pause(attempt))
            try:
                return self._execute(connection, kind, name, params)
            except self._dbapi_error as again:
                if not is_conflict(again):
                    raise
                exc = again
        raise Conflict from exc

    def _roll_back(self, connection: _Connection, exc: Exception | None) -> Conflict:
        """Roll back the transaction of ``connection`` after ``exc``, a conflict; the
        :class:`~.conflicts.Conflict` to throw into the plan."""
        self._execute(connection, "tx", "rollback", {})
        connection.transaction = False
        conflict = Conflict()
        conflict.__cause__ = exc
        return conflict

    def _execute(self, connection: _Connection, kind: str, name: str, params: Any) -> Any:
        statement = self._sql.compiled[name]
        cursor = connection.cursor
        watchdog = self._watchdog
        if watchdog is None:
            return _fetch(cursor, statement, kind, params)
        token = watchdog.start(connection.dbapi)
        try:
            return _fetch(cursor, statement, kind, params)
        finally:
            if watchdog.stop(token):
                raise _TimedOut  # replaces the driver's error about the broken socket

    def _commit(self, connection: _Connection) -> None:
        watchdog = self._watchdog
        token = watchdog.start(connection.dbapi) if watchdog is not None else 0
        try:
            connection.proxy.commit()
        finally:
            if watchdog is not None and watchdog.stop(token):
                raise _TimedOut

    def load(self, key: str) -> SessionRecord | None:
        """The live session saved under ``key``: one indexed ``SELECT``."""
        if not is_plausible_key(key):  # before checking a connection out of the pool
            return None
        return self._record(self._run("load", self._load_step(key)))

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Create (``key=None``) or update a session; see the module's notes on concurrency."""
        if key is None:
            return self._run("save", self._create_plan(record))
        if not is_plausible_key(key):
            return None
        h = hash_key(key)
        if not self._ready:  # the size limit is read at first use, before building the update
            self._ensure_ready("save")
        # The usual update is one statement; only a row changed meanwhile needs a merge.
        current = self._is_current(record, changes)
        if current and self._updated(key, record, self._run("save", self._update_step(h, record))):
            return key
        with self._merge_locks.for_key(key):
            return self._run("save", self._merge_plan(key, h, record, changes, current))

    def delete(self, key: str) -> None:
        """Delete the session saved under ``key``: one ``DELETE``."""
        if is_plausible_key(key):
            self._run("delete", self._delete_step(key))

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
        self._close_sync_side()

    def _close_sync_side(self) -> None:
        """What :meth:`close` and :meth:`aclose` both do: give back the kept connections, close
        the store's own pool, stop the timeout watchdog."""
        self._connections.close()
        if self._owns_engine:
            self._engine.dispose()
        if self._watchdog is not None:
            self._watchdog.close()

    def _after_fork(self) -> None:
        # In a forked child: another thread may have held the lock at the fork.
        self._lock = threading.Lock()
        self._merge_locks = _MergeLocks()
        self._connections.after_fork()

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

    def _async_statements(self, engine: AsyncEngine) -> dict[str, CompiledStatement]:
        """The statements compiled for an async engine's dialect (its own parameter style)."""
        dialect = engine.dialect
        key = (dialect.name, dialect.driver, dialect.paramstyle)
        compiled = self._async_sql.get(key)
        if compiled is None:
            compiled = Statements(self.table, dialect, self.settings.cleanup_batch_size).compiled
            self._async_sql[key] = compiled
        return compiled

    async def _arun(self, operation: str, plan: Plan[T], engine: AsyncEngine) -> T:
        url = engine.url
        seconds = self.settings.seconds  # each of connecting and every statement
        untranslated = _untranslated_errors(engine.dialect)
        unknown_state: tuple[type[Exception], ...] = (TimeoutError, *untranslated)
        failures: tuple[type[Exception], ...] = (
            sa.exc.SQLAlchemyError,
            OSError,
            engine.dialect.loaded_dbapi.Error,
            *untranslated,
        )
        try:
            connection = engine.connect()
            await _within(connection.start(), seconds)
            try:
                if not self._ready:
                    await _within(connection.run_sync(self._prepare, operation), seconds)
                compiled = self._async_statements(engine)
                refusals: tuple[type[Exception], ...] = (
                    engine.dialect.loaded_dbapi.Error,
                    *untranslated,
                )
                return await _adrive(connection, compiled, plan, seconds, refusals)
            except unknown_state:
                # A statement cancelled midway, or a driver error SQLAlchemy did not look at:
                # the connection's state is unknown, so it must not be reused.
                with contextlib.suppress(*failures):
                    await connection.invalidate()
                raise
            finally:
                await connection.close()
        except MissingTableError:  # a ConnectionError (OSError) itself: already made
            raise
        except Conflict as exc:
            cause = exc.__cause__ or exc
            target = url.render_as_string(hide_password=True)
            raise StoreConflictError(target, operation, ATTEMPTS, describe(url, cause)) from cause
        except TimeoutError as exc:
            if seconds is None:  # the driver's own timeout
                raise unreachable(url, operation, exc) from exc
            raise timed_out(url, operation, seconds) from exc
        except failures as exc:  # asyncpg: OSError on connect
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
        if key is None:
            return await self._arun("save", self._create_plan(record), engine)
        if not is_plausible_key(key):
            return None
        h = hash_key(key)
        current = self._is_current(record, changes)
        if current and self._updated(
            key, record, await self._arun("save", self._update_plan(h, record), engine)
        ):
            return key
        async with self._merge_locks.for_key_async(key):
            plan = self._merge_plan(key, h, record, changes, current)
            return await self._arun("save", plan, engine)

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
        await asyncio.to_thread(self._close_sync_side)

    def __repr__(self) -> str:
        return f"<DbStore {self.target} table={self.table.name!r}>"
