"""The store's short path to Redis: packed commands on connections of the client's own pool.

redis-py's ``execute_command`` does much per command that the store has no use for: it encodes
each argument, applies response callbacks (``HGETALL``'s reply becomes a dict only for the store
to take it apart again), records observability metrics and builds closures; and its pool, on
every command, takes a connection out under a lock, checks it and puts it back. Measured against
a bare ``GET`` (which pays all that too) this is most of a session's overhead. So for a client of
a standalone server, a :class:`Lane` (:class:`AsyncLane`) sends the
store's commands itself, each packed into one buffer (:func:`pack`), on a connection from the
client's pool, and returns the raw reply (bytes, never decoded). It does so only on a RESP2
connection of a plain pool with no maintenance notifications, where the server sends nothing
unasked (:func:`public_path_reason` says why any other client takes the public path); the
store's own standalone clients are made that way. The store's ``direct_commands = false`` option
turns the short path off.

What keeps connections sound stays redis-py's own: connecting and its handshake, health checks,
socket timeouts, a connection that failed being disconnected before it is used again. A command
that fails on a broken connection is retried the way ``execute_command`` retries it: with the
connection's own ``Retry``, disconnecting before each new attempt.

With a client the store made itself for a standalone server (``limit`` given), the lane also
keeps the connections it has used instead of handing each back to the pool after every command
(the pool's lock, bookkeeping and checks cost several microseconds per command, about a fifth of
a round trip to a local server). Its own semaphore then bounds how many commands run at once, to
the pool's size, and makes a command wait (up to ``timeout``) when all are busy, as a blocking
pool would. A kept connection is checked before each use as the pool would check it: one the
server has closed meanwhile (a restart, an idle timeout) is reconnected first, and a command that
failed never leaves its connection kept.
After a ``fork`` the child drops the parent's kept connections, as redis-py's pools do.

A client the lane cannot drive that way (a Redis Cluster client, which routes each command to a
node; a Sentinel client, whose pool follows failovers; a client pinned to one connection; a
client with client-side caching; a RESP3 client, or one with maintenance notifications) goes
through ``execute_command``, with the same arguments. The private redis-py names the short path
needs live in :mod:`._compat`.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.connection
import redis.exceptions
import redis.sentinel

from ._compat import async_stream_at_eof, sync_socket_open

__all__ = ["CLUSTER_TYPES", "SENTINEL_POOLS", "AsyncLane", "Lane", "pack", "public_path_reason"]

CLUSTER_TYPES = (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)
"""The Redis Cluster clients, sync and async: they route each command to a node themselves."""
SENTINEL_POOLS = (
    redis.sentinel.SentinelConnectionPool,
    redis.asyncio.sentinel.SentinelConnectionPool,
)
"""The pools of Sentinel clients, sync and async: they find the master and follow failovers."""
_BROKEN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def pack(name: bytes, args: Sequence[bytes]) -> bytes:
    """The command ``name args...`` in the Redis protocol (RESP): an array of bulk strings."""
    parts = [b"*%d\r\n$%d\r\n%s\r\n" % (len(args) + 1, len(name), name)]
    parts += [b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in args]
    return b"".join(parts)


def _direct_pool(client: Any) -> Any:
    """The pool to take connections from directly, or ``None`` when ``client`` goes through its
    own ``execute_command``: see :func:`public_path_reason`."""
    if public_path_reason(client) is not None:
        return None
    return client.connection_pool


def public_path_reason(client: Any) -> str | None:
    """Why commands on ``client`` must go through redis-py's ``execute_command``, or ``None``
    when the lane may send them itself.

    The lane reads each reply in full and nothing else: it can drive only a RESP2 connection of
    a plain pool, on which the server sends nothing unasked. Everything else is redis-py's to
    handle: routing (Cluster), failover bookkeeping (Sentinel), a pinned connection, cache
    invalidations (client-side caching), and, on RESP3, push messages such as maintenance
    notifications, which redis-py 8 turns on by default and which set ``should_reconnect()`` on
    a connection and expect it back in the pool.
    """
    if isinstance(client, CLUSTER_TYPES):
        return "a Redis Cluster client routes each command itself"
    if getattr(client, "connection", None) is not None or getattr(
        client, "single_connection_client", False
    ):
        return "a single-connection client keeps its one connection itself"
    pool = getattr(client, "connection_pool", None)
    if pool is None or not (hasattr(pool, "get_connection") and hasattr(pool, "release")):
        return "the client has no connection pool the lane can use"
    if isinstance(pool, SENTINEL_POOLS):
        return "a Sentinel pool follows failovers itself"
    if getattr(pool, "cache", None) is not None:
        return "client-side caching handles invalidation messages itself"
    if _protocol(pool) != 2:
        return "on RESP3 the server may push messages (maintenance notifications) unasked"
    enabled = getattr(pool, "maint_notifications_enabled", None)
    if enabled is not None and enabled():
        return "maintenance notifications are enabled"
    return None


def _protocol(pool: Any) -> int:
    """The protocol the pool's connections speak: as given, or redis-py's default (RESP2 up to
    7.x, RESP3 from 8.0; the constant moved to ``redis.utils`` in 8.0, still imported here, and
    an unknown default counts as RESP3, the public path)."""
    given = pool.connection_kwargs.get("protocol")
    if given is None:
        given = getattr(redis.connection, "DEFAULT_RESP_VERSION", 3)
    return int(given)


def _pool_args(pool: Any) -> tuple[str, ...]:
    """What ``pool.get_connection`` is called with: redis-py before 5.3 requires a command name,
    later releases deprecate passing one (a warning on every call)."""
    try:
        parameter = inspect.signature(pool.get_connection).parameters.get("command_name")
    except (TypeError, ValueError):  # pragma: no cover - every redis-py pool has a signature
        return ()
    if parameter is not None and parameter.default is inspect.Parameter.empty:
        return ("EVALSHA",)  # any name: the pools of 5.2 do not look at it
    return ()


_KEEPING: weakref.WeakSet[Lane] = weakref.WeakSet()
"""Every live sync lane that keeps connections, for :func:`_after_fork_in_child`."""


def _after_fork_in_child() -> None:
    # Runs in the child right after os.fork, before any other thread can start there.
    for lane in list(_KEEPING):
        lane._forked()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _no_connection() -> redis.exceptions.ConnectionError:
    # The error (and message) of redis-py's blocking pools when no connection frees up in time.
    return redis.exceptions.ConnectionError("No connection available.")


class _Lanes:
    """What :class:`Lane` and :class:`AsyncLane` share: the client, its pool when commands go
    straight to it, and the connections kept between commands."""

    _gate: threading.BoundedSemaphore | asyncio.Semaphore | None

    def __init__(self, client: Any, timeout: float | None, direct: bool) -> None:
        self.client = client
        """The redis-py client the commands go through."""
        self._pool = _direct_pool(client) if direct else None
        self._pool_args = _pool_args(self._pool) if self._pool is not None else ()
        self._timeout = timeout
        self._kept: list[Any] = []
        self._gate = None

    @property
    def direct(self) -> bool:
        """Whether commands skip ``execute_command`` (see the module's docs)."""
        return self._pool is not None

    @property
    def keeps_connections(self) -> bool:
        """Whether used connections are kept between commands (see ``limit``)."""
        return self._gate is not None


class Lane(_Lanes):
    """Sends the store's commands on a sync redis-py ``client``; safe to share between threads.

    Args:
        client: a ``redis.Redis`` (or ``redis.cluster.RedisCluster``) made with
            ``decode_responses=False``.
        limit: for a client whose pool is the store's own (a plain ``ConnectionPool`` of this
            size, used by nothing else): keep used connections, and run at most ``limit``
            commands at once, the others waiting up to ``timeout`` seconds (``None``: for ever)
            before failing with ``ConnectionError``. ``None`` to take a connection from the pool
            for every command (any other client, whose pool keeps its own rules).
        timeout: see ``limit``.
        direct: ``False`` sends every command through ``execute_command`` (the store's
            ``direct_commands`` option); ``True`` sends them directly where
            :func:`public_path_reason` allows it.
    """

    _gate: threading.BoundedSemaphore | None

    def __init__(
        self,
        client: Any,
        limit: int | None = None,
        timeout: float | None = None,
        *,
        direct: bool = True,
    ) -> None:
        super().__init__(client, timeout, direct)
        self._limit = limit if self._pool is not None else None
        self._pid = os.getpid()
        if self._limit is not None:
            self._gate = threading.BoundedSemaphore(self._limit)
            _KEEPING.add(self)

    def call(self, name: bytes, args: Sequence[bytes]) -> Any:
        """Run the command ``name args...`` and return its raw reply.

        Error replies are raised as redis-py raises them (``NoScriptError``, ``ResponseError``,
        ...); connection failures as ``ConnectionError`` or ``TimeoutError``, after the retries.
        """
        pool = self._pool
        if pool is None:
            return self.client.execute_command(name.decode(), *args)
        packed = [pack(name, args)]
        if self._pid != os.getpid():  # a fork that bypassed Python's at-fork hooks
            self._forked()
        gate = self._gate
        if gate is None:
            conn = pool.get_connection(*self._pool_args)
            try:
                return _exchange(conn, packed)
            finally:
                pool.release(conn)
        if not gate.acquire(timeout=self._timeout):
            raise _no_connection()
        try:
            conn = self._kept.pop() if self._kept else None
            try:
                if conn is None:
                    conn = pool.get_connection(*self._pool_args)
                elif _stale(conn):
                    conn.disconnect()  # the command's send connects it again
                return _exchange(conn, packed)
            except BaseException as exc:
                # An error reply was read in full: the connection is sound. Anything else that
                # cut the command short may have left half a reply, which must never meet the
                # next command: the connection is closed (the next send reconnects it).
                if conn is not None and not isinstance(exc, redis.exceptions.ResponseError):
                    conn.disconnect()
                raise
            finally:
                # Kept whatever happened, before the gate opens (a waiting command finds it), so
                # the semaphore and the connections it guards never drift apart.
                if conn is not None:
                    self._kept.append(conn)
        finally:
            gate.release()

    def _forked(self) -> None:
        # In a child process (only the forking thread survives): the parent's connections are
        # not ours to use, nor to close (redis-py does not shut down another process's socket).
        self._kept = []
        if self._limit is not None:
            self._gate = threading.BoundedSemaphore(self._limit)
        self._pid = os.getpid()


class _TimedOut(Exception):
    """Carries a timeout past the connection's ``Retry``, which would otherwise send again."""


def _exchange(conn: Any, packed: list[bytes]) -> Any:
    """Send ``packed`` on ``conn`` and read the reply, retrying as ``execute_command`` does a
    broken connection, but never a timeout: a hung server must hold a request for one socket
    timeout, not one per attempt, and a write may still be running there."""

    def attempt() -> Any:
        try:
            conn.send_packed_command(packed)
            return conn.read_response(disable_decoding=True)
        except redis.exceptions.TimeoutError as exc:
            raise _TimedOut(exc) from exc

    try:
        return conn.retry.call_with_retry(attempt, conn.disconnect)
    except _TimedOut as wrapper:
        raise wrapper.args[0] from None


class AsyncLane(_Lanes):
    """The :mod:`redis.asyncio` twin of :class:`Lane`, for one event loop's client.

    Args:
        client: a ``redis.asyncio.Redis`` (or ``RedisCluster``) made with
            ``decode_responses=False``.
        limit: as for :class:`Lane`. redis.asyncio's ``BlockingConnectionPool`` sets up a
            condition wait and a timeout context on every command, even when connections are
            free; the lane's semaphore only waits when it has to.
        timeout: see ``limit``.
        direct: as for :class:`Lane`.
    """

    _gate: asyncio.Semaphore | None

    def __init__(
        self,
        client: Any,
        limit: int | None = None,
        timeout: float | None = None,
        *,
        direct: bool = True,
    ) -> None:
        super().__init__(client, timeout, direct)
        # The semaphore binds to the running loop when it first waits: one lane per loop.
        if limit is not None and self._pool is not None:
            self._gate = asyncio.Semaphore(limit)

    async def call(self, name: bytes, args: Sequence[bytes]) -> Any:
        """Async twin of :meth:`Lane.call`."""
        pool = self._pool
        if pool is None:
            return await self.client.execute_command(name.decode(), *args)
        packed = [pack(name, args)]
        gate = self._gate
        if gate is None:
            conn = await pool.get_connection(*self._pool_args)
            try:
                return await _aexchange(conn, packed)
            finally:
                await pool.release(conn)
        if gate.locked():
            try:
                async with asyncio.timeout(self._timeout):
                    await gate.acquire()
            except TimeoutError:
                raise _no_connection() from None
        else:
            await gate.acquire()  # returns at once
        try:
            conn = self._kept.pop() if self._kept else None
            try:
                if conn is None:
                    conn = await pool.get_connection(*self._pool_args)
                elif _closed_by_server(conn):
                    await conn.disconnect(nowait=True)  # never suspends; the send reconnects
                return await _aexchange(conn, packed)
            except BaseException as exc:  # a cancelled request too: see Lane.call
                if conn is not None and not isinstance(exc, redis.exceptions.ResponseError):
                    # nowait: no await that a second cancellation could cut short, so the
                    # connection always gets back to the kept list.
                    await conn.disconnect(nowait=True)
                raise
            finally:
                if conn is not None:
                    self._kept.append(conn)
        finally:
            gate.release()


def _stale(conn: Any) -> bool:
    """Whether a kept sync connection must be reconnected before use, checked as the pool checks
    the ones it hands out: closed by the server, or (never expected) holding unread data.

    A connection that is not connected (a command failed on it) is not checked: ``can_read``
    would connect it first, outside the command's own timeout, and a hung server would then
    hold the request for a connection attempt more. The command's send connects it.
    """
    if not sync_socket_open(conn):
        return False
    try:
        return bool(conn.can_read())
    except _BROKEN:
        return True


def _closed_by_server(conn: Any) -> bool:
    """Whether the server closed a kept async connection (a restart, an idle timeout).

    Seen on the connection's stream without waiting (redis-py 8's pool looks at the same stream;
    5.x's reads the socket with a zero timeout, a full event-loop cycle). No reply can be pending:
    a connection is kept only after its reply was read in full, and on RESP2 the server sends
    nothing unasked.
    """
    return async_stream_at_eof(conn)


async def _aexchange(conn: Any, packed: list[bytes]) -> Any:
    """Async twin of :func:`_exchange`."""

    async def attempt() -> Any:
        try:
            await conn.send_packed_command(packed)
            return await conn.read_response(disable_decoding=True)
        except redis.exceptions.TimeoutError as exc:
            raise _TimedOut(exc) from exc

    async def failed(error: BaseException) -> None:
        await conn.disconnect()

    try:
        return await conn.retry.call_with_retry(attempt, failed)
    except _TimedOut as wrapper:
        raise wrapper.args[0] from None
