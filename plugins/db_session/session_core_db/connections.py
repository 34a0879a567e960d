"""The sync driver's connections: from the engine's pool, and (the ``keep_connections`` option)
a stack of them the store keeps checked out between calls.

Every connection comes from :meth:`sqlalchemy.engine.Engine.raw_connection` (or, on the path
the engine's events see, :meth:`~sqlalchemy.engine.Engine.connect`: see :mod:`.core_path`) and
goes back with ``close()`` or ``invalidate()``; the cursor a connection keeps lives in its
``info`` dict (which the pool clears when it replaces the connection). Nothing here reaches into
the pool: after a disconnect, :mod:`.stale` has it replace the older connections.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import PoolProxiedConnection

from .core_path import CoreProxy
from .options import Settings
from .pool_info import per_driver_connection
from .stale import StaleConnections

__all__ = ["Connection", "Connections", "kept_cursor"]

_CURSOR = "session_core_db.cursor"
_SEEN = "session_core_db.seen"


def kept_cursor(proxy: PoolProxiedConnection) -> Any:
    """The cursor kept for a pooled connection, in its info dict (which the pool clears when it
    replaces the connection): a new cursor costs as much as a quarter of a loopback round trip
    with some drivers, and a round trip to aiosqlite's thread."""
    return per_driver_connection(proxy.info, _CURSOR, proxy.dbapi_connection, proxy.cursor)


def forget_cursor(proxy: PoolProxiedConnection | CoreProxy) -> None:
    """Drop the kept cursor of ``proxy`` (after an error, its state is unknown)."""
    proxy.info.pop(_CURSOR, None)


class Connection:
    """A pooled DB-API connection checked out by the store, with the cursor it keeps on it."""

    __slots__ = ("core", "cursor", "dbapi", "generation", "proxy", "recycle_at", "transaction")

    def __init__(
        self,
        proxy: PoolProxiedConnection | CoreProxy,
        recycle: float | None,
        generation: int = 0,
    ) -> None:
        self.proxy = proxy
        self.generation = generation
        self.dbapi: Any = proxy.dbapi_connection
        self.cursor: Any
        if isinstance(proxy, CoreProxy):  # a cursor of its own, for this one Connection object
            self.core = True
            self.cursor = proxy.cursor()
        else:
            self.core = False
            self.cursor = kept_cursor(proxy)
        # The connection's age counts from when the store first saw it (the pool clears the
        # info dict when it replaces a connection), not from its cursor, which an error drops.
        since: float = proxy.info.setdefault(_SEEN, time.monotonic())
        self.recycle_at = None if recycle is None else since + recycle
        self.transaction = False  # inside a locked merge's transaction

    def forget_cursor(self) -> None:
        """Close the cursor (quietly) and drop it from the connection's info dict."""
        forget_cursor(self.proxy)
        with contextlib.suppress(Exception):  # the connection may be broken already
            self.cursor.close()


def _keeps(engine: Engine, settings: Settings, owned: bool) -> int:
    """How many connections to keep: none unless asked to, for an engine the store built with
    a ``QueuePool`` and no pre-ping (the ping happens at each checkout); at most ``pool_size``,
    and none without overflow (they would be taken from other users of the engine)."""
    pool = engine.pool
    if not (settings.keep_connections and owned and not settings.pool_pre_ping):
        return 0
    if not isinstance(pool, sa.pool.QueuePool) or settings.max_overflow == 0:
        return 0
    return pool.size()


class Connections:
    """Connections for the sync driver's calls.

    Without ``keep_connections`` each call checks a connection out of the engine's pool
    (``pool_use_lifo``: the most recently used one, whose cursor is kept) and back in. With it
    (the default) the store keeps up to ``pool_size`` of them checked out between calls, on a
    stack (a ``list.pop``, atomic and lock-free): the pool's checkout and checkin cost 8 µs of
    CPU per SQLite load (more than the read itself) and about 20 per PostgreSQL load. A call
    that has to wait for the pool counts itself in ``_waiting``; while anyone waits, a
    connection being put back goes to the pool instead (where the waiter gets it). A kept
    connection past ``pool_recycle`` goes back to the pool, which replaces it; :meth:`close`
    and a fork start afresh.

    While the engine's ``echo`` is on, or always with ``sql_events``, each call takes a
    :class:`~sqlalchemy.engine.Connection` instead (:mod:`.core_path`), never kept.
    """

    def __init__(self, engine: Engine, settings: Settings, owned: bool) -> None:
        self._engine = engine
        self._owned = owned
        self._core = settings.sql_events
        self.stale = StaleConnections(engine)
        self._keep = _keeps(engine, settings, owned)
        recycle = settings.pool_recycle
        self._recycle = recycle if self._keep and recycle is not None and recycle >= 0 else None
        self._idle: list[Connection] = []
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._generation = 0  # close() starts a new one: older connections are not kept

    def acquire(self) -> Connection:
        """A connection for one call: a kept one, else one from the pool (which may wait for
        ``pool_timeout``, and raises the pool's or the driver's error)."""
        if self._core or self._engine.echo:
            return self._through_core()
        if not self._keep:
            return self._from_pool()
        try:
            connection: Connection | None = self._idle.pop()
        except IndexError:
            connection = None
        if connection is None:  # outside the except block: its errors are not "during" it
            connection = self._checkout()
        while connection.recycle_at is not None and time.monotonic() >= connection.recycle_at:
            connection.proxy.close()  # too old: the pool replaces it when it hands it out
            connection = self._checkout()
        return connection

    def _checkout(self) -> Connection:
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

    def _from_pool(self) -> Connection:
        proxy = self._engine.raw_connection()
        try:
            return Connection(proxy, self._recycle, self._generation)
        except BaseException:
            proxy.close()
            raise

    def _through_core(self) -> Connection:
        sa_connection = self._engine.connect()
        try:
            return Connection(CoreProxy(sa_connection), None, self._generation)
        except BaseException:
            sa_connection.close()
            raise

    def release(self, connection: Connection) -> None:
        """Take back a connection after a call that went well."""
        if connection.generation != self._generation:
            # In flight when close() ran: its pool is being disposed of, so close it for good
            # (given back, it would sit open in a pool nobody uses).
            connection.proxy.invalidate()
            return
        if not self._keep or connection.core:
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

    def discard(self, connection: Connection, error: BaseException | None) -> None:
        """Give back a connection after a failed call: invalidated (closed, never reused) with
        ``error``, else returned to the pool without its cursor."""
        if error is not None:
            forget_cursor(connection.proxy)
            connection.proxy.invalidate(error)
        else:
            connection.forget_cursor()
            connection.proxy.close()

    def lost(self, error: BaseException) -> None:
        """After a disconnect (``error``): invalidate the kept connections, and have the pool
        replace the ones idle in it when next checked out (as SQLAlchemy's own ``execute()``
        does), instead of failing a call each: most likely they lost their server as well."""
        self._drain(self._idle, lambda connection: self.discard(connection, error))
        self.stale.disconnected(error)

    def close(self) -> None:
        """Return the kept connections to the pool (before it is disposed of)."""
        self._generation += 1
        idle, self._idle = self._idle, []
        self._drain(idle)
        self.stale.close()

    @staticmethod
    def _drain(
        idle: list[Connection],
        dispose: Callable[[Connection], object] = lambda connection: connection.proxy.close(),
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
        self.stale.after_fork()
        if self._owned:
            self._engine.dispose(close=False)  # the pool's idle ones, as SQLAlchemy advises


_INHERITED: list[list[Connection]] = []
"""The parent's kept connections, in a forked child: referenced forever, so that they are never
garbage-collected (which would close them, and with some drivers end the parent's session)."""
