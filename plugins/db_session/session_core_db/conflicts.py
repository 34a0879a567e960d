"""Which database errors are conflicts between concurrent writers, and how often to retry them.

A conflict is the database refusing a write because another transaction holds what it needs: a
deadlock, a lock wait timeout, a serialization failure, a busy SQLite file. The server answered
and nothing was written, so the write can simply be tried again, unlike an outage.
"""

from __future__ import annotations

import random

__all__ = ["ATTEMPTS", "Conflict", "is_conflict", "pause"]

ATTEMPTS = 8
"""How many times a statement (or a locked merge) is tried before a conflict is reported."""

_POSTGRESQL = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available (lock_timeout)
    }
)
_MYSQL = frozenset(
    {
        1205,  # ER_LOCK_WAIT_TIMEOUT
        1213,  # ER_LOCK_DEADLOCK
        1020,  # ER_CHECKREAD: record changed since last read (MariaDB's snapshot isolation)
    }
)
_SQLITE = frozenset({5, 6})  # SQLITE_BUSY ("database is locked"), SQLITE_LOCKED


class Conflict(Exception):
    """Thrown into a plan whose transaction lost a conflict (and was rolled back), so that it
    can start the transaction again."""


def is_conflict(exc: BaseException | None) -> bool:
    """Whether the driver error ``exc`` (or the error it wraps) is a conflict between writers."""
    error = exc
    for _ in range(3):  # the error itself, SQLAlchemy's wrapper's ``orig``, an adapter's cause
        if error is None:
            return False
        args = getattr(error, "args", ())
        if args and type(args[0]) is int and args[0] in _MYSQL:  # PyMySQL, aiomysql
            return True
        # psycopg, asyncpg and SQLAlchemy's asyncpg adapter; PyMySQL has one too (HY000...)
        sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if sqlstate in _POSTGRESQL:
            return True
        code = getattr(error, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _SQLITE:
            return True
        error = getattr(error, "orig", None) or error.__cause__
    return False


def pause(attempt: int) -> float:
    """Seconds to wait before try ``attempt + 1``: random, so that writers that just collided
    do not collide again, and longer each time."""
    return random.uniform(0, 0.002 * 2**attempt)  # noqa: S311 - jitter, not secrets
