"""The async driver: runs plans on connections of SQLAlchemy's asyncio extension, one engine
per event loop, SQL compiled ahead (see :mod:`.async_steps` for how a step runs)."""

from __future__ import annotations

import asyncio
import sys
from logging import DEBUG
from typing import TYPE_CHECKING, Any, TypeVar, cast

import sqlalchemy as sa

from .async_connections import AsyncConnections, Held, LoopEngine
from .async_steps import StepRunner, step_runner
from .conflicts import ATTEMPTS, Conflict, is_conflict, pause
from .errors import (
    MissingTableError,
    OutdatedTableError,
    SessionTooLargeError,
    StoreConflictError,
    describe,
    timed_out,
    unreachable,
)
from .first_use import FirstUse
from .plans import Done, Kind, Pause, Plan, Step, advance, in_transaction
from .sql_log import LOGGER, log_step
from .statements import CompiledStatement, Statements
from .timeouts import within

if TYPE_CHECKING:  # SQLAlchemy's asyncio extension imports only with greenlet installed
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["AsyncDriver"]

T = TypeVar("T")

_ROLLBACK = Step(Kind.ROLLBACK, "rollback", {})


def _nothing() -> Plan[None]:
    """A plan without a step: running it only connects (and prepares the database)."""
    return
    yield


def _untranslated_errors(dialect: sa.engine.Dialect) -> tuple[type[Exception], ...]:
    """Driver errors that SQLAlchemy does not translate: asyncpg's own (raised by its own
    connection, which the store uses directly, and on SQLAlchemy 2.0 by a refused login while
    connecting)."""
    asyncpg = sys.modules.get("asyncpg") if dialect.driver == "asyncpg" else None
    if asyncpg is None:  # not asyncpg (the dialect has imported it when it is)
        return ()
    return (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


class _Engine:
    """What the driver needs of one async engine, worked out once."""

    def __init__(self, engine: AsyncEngine, table: sa.Table, batch_size: int) -> None:
        dialect = engine.dialect
        self.target = engine.url.render_as_string(hide_password=True)
        self.compiled = Statements(table, dialect, batch_size).compiled
        self.run_step: StepRunner = step_runner(dialect.driver)
        untranslated = _untranslated_errors(dialect)
        self.refusals: tuple[type[Exception], ...] = (dialect.loaded_dbapi.Error, *untranslated)
        self.unknown_state: tuple[type[Exception], ...] = (TimeoutError, *untranslated)
        self.failures: tuple[type[Exception], ...] = (
            sa.exc.SQLAlchemyError,
            OSError,
            dialect.loaded_dbapi.Error,
            *untranslated,
        )


class AsyncDriver:
    """Runs plans for the store's async methods on the connections of ``connections``."""

    def __init__(
        self,
        connections: AsyncConnections,
        table: sa.Table,
        batch_size: int,
        first_use: FirstUse,
        seconds: float | None,
    ) -> None:
        self.connections = connections
        self._table = table
        self._batch_size = batch_size
        self.first_use = first_use
        self.seconds = seconds  # each of connecting and every statement
        self._engines: dict[int, _Engine] = {}

    def _engine(self, engine: AsyncEngine) -> _Engine:
        # By dialect: every loop's engine has the same one.
        key = id(type(engine.dialect))
        known = self._engines.get(key)
        if known is None:
            known = self._engines[key] = _Engine(engine, self._table, self._batch_size)
        return known

    async def ensure_ready(self, operation: str, loop_engine: LoopEngine) -> None:
        """Prepare the database (once) before a plan needs what it reads (the size limit)."""
        await self.run(operation, _nothing(), loop_engine)

    async def run(self, operation: str, plan: Plan[T] | Step, loop_engine: LoopEngine) -> T | Any:
        """Run ``plan``, or a single step (whose result it returns), on a connection of
        ``loop_engine``."""
        engine = loop_engine.engine
        known: _Engine | None = loop_engine.driver_state
        if known is None:
            known = loop_engine.driver_state = self._engine(engine)
        seconds = self.seconds
        try:
            idle = loop_engine.idle  # the most recently used kept connection, if any
            held = idle.pop() if idle else None
            if held is None or (held.recycle_at is not None and held.stale()):
                held = await loop_engine.checkout(seconds, held)
            try:
                if not self.first_use.ready:
                    prepare = held.connection.run_sync(self.first_use.prepare, operation)
                    await within(prepare, seconds)
                if type(plan) is Step:  # one statement, one await deep (no _one, _execute)
                    try:
                        statement = known.compiled[plan.statement]
                        if LOGGER.isEnabledFor(DEBUG):
                            log_step(known.target, plan, statement)
                        result = await known.run_step(held, statement, plan, seconds)
                    except known.refusals as exc:
                        if not is_conflict(exc):
                            raise
                        result = await self._retry(held, known, plan, exc)
                else:
                    result = await self._drive(held, known, cast(Plan[T], plan))
            except (Conflict, SessionTooLargeError):
                # Refused by concurrent writers, again and again (any transaction was rolled
                # back), or refused before it was sent: the connection is fine, unless the
                # refusal left it inside a transaction.
                if held.transaction:
                    await loop_engine.discard(held)
                elif not loop_engine.put_back(held):
                    await held.connection.close()
                raise
            except BaseException:
                # A statement cancelled midway, a driver error: the connection's state is
                # unknown, so it must not be reused.
                await loop_engine.discard(held)
                raise
            if not loop_engine.put_back(held):
                await held.connection.close()
            return result
        except (MissingTableError, OutdatedTableError):  # ConnectionErrors (OSError): made
            raise
        except Conflict as exc:
            cause = exc.__cause__ or exc
            target = engine.url.render_as_string(hide_password=True)
            raise StoreConflictError(
                target, operation, ATTEMPTS, describe(engine.url, cause)
            ) from cause
        except TimeoutError as exc:
            if seconds is None:  # the driver's own timeout
                raise unreachable(engine.url, operation, exc) from exc
            raise timed_out(engine.url, operation, seconds) from exc
        except known.failures as exc:  # asyncpg: OSError on connect
            raise unreachable(engine.url, operation, exc) from exc

    # ------------------------------------------------------------------ plans

    async def _drive(self, held: Held, known: _Engine, plan: Plan[T]) -> T:
        result: Any = None
        conflict: Conflict | None = None
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
                result = await self._execute(held, known, step)
            except known.refusals as exc:
                if not is_conflict(exc):
                    raise  # the caller never reuses the connection, in a transaction or not
                if held.transaction:
                    await self._execute(held, known, _ROLLBACK)
                    held.transaction = False
                    conflict = Conflict()
                    conflict.__cause__ = exc
                else:
                    result = await self._retry(held, known, step, exc)
            held.transaction = in_transaction(step, held.transaction)

    async def _retry(self, held: Held, known: _Engine, step: Step, exc: Exception) -> Any:
        """Run a statement refused by a conflict again, after a random pause, up to
        :data:`~.conflicts.ATTEMPTS` times in all; its first refusal was ``exc``."""
        for attempt in range(ATTEMPTS - 1):
            await asyncio.sleep(pause(attempt))
            try:
                return await self._execute(held, known, step)
            except known.refusals as again:
                if not is_conflict(again):
                    raise
                exc = again
        raise Conflict from exc

    async def _execute(self, held: Held, known: _Engine, step: Step) -> Any:
        statement: CompiledStatement = known.compiled[step.statement]
        log_step(known.target, step, statement)
        return await known.run_step(held, statement, step, self.seconds)
