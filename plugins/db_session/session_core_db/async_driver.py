"""The async driver: runs plans on the (adapted) DB-API cursors of SQLAlchemy's asyncio
extension, one engine per event loop (connections cannot cross loops), SQL compiled ahead."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import weakref
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from .conflicts import ATTEMPTS, Conflict, is_conflict, pause
from .connections import forget_cursor, kept_cursor
from .errors import MissingTableError, StoreConflictError, describe, timed_out, unreachable
from .first_use import FirstUse
from .plans import Done, Kind, Pause, Plan, Step, advance, in_transaction
from .statements import CompiledStatement, Statements
from .sync_driver import fetch
from .timeouts import within

if TYPE_CHECKING:  # SQLAlchemy's asyncio extension imports only with greenlet installed
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["AsyncDriver"]

T = TypeVar("T")

_ROLLBACK = Step(Kind.ROLLBACK, "rollback", {})


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


def _nothing() -> Plan[None]:
    """A plan without a step: running it only connects (and prepares the database)."""
    return
    yield


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


class AsyncDriver:
    """Runs plans for the store's async methods: on ``async_engine`` when one was given, else
    on an engine built from ``async_url`` by ``build`` for each event loop."""

    def __init__(
        self,
        async_url: URL | None,
        async_engine: AsyncEngine | None,
        build: Callable[[URL], AsyncEngine],
        table: sa.Table,
        batch_size: int,
        first_use: FirstUse,
        seconds: float | None,
    ) -> None:
        self.async_url = async_url
        self.async_engine = async_engine
        if async_engine is not None:
            self.async_engine = async_engine.execution_options(isolation_level="AUTOCOMMIT")
        self._build = build
        self._table = table
        self._batch_size = batch_size
        self.first_use = first_use
        self.seconds = seconds  # each of connecting and every statement
        self._sql: dict[tuple[str, str, str], dict[str, CompiledStatement]] = {}
        self._lock = threading.Lock()
        self._loop_engines: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[AsyncEngine, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------------ engines

    async def engine_for_loop(self) -> AsyncEngine | None:
        """The async engine for the running event loop; ``None`` without an async driver."""
        if self.async_url is None:
            return self.async_engine
        loop = asyncio.get_running_loop()
        entry = self._loop_engines.get(loop)
        if entry is not None:
            return entry[0]
        with self._lock:
            engine = self._build(self.async_url)
            guard = _dispose_at_shutdown(engine)
            self._loop_engines[loop] = (engine, guard)
        await anext(guard)
        return engine

    def _pop_loop_engines(self) -> list[tuple[AsyncEngine, AsyncGenerator[None, None]]]:
        with self._lock:
            engines = list(self._loop_engines.values())
            self._loop_engines.clear()
        return engines

    def forget(self) -> None:
        """Forget the engines of every loop, leaving their connections to the loops' shutdown
        (closing them here would touch another loop's sockets)."""
        for engine, _ in self._pop_loop_engines():
            engine.sync_engine.dispose(close=False)

    async def aclose(self) -> None:
        """Close the engine of the running loop, and forget the others'."""
        mine = self._loop_engines.get(asyncio.get_running_loop())
        for engine, guard in self._pop_loop_engines():
            if mine is not None and engine is mine[0]:
                await guard.aclose()
            else:
                engine.sync_engine.dispose(close=False)

    def after_fork(self) -> None:
        """In a forked child: another thread may have held the lock at the fork."""
        self._lock = threading.Lock()

    def _statements(self, engine: AsyncEngine) -> dict[str, CompiledStatement]:
        """The statements compiled for an async engine's dialect (its own parameter style)."""
        dialect = engine.dialect
        key = (dialect.name, dialect.driver, dialect.paramstyle)
        compiled = self._sql.get(key)
        if compiled is None:
            compiled = Statements(self._table, dialect, self._batch_size).compiled
            self._sql[key] = compiled
        return compiled

    # ------------------------------------------------------------------ one call

    async def ensure_ready(self, operation: str, engine: AsyncEngine) -> None:
        """Prepare the database (once) before a plan needs what it reads (the size limit)."""
        await self.run(operation, _nothing(), engine)

    async def run(self, operation: str, plan: Plan[T] | Step, engine: AsyncEngine) -> T | Any:
        """Run ``plan``, or a single step (whose result it returns), on ``engine``."""
        url = engine.url
        seconds = self.seconds
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
            await within(connection.start(), seconds)
            try:
                if not self.first_use.ready:
                    await within(connection.run_sync(self.first_use.prepare, operation), seconds)
                compiled = self._statements(engine)
                refusals: tuple[type[Exception], ...] = (
                    engine.dialect.loaded_dbapi.Error,
                    *untranslated,
                )
                if type(plan) is Step:
                    return await self._one(connection, compiled, plan, refusals)
                return await self._drive(connection, compiled, cast(Plan[T], plan), refusals)
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

    # ------------------------------------------------------------------ plans

    async def _one(
        self,
        connection: AsyncConnection,
        compiled: dict[str, CompiledStatement],
        step: Step,
        refusals: tuple[type[Exception], ...],
    ) -> Any:
        try:
            return await self._execute(connection, compiled, step)
        except refusals as exc:
            if not is_conflict(exc):
                raise
            return await self._retry(connection, compiled, step, exc, refusals)

    async def _drive(
        self,
        connection: AsyncConnection,
        compiled: dict[str, CompiledStatement],
        plan: Plan[T],
        refusals: tuple[type[Exception], ...],
    ) -> T:
        result: Any = None
        conflict: Conflict | None = None
        transaction = False
        try:
            while True:
                step = advance(plan, result, conflict)
                conflict = None
                if type(step) is Done:
                    value: T = step.value
                    return value
                if type(step) is Pause:
                    await asyncio.sleep(step.seconds)
                    result = None
                    continue
                step = cast(Step, step)
                try:
                    result = await self._execute(connection, compiled, step)
                except refusals as exc:
                    if not is_conflict(exc):
                        raise
                    if transaction:
                        await self._execute(connection, compiled, _ROLLBACK)
                        transaction = False
                        conflict = Conflict()
                        conflict.__cause__ = exc
                    else:
                        result = await self._retry(connection, compiled, step, exc, refusals)
                transaction = in_transaction(step, transaction)
        except BaseException:
            if transaction:  # never back to the pool inside a transaction (it resets nothing)
                with contextlib.suppress(Exception):
                    await connection.invalidate()
            raise

    async def _retry(
        self,
        connection: AsyncConnection,
        compiled: dict[str, CompiledStatement],
        step: Step,
        exc: Exception,
        refusals: tuple[type[Exception], ...],
    ) -> Any:
        """Run a statement refused by a conflict again, after a random pause, up to
        :data:`~.conflicts.ATTEMPTS` times in all; its first refusal was ``exc``."""
        for attempt in range(ATTEMPTS - 1):
            await asyncio.sleep(pause(attempt))
            try:
                return await self._execute(connection, compiled, step)
            except refusals as again:
                if not is_conflict(again):
                    raise
                exc = again
        raise Conflict from exc

    async def _execute(
        self, connection: AsyncConnection, compiled: dict[str, CompiledStatement], step: Step
    ) -> Any:
        # The compiled SQL straight to the driver's (adapted) cursor, as on the sync path:
        # SQLAlchemy's execute() machinery costs about as much CPU as the rest of the call.
        statement = compiled[step.statement]
        return await within(connection.run_sync(_execute_step, statement, step), self.seconds)
