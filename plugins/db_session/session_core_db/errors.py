"""The db store's own exceptions, and how database errors become session-core ones."""

from __future__ import annotations

from sqlalchemy.engine import URL

from session_core import SessionCoreError, StoreUnreachableError
from session_core import SessionTooLargeError as CoreSessionTooLargeError

__all__ = [
    "MissingTableError",
    "OutdatedTableError",
    "SessionTooLargeError",
    "StoreConflictError",
    "UserIdTooLongError",
    "describe",
    "timed_out",
    "unreachable",
]


class MissingTableError(StoreUnreachableError):
    """The sessions table does not exist and ``create_table`` is false.

    Raised by each operation while the table is missing, with the ways to create it. It is a
    :class:`~session_core.StoreUnreachableError` (the middleware answers 503 with Retry-After),
    not a :class:`~session_core.ConfigurationError`: nothing in the configuration is wrong, the
    database is not ready yet (an app started before its migration ran), and the store works as
    soon as the table exists, with no restart. Checking at start-up instead would make building
    a store a database round trip, and an app unable to start while its database is down.

    Attributes:
        table_name: the missing table.
    """

    def __init__(self, table_name: str, target: str, operation: str) -> None:
        self.table_name = table_name
        super().__init__(
            "db",
            target,
            operation,
            f"the sessions table {table_name!r} does not exist and create_table is false. "
            f"Create it with one of: set create_table = true; run the SQL printed by "
            f"`session-core db schema --url '{target}' --table {table_name}`; run "
            f"the schema.sql shipped in the session_core_db package; or, with Alembic, call "
            f"session_core_db.create_session_table(op, {table_name!r}) in a migration",
        )


class OutdatedTableError(StoreUnreachableError):
    """The sessions table was made by an earlier version: it lacks the columns of sessions per
    user, and ``create_table`` is false (with it true, the store adds them itself).

    Raised by each operation until the columns exist, like :class:`MissingTableError` and for the
    same reason (a 503, and the store works once the table is upgraded, with no restart). The
    message holds the ``ALTER TABLE`` statements that upgrade the table.

    Attributes:
        table_name: the outdated table.
        missing: the names of the columns it lacks.
        statements: the SQL that adds them (and their index), for this database.
    """

    def __init__(
        self, table_name: str, target: str, operation: str, missing: tuple[str, ...], sql: str
    ) -> None:
        self.table_name = table_name
        self.missing = missing
        self.statements = sql
        super().__init__(
            "db",
            target,
            operation,
            f"the sessions table {table_name!r} lacks the columns {', '.join(missing)} "
            f"(added for sessions per user) and create_table is false. Upgrade it "
            f"with one of: set create_table = true; run the SQL printed by `session-core db "
            f"upgrade --url '{target}' --table {table_name}`, which is:\n{sql}or, with "
            f"Alembic, call session_core_db.add_user_columns(op, {table_name!r}) in a migration",
        )


class StoreConflictError(StoreUnreachableError):
    """The database kept refusing a write because of concurrent writers, after retries.

    A deadlock, a lock wait timeout, a serialization failure or a busy SQLite file: the server
    answered, and the message says so. The store retries such conflicts itself; this is what is
    left when they go on. The write did not happen, and trying it again later is safe, so it is
    a :class:`~session_core.StoreUnreachableError` (an operation on the store failed): every
    middleware answers it with a 503 and ``Retry-After``, as for an outage.

    The underlying exception is chained as ``__cause__``.

    Attributes:
        store: the store's name (``"db"``).
        target: the database URL, without its password.
        operation: what it was doing (``"save"``, ...).
        attempts: how many times it tried.
    """

    def __init__(self, target: str, operation: str, attempts: int, reason: str) -> None:
        self.attempts = attempts
        super().__init__(
            "db",
            target,
            operation,
            f"the database refused it {attempts} times in a row because of concurrent writers "
            f"({reason}); the write did not happen, and it is safe to try again",
        )


class SessionTooLargeError(CoreSessionTooLargeError):
    """A session is larger than its database can store; nothing was sent to the database.

    A :class:`session_core.SessionTooLargeError` (catch that one for any store).

    Attributes:
        size: the session's encoded size in bytes, as it would be sent.
        limit: the largest size the database takes, in bytes.
        reason: where the limit comes from (``"max_allowed_packet"``, ...).
        target: the database URL, without its password.
    """

    def __init__(self, size: int, limit: int, reason: str, target: str) -> None:
        super().__init__("db", size, limit, target, reason)


class UserIdTooLongError(SessionCoreError, ValueError):
    """A session's user id is longer, as text, than the ``user_id`` column holds; nothing was
    sent to the database.

    Attributes:
        length: the id's length in characters (``len(user_index_name(user_id))``).
        limit: the most the column holds.
    """

    def __init__(self, length: int, limit: int) -> None:
        self.length = length
        self.limit = limit
        super().__init__(
            f"db store: a user id of {length} characters is longer than the {limit} that the "
            f"sessions table's user_id column holds, so the session cannot be bound to it; "
            f"bind sessions to a shorter id (the user's primary key, say)"
        )


def describe(url: URL, exc: BaseException) -> str:
    """The first line of the driver's message for ``exc``, with ``url``'s password scrubbed.

    Only the first line: SQLAlchemy's own message would add the statement's parameters, which
    hold session data.
    """
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip() or type(original).__name__
    reason = text.splitlines()[0]
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return f"{type(original).__name__}: {reason}"


def unreachable(url: URL, operation: str, exc: BaseException) -> StoreUnreachableError:
    """A :class:`~session_core.StoreUnreachableError` for ``exc``, naming the db store and
    ``url`` without its password (also scrubbed from the driver's message)."""
    target = url.render_as_string(hide_password=True)
    return StoreUnreachableError("db", target, operation, describe(url, exc))


def timed_out(url: URL, operation: str, seconds: float) -> StoreUnreachableError:
    """A :class:`~session_core.StoreUnreachableError` for a database that did not answer within
    the ``timeout`` option's ``seconds``."""
    target = url.render_as_string(hide_password=True)
    return StoreUnreachableError(
        "db",
        target,
        operation,
        f"timed out after {seconds:g} seconds: the database did not answer (the timeout option)",
    )
