"""The store's statements through SQLAlchemy's :class:`~sqlalchemy.engine.Connection`, where the
engine's ``echo`` and its ``before_cursor_execute``/``after_cursor_execute`` listeners see them.

The sync driver takes this path while the engine's ``echo`` is on, or always with the
``sql_events`` option; otherwise it hands its compiled SQL straight to a DB-API cursor it keeps
on the pooled connection (see :mod:`.connections`). The statements are the same, compiled
ahead, run with :meth:`~sqlalchemy.engine.Connection.exec_driver_sql`; what this path adds is
SQLAlchemy's execution machinery (events, logging, result objects, its autobegin): a load
took 40 to 50 µs of CPU against 9 on SQLite, 160 to 240 against 50 to 60 on PostgreSQL (see the
plugin's README).

:class:`CoreProxy` and :class:`CoreCursor` give the driver the few parts of a pooled connection
and a DB-API cursor it uses, over one ``Connection``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = ["CoreCursor", "CoreProxy"]


class CoreCursor:
    """A DB-API cursor's ``execute``/``fetchone``/``fetchall``/``rowcount``, run through
    ``connection``; errors come out as the driver's own, as from a cursor (SQLAlchemy's
    wrapper is their ``__cause__``)."""

    __slots__ = ("connection", "result")

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        self.result: sa.CursorResult[Any] | None = None

    def execute(self, sql: str, parameters: Any) -> None:
        """Run ``sql`` with ``parameters`` (in the driver's own parameter style)."""
        try:
            self.result = self.connection.exec_driver_sql(sql, parameters)
        except sa.exc.DBAPIError as exc:
            if exc.orig is None:
                raise
            raise exc.orig from exc

    def _last(self) -> sa.CursorResult[Any]:
        if self.result is None:
            raise RuntimeError("no statement has run on this cursor")
        return self.result

    def fetchone(self) -> Any:
        """The next row of the last statement, or ``None``."""
        return self._last().fetchone()

    def fetchall(self) -> list[Any]:
        """The remaining rows of the last statement."""
        return list(self._last().fetchall())

    @property
    def rowcount(self) -> int:
        """The rows the last statement wrote."""
        return self._last().rowcount

    def close(self) -> None:
        """Drop the last result."""
        self.result = None


class CoreProxy:
    """The parts of a pooled connection the sync driver uses, over a ``Connection``: closing it
    gives the pooled connection back, invalidating it closes it for good."""

    __slots__ = ("connection", "dbapi_connection", "info")

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        self.dbapi_connection: Any = connection.connection.dbapi_connection
        self.info = connection.info

    def cursor(self) -> CoreCursor:
        """A cursor running its statements through the ``Connection``."""
        return CoreCursor(self.connection)

    def commit(self) -> None:
        """Commit the ``Connection``'s transaction (an engine handed over may not be in
        autocommit mode)."""
        self.connection.commit()

    def close(self) -> None:
        """Give the connection back to the pool."""
        self.connection.close()

    def invalidate(self, error: BaseException | None = None) -> None:
        """Close the connection for good (the pool opens another in its place)."""
        if not self.connection.closed:  # closed: its pooled connection went back already
            self.connection.invalidate(error)
