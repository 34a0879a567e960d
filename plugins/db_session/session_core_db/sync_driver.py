"""The sync driver: runs plans on DB-API cursors of the engine's pool, SQL compiled ahead.

A load, the usual update and a delete are a single :class:`~.plans.Step`, run with no generator
at all. Every error ends as one of the store's: :class:`~session_core.StoreUnreachableError`
(an outage, a timeout), :class:`~.errors.StoreConflictError` or
:class:`~.errors.SessionTooLargeError`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, TypeVar, cast, overload

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from .conflicts import ATTEMPTS, Conflict, is_conflict, pause
from .connections import Connection, Connections
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
from .sql_log import log_step
from .statements import CompiledStatement, fetch
from .timeouts import TimedOut, Watchdog, is_read_timeout

__all__ = ["SyncDriver"]

T = TypeVar("T")


class SyncDriver:
    """Runs plans for the store's sync methods on ``engine``."""

    def __init__(
        self,
        engine: Engine,
        url: URL,
        owned: bool,
        compiled: dict[str, CompiledStatement],
        connections: Connections,
        watchdog: Watchdog | None,
        first_use: FirstUse,
        seconds: float | None,
    ) -> None:
        self.engine = engine
        self.url = url
        self.target = url.render_as_string(hide_password=True)
        self.owned = owned
        self.compiled = compiled
        self.connections = connections
        self.watchdog = watchdog
        self.first_use = first_use
        self.seconds = seconds or 0.0
        self.lock = threading.Lock()
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error

    # ------------------------------------------------------------------ one call

    @overload
    def run(self, operation: str, plan: Plan[T]) -> T: ...

    @overload
    def run(self, operation: str, plan: Step) -> Any: ...

    def run(self, operation: str, plan: Plan[T] | Step) -> T | Any:
        """Run ``plan``, or a single step (whose result it returns), on a connection."""
        if not self.first_use.ready:
            self.ensure_ready(operation)
        connections = self.connections
        try:
            connection = connections.acquire()
        except (sa.exc.SQLAlchemyError, OSError, self._dbapi_error) as exc:
            # raw_connection() passes the driver's own connect errors through, unwrapped
            raise unreachable(self.url, operation, exc) from exc
        try:
            result = self._drive(connection, plan)
            if not self.owned:  # a given engine may not be in autocommit mode
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
                self.target, operation, ATTEMPTS, describe(self.url, cause)
            ) from cause
        except TimedOut as exc:
            # The watchdog broke the socket: the connection must not be used again.
            connections.discard(connection, exc)
            raise timed_out(self.url, operation, self.seconds) from exc
        except self._dbapi_error as exc:
            self._failed(connection, exc)
            if self.seconds and is_read_timeout(exc):  # PyMySQL's read_timeout
                raise timed_out(self.url, operation, self.seconds) from exc
            raise unreachable(self.url, operation, exc) from exc
        except BaseException as exc:
            # Interrupted midway (a signal handler's exception, a timeout library's, a
            # KeyboardInterrupt), perhaps inside the driver: the connection's state is unknown,
            # so it is never reused.
            connections.discard(connection, exc)
            raise
        connections.release(connection)
        return result

    def _failed(self, connection: Connection, exc: Exception) -> None:
        """Give up ``connection`` after the driver error ``exc``; after a disconnect, every
        connection opened before it too (most likely, they lost their server as well)."""
        connections = self.connections
        try:
            lost = self.engine.dialect.is_disconnect(
                cast(Any, exc), connection.dbapi, connection.cursor
            )
        except Exception:  # the check itself failed: assume the worst, never leak it
            lost = True
        if lost:
            connections.discard(connection, exc)
            connections.lost(exc)
        else:
            # Left inside a transaction (its rollback failed), it must not be reused: the
            # pool does not reset connections (pool_reset_on_return is off).
            connections.discard(connection, exc if connection.transaction else None)

    # ------------------------------------------------------------------ plans

    def _drive(self, connection: Connection, plan: Plan[T] | Step) -> T | Any:
        if type(plan) is Step:  # one statement: no generator to step through
            try:
                return self._execute(connection, plan)
            except self._dbapi_error as exc:
                if not is_conflict(exc):
                    raise
                return self._retry(connection, plan, exc)
        plan = cast(Plan[T], plan)
        result: Any = None
        conflict: Conflict | None = None
        try:
            while True:
                step = advance(plan, result, conflict)
                conflict = None
                if type(step) is Done:
                    value: T = step.value
                    return value
                if type(step) is Pause:
                    time.sleep(step.seconds)
                    result = None
                    continue
                step = cast(Step, step)
                try:
                    result = self._execute(connection, step)
                except self._dbapi_error as exc:
                    if not is_conflict(exc):
                        raise
                    if connection.transaction:
                        conflict = self._roll_back(connection, exc)
                    else:
                        result = self._retry(connection, step, exc)
                connection.transaction = in_transaction(step, connection.transaction)
        finally:
            if connection.transaction:  # an error inside the transaction: end it
                with contextlib.suppress(self._dbapi_error, TimedOut):
                    self._roll_back(connection, None)

    def _retry(self, connection: Connection, step: Step, exc: Exception) -> Any:
        """Run a statement refused by a conflict again, after a random pause, up to
        :data:`~.conflicts.ATTEMPTS` times in all; its first refusal was ``exc``."""
        for attempt in range(ATTEMPTS - 1):
            time.sleep(pause(attempt))
            try:
                return self._execute(connection, step)
            except self._dbapi_error as again:
                if not is_conflict(again):
                    raise
                exc = again
        raise Conflict from exc

    def _roll_back(self, connection: Connection, exc: Exception | None) -> Conflict:
        """Roll back the transaction of ``connection`` after ``exc``, a conflict; the
        :class:`~.conflicts.Conflict` to throw into the plan."""
        self._execute(connection, Step(Kind.ROLLBACK, "rollback", {}))
        connection.transaction = False
        conflict = Conflict()
        conflict.__cause__ = exc
        return conflict

    def _execute(self, connection: Connection, step: Step) -> Any:
        statement = self.compiled[step.statement]
        log_step(self.target, step, statement)
        watchdog = self.watchdog
        if watchdog is None:
            return fetch(connection.cursor, statement, step.kind, step.params)
        token = watchdog.start(connection.dbapi)
        try:
            return fetch(connection.cursor, statement, step.kind, step.params)
        finally:
            if watchdog.stop(token):
                raise TimedOut  # replaces the driver's error about the broken socket

    def _commit(self, connection: Connection) -> None:
        watchdog = self.watchdog
        token = watchdog.start(connection.dbapi) if watchdog is not None else 0
        try:
            connection.proxy.commit()
        finally:
            if watchdog is not None and watchdog.stop(token):
                raise TimedOut

    # ------------------------------------------------------------------ first use

    def ensure_ready(self, operation: str) -> None:
        """Prepare the database (once), within ``timeout``."""
        with self.lock:
            if self.first_use.ready:
                return
            watchdog = self.watchdog
            try:
                with self.engine.connect() as connection:
                    dbapi_connection = connection.connection.dbapi_connection
                    token = watchdog.start(dbapi_connection) if watchdog else 0
                    try:
                        self.first_use.prepare(connection, operation)
                    finally:
                        if watchdog is not None and watchdog.stop(token):
                            connection.invalidate()
                            raise TimedOut
            except TimedOut as exc:
                raise timed_out(self.url, operation, self.seconds) from exc
            except (MissingTableError, OutdatedTableError):  # ConnectionErrors (OSError): made
                raise
            except (sa.exc.SQLAlchemyError, OSError) as exc:
                if self.seconds and is_read_timeout(exc):
                    raise timed_out(self.url, operation, self.seconds) from exc
                raise unreachable(self.url, operation, exc) from exc

    def after_fork(self) -> None:
        """In a forked child: another thread may have held the lock at the fork."""
        self.lock = threading.Lock()
        self.connections.after_fork()
