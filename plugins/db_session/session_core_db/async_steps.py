"""How the async driver runs one step on a connection: straight on asyncpg's own connection,
or, for the other async drivers, on the adapted DB-API cursor in ``run_sync``'s greenlet.

asyncpg is an async library first: a statement prepared once per connection (kept in
:attr:`~.async_connections.Held.prepared`) runs with the compiled SQL's ``$1`` parameters, and
the loop's :class:`~.async_deadlines.Deadlines` bound it, so a load costs what asyncpg's own
``fetchrow`` costs, plus a few µs. On a connection whose statement cache is off (for PgBouncer:
``Held.prepared`` is ``None``) a statement goes through asyncpg's ``fetchrow``, ``fetch`` and
``execute`` instead, which with ``statement_cache_size=0`` send an unnamed statement, parsed
again each time. The adapted cursor of the other drivers needs the greenlet
bridge (about 20 µs a statement).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.engine import Connection

from .async_connections import Held
from .connections import forget_cursor, kept_cursor
from .plans import COUNT, ROW, ROWS, Kind, Step
from .statements import CompiledStatement, fetch
from .timeouts import within

__all__ = ["StepRunner", "asyncpg_step", "cursor_step", "step_runner"]


StepRunner = Callable[[Held, CompiledStatement, Step, "float | None"], Awaitable[Any]]
"""Runs ``step`` (its ``statement`` compiled for the connection's dialect) on a checked-out
async connection, within ``seconds`` (:class:`TimeoutError` after)."""


async def asyncpg_step(
    held: Held, statement: CompiledStatement, step: Step, seconds: float | None
) -> Any:
    """A :data:`StepRunner` on asyncpg's own connection (the pool's ``driver_connection``)."""
    kind = step.kind
    sql = statement.sql
    if kind is not ROW and kind is not ROWS and kind is not COUNT:
        await held.driver_connection.execute(sql, timeout=seconds)  # BEGIN, COMMIT, ROLLBACK
        return None
    arguments = statement.parameters(step.params)
    deadlines = held.deadlines
    timeout = seconds  # asyncpg's own, for an engine handed over (it serves every loop)
    if deadlines is not None:
        deadlines.start(held)
        timeout = None
    try:
        kept = held.prepared
        if kept is None:  # asyncpg's own cache (or none), which retries a stale statement
            return await _unprepared(held.driver_connection, sql, kind, arguments, timeout)
        prepared = kept.get(sql)
        if prepared is None:
            prepared = await held.driver_connection.prepare(sql, timeout=timeout)
            kept[sql] = prepared
        try:
            return await _fetch(prepared, kind, arguments, timeout)
        except Exception as exc:
            if not _is_stale(exc):
                raise
            # The table changed since the statement was prepared: so did every statement
            # prepared on the connection, which asyncpg's own statement cache drops all at
            # once too (a later statement inside a transaction would fail where it cannot be
            # run again).
            kept.clear()
            if held.transaction:
                raise
        # asyncpg's own statement cache runs such a statement again, once; so does this,
        # outside a transaction.
        prepared = await held.driver_connection.prepare(sql, timeout=timeout)
        kept[sql] = prepared
        return await _fetch(prepared, kind, arguments, timeout)
    except asyncio.CancelledError:
        if deadlines is not None and deadlines.timed_out(held):
            raise TimeoutError from None
        raise
    finally:
        if deadlines is not None:
            deadlines.stop(held)


def _fetch(prepared: Any, kind: Kind, arguments: Any, timeout: float | None) -> Awaitable[Any]:
    """Run an asyncpg prepared statement (not a coroutine: the usual call costs no await)."""
    if kind is ROW:
        return prepared.fetchrow(*arguments, timeout=timeout)  # type: ignore[no-any-return]
    if kind is ROWS:
        return prepared.fetch(*arguments, timeout=timeout)  # type: ignore[no-any-return]
    return _count(prepared, arguments, timeout)


def _unprepared(
    connection: Any, sql: str, kind: Kind, arguments: Any, timeout: float | None
) -> Awaitable[Any]:
    """Run a statement through asyncpg's connection methods, never one prepared by the store."""
    if kind is ROW:
        return connection.fetchrow(sql, *arguments, timeout=timeout)  # type: ignore[no-any-return]
    if kind is ROWS:
        return connection.fetch(sql, *arguments, timeout=timeout)  # type: ignore[no-any-return]
    return _count_unprepared(connection, sql, arguments, timeout)


async def _count_unprepared(
    connection: Any, sql: str, arguments: Any, timeout: float | None
) -> int:
    status: str = await connection.execute(sql, *arguments, timeout=timeout)
    return int(status.rpartition(" ")[2])


async def _count(prepared: Any, arguments: Any, timeout: float | None) -> int:
    await prepared.fetch(*arguments, timeout=timeout)
    # "UPDATE 1", "DELETE 3", "INSERT 0 1": the rows written come last.
    return int(prepared.get_statusmsg().rpartition(" ")[2])


def _is_stale(exc: Exception) -> bool:
    """Whether asyncpg refused a prepared statement because the table changed since."""
    asyncpg: Any = sys.modules["asyncpg"]  # imported already: the statement ran on it
    return isinstance(
        exc, (asyncpg.InvalidCachedStatementError, asyncpg.exceptions.OutdatedSchemaCacheError)
    )


def _execute_step(connection: Connection, statement: CompiledStatement, step: Step) -> Any:
    """Run one step on the DB-API cursor of an async engine's connection, in the greenlet of
    ``AsyncConnection.run_sync`` (the adapted cursor awaits the driver there)."""
    proxy = connection.connection
    dbapi_connection = proxy.dbapi_connection
    cursor = kept_cursor(proxy)
    try:
        return fetch(cursor, statement, step.kind, step.params)
    except connection.dialect.loaded_dbapi.Error as exc:
        forget_cursor(proxy)
        if connection.dialect.is_disconnect(exc, dbapi_connection, cursor):
            connection.invalidate(exc)  # as SQLAlchemy's own execute() would
        raise
    except BaseException:  # cancelled (the timeout) midway: the cursor's state is unknown
        forget_cursor(proxy)
        raise


async def cursor_step(
    held: Held, statement: CompiledStatement, step: Step, seconds: float | None
) -> Any:
    """A :data:`StepRunner` on the adapted DB-API cursor (aiosqlite, aiomysql, asyncmy,
    psycopg's async mode)."""
    # The compiled SQL straight to the driver's (adapted) cursor, as on the sync path:
    # SQLAlchemy's execute() machinery costs about as much CPU as the rest of the call.
    return await within(held.connection.run_sync(_execute_step, statement, step), seconds)


def step_runner(driver: str) -> StepRunner:
    """The way to run steps with the async ``driver``."""
    return asyncpg_step if driver == "asyncpg" else cursor_step
