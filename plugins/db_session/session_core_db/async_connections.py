"""The async driver's connections: one engine per event loop (connections cannot cross loops),
and a stack of connections kept checked out between calls (``keep_connections``).

Checking an async connection out of SQLAlchemy's pool and back in goes through a greenlet and
the pool's queue, locks and events: more CPU than a whole asyncpg load. So, as on the sync
side, a call takes the most recently used connection of its loop from a stack and puts it back
when done; the stack holds at most ``pool_size`` (none without overflow, none unless asked
to). All through public API: :meth:`AsyncConnection.get_raw_connection` and the pooled
connection's ``driver_connection``. The loop's connections are closed when the loop shuts down
(``asyncio.run`` and ASGI servers finalize live async generators), or by ``aclose``.

Each pooled connection also keeps the statements prepared on it (:attr:`Held.prepared`, in the
pool's connection ``info``, so they last as long as the driver's connection, kept or not), unless
its statement cache is off (:func:`prepares`): an asyncpg engine's ``do_connect`` event notes
that, from the arguments each connection is made with (:data:`PREPARES`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.pool import ConnectionPoolEntry

from .async_deadlines import Deadlines
from .pool_info import per_driver_connection
from .timeouts import within

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["PREPARED", "PREPARES", "AsyncConnections", "Held", "LoopEngine", "prepares"]


PREPARED = "session_core_db.prepared"
"""The key, in a pooled connection's ``info``, of the statements prepared on it."""

PREPARES = "session_core_db.prepares"
"""The key, in a pooled connection's ``info``, of whether the store may prepare statements on
it and keep them (asyncpg), noted when it connects; missing (a connection made before the store
listened): it may not."""

_CACHE_SIZES = ("statement_cache_size", "prepared_statement_cache_size")


def prepares(connect_params: Mapping[str, Any]) -> bool:
    """Whether statements may be prepared and kept on an asyncpg connection made with
    ``connect_params`` (its ``connect()`` keyword arguments, from the URL's query and
    ``connect_args``): not when its statement cache is off, asyncpg's own
    (``statement_cache_size=0``, as for PgBouncer's transaction pooling) or that of
    SQLAlchemy's adapter (``prepared_statement_cache_size=0``)."""
    return all(_positive(connect_params[name]) for name in _CACHE_SIZES if name in connect_params)


def _positive(size: Any) -> bool:
    """Whether a cache of ``size`` (an ``int``, or text from the URL's query) holds anything:
    asyncpg turns its cache off at 0 or less, SQLAlchemy's adapter at any false value."""
    try:
        return int(size) > 0
    except (TypeError, ValueError):  # None; anything else fails the connect by itself
        return False


@dataclass(slots=True, eq=False)
class Held:
    """An async connection checked out for a call, and its driver's own connection."""

    connection: AsyncConnection
    driver_connection: Any
    prepared: dict[str, Any] | None
    """Statements prepared on the driver's connection, by SQL (asyncpg only); ``None``: none
    may be (:data:`PREPARES`), each statement runs through asyncpg's own statement cache."""
    deadlines: Deadlines | None
    """Where its statements register their deadline (asyncpg only; ``None``: no timeout)."""
    recycle_at: float | None = None
    """When it is too old to keep (``pool_recycle``), on :func:`time.monotonic`'s clock."""
    transaction: bool = False
    """Inside a locked merge's transaction."""

    def stale(self) -> bool:
        """Whether it is past ``pool_recycle`` (then it goes back to the pool, which replaces
        it)."""
        return self.recycle_at is not None and time.monotonic() >= self.recycle_at


@dataclass
class LoopEngine:
    """The engine of one event loop and the connections kept checked out on it (``idle``, most
    recently used last: the driver pops one for a call)."""

    engine: AsyncEngine
    keep: int
    recycle: float | None = None
    deadlines: Deadlines | None = None
    """The statement deadlines of this loop (``None`` without a ``timeout``, or for an engine
    handed over, which serves every loop: then asyncpg bounds each statement itself)."""
    idle: list[Held] = field(default_factory=list)
    driver_state: Any = None
    """What the async driver worked out for this engine (its compiled statements, ...)."""
    guard: AsyncGenerator[None, None] | None = None

    async def checkout(self, seconds: float | None, stale: Held | None = None) -> Held:
        """A connection from the pool (within ``seconds``), after giving back ``stale``, a kept
        one past ``pool_recycle``. The driver calls it only when ``idle`` has no connection to
        pop, or the one popped is ``stale``."""
        if stale is not None:
            with contextlib.suppress(Exception):
                await stale.connection.close()
        connection = self.engine.connect()
        await within(connection.start(), seconds)
        try:
            proxy = await connection.get_raw_connection()
        except BaseException:
            await connection.close()
            raise
        recycle_at = None if self.recycle is None else time.monotonic() + self.recycle
        driver_connection = proxy.driver_connection
        info = proxy.info
        prepared: dict[str, Any] | None = per_driver_connection(
            info, PREPARED, driver_connection, lambda: {} if info.get(PREPARES) else None
        )
        return Held(connection, driver_connection, prepared, self.deadlines, recycle_at)

    def put_back(self, held: Held) -> bool:
        """Keep ``held`` after a call that went well; whether it was kept (if not, close it)."""
        if len(self.idle) < self.keep:
            self.idle.append(held)
            return True
        return False

    async def discard(self, held: Held) -> None:
        """Give up a connection whose state is unknown (never reused)."""
        with contextlib.suppress(Exception):
            await held.connection.invalidate()
        with contextlib.suppress(Exception):
            await held.connection.close()

    async def close(self) -> None:
        """Give back the kept connections and close the engine's pool."""
        if self.deadlines is not None:
            self.deadlines.close()
        idle, self.idle = self.idle, []
        for held in idle:
            with contextlib.suppress(Exception):
                await held.connection.close()
        await self.engine.dispose()


async def _close_at_shutdown(
    loop_engine: LoopEngine, forget: Callable[[], object]
) -> AsyncGenerator[None, None]:
    # Started once per event loop: the loop finalizes live async generators when it shuts down,
    # which closes the engine's connections on their own loop, before it is closed, and drops
    # the store's entry for the loop (the engine and its connections refer to the loop, so the
    # weak key alone would keep a finished loop alive).
    try:
        yield
    finally:
        forget()
        await loop_engine.close()


def _keeps(engine: AsyncEngine, keep_connections: bool) -> int:
    pool = engine.sync_engine.pool
    return pool.size() if keep_connections and isinstance(pool, sa.pool.QueuePool) else 0


class AsyncConnections:
    """The :class:`LoopEngine` of each event loop, built from ``url`` by ``build``, or the one
    ``engine`` given for every loop (its connections are never kept)."""

    def __init__(
        self,
        url: URL | None,
        engine: AsyncEngine | None,
        build: Callable[[URL], AsyncEngine],
        keep_connections: bool,
        recycle: float | None,
        seconds: float | None = None,
        prepare_statements: bool = True,
    ) -> None:
        """``keep_connections``: whether to keep connections at all (the settings allow it);
        ``recycle``: seconds a kept connection may serve (``pool_recycle``); ``seconds``: each
        statement's bound (the ``timeout`` option); ``prepare_statements``: the option, whether
        statements may be prepared where the connection's statement cache is on."""
        self.url = url
        self._prepare = prepare_statements
        self._handed_over: sa.Engine | None = None  # where the listener is, to take it off
        if engine is not None:
            if self._listen(engine):
                self._handed_over = engine.sync_engine
            # Each statement commits by itself, as on the store's own engine.
            engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.engine = engine
        self._build = build
        self._keep_connections = keep_connections
        self._recycle = recycle
        self._seconds = seconds
        self._given = None if engine is None else LoopEngine(engine, 0)
        self._lock = threading.Lock()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopEngine] = (
            weakref.WeakKeyDictionary()
        )

    def current(self) -> LoopEngine | None:
        """The running loop's engine if it has one already (else :meth:`for_loop` makes it);
        not a coroutine, so the usual call costs no extra await."""
        if self.url is None:
            return self._given
        return self._loops.get(asyncio.get_running_loop())

    async def for_loop(self) -> LoopEngine | None:
        """The running loop's engine, made on first use; ``None`` without an async driver."""
        if self.url is None:
            return self._given
        loop = asyncio.get_running_loop()
        loop_engine = self._loops.get(loop)
        if loop_engine is not None:
            return loop_engine
        with self._lock:
            engine = self._build(self.url)
            self._listen(engine)
            keep = _keeps(engine, self._keep_connections)
            loop_engine = LoopEngine(engine, keep, self._recycle if keep else None)
            if self._seconds is not None:
                loop_engine.deadlines = Deadlines(self._seconds, loop)
            loop_engine.guard = _close_at_shutdown(
                loop_engine, functools.partial(self._forget_loop, loop, loop_engine)
            )
            self._loops[loop] = loop_engine
        await anext(loop_engine.guard)
        return loop_engine

    def _listen(self, engine: AsyncEngine) -> bool:
        """Note, as each asyncpg connection of ``engine`` is made, whether statements may be
        prepared on it (:data:`PREPARES`); whether it listens (only on asyncpg)."""
        if engine.dialect.driver != "asyncpg":
            return False
        event.listen(engine.sync_engine, "do_connect", self._note_prepares)
        return True

    def _note_prepares(
        self,
        dialect: Dialect,
        entry: ConnectionPoolEntry | None,
        cargs: list[Any],
        cparams: dict[str, Any],
    ) -> None:
        if entry is not None:
            entry.info[PREPARES] = self._prepare and prepares(cparams)

    def _unlisten_given(self) -> None:
        """Take the listener off the engine handed over (which outlives the store)."""
        target, self._handed_over = self._handed_over, None
        if target is not None:
            event.remove(target, "do_connect", self._note_prepares)

    def _forget_loop(self, loop: asyncio.AbstractEventLoop, loop_engine: LoopEngine) -> None:
        with self._lock:
            if self._loops.get(loop) is loop_engine:
                del self._loops[loop]

    def _pop_all(self) -> list[LoopEngine]:
        with self._lock:
            loop_engines = list(self._loops.values())
            self._loops.clear()
        return loop_engines

    def forget(self) -> None:
        """Forget the engines of every loop, leaving their connections to the loops' shutdown
        (closing them here would touch another loop's sockets)."""
        self._unlisten_given()
        for loop_engine in self._pop_all():
            loop_engine.engine.sync_engine.dispose(close=False)

    async def aclose(self) -> None:
        """Close the running loop's engine and its kept connections; forget the others'."""
        self._unlisten_given()
        mine = self._loops.get(asyncio.get_running_loop())
        for loop_engine in self._pop_all():
            if loop_engine is mine and loop_engine.guard is not None:
                await loop_engine.guard.aclose()
            else:
                loop_engine.engine.sync_engine.dispose(close=False)

    def after_fork(self) -> None:
        """In a forked child: another thread may have held the lock at the fork."""
        self._lock = threading.Lock()
