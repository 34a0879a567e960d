"""How large a session each database can store, checked before anything is sent.

Without the check a session over the limit fails on the server, and on MariaDB and MySQL badly:
a statement over ``max_allowed_packet`` makes the server drop the connection ("MySQL server has
gone away"), which reads as an outage and throws away the pool's other connections too.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from .errors import SessionTooLargeError

__all__ = ["SizeLimit", "default_limit", "read_limit"]

MEDIUMTEXT_BYTES = 2**24 - 1
"""The most the ``data`` column holds on MariaDB and MySQL (``MEDIUMTEXT``)."""

POSTGRESQL_BYTES = 2**30 - 1
"""The most a PostgreSQL ``TEXT`` value holds (1 GB)."""

SQLITE_BYTES = 1_000_000_000
"""SQLite's default ``SQLITE_LIMIT_LENGTH``, the most a string may hold."""

STATEMENT_ROOM = 4096
"""Bytes kept for the rest of a statement or a row (its SQL, the key hash, the expiry) beside the
data."""


@dataclass(frozen=True, slots=True)
class SizeLimit:
    """The largest session data a database takes.

    Attributes:
        limit: the limit in bytes, as sent.
        reason: where it comes from, for the error message.
        escaped: whether the driver sends values escaped inside the SQL text (the MySQL
            drivers do), so each quote and backslash takes one byte more.
    """

    limit: int
    reason: str
    escaped: bool = False

    @property
    def quick(self) -> int:
        """A length in characters below which no session can be over the limit (UTF-8 takes
        at most 4 bytes a character, and an escaped one 2), so most saves check nothing."""
        return self.limit // 4

    def check(self, text: str, target: str) -> None:
        """Raise :class:`SessionTooLargeError` if the JSON ``text`` is over the limit."""
        size = len(text.encode())
        if self.escaped:  # JSON escapes every other character MySQL's escaping would touch
            size += text.count('"') + text.count("\\") + text.count("'")
        if size > self.limit:
            raise SessionTooLargeError(size, self.limit, self.reason, target)


def default_limit(dialect_name: str) -> SizeLimit:
    """The limit of a database before its own settings are read (at first use)."""
    if dialect_name in ("mysql", "mariadb"):
        return SizeLimit(MEDIUMTEXT_BYTES, "the MEDIUMTEXT data column", True)
    if dialect_name == "postgresql":
        return SizeLimit(POSTGRESQL_BYTES - STATEMENT_ROOM, "PostgreSQL's 1 GB limit on a value")
    if dialect_name == "sqlite":
        return SizeLimit(SQLITE_BYTES - STATEMENT_ROOM, "SQLite's SQLITE_LIMIT_LENGTH")
    return SizeLimit(sys.maxsize, "none known")


def read_limit(connection: Connection) -> SizeLimit:
    """The limit of the database ``connection`` is connected to, from its settings: on MariaDB
    and MySQL the server's ``max_allowed_packet`` (a statement larger than that makes the server
    drop the connection), on SQLite the connection's ``SQLITE_LIMIT_LENGTH``."""
    name = connection.dialect.name
    limit = default_limit(name)
    if name in ("mysql", "mariadb"):
        packet = int(connection.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())
        if packet - STATEMENT_ROOM < limit.limit:
            limit = SizeLimit(
                packet - STATEMENT_ROOM,
                f"the server's max_allowed_packet of {packet} bytes, less {STATEMENT_ROOM} for "
                f"the rest of the statement",
                True,
            )
    elif name == "sqlite":
        getlimit = getattr(connection.connection.dbapi_connection, "getlimit", None)
        if getlimit is not None:  # pysqlite; aiosqlite's connection has none
            import sqlite3

            # The limit holds for the whole row too (SQLite stores it as one record).
            length = int(getlimit(sqlite3.SQLITE_LIMIT_LENGTH))
            limit = SizeLimit(
                length - STATEMENT_ROOM,
                f"SQLite's SQLITE_LIMIT_LENGTH of {length} bytes for a row, less "
                f"{STATEMENT_ROOM} for its other columns",
            )
    return limit
