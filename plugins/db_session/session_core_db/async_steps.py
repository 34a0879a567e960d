"""How the async driver runs one step on a connection: straight on asyncpg's own connection,
or, for the other async drivers, on the adapted DB-API cursor in ``run_sync``'s greenlet.

asyncpg is an async library first: its ``fetchrow``/``execute`` take the compiled SQL (``$1``
placeholders) and a timeout themselves, so a load costs what asyncpg costs, plus a few µs. The
adapted cursor of the other drivers needs the greenlet bridge (about 20 µs a statement).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from .connections import forget_cursor, kept_cursor
from .plans import Kind, Step
from .statements import CompiledStatement, fetch
from .timeouts import within

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["StepRunner", "asyncpg_step", "cursor_step", "step_runner"]


StepRunner = Callable[
    ["AsyncConnection", Any, CompiledStatement, Step, "float | None"], Awaitable[Any]
]
"""Runs ``step`` (its ``statement`` compiled for the connection's dialect) on an async
connection (or its driver's own connection), within ``seconds`` (:class:`TimeoutError` after)."""


async def asyncpg_step(
    connection: AsyncConnection,
    driver_connection: Any,
    statement: CompiledStatement,
    step: Step,
    seconds: float | None,
) -> Any:
    """A :data:`StepRunner` on asyncpg's own connection (the pool's ``driver_connection``)."""
    arguments = statement.parameters(step.params)
    if step.kind is Kind.ROW:
        return await driver_connection.fetchrow(statement.sql, *arguments, timeout=seconds)
    if step.kind is Kind.ROWS:
        return await driver_connection.fetch(statement.sql, *arguments, timeout=seconds)
    status: str = await driver_connection.execute(statement.sql, *arguments, timeout=seconds)
    # "UPDATE 1", "DELETE 3", "INSERT 0 1": the rows written come last.
    return int(status.rpartition(" ")[2]) if step.kind is Kind.COUNT else None


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
    connection: AsyncConnection,
    driver_connection: Any,
    statement: CompiledStatement,
    step: Step,
    seconds: float | None,
) -> Any:
    """A :data:`StepRunner` on the adapted DB-API cursor (aiosqlite, aiomysql, asyncmy,
    psycopg's async mode)."""
    # The compiled SQL straight to the driver's (adapted) cursor, as on the sync path:
    # SQLAlchemy's execute() machinery costs about as much CPU as the rest of the call.
    return await within(connection.run_sync(_execute_step, statement, step), seconds)


def step_runner(driver: str) -> StepRunner:
    """The way to run steps with the async ``driver``."""
    return asyncpg_step if driver == "asyncpg" else cursor_step
